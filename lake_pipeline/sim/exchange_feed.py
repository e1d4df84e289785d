"""What the exchange server replays: a recorded (or simulated) session turned into a timeline of frames.

A golden-format session (`<recv_ns> [<recv_mono_ns>] <frame>` lines: the hftbacktest recorder, our capture, the
simulator) holds combined-stream frames and REST snapshot bodies. The server needs (a) the frames to push, paced by
their recorded receive times, and (b) the book at the start of the timeline, so it can answer snapshot requests
from then on. Everything before the first recorded snapshot is pre-roll folded into that initial book.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lake_pipeline.instrument import FUTURES, SPOT
from lake_pipeline.sim.replay_book import DepthDiff, ReplayBook
from lake_pipeline.capture.protocol import VenueProtocol, venue_protocol

KIND_OTHER, KIND_DEPTH, KIND_TRADE, KIND_TICKER = 0, 1, 2, 3


class FeedFrame(NamedTuple):
    recv_ns: int  # recorded local receive time (pacing)
    stream: str  # full stream name, e.g. "btcusdt@depth@100ms"
    text: str  # the combined-stream frame exactly as recorded
    kind: int
    diff: DepthDiff | None  # parsed for depth diffs (the server's book follows them)


@dataclass
class Feed:
    """A replayable timeline for one symbol."""

    symbol: str  # upper case, as in payloads ("BTCUSDT")
    frames: list[FeedFrame]
    initial_book: ReplayBook
    clock_shift_ns: int = 0  # median(E - recv): maps recorded receive times onto the exchange clock
    source: str = ""
    diffs: list[DepthDiff] = field(default_factory=list)  # depth diffs in timeline order
    exchange: str = SPOT  # BINANCE or BINANCE_FUTURES (USD-M)

    @property
    def stream_symbol(self) -> str:
        return self.symbol.lower()

    @property
    def protocol(self) -> VenueProtocol:
        return venue_protocol(self.exchange)

    def _with(self, frames: list[FeedFrame], source: str) -> Feed:
        return Feed(self.symbol, frames, self.initial_book, self.clock_shift_ns, source,
                    [f.diff for f in frames if f.diff is not None], self.exchange)

    def head(self, n_frames: int) -> Feed:
        """The first `n_frames` of the timeline (same initial book): short tests of a long recording."""
        return self._with(self.frames[:n_frames], f"{self.source}[:{n_frames}]")

    def reordered(self, delay_ms: float) -> Feed:
        """Depth frames delayed by `delay_ms` (trades and tickers with later `E` overtake them), as seen live
        1-4 ms at a time (research §2.2). Order within each stream is kept."""
        shift = int(delay_ms * 1e6)
        frames = [f._replace(recv_ns=f.recv_ns + shift) if f.kind == KIND_DEPTH else f for f in self.frames]
        frames.sort(key=lambda f: f.recv_ns)  # stable: equal times keep the recorded order
        return self._with(frames, f"{self.source}+{delay_ms}ms")

    def duration_s(self) -> float:
        return (self.frames[-1].recv_ns - self.frames[0].recv_ns) / 1e9 if self.frames else 0.0


class FeedError(ValueError):
    """The recorded session cannot be replayed (named file and reason)."""


def _stream_of(text: str) -> str:
    end = text.find('"', 11)
    return text[11:end]


def _kind(stream: str) -> int:
    tail = stream.split("@", 1)[1] if "@" in stream else ""
    if tail.startswith("depth") and not tail[5:6].isdigit():
        return KIND_DEPTH
    if tail == "trade":
        return KIND_TRADE
    if tail == "bookTicker":
        return KIND_TICKER
    return KIND_OTHER


def build_feed(lines: Iterable[tuple[int, str]], source: str = "") -> Feed:
    """Turn `(recv_ns, frame_text)` pairs into a Feed.

    The timeline starts after the first REST snapshot (pre-roll diffs newer than it are applied to the initial
    book, as the sync rules of both venues do); without any snapshot (a simulated session may have none) the book starts
    empty just before the first diff and every frame is served. Later recorded snapshots are not served: the
    server makes its own at request time.
    """
    book = ReplayBook()
    frames: list[FeedFrame] = []
    anchored = False
    symbol = ""
    shifts: list[int] = []
    for recv_ns, text in lines:
        if not text.startswith('{"stream":"'):
            snap = json.loads(text)
            if "lastUpdateId" not in snap:
                raise FeedError(f"{source}: line at recv {recv_ns} is neither a stream frame nor a depth snapshot")
            if not anchored:
                book.load(snap["lastUpdateId"], snap["bids"], snap["asks"])
                for f in frames:  # pre-roll: fold diffs newer than the snapshot into the initial book
                    if f.diff is not None:
                        book.apply(f.diff)
                frames.clear()
                anchored = True
            continue
        stream = _stream_of(text)
        kind = _kind(stream)
        diff = None
        if kind in (KIND_DEPTH, KIND_TRADE):
            data = json.loads(text)["data"]
            symbol = symbol or data.get("s", "")
            if kind == KIND_DEPTH:
                diff = DepthDiff.from_payload(data)
            if len(shifts) < 2000:
                shifts.append(int(data["E"]) * 1_000_000 - recv_ns)
        frames.append(FeedFrame(recv_ns, stream, text, kind, diff))
    diffs = [f.diff for f in frames if f.diff is not None]
    if not frames or not diffs:
        raise FeedError(f"{source}: no depth diffs to replay" + (" after the first snapshot" if anchored else ""))
    futures = diffs[0].prev_id is not None
    if any((d.prev_id is not None) != futures for d in diffs):
        raise FeedError(f"{source}: mixes spot diffs (no `pu`) and USD-M diffs (with `pu`)")
    if not anchored:
        book.update_id = diffs[0].prev_id if futures else diffs[0].first_id - 1
    return Feed(symbol or _stream_of(frames[0].text).split("@")[0].upper(), frames, book,
                int(statistics.median(shifts)) if shifts else 0, source, diffs, FUTURES if futures else SPOT)


def load_feed(paths: Sequence[Path]) -> Feed:
    """Read golden-format files (the capture's own, the hftbacktest recorder's, the simulator's) and build the Feed."""
    from lake_pipeline.capture.golden import iter_frames

    lines = ((recv_ns, frame.decode()) for recv_ns, _mono, frame in iter_frames(paths))
    return build_feed(lines, ", ".join(map(str, paths)))
