"""Output contract: exact Arrow schemas, decimal values that round-trip to the lake floats, Parquet settings,
publication markers, the summary, the CLI and the Dagster asset."""

from __future__ import annotations

import json
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq
import pytest

from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Instrument, Partition

from lake_pipeline.cli import main
from lake_pipeline.paths import book_states_dir, unified_dir
from lake_pipeline.reconstruct.run import reconstruct_partition, work_dir
from lake_pipeline.schemas import BOOK_STATE, UNIFIED_EVENT
from lake_pipeline_tests.recon_support import (
    DAY,
    EX,
    MS,
    SYM,
    T0,
    book_states,
    random_partition,
    trades_columns,
    unified,
    write_partition,
    write_table,
)
from lake_pipeline_tests.reference_replay import Snapshot, Trade

# Prices and sizes whose float64 is not exact; a truncating conversion would get some of them wrong
# (int(0.29 * 1e8) == 28999999, research peer_lessons.md trap 1).
# prices stay within values.PRICE_BAND (1000x) of the median: a BTC trade at 0.01 is refused as a bad value
AWKWARD = [(61234.56, 0.29), (30.01, 0.00000001), (99999.99, 1234.56789012), (30000.07, 0.1), (12345.67, 0.3)]


def _awkward_partition(root) -> None:
    trades = [Trade(T0 + (i + 1) * MS, T0 + (i + 2) * MS, i + 1, i % 2 == 0, 0, 0) for i in range(len(AWKWARD))]
    columns = trades_columns(trades)
    columns["price"] = [p for p, _ in AWKWARD]
    columns["amount"] = [q for _, q in AWKWARD]
    write_partition(root, [], [], [Snapshot(T0, T0 + MS, 1, [(6000000, 100)], [(6000001, 100)])])
    write_table(root, "trades", columns)  # replaces the empty trades file


def test_exact_schemas_parquet_settings_and_markers(data_root) -> None:
    trades, deltas, snaps = random_partition(5, n_messages=60)
    write_partition(data_root, trades, deltas, snaps)
    summary = reconstruct_partition(data_root, Partition(EX, SYM, DAY), chunk_rows=50)
    udir, bdir = unified_dir(data_root, Partition(EX, SYM, DAY)), book_states_dir(data_root, Partition(EX, SYM, DAY))
    for directory, schema in ((udir, UNIFIED_EVENT), (bdir, BOOK_STATE)):
        parts = sorted(directory.glob("part-*.parquet"))
        assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(len(parts))] and len(parts) > 1
        for part in parts:
            read = pq.read_schema(part)
            assert read.equals(schema)  # names, types, nullability
            meta = {k.decode(): v.decode() for k, v in read.metadata.items() if k.startswith(b"lake_pipeline.")}
            assert json.loads(meta["lake_pipeline.spec"]) == symbol_spec(Instrument.parse(SYM)).to_dict()
            assert meta["lake_pipeline.strategy"] == "full_event_replay"
            md = pq.ParquetFile(part).metadata
            assert md.row_group(0).column(0).compression == "ZSTD"
        assert (directory / "_SUCCESS").exists()
        assert json.loads((directory / "_summary.json").read_text())["rows"] == summary.rows
    table = unified(data_root)
    repeated = summary.repairs["duplicate_delta_rows_dropped"]
    assert repeated == sum(1 for a, b in zip(deltas, deltas[1:]) if a == b)
    assert table.num_rows == len(trades) + len(deltas) - repeated + len(snaps) == summary.total_rows
    times = table["event_time"].cast("int64").to_pylist()
    assert times == sorted(times)
    assert book_states(data_root).num_rows == summary.book_state_rows
    assert not work_dir(data_root, Partition(EX, SYM, DAY)).exists()  # the WAL is gone once published


def test_decimals_round_trip_to_the_lake_floats(data_root) -> None:
    _awkward_partition(data_root)
    reconstruct_partition(data_root, Partition(EX, SYM, DAY))
    rows = [r for r in unified(data_root).to_pylist() if r["event_type"] == "TRADE"]
    assert [(r["price"], r["quantity"]) for r in rows] == [
        (Decimal(repr(p)).quantize(Decimal(10) ** -18), Decimal(repr(q)).quantize(Decimal(10) ** -18))
        for p, q in AWKWARD
    ]
    assert [(float(r["price"]), float(r["quantity"])) for r in rows] == AWKWARD
    assert rows[0]["quantity"] == Decimal("0.29")  # 29,000,000 lots, not 28,999,999


def test_rerun_replaces_the_partition(data_root) -> None:
    write_partition(data_root, *random_partition(6, n_messages=40))
    reconstruct_partition(data_root, Partition(EX, SYM, DAY), chunk_rows=30)
    first = unified(data_root)
    reconstruct_partition(data_root, Partition(EX, SYM, DAY), chunk_rows=1000)  # fewer, larger parts replace the old ones
    assert unified(data_root).equals(first)
    assert len(list(unified_dir(data_root, Partition(EX, SYM, DAY)).glob("part-*.parquet"))) == 1


def test_cli_reconstruct(data_root, capsys) -> None:
    write_partition(data_root, *random_partition(7, n_messages=40))
    code = main(["reconstruct", "--data-root", str(data_root), "--symbol", SYM, "--date", DAY,
                 "--strategy", "snapshot_anchored", "--chunk-rows", "25", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["strategy"]["name"] == "snapshot_anchored" and out["rows"]["total"] == unified(
        data_root).num_rows
    assert main(["reconstruct", "--data-root", str(data_root), "--symbol", "ETH-USDT", "--date", DAY, "--quiet"]) == 2
    assert "lake partition" in capsys.readouterr().err  # names the missing partition


def test_dagster_asset_materialises_a_partition(data_root) -> None:
    from lake_pipeline.defs.reconstruct import unified_events
    from lake_pipeline.partitions import INSTRUMENTS, partition_key
    from lake_pipeline.resources import DataRoot

    if Instrument(EX, SYM) not in INSTRUMENTS:
        pytest.skip(f"{SYM} is not among the configured partition symbols")
    write_partition(data_root, *random_partition(8, n_messages=40))
    result = dg.materialize([unified_events], partition_key=partition_key(Partition(EX, SYM, DAY)),
                            resources={"data_root": DataRoot(path=str(data_root))})
    assert result.success
    md = result.asset_materializations_for_node("unified_events")[0].metadata
    assert md["dagster/row_count"].value == unified(data_root).num_rows
    assert md["path"].value == str(unified_dir(data_root, Partition(EX, SYM, DAY)))
    published = json.loads((unified_dir(data_root, Partition(EX, SYM, DAY)) / "_summary.json").read_text())
    assert md["events_per_s"].value > 0
    assert md["gaps_total"].value == published["gaps"]["total"] > 0  # the random partition has gaps
    assert md["drift_mean_levels"].value == pytest.approx(published["drift"]["mean"] or 0.0)
    assert md["value_repairs"].value == published["repairs"] and set(published["repairs"]) == {
        "duplicate_delta_rows_dropped"}


def test_strategy_from_the_assessment_report_unless_overridden(data_root) -> None:
    from lake_pipeline.paths import assessment_dir

    write_partition(data_root, *random_partition(11, n_messages=30))
    report = assessment_dir(data_root, Partition(EX, SYM, DAY)) / "assessment.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"recommended_strategy": "origin_time_sort",
                                  "strategy_reasons": ["origin_time is missing on 40 % of book rows"]}))
    summary = reconstruct_partition(data_root, Partition(EX, SYM, DAY))
    assert summary.strategy == {"name": "origin_time_sort", "source": "assessment",
                                "reasons": ["origin_time is missing on 40 % of book rows"]}
    summary = reconstruct_partition(data_root, Partition(EX, SYM, DAY), strategy="snapshot_anchored")
    assert summary.strategy["name"] == "snapshot_anchored" and summary.strategy["source"] == "caller"
    report.write_text(json.dumps({"recommended_strategy": "magic"}))
    with pytest.raises(ValueError, match=rf"{report}: unknown reconstruction strategy 'magic'"):
        reconstruct_partition(data_root, Partition(EX, SYM, DAY))


def test_missing_origin_time_falls_back_to_received_time(data_root) -> None:
    trades, deltas, snaps = random_partition(12, n_messages=40)
    columns = trades_columns(trades)
    columns["timestamp"][3] = 0  # missing in the lake (<= 0): the row's event time is its received time
    write_partition(data_root, trades, deltas, snaps)
    write_table(data_root, "trades", columns)
    summary = reconstruct_partition(data_root, Partition(EX, SYM, DAY))
    assert summary.origin_time_fallback == {"trades": 1, "book_delta_v2": 0, "book": 0}
    table = unified(data_root)
    times = table["event_time"].cast("int64").to_pylist()
    at = table["trade_id"].to_pylist().index(trades[3].trade_id)
    assert times[at] == trades[3].recv and times == sorted(times)  # placed by its received time
