"""Argument types shared by the operator commands, so bad numbers are refused the same way
(and before anything touches the database or the broker)."""

from __future__ import annotations

import argparse
import math

from django.db import DEFAULT_DB_ALIAS


def seconds(text: str) -> float:
    """A duration in seconds from the command line: a finite number, zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def positive_seconds(text: str) -> float:
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_database(parser: argparse.ArgumentParser) -> None:
    """`--database NAME`: the target a command works on (checked by `conf.require_target`)."""
    parser.add_argument("--database", default=DEFAULT_DB_ALIAS, metavar="NAME",
                        help="the target database (a declared target; default: default)")


