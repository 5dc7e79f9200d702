"""The replica check's decisions, without a database: which standbys hold a run, the kind of the
hold and what its text says (`throttle.replica_hold`), and how the site names the standbys it expects
(`throttle.Expected`). The same check against a real standby: tests/engine/test_standby.py."""

import pytest

from migrations_worker.checks import expected_standbys_are_well_formed
from migrations_worker.exceptions import InvalidTuning
from migrations_worker.models import HoldKind
from migrations_worker.runs.throttle import Expected, Hold, Standby, Tuning, replica_hold

LIMITS = Tuning(max_replica_lag_seconds=30.0, max_replica_lag_bytes=1024**3)
LAG, MISSING = HoldKind.REPLICA_LAG, HoldKind.MISSING_STANDBY


def streaming(name: str, seconds: float | None = 0.01, behind: float | None = 0.0) -> Standby:
    return Standby(name, readable=True, lag_seconds=seconds, lag_bytes=behind)


def unreadable(name: str) -> Standby:
    return Standby(name, readable=False, lag_seconds=None, lag_bytes=None)


def test_nothing_expected_and_nothing_connected_holds_nothing():
    assert replica_hold([], Expected(), LIMITS) is None


def test_a_standby_behind_in_seconds_or_in_bytes_holds_as_replica_lag_and_is_named():
    assert replica_hold([streaming("a", 31.0, 2048)], Expected(), LIMITS) == Hold(
        LAG, "standby 'a' is 31.0s and 2.0 kB behind (limits 30s, 1.0 GB)")
    assert replica_hold([streaming("a", None, 2 * 1024**3)], Expected(), LIMITS) == Hold(
        LAG, "standby 'a' is 0.0s and 2.0 GB behind (limits 30s, 1.0 GB)")
    assert replica_hold([streaming("a", 29.0, 1024**2)], Expected(), LIMITS) is None


def test_a_standby_that_has_replayed_everything_is_not_behind_whatever_its_last_replay_lag_says():
    # replay_lag keeps its last measurement for a while after the standby caught up.
    assert replica_hold([streaming("a", 45.0, 0.0)], Expected(), LIMITS) is None


def test_an_expected_standby_missing_from_pg_stat_replication_holds_the_run_as_missing():
    hold = replica_hold([streaming("a")], Expected.parse("a,b"), LIMITS)
    assert hold == Hold(MISSING, "expected standby 'b' is not connected (no row in "
                        "pg_stat_replication): bring it back, or take it out of MW_EXPECTED_STANDBYS")


def test_an_expected_standby_whose_lag_cannot_be_read_holds_an_unexpected_one_does_not():
    hold = replica_hold([unreadable("a"), unreadable("pg_receivewal")], Expected.parse("a"), LIMITS)
    assert hold == Hold(MISSING, "lag of standby 'a' cannot be read (replay_lsn is NULL: no "
                        "report yet, or this role lacks pg_read_all_stats: GRANT "
                        "pg_read_all_stats TO it)")


def test_a_count_counts_only_standbys_whose_lag_can_be_read():
    assert replica_hold([streaming("a"), unreadable("b")], Expected.parse(2), LIMITS) == Hold(
        MISSING, "2 standby(s) expected, 1 connected with a readable lag (connected: 'a', "
        "'b' (lag unreadable))")
    assert replica_hold([streaming("a"), streaming("b")], Expected.parse("2"), LIMITS) is None


def test_every_problem_is_named_in_one_reason_and_a_missing_standby_gives_the_kind():
    hold = replica_hold([streaming("a", 100.0, 10)], Expected.parse(["a", "b"]), LIMITS)
    assert hold.kind == MISSING
    assert hold.text.split("; ") == [
        "expected standby 'b' is not connected (no row in pg_stat_replication): bring it back, "
        "or take it out of MW_EXPECTED_STANDBYS",
        "standby 'a' is 100.0s and 10 B behind (limits 30s, 1.0 GB)",
    ]


@pytest.mark.parametrize(("setting", "expected"), [
    ("", Expected()), (None, Expected()), (0, Expected()), ("0", Expected()),
    (2, Expected(count=2)), (" 3 ", Expected(count=3)),
    ("replica_a", Expected(names=("replica_a",), count=1)),
    ("replica_a, replica-b.2", Expected(names=("replica_a", "replica-b.2"), count=2)),
    (["x", "y"], Expected(names=("x", "y"), count=2)),
])
def test_the_expected_standbys_setting_is_a_count_or_application_names(setting, expected):
    assert Expected.parse(setting) == expected


@pytest.mark.parametrize("setting", [-1, True, "a,,b", "a b", "x;drop", 1.5, {"a": 1}, ["a", 2]])
def test_a_malformed_expected_standbys_setting_is_refused(setting):
    with pytest.raises(InvalidTuning, match="expected standbys"):
        Expected.parse(setting)


def test_the_byte_limit_is_a_tuning_knob_checked_like_the_others():
    assert Tuning.resolve({"max_replica_lag_bytes": 65_536}).max_replica_lag_bytes == 65_536
    for bad in (0, -5, 1.5, "1GB"):
        with pytest.raises(InvalidTuning, match="max_replica_lag_bytes"):
            Tuning.resolve({"max_replica_lag_bytes": bad})


def test_a_malformed_setting_is_a_system_check_error_before_any_run_meets_it(settings):
    settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "STANDBYS": "replica a"}
    [error] = expected_standbys_are_well_formed()
    assert error.id == "migrations_worker.E004"
    assert "application_names" in error.msg
    settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "STANDBYS": "replica_a"}
    assert expected_standbys_are_well_formed() == []
