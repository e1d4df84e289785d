"""The public reader: events / book_states / book_at over published partitions, and what it refuses."""

from __future__ import annotations

import os
import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from lake_pipeline.handoff import UnpublishedPartition, book_at, book_states, events
from lake_pipeline.handoff.readable import to_utc
from lake_pipeline.instrument import Partition
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, FLAG_CROSSED, FLAG_TRADE_CONSUMED, FLAG_UNINITIALISED
from lake_pipeline_tests.handoff_support import DAY, EX, INSTRUMENT, SYM, copy_partition

WINDOW = ("2024-08-08T00:05:00", "2024-08-08T00:06:00")


def test_prices_as_decimal_float_and_ticks_agree_exactly(sim_quarter_hour: Path) -> None:
    cols = ["event_time", "price", "quantity", "best_bid_price", "best_ask_quantity"]
    dec = events(sim_quarter_hour, INSTRUMENT, *WINDOW, columns=cols).collect()
    flt = events(sim_quarter_hour, INSTRUMENT, *WINDOW, columns=cols, prices="float").collect()
    tck = events(sim_quarter_hour, INSTRUMENT, *WINDOW, columns=cols + ["tick", "lot"], prices="ticks").collect()
    assert len(dec) == len(flt) == len(tck) > 10_000
    tick, lot = tck["tick"][0], tck["lot"][0]
    assert (tick, lot) == (Decimal("0.01"), Decimal("0.00000001"))
    for c, unit in (("price", tick), ("quantity", lot), ("best_bid_price", tick), ("best_ask_quantity", lot)):
        d = dec[c].to_list()
        assert [None if v is None else v / unit for v in d] == tck[c].to_list()  # exact integers of the unit
        assert [None if v is None else float(v) for v in d] == flt[c].to_list()  # correctly rounded floats
    assert tck["price"].dtype == pl.Int64 and flt["price"].dtype == pl.Float64


def test_time_window_is_half_open_and_columns_are_checked(sim_quarter_hour: Path) -> None:
    t = events(sim_quarter_hour, INSTRUMENT, *WINDOW, columns=["event_time"]).collect()["event_time"]
    all_t = events(sim_quarter_hour, INSTRUMENT, "2024-08-08", "2024-08-09", columns=["event_time"]).collect()
    s, e = (to_utc(w) for w in WINDOW)
    expect = all_t.filter((pl.col("event_time") >= s) & (pl.col("event_time") < e))
    assert t.to_list() == expect["event_time"].to_list()
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['nope'\]"):
        events(sim_quarter_hour, INSTRUMENT, *WINDOW, columns=["event_time", "nope"])
    with pytest.raises(ValueError, match="prices='cents'"):
        events(sim_quarter_hour, INSTRUMENT, *WINDOW, prices="cents")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty time range"):
        events(sim_quarter_hour, INSTRUMENT, WINDOW[1], WINDOW[0])


def test_seeded_marks_the_first_row_with_a_book(sim_quarter_hour: Path) -> None:
    ev = events(sim_quarter_hour, INSTRUMENT, "2024-08-08", "2024-08-09",
                columns=["event_type", "book_flags", "seeded"]).collect().with_row_index()
    seeded = ev.filter("seeded")
    assert len(seeded) == 1 and seeded["event_type"][0] == "BOOK_SNAPSHOT"
    i = seeded["index"][0]
    assert ((ev["book_flags"][:i] & FLAG_UNINITIALISED) != 0).all()
    assert ((ev["book_flags"][i:] & FLAG_UNINITIALISED) == 0).all()


def test_book_states_grid_in_window(sim_quarter_hour: Path) -> None:
    bs = book_states(sim_quarter_hour, INSTRUMENT, *WINDOW, prices="ticks").collect()
    assert bs.columns[:81] == ["event_time", *BOOK_LEVEL_COLUMNS]
    assert {"exchange", "symbol", "date", "tick", "lot"} <= set(bs.columns)
    grid = bs.filter(pl.col("event_time").dt.epoch("ns") % 100_000_000 == 0)
    assert len(grid) == 600  # one row per 100 ms of the minute, plus a row at each snapshot
    assert (bs["bid_0_price"] < bs["ask_0_price"]).all()


def test_book_at_is_exact_between_grid_rows(sim_quarter_hour: Path) -> None:
    ev = (events(sim_quarter_hour, INSTRUMENT, *WINDOW, prices="ticks",
                 columns=["event_time", "event_type", "best_bid_price", "best_bid_quantity", "best_ask_price",
                          "best_ask_quantity", "book_flags"]).collect())
    # instants whose last event left a book that is neither provisional (trade consumption pending) nor crossed
    last_of_time = ev.group_by("event_time", maintain_order=True).last()
    clean = last_of_time.filter((pl.col("book_flags") & (FLAG_TRADE_CONSUMED | FLAG_CROSSED)) == 0)
    assert len(clean) > 500
    rng = np.random.default_rng(5)
    picks = clean[np.sort(rng.choice(len(clean), 25, replace=False))]
    for row in picks.iter_rows(named=True):
        ts = row["event_time"]
        book = book_at(sim_quarter_hour, INSTRUMENT, ts, prices="ticks")
        best = {s: book.filter((pl.col("side") == s) & (pl.col("level") == 0)).row(0, named=True)
                for s in ("bid", "ask")}
        assert (best["bid"]["price"], best["bid"]["size"], best["ask"]["price"], best["ask"]["size"]) == (
            row["best_bid_price"], row["best_bid_quantity"], row["best_ask_price"], row["best_ask_quantity"]), ts
        bids = book.filter(pl.col("side") == "bid")["price"]
        asks = book.filter(pl.col("side") == "ask")["price"]
        assert bids.is_sorted(descending=True) and asks.is_sorted() and len(bids) >= 15 and len(asks) >= 15


def test_book_at_a_grid_time_is_the_grid_row(sim_quarter_hour: Path) -> None:
    t = "2024-08-08T00:05:30.100"
    row = book_states(sim_quarter_hour, INSTRUMENT, t, "2024-08-08T00:05:30.100001").collect().row(0, named=True)
    book = book_at(sim_quarter_hour, INSTRUMENT, t)
    for side in ("bid", "ask"):
        got = book.filter(pl.col("side") == side).select("price", "size").rows()
        assert got == [(row[f"{side}_{k}_price"], row[f"{side}_{k}_size"]) for k in range(20)]
    assert book.schema["price"] == pl.Decimal(38, 18)


def _broken(src: Path, dst: Path) -> tuple[Path, Partition]:
    copy_partition(src, dst)
    return dst, Partition(EX, SYM, DAY)


def test_refuses_absent_unpublished_running_and_stale_partitions(sim_quarter_hour: Path, tmp_path: Path) -> None:
    root, p = _broken(sim_quarter_hour, tmp_path / "data")
    assert len(events(root, INSTRUMENT, *WINDOW).collect()) > 0
    with pytest.raises(UnpublishedPartition, match=r"2024-08-09\|BINANCE.BTC-USDT is not readable: no unified"):
        events(root, INSTRUMENT, "2024-08-08", "2024-08-10")  # the second day was never reconstructed

    lake = p.dir(root, "lake/ready/trades") / "1.snappy.parquet"
    future = p.dir(root, "unified").joinpath("_SUCCESS").stat().st_mtime_ns + 10**9
    os.utime(lake, ns=(future, future))
    with pytest.raises(UnpublishedPartition, match=r"stale: input .*trades.*is newer than the unified events"):
        book_states(root, INSTRUMENT, *WINDOW)

    for table in ("trades", "book", "book_delta_v2"):  # no inputs on disk any more: nothing to be stale against
        shutil.rmtree(p.dir(root, f"lake/ready/{table}"))
    (p.dir(root, "unified") / "_SUCCESS").unlink()
    with pytest.raises(UnpublishedPartition, match=r"has no _SUCCESS marker \(not published\)"):
        events(root, INSTRUMENT, *WINDOW)
    p.dir(root, "_work/reconstruct").mkdir(parents=True)
    with pytest.raises(UnpublishedPartition, match=r"running or was interrupted \(write-ahead log .*_work/reconstruct"):
        book_at(root, INSTRUMENT, "2024-08-08T00:05:00")


def test_two_venues_interleave_by_event_time(sim_quarter_hour: Path, tmp_path: Path) -> None:
    root = copy_partition(sim_quarter_hour, tmp_path / "data")
    other = Partition("BINANCE_FUTURES", "BTC-USDT-PERP", DAY)
    for zone in ("unified", "book_states"):
        src = Partition(EX, SYM, DAY).dir(root, zone)
        shutil.copytree(src, other.dir(root, zone))
    for part in other.dir(root, "unified").glob("part-*.parquet"):  # relabel the copy as the other venue
        t = pq.read_table(part)
        df = pl.from_arrow(t).with_columns(pl.lit(other.exchange).cast(pl.Categorical).alias("exchange"),
                                           pl.lit(other.symbol).cast(pl.Categorical).alias("symbol"))
        pq.write_table(df.to_arrow().cast(t.schema), part)
    (other.dir(root, "unified") / "_SUCCESS").touch()
    both = events(root, [INSTRUMENT, "BINANCE_FUTURES.BTC-USDT-PERP"], *WINDOW,
                  columns=["event_time", "exchange", "symbol", "price"]).collect()
    one = events(root, INSTRUMENT, *WINDOW, columns=["event_time"]).collect()
    assert len(both) == 2 * len(one)
    assert both["event_time"].is_sorted()
    assert both.group_by("exchange").len().sort("exchange").rows() == [("BINANCE", len(one)),
                                                                      ("BINANCE_FUTURES", len(one))]


def test_readme_example_runs(sim_quarter_hour: Path, tmp_path: Path, capsys) -> None:
    """The README's Python example on the data `make demo` makes: a spot and a futures partition."""
    from lake_pipeline.reconstruct.run import reconstruct_partition
    from lake_pipeline.sim.simulate import simulate

    root = copy_partition(sim_quarter_hour, tmp_path / "data")
    futures = Partition("BINANCE_FUTURES", "BTC-USDT-PERP", DAY)
    simulate(root, futures, 0.1, 7, golden_hours=0)
    reconstruct_partition(root, futures)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Backtesting on the stream"):]
    code = section[section.index("```python\n") + 10:]
    code = code[:code.index("```")]
    assert 'root = "data"' in code
    exec(compile(code.replace('root = "data"', f"root = {str(root)!r}"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "BINANCE_FUTURES" in out and "mean_spread_ticks" in out and out.count("shape:") == 3


def test_export_without_hftbacktest_says_how_to_install(sim_quarter_hour: Path, tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    import sys

    from lake_pipeline.cli import main

    monkeypatch.setitem(sys.modules, "hftbacktest", None)  # as if the optional extra were not installed
    monkeypatch.setitem(sys.modules, "hftbacktest.data", None)
    rc = main(["export", "--format", "hftbacktest", "--data-root", str(sim_quarter_hour), "--symbol", SYM,
               "--date", DAY, "--out", str(tmp_path / "x.npz")])
    assert rc == 2
    assert "pip install 'lake_pipeline[hftbacktest]'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    assert main(["export", "--format", "hftbacktest", "--data-root", str(sim_quarter_hour), "--symbol", SYM,
                 "--date", "2024-08-09..2024-08-08", "--out", str(tmp_path / "x.npz")]) == 2
    assert "the range ends before it starts" in capsys.readouterr().err
