"""The ETA held against the end (`migrations_worker.eta`): which checkpoints a batch passes, and
the error of each once the run has finished. Plain values, no database."""

from datetime import UTC, datetime, timedelta

from migrations_worker.runs import eta

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_batch_passes_the_checkpoints_between_where_it_started_and_where_it_ended():
    assert eta.crossed(0.0, 9.9) == []
    assert eta.crossed(9.9, 10.0) == [10]  # reaching it exactly passes it
    assert eta.crossed(10.0, 30.0) == []  # already passed by the batch before
    assert eta.crossed(45.0, 55.0) == [50]
    assert eta.crossed(0.0, 62.5) == [10, 50]  # a small run: one batch passes both
    assert eta.crossed(50.0, 99.9) == []


def test_the_error_is_predicted_against_actual_time_left_relative_to_the_actual():
    points = [eta.Checkpoint(50, 50.0, T0 + timedelta(seconds=60), 60.0),
              eta.Checkpoint(10, 10.2, T0, 90.0)]
    errors = eta.eta_errors(points, T0 + timedelta(seconds=120))
    assert [(e.checkpoint, e.predicted_seconds, e.actual_seconds) for e in errors] == [
        (10, 90.0, 120.0), (50, 60.0, 60.0)]
    assert errors[0].error_seconds == -30.0 and errors[0].error_ratio == -0.25  # too optimistic
    assert errors[1].error_ratio == 0.0
    assert errors[0].describe() == "ETA at 10%: -25% (predicted 90.0s left, took 120.0s)"


def test_no_error_before_the_end_and_none_for_a_checkpoint_taken_at_the_end():
    assert eta.eta_errors([eta.Checkpoint(10, 10.0, T0, 5.0)], None) == []
    [at_end] = eta.eta_errors([eta.Checkpoint(50, 50.0, T0, 0.0)], T0)
    assert at_end.error_ratio is None


def test_the_benchmark_reports_each_jobs_eta_error_at_10_and_50_percent():
    from bench.report import eta_error, jobs_table

    errors = {"10": {"error_ratio": -0.123, "predicted_seconds": 9.0, "actual_seconds": 10.3},
              "50": {"error_ratio": 0.031, "predicted_seconds": 5.2, "actual_seconds": 5.0}}
    assert eta_error(errors) == "-12% / +3%"
    assert eta_error({}) == "- / -"
    lines = jobs_table([{"scale": "small", "jobs": [
        {"job": "alerts_uuid", "rows": 20_000, "batches": 40, "seconds": 4.0,
         "eta_errors": errors},
        {"job": "ticker_dedup", "rows": 11, "batches": 1, "seconds": None, "eta_errors": {}}]}])
    assert [line.split(" | ")[-2:] for line in lines[2:]] == [["-12% / +3%", "5.2 / 5.0 |"],
                                                            ["- / -", "- |"]]
