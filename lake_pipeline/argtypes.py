"""argparse value types that refuse what cannot be meant (0 rows per chunk, a negative threshold, a tick "abc")
with a usage error (exit 2) instead of a silent default or a traceback."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer (>= 1)")
    return value


def _finite_float(text: str, ok, rule: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not ok(value) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
    return value


def positive_float(text: str) -> float:
    return _finite_float(text, lambda v: v > 0, "a positive number")


def non_negative_float(text: str) -> float:
    return _finite_float(text, lambda v: v >= 0, "a number >= 0")


def positive_decimal(text: str) -> str:
    """A tick or lot size such as 0.01: kept as the text (exact), checked to be a positive finite decimal."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number (e.g. 0.01)") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive decimal (e.g. 0.01)")
    return text
