"""Bad input stops the run with an error naming the file, and publishes nothing (an earlier good partition stays)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_pipeline.instrument import Partition
from lake_pipeline.lake.read import CorruptFileError, LakeSchemaError, OffGridError
from lake_pipeline.paths import book_states_dir, lake_ready, unified_dir
from lake_pipeline.reconstruct.order import DisorderError
from lake_pipeline.reconstruct.run import reconstruct_partition, work_dir
from lake_pipeline_tests.recon_support import (
    DAY,
    EX,
    S,
    SYM,
    deltas_columns,
    random_partition,
    unified,
    write_partition,
    write_table,
)


@pytest.fixture
def good(data_root):
    """A partition reconstructed once (so we can check a failed re-run leaves it untouched)."""
    trades, deltas, snaps = random_partition(9, n_messages=80)
    write_partition(data_root, trades, deltas, snaps)
    reconstruct_partition(data_root, Partition(EX, SYM, DAY), chunk_rows=40)
    return data_root, deltas, unified(data_root)


def _expect_failure(root, before, error: type, match: str, **kwargs) -> None:
    """The run raises `error` naming the file, and the earlier good publication is untouched."""
    with pytest.raises(error, match=match):
        reconstruct_partition(root, Partition(EX, SYM, DAY), **kwargs)
    _assert_nothing_published(root, before)


def _assert_nothing_published(root, before) -> None:
    assert unified(root).equals(before)  # the previous publication is intact
    assert not work_dir(root, Partition(EX, SYM, DAY)).exists()
    siblings = [p.name for p in unified_dir(root, Partition(EX, SYM, DAY)).parent.iterdir()]
    assert siblings == [f"dt={DAY}"]  # no half-built temp directory left beside it


def _only(root, table: str):
    path = lake_ready(root, Partition(EX, SYM, DAY), table) / "1.snappy.parquet"
    assert path.exists()
    return path


def test_missing_table(data_root) -> None:
    trades, deltas, snaps = random_partition(9, n_messages=20)
    write_partition(data_root, trades, deltas, snaps)
    _only(data_root, "trades").unlink()
    with pytest.raises(FileNotFoundError, match=r"lake/ready/trades/exchange=BINANCE/symbol=BTC-USDT/dt=2024-08-08"):
        reconstruct_partition(data_root, Partition(EX, SYM, DAY))
    assert not unified_dir(data_root, Partition(EX, SYM, DAY)).exists() and not book_states_dir(data_root, Partition(EX, SYM, DAY)).exists()


def test_full_event_replay_without_deltas(data_root) -> None:
    trades, _, snaps = random_partition(9, n_messages=20)
    write_partition(data_root, trades, None, snaps)
    with pytest.raises(FileNotFoundError, match="needs book_delta_v2"):
        reconstruct_partition(data_root, Partition(EX, SYM, DAY), strategy="full_event_replay")
    summary = reconstruct_partition(data_root, Partition(EX, SYM, DAY))  # default: anchored on the book rows
    assert summary.strategy["name"] == "snapshot_anchored" and summary.rows["book_deltas"] == 0


def _garbage_in_a_page(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + b"\xff" * 64 + data[middle + 64:]  # footer intact


@pytest.mark.parametrize(("table", "damage"), [("book", _garbage_in_a_page), ("trades", lambda data: data[:100])])
def test_corrupt_parquet(good, table, damage) -> None:
    root, _, before = good
    path = _only(root, table)
    path.write_bytes(damage(path.read_bytes()))
    _expect_failure(root, before, CorruptFileError, str(path))


def test_schema_mismatch(good) -> None:
    root, deltas, before = good
    renamed = ["timestamp", "receipt_timestamp", "sequence_number", "side_is_bid", "price", "new_quantity"]
    table = pa.table(deltas_columns(deltas)).rename_columns(renamed)  # `size` renamed: must fail loudly
    path = _only(root, "book_delta_v2")
    pq.write_table(table, path)
    _expect_failure(root, before, LakeSchemaError, str(path))


def test_off_grid_price(good) -> None:
    root, deltas, before = good
    columns = deltas_columns(deltas)
    columns["price"][len(deltas) // 2] += 0.005  # half a tick
    path = write_table(root, "book_delta_v2", columns)
    _expect_failure(root, before, OffGridError, str(path), chunk_rows=40)


def test_event_times_going_backwards_inside_a_file(good) -> None:
    root, deltas, before = good
    columns = deltas_columns(deltas)
    k = 2 * len(deltas) // 3
    columns["timestamp"][k] -= 3 * S  # 3 s back: beyond the 1 s the merge absorbs (still inside the day)
    path = write_table(root, "book_delta_v2", columns)
    _expect_failure(root, before, DisorderError, rf"{path}: event times go backwards at row {k} ", chunk_rows=40)


def test_small_disorder_is_absorbed_in_event_time_order(data_root) -> None:
    trades, deltas, snaps = random_partition(10, n_messages=60)
    write_partition(data_root, trades, deltas, snaps)
    reconstruct_partition(data_root, Partition(EX, SYM, DAY))
    in_order = unified(data_root)
    # swap two trades 1 ms apart in the file: within the tolerance, the output is the same sorted stream
    i = next(i for i in range(len(trades) - 1) if trades[i + 1].time > trades[i].time)
    trades[i], trades[i + 1] = trades[i + 1], trades[i]
    write_partition(data_root, trades, deltas, snaps)
    reconstruct_partition(data_root, Partition(EX, SYM, DAY), chunk_rows=20)
    assert unified(data_root).equals(in_order)


# ---- the value policy (lake/values.py) --------------------------------------------------------------------------

YEAR_2090 = 3_789_000_000 * S


@pytest.mark.parametrize(("table", "column", "value", "problem"), [
    ("trades", "price", 0.0, r"value 0\.0 is not a price: prices must be > 0"),
    ("book_delta_v2", "price", 0.0, r"value 0\.0 is not a price: prices must be > 0"),
    ("trades", "price", 1e12, r"value 1000000000000\.0 is more than 1000x away from the partition's median"),
    ("book_delta_v2", "price", 1e12, r"value 1000000000000\.0 is more than 1000x away from the partition's median"),
    ("trades", "timestamp", YEAR_2090, r"value 3789000000000000000 \(2090-01-25T04:00:00\.000000Z\) is outside the partition's day dt=2024-08-08 \+- 300 s"),
    ("book_delta_v2", "receipt_timestamp", YEAR_2090, r"value 3789000000000000000 .* is outside the partition's day"),
])
def test_values_that_cannot_be_right_publish_nothing(good, table, column, value, problem) -> None:
    from lake_pipeline.lake.errors import BadValueError
    from lake_pipeline_tests.recon_support import trades_columns

    root, deltas, before = good
    trades = random_partition(9, n_messages=80)[0]
    columns = trades_columns(trades) if table == "trades" else deltas_columns(deltas)
    k = len(columns[column]) // 2
    columns[column][k] = value
    path = write_table(root, table, columns)
    _expect_failure(root, before, BadValueError, rf"{path}: column '{column}', row {k} \(0-based, in this file\): "
                    + problem, chunk_rows=40)


def test_duplicated_trades_are_refused_naming_both_rows(good) -> None:
    from lake_pipeline.lake.errors import BadValueError
    from lake_pipeline_tests.recon_support import trades_columns

    root, _, before = good
    trades = random_partition(9, n_messages=80)[0]
    columns = trades_columns(trades)
    n = len(trades)
    doubled = {k: [v for v in vals for _ in (0, 1)] for k, vals in columns.items()}  # every trade twice, in place
    path = write_table(root, "trades", doubled)
    _expect_failure(root, before, BadValueError,
                    rf"{path}: column 'id', row 1 \(0-based, in this file\): value {columns['id'][0]} repeats the trade "
                    rf"id of row 0 of 1\.snappy\.parquet")
    assert n > 2


def test_input_replaced_during_the_run_publishes_nothing(good) -> None:
    """acquire replaces a ready partition by renaming a new directory over it; a run reading the old one must not
    publish a mix of both."""
    import os
    import shutil

    from lake_pipeline.exits import InputChangedError

    root, deltas, before = good
    ready = lake_ready(root, Partition(EX, SYM, DAY), "book_delta_v2")
    calls = []

    def replace_deltas(done: int, total: int) -> None:
        if not calls:
            fresh = ready.with_name(f".{ready.name}.new")
            shutil.copytree(ready, fresh)  # same bytes, new files (as acquire's publication makes)
            old = ready.with_name(f".{ready.name}.old")
            os.replace(ready, old)
            os.replace(fresh, ready)
            shutil.rmtree(old)
        calls.append(done)

    _expect_failure(root, before, InputChangedError, r"input table\(s\) book_delta_v2 changed during the reconstruction",
                    chunk_rows=40, progress=replace_deltas)
    assert len(calls) > 1
    reconstruct_partition(root, Partition(EX, SYM, DAY), chunk_rows=40)  # run again: the same content publishes the same
    assert unified(root).equals(before)
