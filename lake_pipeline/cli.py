"""`lake-pipeline <component> …`: every component runs without Dagster too.

Exit codes (all commands): 0 done, 2 bad input or usage, 3 missing at the source, 4 an input changed during the
run, 5 environment (disk full, permissions), 1 a bug, 130 interrupted; see `lake_pipeline/exits.py`.
Each component owns a small `cli.py` module exposing `register(subparsers)`; heavy imports (numba, dagster,
polars) happen inside the command handlers so `lake-pipeline --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lake_pipeline import exits

# Modules that contribute sub-commands. Each has `register(sub: argparse._SubParsersAction) -> None` and sets
# `func` on its parsers (a callable taking the parsed Namespace and returning an exit code).
COMMAND_MODULES = (
    "lake_pipeline.sim.cli",
    "lake_pipeline.sim.server_cli",
    "lake_pipeline.lake.cli",
    "lake_pipeline.capture.cli",
    "lake_pipeline.assess.cli",
    "lake_pipeline.reconstruct.cli",
    "lake_pipeline.fidelity.cli",
    "lake_pipeline.handoff.cli",
    "lake_pipeline.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lake-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:
        # Domain errors carry the file / partition / field in their message; show it without a traceback.
        code, message = exits.describe(exc)
        if code == exits.BUG:
            raise
        print(f"lake-pipeline {args.command}: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
