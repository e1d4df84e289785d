"""Run in a fresh process by the fidelity bench: the full report (computed and written), then, in the same process,
the baseline: reading the partition's inputs once (parquet decode of the unified events and book states, gunzip of
the golden capture, nothing kept). Prints both wall and CPU times and the report's peak RSS (taken before the
baseline runs, so it is the report's own) as JSON."""

from __future__ import annotations

import gzip
import json
import resource
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from lake_pipeline import paths
from lake_pipeline.instrument import Partition


def read_inputs(root: Path, part: Partition) -> int:
    n = 0
    for d in (paths.unified_dir(root, part), paths.book_states_dir(root, part)):
        for p in sorted(d.glob("part-*.parquet")):
            for batch in pq.ParquetFile(p).iter_batches(batch_size=1 << 20):
                n += batch.num_rows
    for f in sorted(paths.golden_dir(root, part).glob("session=*/*.gz")):
        with gzip.open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass
    return n


def main(root: str, key: str, out: str) -> None:
    from lake_pipeline.fidelity.report import write_report
    from lake_pipeline.fidelity.runner import run_fidelity

    part = Partition.parse(key)
    c, t = time.process_time(), time.perf_counter()
    rep = run_fidelity(Path(root), part)
    write_report(rep, Path(out))
    doc = rep.to_json()
    report = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "status": doc["status"],
              "score": doc["score"], "timings": rep.timings}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    c, t = time.process_time(), time.perf_counter()
    rows = read_inputs(Path(root), part)
    read = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "rows": rows}
    print(json.dumps({"read": read, "report": report, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
