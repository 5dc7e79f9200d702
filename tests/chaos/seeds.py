"""Which seeds a chaos run replays: the fixed ones (`CHAOS_SEEDS`, "1,2,3" by default; empty
for none) and one fresh seed per run (`CHAOS_SEED`, drawn when the run starts unless given), so
that every CI run also tries a sequence of faults no run tried before. The fresh seed is printed
in the run's header with the one command that replays it alone."""

from __future__ import annotations

import os
import secrets

FIXED_DEFAULT = "1,2,3"
TEST = ("tests/chaos/test_chaos.py::"
        "test_online_migration_under_seeded_faults_and_load_ends_like_an_undisturbed_run")


def draw_fresh_seed() -> None:
    """Once per pytest run, before collection (pytest_configure), in the environment so that
    every process of the run sees the same one."""
    os.environ.setdefault("CHAOS_SEED", str(1_000 + secrets.randbelow(1_000_000)))


def fixed() -> list[int]:
    return [int(s) for s in os.environ.get("CHAOS_SEEDS", FIXED_DEFAULT).split(",") if s.strip()]


def fresh() -> int | None:
    value = os.environ.get("CHAOS_SEED", "").strip()
    return int(value) if value else None


def all_seeds() -> list[int]:
    seeds = fixed()
    extra = fresh()
    return seeds if extra is None or extra in seeds else [*seeds, extra]


def reproduce(seed: int) -> str:
    """The one command that runs this seed again, alone."""
    return f"CHAOS_SEED={seed} CHAOS_SEEDS= make test PYTEST_ARGS='-s {TEST}'"
