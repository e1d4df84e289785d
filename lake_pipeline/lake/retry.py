"""Retries with exponential backoff and full jitter for transient remote errors (5xx, throttling, resets).

One retry layer for the whole acquisition (botocore's own retries are switched off): a download chunk that dies
mid-body is retried from the byte it reached, which botocore's per-call retries cannot do.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from loguru import logger

T = TypeVar("T")

THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequests",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "BandwidthLimitExceeded",
    }
)


class TransientSourceError(RuntimeError):
    """A remote call still failed transiently after every retry (the caller may retry the whole partition later)."""


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` calls in all; the k-th wait is uniform in [0, min(cap_s, base_s * 2**k)] (full jitter)."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        return rng() * min(self.cap_s, self.base_s * (2**attempt))


def _client_error_is_transient(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status >= 500 or status == 429 or code in THROTTLE_CODES


def is_transient(exc: BaseException) -> bool:
    """True for errors a later attempt may not see: network resets/timeouts, HTTP 5xx/429, S3 throttling codes."""
    import botocore.exceptions as bex
    import urllib3.exceptions as uex

    if isinstance(exc, bex.ClientError):
        return _client_error_is_transient(exc)
    transient_types: tuple[type[BaseException], ...] = (
        bex.HTTPClientError,  # connection closed/reset, endpoint unreachable, read/connect timeouts
        bex.ResponseStreamingError,
        bex.IncompleteReadError,
        uex.ProtocolError,
        uex.ReadTimeoutError,
        ConnectionError,
        TimeoutError,
        socket.timeout,
    )
    return isinstance(exc, transient_types)


def call_with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `fn`; on a transient error wait (backoff + jitter) and call it again, up to `policy.attempts` calls.

    Non-transient errors propagate at once. After the last attempt a `TransientSourceError` naming `what` is raised.
    """
    for attempt in range(policy.attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt + 1 >= policy.attempts:
                raise TransientSourceError(
                    f"{what}: still failing after {policy.attempts} attempts: {type(exc).__name__}: {exc}"
                ) from exc
            wait = policy.delay(attempt)
            logger.warning(f"{what}: transient {type(exc).__name__} ({exc}); retry {attempt + 1} in {wait:.2f}s")
            sleep(wait)
    raise AssertionError("unreachable")
