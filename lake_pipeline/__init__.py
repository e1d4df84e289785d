"""lake_pipeline: Crypto Lake + Binance golden samples -> unified market event stream + fidelity report.

Domain packages (lake, assess, capture, book, reconstruct, fidelity, sim) know nothing of Dagster;
`defs/` holds the thin Dagster wrappers and `cli.py` runs every component without Dagster.
"""

__version__ = "0.1.0"
