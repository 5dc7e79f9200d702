"""The whole deploy's estimate (`deploy.clock`): the plan's migrations walked as the deploy runs
them, jobs on worker lanes beside the DDL, a gate waiting for its own job. From plans built by
hand (the figures a plan reads from a database are `plan`'s, tested on one in tests/deploy)."""

import pytest

from migrations_worker.deploy import clock, costs
from migrations_worker.deploy.costs import JobCost, MigrationCost, Plan, StatementCost, Step


def statement(seconds: float | None) -> StatementCost:
    return StatementCost(sql="SELECT 1;", kinds=[], lock="NONE", hold="none", blocks="",
                         tables=[], lock_timeout="none", seconds=seconds, held_seconds=seconds)


def migration(name: str, seconds: float | None = 0.0, *, stage: str = "pre",
              enqueues: tuple[str, ...] = (), gates: dict[str, int] | None = None,
              parents: tuple[str, ...] = ()) -> MigrationCost:
    gates = gates or {}
    jobs = [JobCost(job, "requires", "", None, "", None, "", None) for job in gates]
    jobs += [JobCost(job, "enqueues", "", None, "", None, "", None) for job in enqueues]
    return MigrationCost(name, stage, True, [], [Step(1, True, [statement(seconds)])], jobs,
                         parents=list(parents), gate_limits=gates)


def job(name: str, seconds: float | None, *, rows: int | None = 1_000, lanes: int = 1,
        status: str = "") -> JobCost:
    rate = None if seconds is None else rows / seconds
    return JobCost(name, "enqueues", "", rows, "", rate, "", seconds, lanes, status)


def walk(migrations: list[MigrationCost], jobs: list[JobCost], workers: int = 2,
         stage: str = "pre") -> clock.Timeline:
    plan = Plan(stage, migrations, 5_000.0, 1.0, workers=workers)
    found = {j.job: j for j in jobs}
    return clock.walk(plan.migrations, found, clock.STAGES if stage == "all" else (stage,),
                      plan.workers)


def test_a_gate_moves_the_clock_to_its_jobs_end_and_the_wait_counts_as_waiting_at_gates():
    timeline = walk([migration("a.1", 2.0, enqueues=("fill",)),
                     migration("a.2", 3.0, gates={"fill": 0}, parents=("a.1",))],
                    [job("fill", 10.0)])
    assert timeline.jobs["fill"] == clock.JobSpan(1, 2.0, 2.0, 12.0)
    assert (timeline.seconds, timeline.ddl_seconds, timeline.gate_seconds) == (15.0, 5.0, 10.0)


def test_a_job_runs_while_the_ddl_after_its_enqueue_goes_on():
    timeline = walk([migration("a.1", 1.0, enqueues=("fill",)),
                     migration("b.1", 20.0),
                     migration("a.2", 1.0, gates={"fill": 0}, parents=("a.1",))],
                    [job("fill", 10.0)])
    # b.1's 20 s cover the job's 10: the gate finds it finished.
    assert (timeline.seconds, timeline.gate_seconds) == (22.0, 0.0)


def test_a_closed_gate_holds_its_migration_and_what_depends_on_it_while_others_go_on():
    timeline = walk([migration("a.1", 0.0, enqueues=("fill",)),
                     migration("a.2", 1.0, gates={"fill": 0}, parents=("a.1",)),
                     migration("a.3", 1.0, parents=("a.2",)),
                     migration("b.1", 4.0)],
                    [job("fill", 10.0)])
    # b.1 runs in the first pass (0 -> 4), the deploy waits for the job (-> 10), then a.2, a.3.
    assert (timeline.seconds, timeline.ddl_seconds, timeline.gate_seconds) == (12.0, 6.0, 6.0)


@pytest.mark.parametrize(("workers", "ends", "deploy"), [(1, (10.0, 30.0), 30.0),
                                                         (2, (10.0, 20.0), 20.0)])
def test_two_jobs_share_one_lane_one_after_the_other_and_two_lanes_side_by_side(
    workers, ends, deploy
):
    timeline = walk([migration("a.1", 0.0, enqueues=("first", "second")),
                     migration("a.2", 0.0, gates={"first": 0, "second": 0}, parents=("a.1",))],
                    [job("first", 10.0), job("second", 20.0)], workers=workers)
    assert (timeline.jobs["first"].ends_at, timeline.jobs["second"].ends_at) == ends
    assert timeline.seconds == deploy
    assert timeline.workers == workers


def test_a_job_enqueued_while_every_lane_is_busy_starts_when_one_frees():
    timeline = walk([migration("a.1", 0.0, enqueues=("long",)),
                     migration("b.1", 5.0, enqueues=("short",)),
                     migration("b.2", 0.0, gates={"short": 0}, parents=("b.1",))],
                    [job("long", 30.0), job("short", 10.0)], workers=1)
    assert timeline.jobs["short"] == clock.JobSpan(1, 5.0, 30.0, 40.0)
    assert timeline.seconds == 40.0
    assert costs.timeline_lines(timeline) == [
        "estimated deploy with 1 worker(s): ~40s (schema changes ~5s, waiting at gates ~35s)",
        "  job long: enqueued at 0.0s, done at 30s (on 1 of the workers)",
        "  job short: enqueued at 5.0s, waits for a worker until 30s, done at 40s (on 1 of the "
        "workers)",
    ]


def test_a_job_asking_for_two_lanes_waits_for_both():
    timeline = walk([migration("a.1", 0.0, enqueues=("one",)),
                     migration("a.2", 2.0, enqueues=("two",)),
                     migration("a.3", 0.0, gates={"two": 0}, parents=("a.2",))],
                    [job("one", 8.0), job("two", 5.0, lanes=2)], workers=2)
    assert timeline.jobs["two"] == clock.JobSpan(2, 2.0, 8.0, 13.0)


def test_a_gate_with_a_remainder_under_its_inline_limit_finishes_it_there():
    timeline = walk([migration("a.1", 0.0, enqueues=("fill",)),
                     migration("a.2", 9.0),
                     migration("a.3", 0.0, gates={"fill": 200}, parents=("a.1",)),
                     migration("b.1", 5.0)],
                    [job("fill", 10.0, rows=1_000)])
    # At 9 s the job has 100 rows left, under the gate's 200: finished inline before b.1 runs.
    assert (timeline.seconds, timeline.gate_seconds) == (15.0, 1.0)


def test_a_job_running_before_the_deploy_holds_its_lane_from_the_start():
    timeline = walk([migration("a.1", 0.0, enqueues=("new",)),
                     migration("a.2", 0.0, gates={"new": 0}, parents=("a.1",))],
                    [job("old", 6.0, status="running"), job("new", 4.0)], workers=1)
    assert timeline.jobs["old"].starts_at == 0.0
    assert timeline.jobs["new"] == clock.JobSpan(1, 0.0, 6.0, 10.0)


def test_a_job_nothing_runs_is_enqueued_by_its_closed_gate():
    timeline = walk([migration("a.1", 3.0, gates={"fill": 0})], [job("fill", 10.0)])
    assert timeline.jobs["fill"] == clock.JobSpan(1, 0.0, 0.0, 10.0)
    assert timeline.seconds == 13.0


def test_every_stage_runs_after_the_last_and_a_job_of_the_first_runs_on_into_the_second():
    timeline = walk([migration("a.1", 1.0, enqueues=("fill",)),
                     migration("a.2", 2.0, stage="post", gates={"fill": 0}, parents=("a.1",)),
                     migration("b.1", 1.0)],
                    [job("fill", 10.0)], stage="all")
    pre, post = timeline.stages
    assert (pre.stage, pre.seconds, pre.gate_seconds) == ("pre", 2.0, 0.0)
    assert (post.stage, post.seconds, post.ddl_seconds, post.gate_seconds) == (
        "post", 11.0, 2.0, 9.0)
    assert timeline.seconds == 13.0


@pytest.mark.parametrize("unknown", ["statement", "job", "held"])
def test_an_unknown_duration_leaves_the_deploy_unknown_never_guessed(unknown):
    fill = {"statement": job("fill", 10.0), "job": job("fill", None, rows=None),
            "held": job("fill", 10.0, status="held")}[unknown]
    timeline = walk([migration("a.1", None if unknown == "statement" else 1.0,
                               enqueues=("fill",)),
                     migration("a.2", 1.0, gates={"fill": 0}, parents=("a.1",))], [fill])
    assert timeline.seconds is None and timeline.gate_seconds is None
    if unknown != "statement":
        assert timeline.ddl_seconds == 2.0
        assert timeline.jobs["fill"].ends_at is None


def test_a_gate_found_closed_stays_closed_for_the_rest_of_the_pass():
    timeline = walk([migration("a.1", 0.0, enqueues=("fill",)),
                     migration("a.2", 5.0, gates={"fill": 0}),
                     migration("b.1", 20.0),
                     migration("c.1", 0.0, gates={"fill": 0}),
                     migration("c.2", 1.0, parents=("c.1",), enqueues=("late",))],
                    [job("fill", 10.0), job("late", 10.0)])
    # At 20 s the job is done, but c.1's gate was found closed in this pass (a.2's): the next
    # pass applies a.2 (20 -> 25) before c.1 and c.2 (-> 26), which enqueues `late`.
    assert timeline.jobs["late"] == clock.JobSpan(1, 26.0, 26.0, 36.0)
