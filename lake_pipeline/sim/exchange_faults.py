"""Switchable faults of the exchange server, and the server's timing knobs (one config object for CLI and tests).

Frame positions (`*_at`) are 0-based indexes into the feed's timeline, so a fault hits the same market moment on
every run. Diff positions (`drop_diff_at`, `duplicate_diff_at`) count depth diffs only.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace

from lake_pipeline.capture.protocol import VenueProtocol


@dataclass
class ServerTiming:
    """Protocol timers and limits (None: the venue's own, `capture.protocol`; tests shrink them)."""

    ping_interval_s: float | None = None
    pong_timeout_s: float | None = None
    max_client_msgs_per_s: int | None = None
    max_connection_age_s: float = 24 * 3600.0  # then serverShutdown + close
    shutdown_grace_s: float = 0.05  # between the serverShutdown event and the close
    weight_limit: int | None = None
    weight_window_s: float = 60.0
    ban_after_ignored_429: int = 2
    ban_s: float = 120.0
    snapshot_position: str = "inside_next"  # "aligned": L = last sent u; "inside_next": U <= L < u of the next diff
    start_frame: int = 0  # the market ran silently through the frames before this one (a client joins mid-session)
    end_of_feed: str = "idle"  # "idle": keep connections open; "close": close them (1000) when the feed ends

    def for_venue(self, protocol: VenueProtocol) -> ServerTiming:
        """A copy with every unset limit taken from `protocol` (spot: ping 20 s, pong 60 s, 5 msg/s, 6000 weight/min;
        USD-M: 3 min, 10 min, 10 msg/s, 2400)."""
        defaults = {"ping_interval_s": protocol.ping_interval_s, "pong_timeout_s": protocol.pong_timeout_s,
                    "max_client_msgs_per_s": protocol.max_incoming_per_s, "weight_limit": protocol.weight_limit_1m}
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})


@dataclass
class Faults:
    """Each fault is off by default."""

    drop_diff_at: tuple[int, ...] = ()  # depth diffs never sent (the book still changes): a gap
    duplicate_diff_at: tuple[int, ...] = ()  # depth diffs sent twice
    disconnect_at: tuple[int, ...] = ()  # abort every connection (no close frame) before this frame
    clean_close_at: tuple[int, ...] = ()  # close every connection with 1000 before this frame
    shutdown_at: tuple[int, ...] = ()  # serverShutdown event, then close
    refuse_connections: int = 0  # the next N WebSocket connection attempts get HTTP 503 instead of the upgrade
    refuse_after_disconnect: bool = False  # re-arm `refuse_connections` after each injected disconnect
    stale_snapshots: int = 0  # the first N depth snapshots come from `stale_lag_diffs` diffs in the past
    stale_lag_diffs: int = 30
    early_snapshots: int = 0  # the first N depth snapshots are `early_lead_diffs` ahead of the WebSocket
    early_lead_diffs: int = 2
    slow_rest_s: float = 0.0  # delay before every REST reply
    force_429: int = 0  # the first N depth requests get 429 with Retry-After `retry_after_s`
    retry_after_s: float = 1.0
    reorder_ms: float = 0.0  # depth frames delayed by this much: trades with later E overtake them
    ignore_pongs: bool = False  # the server never sees pongs: it closes after the pong deadline

    def describe(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


_CLI = {
    "drop_diff_at": _ints, "duplicate_diff_at": _ints, "disconnect_at": _ints, "clean_close_at": _ints,
    "shutdown_at": _ints, "refuse_connections": int, "stale_snapshots": int, "stale_lag_diffs": int,
    "early_snapshots": int, "early_lead_diffs": int, "slow_rest_s": float, "force_429": int,
    "retry_after_s": float, "reorder_ms": float,
}


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fault injection (all off by default)")
    for name, conv in _CLI.items():
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"fault_{name}", type=str if conv is _ints else conv,
                           default=None, metavar="N,N…" if conv is _ints else conv.__name__.upper())
    group.add_argument("--ignore-pongs", dest="fault_ignore_pongs", action="store_true")
    group.add_argument("--refuse-after-disconnect", dest="fault_refuse_after_disconnect", action="store_true")


def faults_from_args(args: argparse.Namespace) -> Faults:
    faults = Faults()
    for name, conv in _CLI.items():
        value = getattr(args, f"fault_{name}", None)
        if value is not None:
            setattr(faults, name, conv(value) if conv is _ints else value)
    faults.ignore_pongs = bool(getattr(args, "fault_ignore_pongs", False))
    faults.refuse_after_disconnect = bool(getattr(args, "fault_refuse_after_disconnect", False))
    return faults


__all__ = ["Faults", "ServerTiming", "add_fault_arguments", "faults_from_args"]
