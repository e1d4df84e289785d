"""The fidelity report's power: reconstruct a real recording correctly, break it on purpose in realistic ways
(`defects.CATALOG`), run the report on every variant and tabulate what it caught (`lake-pipeline fidelity power`).

A defect is caught when the overall verdict is at least what its severity demands (FAIL for severe, WARN or FAIL
for mild) AND one of the metric families expected to notice it flagged it (a WARN or FAIL row). The correct
reconstruction must PASS. The base and every variant are ordinary data roots under `work`, so a variant's report
can be opened and re-run by hand.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipeline import paths
from lake_pipeline.fidelity import catalog, defects, tolerances
from lake_pipeline.fidelity.scoring import FAIL, PASS, WARN
from lake_pipeline.instrument import Partition

LAKE_TABLES = ("trades", "book", "book_delta_v2")
CORRECT = "correct reconstruction"


@dataclass(frozen=True)
class Target:
    """The real recording and the partition of it the table is computed on."""

    capture: tuple[Path, ...]
    part: Partition


@dataclass
class Row:
    defect: str
    stage: str
    expected: str
    expected_families: tuple[str, ...]
    status: str
    score: float | None
    flagged: dict[str, list[str]] = field(default_factory=dict)  # family -> metrics at WARN/FAIL
    seconds: float = 0.0

    @property
    def caught(self) -> bool:
        if self.expected == PASS:
            return self.status == PASS
        verdict_ok = self.status == FAIL or (self.expected != FAIL and self.status == WARN)
        return verdict_ok and bool(set(self.flagged) & set(self.expected_families))


def _cli(argv: list[str]) -> None:
    """Run a pipeline command as a user would (its summary on stdout is not part of the table)."""
    import contextlib
    import io

    from lake_pipeline.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    if rc != 0:
        raise RuntimeError(f"`lake-pipeline {' '.join(map(str, argv[:1]))}` failed with exit code {rc}")


def _published(root: Path, t: Target) -> bool:
    return (paths.unified_dir(root, t.part) / "_SUCCESS").is_file()


def link_golden(root: Path, t: Target) -> None:
    """The recording itself, as the partition's golden session (files linked, never copied)."""
    session = paths.golden_dir(root, t.part) / "session=recording"
    session.mkdir(parents=True, exist_ok=True)
    for f in t.capture:
        link = session / Path(f).name
        if not link.exists():
            link.symlink_to(Path(f).resolve())


def prepare_base(t: Target, work: Path) -> Path:
    """lake-from-capture → reconstruct (once; reused when already published) with the golden session linked."""
    root = Path(work) / "base"
    link_golden(root, t)
    if not _published(root, t):
        _cli(["lake-from-capture", "--capture", *t.capture, "--data-root", root, "--symbol", t.part.symbol,
              "--exchange", t.part.exchange])
        _reconstruct(root, t)
    return root


def _reconstruct(root: Path, t: Target) -> None:
    _cli(["reconstruct", "--data-root", root, "--symbol", t.part.symbol, "--date", t.part.date, "--exchange",
          t.part.exchange, "--quiet"])


def read_parts(d: Path) -> tuple[pl.DataFrame, pa.Schema]:
    tables = [pq.read_table(p) for p in sorted(d.glob("part-*.parquet"))]
    schema = tables[0].schema
    return pl.from_arrow(pa.concat_tables(tables)), schema


def write_parts(src: Path, dst: Path, df: pl.DataFrame, schema: pa.Schema) -> None:
    """A published copy of `src` holding `df` (same schema and metadata, markers and summaries copied)."""
    dst.mkdir(parents=True, exist_ok=True)
    pq.write_table(df.to_arrow().cast(schema), dst / "part-00000.parquet", compression="zstd")
    for extra in src.iterdir():
        if not extra.name.startswith("part-"):
            shutil.copy2(extra, dst / extra.name)


def _context(t: Target, seed: int) -> defects.Context:
    from lake_pipeline.config import symbol_spec

    spec = symbol_spec(t.part.instrument)
    if spec is None:
        raise ValueError(f"power: {t.part.instrument} needs a configured tick and lot (lake_pipeline/symbols.yaml)")
    return defects.Context(np.random.default_rng(seed), spec.tick, spec.lot)


def make_variant(base: Path, t: Target, d: defects.Defect, work: Path, seed: int) -> Path:
    """A data root holding the base reconstruction broken by `d` (output defects) or rebuilt from broken lake
    tables (input defects), with the same golden session."""
    root = Path(work) / "variants" / d.name.replace("/", "_")
    if root.exists():
        shutil.rmtree(root)
    link_golden(root, t)
    ctx = _context(t, seed)
    if d.stage == defects.OUTPUT:
        udir, sdir = paths.unified_dir(base, t.part), paths.book_states_dir(base, t.part)
        (events, es), (states, ss) = read_parts(udir), read_parts(sdir)
        broken = d.apply(defects.Recon(events, states), ctx)
        write_parts(udir, paths.unified_dir(root, t.part), broken.events, es)
        write_parts(sdir, paths.book_states_dir(root, t.part), broken.states, ss)
        return root
    tables, schemas, dirs = {}, {}, {}
    for name in LAKE_TABLES:
        dirs[name] = paths.lake_ready(base, t.part, name)
        tables[name], schemas[name] = read_parts(dirs[name])
    broken = d.apply(tables, ctx)
    for name in LAKE_TABLES:
        write_parts(dirs[name], paths.lake_ready(root, t.part, name), broken[name], schemas[name])
    _reconstruct(root, t)
    return root


def quick_tolerances(work: Path, reps: int | None) -> Path | None:
    """The shipped tolerances with fewer bootstrap replicates (for the reduced table in the test suite)."""
    if reps is None:
        return None
    tol = tolerances.load()
    tol.bootstrap = {**tol.bootstrap, "reps": int(reps)}
    out = Path(work) / f"tolerances-reps{reps}.yaml"
    tolerances.dump(tol, out)
    return out


def report_row(root: Path, t: Target, name: str, stage: str, expected: str, families: tuple[str, ...],
               tol_path: Path | None) -> Row:
    from lake_pipeline.fidelity.runner import run_fidelity

    t0 = time.perf_counter()
    doc = run_fidelity(root, t.part, tolerances_path=tol_path).to_json()
    flagged: dict[str, list[str]] = {}
    for m in doc["metrics"]:
        if m["status"] in (WARN, FAIL):
            flagged.setdefault(m["family"], []).append(m["name"])
    return Row(name, stage, expected, families, doc["status"], doc["score"], flagged, time.perf_counter() - t0)


def run(t: Target, work: Path, chosen: list[defects.Defect], *, seed: int = 1, reps: int | None = None,
        keep: bool = False, progress=None) -> list[Row]:
    """The confusion table: the correct reconstruction first, then one row per defect."""
    work = Path(work)
    base = prepare_base(t, work)
    tol_path = quick_tolerances(work, reps)
    rows = [report_row(base, t, CORRECT, "-", PASS, (), tol_path)]
    if progress:
        progress(rows[-1])
    for i, d in enumerate(chosen):
        root = make_variant(base, t, d, work, seed + i)
        rows.append(report_row(root, t, d.name, d.stage, FAIL if d.severity == defects.SEVERE else ">= WARN",
                               d.families, tol_path))
        if not keep:
            shutil.rmtree(root)
        if progress:
            progress(rows[-1])
    return rows


def table(rows: list[Row]) -> str:
    """Markdown confusion table (defect, expected verdict, actual, headline, families flagged, caught)."""
    head = ["| defect | stage | expected | actual | headline | families flagged (metrics) | expected families | "
            "caught |", "|---|---|---|---|---|---|---|---|"]
    lines = []
    for r in rows:
        fam = "; ".join(f"{f} ({', '.join(ms)})" for f, ms in sorted(r.flagged.items(), key=lambda kv: _order(kv[0])))
        score = "n/a" if r.score is None else f"{r.score:.3f}"
        lines.append(f"| {r.defect} | {r.stage} | {r.expected} | {r.status} | {score} | {fam or '—'} | "
                     f"{', '.join(r.expected_families) or '—'} | {'yes' if r.caught else 'NO'} |")
    caught = sum(r.caught for r in rows)
    return "\n".join(head + lines) + f"\n\n{caught}/{len(rows)} rows as expected\n"


def _order(family: str) -> int:
    return catalog.FAMILIES.index(family) if family in catalog.FAMILIES else len(catalog.FAMILIES)
