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




def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """Django's output flags on an action's own parser too, so they work after the action
    (`backfill status NAME --no-color`); Django puts them only before it. Given nowhere, the
    command's own defaults stand."""
    parser.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3],
                        default=argparse.SUPPRESS,
                        help="0: the result only; 1: with hints and progress (default)")
    parser.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS,
                        help="no colour nor styling (NO_COLOR in the environment does the same)")
    parser.add_argument("--force-color", action="store_true", default=argparse.SUPPRESS,
                        help="colour even when the output is not a terminal")
