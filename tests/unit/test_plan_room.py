"""`migrate_online --plan`'s last lines: the room a deploy's writes need, from the bytes a row
each job carries, against the server's checkpoints, replication slots and autovacuum (the figures
read from a real server: tests/deploy/test_plan_estimates.py)."""

from migrations_worker.deploy.costs import JobCost, Plan, Server, Slot, Vacuum, room_lines
from tests.unit.test_plan_clock import migration

GB = 2**30


def job(name: str, rows: int | None, wal: float | None, growth: float | None) -> JobCost:
    return JobCost(name, "enqueues", "", rows, "", 1_000.0, "", None, 1, "", wal, growth)


def plan(jobs: list[JobCost], server: Server | None) -> Plan:
    only = migration("app.0001")
    only.jobs = jobs
    return Plan("pre", [only], 5_000.0, 100e6, server=server)


def server(**changes) -> Server:
    return Server(**{"max_wal_size": 4 * GB, "checkpoint_completion_target": 0.9,
                     "max_slot_wal_keep_size": None, "wal_level": "replica", **changes})


def test_the_wal_is_counted_against_the_checkpoints_max_wal_size_requests():
    # xlarge's deploy: 7.8 GB of WAL at max_wal_size 4 GB, a checkpoint every 4 / 1.9 GB: 3.
    lines = room_lines(plan([job("alerts", 10_000_000, 7.8 * GB, 1.3 * GB)], server()))
    assert lines[1] == ("  WAL: ~7.8 GB (alerts ~7.8 GB); max_wal_size 4.0 GB: about 3 "
                        "checkpoint(s) requested by it alone (max_wal_size 14.8 GB for the "
                        "deploy would spare them, at the price of a longer crash recovery)")
    assert lines[2] == ("  disk: ~1.3 GB more until vacuum reclaims the old row versions "
                        "(alerts ~1.3 GB)")


def test_a_job_without_measured_bytes_leaves_the_total_unknown_and_says_which():
    lines = room_lines(plan([job("alerts", 1_000, 476_000.0, 144_000.0),
                             job("mine", 5_000, None, None)], server()))
    assert lines[1] == "  WAL: unknown (alerts ~464.8 kB, mine unknown)"
    assert lines[2].startswith("  disk: unknown more until vacuum")


def test_a_slot_that_holds_wal_back_and_a_table_without_autovacuum_are_named():
    found = server(max_slot_wal_keep_size=10 * GB,
                   slots=[Slot("standby_b", "physical", True, 2 * GB)],
                   vacuum=[Vacuum("investments_alert", 1_000_000, None, False),
                           Vacuum("assets_asset", None, None, True)])
    lines = room_lines(plan([job("alerts", 1_000, 1.0, 1.0)], found))
    assert lines[3:] == [
        "  replication slot standby_b (physical, active, keeps 2.0 GB now): the primary keeps "
        "this WAL on its disk until the slot moves past it (max_slot_wal_keep_size: 10.0 GB)",
        "  vacuum: investments_alert (1,000,000 rows): autovacuum is off on it: VACUUM it after "
        "the job; each row a job rewrites leaves a dead version until then",
        "  vacuum: assets_asset (rows unknown): autovacuum's threshold unknown (never analysed); "
        "each row a job rewrites leaves a dead version until then",
    ]


def test_a_plan_with_nothing_to_do_needs_no_room():
    assert room_lines(plan([job("alerts", 0, 0.0, 0.0)], server())) == []
