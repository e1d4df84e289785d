"""Provenance of lake tables made from a capture: which files (name, sha256, size) made a partition, and the rule
that one date never mixes two captures.

Each partition `lake-from-capture` publishes carries a `_manifest.json` with `"source": "capture"` and the capture
files. A later conversion may replace a partition only when it comes from the same capture files (a re-run), or
when the user says `--replace`; otherwise trades from one capture could end up beside the book of another.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from lake_pipeline.lake.acquire import read_manifest

SOURCE = "capture"


@dataclass(frozen=True)
class CaptureFile:
    name: str
    sha256: str
    bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def fingerprint(paths: list[Path]) -> list[CaptureFile]:
    """Name, sha256 and size of each capture file; FileNotFoundError / ValueError naming a missing or empty one."""
    out = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"capture file not found: {path}")
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        if size == 0:
            raise ValueError(f"{path}: capture file is empty (0 bytes)")
        out.append(CaptureFile(path.name, digest.hexdigest(), size))
    return out


def _describe(manifest: dict | None) -> str:
    if manifest is None:
        return "data without a manifest"
    if manifest.get("source") == SOURCE:
        return "capture " + ", ".join(f"{c['name']} (sha256 {c['sha256'][:12]}…)" for c in manifest.get("captures", []))
    return f"source {manifest.get('source')!r}"


def check_no_mix(ready_dir: Path, captures: list[CaptureFile], replace: bool) -> None:
    """Refuse to replace `ready_dir` when it holds data from anything but these capture files (unless `replace`)."""
    if replace or not ready_dir.exists():
        return
    manifest = read_manifest(ready_dir)
    ours = sorted(c.sha256 for c in captures)
    if manifest is not None and manifest.get("source") == SOURCE and sorted(
            c["sha256"] for c in manifest.get("captures", [])) == ours:
        return
    raise ValueError(
        f"{ready_dir} already holds {_describe(manifest)}; this conversion comes from "
        f"{', '.join(c.name for c in captures)}. Refusing to mix two sources in one date (nothing was published): "
        "convert the whole session in one run, or pass --replace to replace the date's tables"
    )
