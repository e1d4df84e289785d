"""`lake-pipeline capture …` (record golden samples), `capture-keygen` (a key file), `capture-cat` (read a capture)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lake_pipeline.cli_args import add_instrument_args, instrument_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capture", help="record Binance golden samples, spot or USD-M futures (trade, depth@100ms, "
                                       "bookTicker)",
                       description="Record one symbol's combined stream and REST snapshots into encrypted, rotated "
                                   "golden files under <data-root>/golden/, with session.json metadata.")
    add_instrument_args(p, symbol_required=False)  # default: the session config's instrument
    p.add_argument("--duration", default=None, help="e.g. 3600, 90s, 30m, 1h (default 1h or the session's)")
    p.add_argument("--data-root", type=Path, default=None, help="data root (default $LAKE_DATA_ROOT or ./data)")
    p.add_argument("--ws-url", default=None, help="WebSocket base (default wss://stream.binance.com:9443, USD-M "
                                                  "wss://fstream.binance.com)")
    p.add_argument("--rest-url", default=None, help="REST base (default https://api.binance.com, USD-M "
                                                    "https://fapi.binance.com)")
    p.add_argument("--session-config", type=Path, default=None, help="multi-session YAML (see capture.session_config)")
    p.add_argument("--session", default=None, help="session name in --session-config (default: its only session)")
    p.add_argument("--rotate", default=None, help="file rotation interval (default 1h)")
    p.add_argument("--streams", default=None, help="comma-separated stream suffixes (default trade,depth@100ms,"
                                                   "bookTicker)")
    p.add_argument("--agg-trade", action="store_true", help="also record @aggTrade")
    p.add_argument("--key-file", type=Path, default=None, help="key file (default $LAKE_CAPTURE_KEY or "
                                                               "$LAKE_CAPTURE_KEY_FILE)")
    p.add_argument("--plaintext", action="store_true", help="store without encryption (testing only)")
    p.add_argument("--no-ntp", action="store_true", help="skip NTP offset samples (offline hosts)")
    p.set_defaults(func=_capture)

    k = sub.add_parser("capture-keygen", help="write a new random capture key file (mode 600)")
    k.add_argument("--out", type=Path, required=True)
    k.set_defaults(func=_keygen)

    c = sub.add_parser("capture-cat", help="print the lines of capture files (decrypting .enc files with the key)")
    c.add_argument("paths", type=Path, nargs="+")
    c.add_argument("--key-file", type=Path, default=None)
    c.set_defaults(func=_cat)


def build_config(args: argparse.Namespace):
    """CaptureConfig from CLI arguments and (optionally) a named session of a session config."""
    from lake_pipeline.capture.keys import load_key
    from lake_pipeline.capture.live import CaptureConfig
    from lake_pipeline.capture.regime import RegimeConfig
    from lake_pipeline.capture.session_config import DEFAULT_STREAMS, load_session_config, parse_duration
    from lake_pipeline.config import default_data_root

    session = None
    regime = RegimeConfig()
    if args.session_config is not None:
        plan = load_session_config(args.session_config)
        regime = plan.regime
        if args.session:
            session = plan.by_name(args.session)
        elif len(plan.sessions) == 1:
            session = plan.sessions[0]
        else:
            raise ValueError(f"{args.session_config}: several sessions; choose one with --session")
    if args.symbol:
        instrument = instrument_arg(args)
    elif session is not None:
        instrument = session.instrument
    else:
        raise ValueError("capture: --symbol is required (or a session config naming one)")
    streams = tuple(args.streams.split(",")) if args.streams else (session.streams if session else DEFAULT_STREAMS)
    if args.agg_trade and "aggTrade" not in streams:
        streams = (*streams, "aggTrade")
    key = None if args.plaintext else load_key(key_file=args.key_file)
    duration = parse_duration(args.duration) if args.duration else (session.duration_s if session else 3600.0)
    rotate = parse_duration(args.rotate) if args.rotate else (session.rotate_s if session else 3600.0)
    cfg = CaptureConfig(symbol=instrument.symbol, exchange=instrument.exchange,
                        data_root=(args.data_root or default_data_root()).resolve(),
                        duration_s=duration, streams=streams, key=key, rotate_s=rotate, regime=regime,
                        session_name=session.name if session else None,
                        regime_intent=session.regime_intent if session else None)
    ws = args.ws_url or (session.ws_url if session else None)
    rest = args.rest_url or (session.rest_url if session else None)
    if ws:
        cfg.ws_url = ws
    if rest:
        cfg.rest_url = rest
    if args.no_ntp:
        cfg.ntp_servers = ()
    return cfg


def _capture(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from lake_pipeline import exits

    from lake_pipeline.capture.live import LiveCapture

    capture = LiveCapture(build_config(args))
    result = asyncio.run(capture.run())
    print(f"session {result.session_id}: {result.status}, {result.frames} frames, {len(result.files)} files")
    for path in result.session_json:
        print(path)
    if result.status == "complete":
        return 0
    # no market frame (never connected, or the endpoint sent nothing): missing at the source; any other failed
    # capture (storage, a dropped connection it could not survive) is the environment's
    print(f"capture failed: {result.document.get('error', '')}", file=sys.stderr)
    return exits.MISSING if not capture.stream_frames else exits.ENVIRONMENT


def _keygen(args: argparse.Namespace) -> int:
    from lake_pipeline.capture.keys import generate_key_file

    key = generate_key_file(args.out)
    print(f"wrote {args.out} (key id {key.key_id.hex()}); set LAKE_CAPTURE_KEY_FILE={args.out}")
    return 0


def _cat(args: argparse.Namespace) -> int:
    import contextlib
    import shutil
    import sys

    from lake_pipeline.capture.golden import open_capture
    from lake_pipeline.capture.keys import load_key, use_key

    key = load_key(key_file=args.key_file, required=False)
    with use_key(key) if key is not None else contextlib.nullcontext():
        for path in args.paths:
            with open_capture(path) as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer)
    return 0
