"""The chaos run's seeds: a fresh one drawn for this pytest run, and all of them in its header."""

from tests.chaos import seeds


def pytest_configure(config) -> None:
    seeds.draw_fresh_seed()


def pytest_report_header(config) -> str:
    fixed, fresh = ",".join(map(str, seeds.fixed())) or "none", seeds.fresh()
    if fresh is None:
        return f"chaos seeds: fixed {fixed}, no fresh one (CHAOS_SEED is empty)"
    return f"chaos seeds: fixed {fixed}, fresh {fresh}; that one again: {seeds.reproduce(fresh)}"
