"""Ground-truth market simulator: one seeded market -> Crypto Lake tables, a golden Binance feed, the true BBO.

`simulate(data_root, partition, hours, seed, …)` (CLI `lake-pipeline simulate`) writes, for one date partition:

* `lake/ready/{trades,book,book_delta_v2}/exchange=E/symbol=S/dt=D/1.snappy.parquet` — schemas exactly
  `schemas.LAKE_STORED` (or `LAKE_LOADED` with `lake_variant="loaded"`), key-value metadata `contains_gaps=Yes`.
  - book_delta_v2: one message per 100 ms depth tick with changes (empty ticks are skipped); its rows are the final
    absolute size of every level changed in the tick (0 = deleted), bids best first then asks best first; all rows
    share `timestamp` (the tick's emit time `E`), `receipt_timestamp` and `sequence_number` (= the message's last
    exchange update id `u`). Times went through float seconds like the real lake (`…999936`).
  - book: the true top 20 after each message (same times and sequence number); absent levels are 0.0 price/size.
  - trades: one row per taker order and price level (aggTrade), taker side, consecutive aggregate `id`,
    `timestamp` = trade time `T`.
  - Start-of-file scheme: the book starts with at most 20 levels per side and cannot grow past 20 before the first
    message, so the first book row describes every level; seeding from it and applying the deltas reproduces the
    true BBO after every message (deeper levels created later arrive as deltas). The file starts mid-stream.
* `golden/exchange=E/symbol=S/dt=D/session=sim-<seed>/frames-<YYYYmmddTHHMMSSZ>.jsonl.gz` + `session.json` —
  the Binance feed of the same market (`<recv_ns> <frame>` lines like the hftbacktest recordings: @trade per
  fill, @depth@100ms with the same ticks as the lake deltas and `U == prev_u + 1`, @bookTicker at every BBO change,
  one REST snapshot (limit 1000) whose `lastUpdateId` lies strictly inside the 3rd or a later diff); in USD-M
  payloads for a BINANCE_FUTURES partition (`pu`, `T`, trades with `"X":"MARKET"`, snapshot `E`/`T`).
* `sim_truth/exchange=E/symbol=S/dt=D/bbo.parquet` — per depth message: `update_id` (u), `exchange_time_ns`
  (exact `E` in ns), `bid_price`, `bid_size`, `ask_price`, `ask_size` (int64 ticks/lots); and `faults.json` — every
  injected lake fault (kind, time range, sequence numbers, expected effect) plus where a documented reference
  replay of the lake tables departs from the truth because of it.

Same arguments -> byte-identical files. Modules: `engine` (numba market), `params`, `rng`, `clock` (time
conventions, latencies), `lake_writer`, `golden_writer`, `faults`, `replay` (reference replay), `simulate`, `cli`.
"""


import importlib
import sys
import types

__all__ = ["SimSummary", "SimulationError", "simulate"]


class _LazySimPackage(types.ModuleType):
    """Imports the simulator (numba, scipy.signal: ~1 s) only when one of `__all__` is used, so that merely
    importing `lake_pipeline.sim.cli` (every `lake-pipeline` command registers it) stays cheap. The package
    attribute `simulate` stays the function even after the submodule `lake_pipeline.sim.simulate` is imported."""

    def __getattr__(self, name: str) -> object:
        if name not in __all__:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        module = importlib.import_module("lake_pipeline.sim.simulate")
        for public in __all__:
            self.__dict__[public] = getattr(module, public)
        return self.__dict__[name]

    def __setattr__(self, name: str, value: object) -> None:
        if name == "simulate" and isinstance(value, types.ModuleType):
            return  # the import system binding the submodule: keep the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _LazySimPackage
