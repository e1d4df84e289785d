"""`lake-pipeline <component> …`: every component runs without Dagster too.

Each component owns a small `cli.py` module exposing `register(subparsers)`; heavy imports (numba, dagster,
polars) happen inside the command handlers so `lake-pipeline --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # component not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Domain errors carry the file / partition / field in their message; show it without a traceback.
        print(f"lake-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
