"""The assessment report as Markdown: the recommendation first, then the evidence, table by table."""

from __future__ import annotations


def _n(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.3f}".rstrip("0").rstrip(".")
    return f"{x:,}" if isinstance(x, int) else str(x)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_n(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return out + [""]


def _tables_overview(report: dict) -> list[str]:
    rows = []
    for name, t in report["tables"].items():
        if not t["present"]:
            rows.append([f"`{name}`", "absent"] + ["–"] * 8)
            continue
        o, lat, mono = t["origin_time"], t["latency_ms"], t["monotonicity"]
        lat_txt = "–" if not lat.get("n") else f"{_n(lat['p1'])} / {_n(lat['p50'])} / {_n(lat['p99'])} / {_n(lat['max'])}"
        rows.append([
            f"`{name}`", _n(t["rows"]), f"{_n(t['events'])} {t['event_basis']}s",
            f"{t['first_received_time']} → {t['last_received_time']}",
            f"{_pct(o['present_share'])} (null {_n(o['null'])}, ≤0 {_n(o['non_positive'])})",
            _pct(o["float_artefact_share"]), _n(o["equal_received"]), lat_txt,
            _pct(lat.get("negative_share")),
            f"{_n(mono['received_time']['count'])} / {_n(mono['origin_time']['count'])}",
        ])
    header = ["table", "rows", "events", "received time range", "origin_time present", "float artefacts",
              "origin = received", "latency p1/p50/p99/max ms", "negative latency", "backwards recv / origin"]
    return ["## Tables", ""] + _table(header, rows)


def _holes(h: dict) -> list[str]:
    out = [f"Time holes > {_n(h['threshold_s'])} s: **{h['count']}**, {_n(h['total_s'])} s in all.", ""]
    if h["longest"]:
        note = {(True, False): "from the day's start", (False, True): "to the day's end", (True, True): "whole day"}
        out += _table(["start", "end", "duration s", ""],
                      [[x["start"], x["end"], x["duration_s"], note.get((x["at_day_start"], x["at_day_end"]), "")]
                       for x in h["longest"]])
    return out


def _deltas(d: dict | None) -> list[str]:
    out = ["## book_delta_v2", ""]
    if d is None:
        return out + ["Absent for this partition.", ""]
    rpm, mps, seq = d["rows_per_message"], d["messages_per_s"], d["sequence"]
    st = seq["steps"]
    out += [
        f"- messages: {_n(d['messages'])} ({_n(d['rows'])} rows); rows per message mean {_n(rpm.get('mean'))}, "
        f"p50 {_n(rpm.get('p50'))}, p99 {_n(rpm.get('p99'))}, max {_n(rpm.get('max'))}",
        f"- messages/s: {_n(mps['over_day'])} over the day, {_n(mps['over_seconds_with_data'])} over seconds with "
        f"data, at most {_n(mps['max_in_one_second'])} in one second",
        f"- seconds with data: {_n(d['seconds_with_data'])} ({_pct(d['coverage_of_day'])} of the day); "
        f"size = 0 (deletes) on {_pct(d['zero_size_share'])} of rows",
        f"- sequence_number steps between messages: mean {_n(st.get('mean'))}, p50 {_n(st.get('p50'))}, "
        f"p99 {_n(st.get('p99'))}, max {_n(st.get('max'))}; zero steps {_n(seq['zero'])}, "
        f"**backwards {_n(seq['backwards'])}**",
        f"- message integrity: {_n(d['message_integrity']['non_contiguous_messages'])} non-contiguous, "
        f"{_n(d['message_integrity']['messages_with_differing_origin_times'])} with differing origin times",
        "",
    ]
    out += _holes(d["time_holes"])
    out += ["Sequence step histogram:", ""]
    out += _table(["step", "messages"], [[b["bucket"], b["count"]] for b in seq["histogram"] if b["count"]])
    return out


def _book(b: dict | None) -> list[str]:
    out = ["## book snapshots", ""]
    if b is None:
        return out + ["Absent for this partition.", ""]
    c = b["crossed"]
    iv = b.get("interval_ms", {})
    out += [
        f"- cadence: {_n(b['events_per_s_over_day'])} rows/s over the day; interval p50 {_n(iv.get('p50'))} ms, "
        f"p99 {_n(iv.get('p99'))} ms, max {_n(iv.get('max'))} ms",
        f"- rows: {_n(c['rows'])}; valid (two-sided, uncrossed) {_n(c['valid_rows'])}; "
        f"**crossed {_n(c['crossed_rows'])}** ({_pct(c['crossed_share'])}) in {_n(c['crossed_runs'])} run(s); "
        f"locked {_n(c['locked_rows'])}; one-sided {_n(c['one_sided_rows'])}",
        "",
    ]
    out += _holes(b["time_holes"])
    if c["crossed_examples"]:
        out += ["Crossed rows (first):", ""]
        out += _table(["row", "received", "sequence_number", "bid_0_price", "ask_0_price"],
                      [[str(x["row"]), x["received_time"], str(x["sequence_number"]), x["bid_0_price"], x["ask_0_price"]]
                       for x in c["crossed_examples"]])
    return out


def _cross(x: dict) -> list[str]:
    out = ["## Across tables", ""]
    s = x.get("snapshot_vs_deltas")
    if s:
        out += [
            f"- snapshot sequence numbers naming a delta message: {_n(s['matched'])} of {_n(s['snapshots'])} "
            f"({_pct(s['matched_share'])}); unmatched inside delta holes {_n(s['unmatched_in_delta_holes'])}, "
            f"**outside holes {_n(s['unmatched_outside_delta_holes'])}** (missing delta messages)",
            f"- snapshots received before their delta message: {_n(s['snapshot_received_before_its_delta_message'])}",
            f"- snapshots inside delta time holes: {_n(s['snapshots_inside_delta_holes']['snapshots'])} in "
            f"{_n(s['snapshots_inside_delta_holes']['holes'])} hole(s)",
        ]
    inv = x.get("origin_order_inversions", {})
    if inv.get("pairs"):
        out.append(f"- merged by origin_time, received_time goes backwards on {_n(inv['inversions'])} of "
                   f"{_n(inv['pairs'])} cross-table neighbours ({_pct(inv['inversion_share'])}), by up to "
                   f"{_n(inv['largest_inversion_ms'])} ms")
    out.append("")
    if s and s["unmatched_examples"]:
        out += _table(["row", "received", "snapshot seq", "previous delta seq", "next delta seq"],
                      [[str(e["row"]), e["received_time"], str(e["sequence_number"]), str(e["previous_delta_sequence"]),
                        str(e["next_delta_sequence"])] for e in s["unmatched_examples"]])
    inside = s["snapshots_inside_delta_holes"] if s else None
    if inside and inside["largest"]:
        out += ["Delta holes during which snapshots kept arriving (deltas missing, not a quiet market):", ""]
        out += _table(["hole start", "hole end", "snapshots", "first snapshot", "last snapshot", "span s"],
                      [[x["hole_start"], x["hole_end"], x["snapshots"], x["first_snapshot"], x["last_snapshot"],
                        x["snapshot_span_s"]] for x in inside["largest"]])
    return out


def _per_hour(report: dict) -> list[str]:
    present = [n for n, t in report["tables"].items() if t["present"]]
    if not present:
        return []
    header = ["hour"] + [f"{n} events (coverage)" for n in present]
    rows = []
    for h in range(24):
        row = [f"{h:02d}"]
        for n in present:
            ph = report["tables"][n]["per_hour"][h]
            row.append(f"{ph['events']:,} ({_pct(ph['coverage'])})")
        rows.append(row)
    return ["## Per hour (UTC, received_time)", ""] + _table(header, rows)


def _memory(m: dict) -> list[str]:
    out = ["## Memory for reconstruction", ""]
    for name, t in m.get("tables", {}).items():
        out.append(f"- `{name}`: " + (f"{_n(t['bytes_per_row'])} B/row measured on {_n(t['sample_rows'])} rows"
                                      if "bytes_per_row" in t else f"not measurable: {t['error']}"))
    if "estimated_chunk_gib" in m:
        out.append(f"- at {_n(m['chunk_rows'])} rows per chunk: ≈ {_n(m['estimated_chunk_gib'])} GiB "
                   f"(input {_n(m['input_bytes_per_row'])} B/row + output {_n(m['output_bytes_per_row'])} B/row, "
                   f"× {_n(m['working_copies'])}); the whole day at once would be {_n(m['whole_day_input_gib'])} GiB")
    return out + [""]


def render_markdown(report: dict) -> str:
    lines = [
        f"# Data assessment — {report['exchange']} {report['symbol']} {report['date']}",
        "",
        f"**Recommended strategy: `{report['recommended_strategy']}`**",
        "",
    ]
    lines += [f"- {r}" for r in report["strategy_reasons"]] + [""]
    lines += _tables_overview(report)
    lines += _deltas(report.get("book_delta_v2"))
    lines += _book(report.get("book"))
    lines += _cross(report.get("cross_table", {}))
    lines += _memory(report.get("memory", {}))
    lines += _per_hour(report)
    lines.append(f"_Generated {report['generated_at']} by {report['tool']} in {report.get('seconds', 0):.1f} s._")
    return "\n".join(lines) + "\n"
