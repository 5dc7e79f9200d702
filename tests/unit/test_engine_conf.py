"""The engine's settings: a project sets only what it changes, a misspelt key is refused, and the
Celery app reads the project's CELERY_* over the engine's defaults."""

from migrations_worker import conf
from migrations_worker.checks import engine_settings_are_known


def test_a_setting_the_project_leaves_out_takes_the_engines_default(settings):
    settings.MIGRATIONS_WORKER = {"GATE_INLINE_LIMIT": 5}
    assert conf.get("GATE_INLINE_LIMIT") == 5
    assert conf.get("QUEUE") == "migrations"
    assert conf.get("STALE_HEARTBEAT_SECONDS") == 60


def test_a_project_without_any_engine_setting_gets_every_default(settings):
    del settings.MIGRATIONS_WORKER
    del settings.MW_STATUS_TOKEN
    assert {name: conf.get(name) for name in conf.DEFAULTS} == conf.DEFAULTS
    assert conf.status_token() == ""
    assert conf.get("SQUAWK_CONFIG").is_file()


def test_a_misspelt_engine_setting_fails_the_system_check(settings):
    settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "GATE_INLINE_LIMT": 5}
    errors = engine_settings_are_known()
    assert [error.id for error in errors] == ["migrations_worker.E005"]
    assert "GATE_INLINE_LIMT" in errors[0].msg


def test_the_projects_celery_settings_win_over_the_engines_defaults(settings):
    settings.CELERY_WORKER_PREFETCH_MULTIPLIER = 4
    merged = conf.CelerySettings()
    assert merged["CELERY_WORKER_PREFETCH_MULTIPLIER"] == 4
    assert merged["CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP"] is True


def test_beat_re_sends_stale_runs_and_advances_rollouts_once_whether_or_not_the_project_schedules_them(
        settings):
    settings.CELERY_BEAT_SCHEDULE = {"mine": {"task": "shop.tick", "schedule": 5.0}}
    settings.MIGRATIONS_WORKER = {"REQUEUE_INTERVAL_SECONDS": 2}
    schedule = conf.CelerySettings()["CELERY_BEAT_SCHEDULE"]
    assert schedule == {"mine": {"task": "shop.tick", "schedule": 5.0},
                        "migrations_worker.requeue-stale-runs": {
                            "task": conf.REQUEUE_STALE_RUNS, "schedule": 2.0},
                        "migrations_worker.advance-rollouts": {
                            "task": conf.ADVANCE_ROLLOUTS, "schedule": 2.0}}
    settings.CELERY_BEAT_SCHEDULE = {"own": {"task": conf.REQUEUE_STALE_RUNS, "schedule": 1.0},
                                     "fleet": {"task": conf.ADVANCE_ROLLOUTS, "schedule": 3.0}}
    assert conf.CelerySettings()["CELERY_BEAT_SCHEDULE"] == settings.CELERY_BEAT_SCHEDULE
