"""`lake-pipeline exchange-server`: the local Binance-protocol server (replay a recording, or a simulated session;
spot or USD-M futures, whichever the replayed frames are)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lake_pipeline.cli_args import add_instrument_args, partition_arg


def register(sub: argparse._SubParsersAction) -> None:
    from lake_pipeline.sim.exchange_faults import add_fault_arguments

    p = sub.add_parser("exchange-server", help="serve Binance's market-data protocol (spot, or USD-M futures when the "
                                               "replayed frames are) on 127.0.0.1 (replay or simulated market, with "
                                               "fault injection)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (0 = any free port)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--replay", type=Path, nargs="+", metavar="FILE",
                     help="golden-format files in order (e.g. the hftbacktest recordings, or our captures)")
    src.add_argument("--simulate", action="store_true", help="generate a simulator session, then serve it")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = recorded pace; 0 = as fast as the "
                                                           "subscribers read)")
    add_instrument_args(p, symbol_default="BTC-USDT")  # --simulate: the simulated instrument (-PERP: USD-M)
    p.add_argument("--seed", type=int, default=7, help="--simulate: seed")
    p.add_argument("--sim-hours", type=float, default=0.25, help="--simulate: simulated hours")
    p.add_argument("--date", default="2024-08-08", help="--simulate: UTC date")
    p.add_argument("--sim-root", type=Path, default=None, help="--simulate: where the session is written "
                                                              "(default: a temporary directory)")
    timing = p.add_argument_group("protocol timing (default: the venue's; spot 20 s / 60 s / 6000, USD-M 180 s / "
                                  "600 s / 2400)")
    timing.add_argument("--ping-interval", type=float, default=None)
    timing.add_argument("--pong-timeout", type=float, default=None)
    timing.add_argument("--weight-limit", type=int, default=None)
    timing.add_argument("--snapshot-position", choices=("aligned", "inside_next"), default="inside_next")
    timing.add_argument("--start-frame", type=int, default=0, help="run the market silently up to this frame")
    timing.add_argument("--end-of-feed", choices=("idle", "close"), default="idle")
    add_fault_arguments(p)
    p.set_defaults(func=_serve)


def _simulated_session(args: argparse.Namespace, root: Path) -> list[Path]:
    from lake_pipeline.sim import simulate

    summary = simulate(root, partition_arg(args), args.sim_hours, args.seed, golden_hours=args.sim_hours)
    files = sorted(Path(summary.paths["golden"]).glob("frames-*"))
    if not files:
        raise RuntimeError(f"simulator wrote no golden frames under {summary.paths['golden']}")
    return files


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import tempfile

    from lake_pipeline.sim.exchange_faults import ServerTiming, faults_from_args
    from lake_pipeline.sim.exchange_feed import load_feed
    from lake_pipeline.sim.exchange_server import ExchangeServer

    timing = ServerTiming(ping_interval_s=args.ping_interval, pong_timeout_s=args.pong_timeout,
                          weight_limit=args.weight_limit, snapshot_position=args.snapshot_position,
                          start_frame=args.start_frame, end_of_feed=args.end_of_feed)
    with tempfile.TemporaryDirectory(prefix="exchange-sim-") as tmp:
        paths = _simulated_session(args, args.sim_root or Path(tmp)) if args.simulate else args.replay
        feed = load_feed(paths)
        server = ExchangeServer(feed, speed=args.speed, faults=faults_from_args(args), timing=timing,
                                port=args.port)

        async def main() -> None:
            port = await server.start()
            print(f"exchange server ready: ws://127.0.0.1:{port} http://127.0.0.1:{port}", flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                await server.stop()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
    return 0
