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
    assert merged["worker_prefetch_multiplier"] == 4
    assert merged["broker_connection_retry_on_startup"] is True
    assert merged["result_backend"] == settings.CELERY_RESULT_BACKEND


def test_the_celery_app_reads_the_projects_settings_and_warns_of_none_as_deprecated(settings):
    """CELERY_RESULT_BACKEND is also a Celery 3 name: read through the CELERY_ namespace it made
    every worker log a deprecation warning for a setting written as Celery's docs say."""
    from migrations_worker.celery import app

    config = app.conf
    config.finalize()
    assert config.result_backend == settings.CELERY_RESULT_BACKEND
    assert config.result_extended is settings.CELERY_RESULT_EXTENDED
    assert config.task_routes == [{"migrations_worker.*": {"queue": "migrations"}},
                                  settings.CELERY_TASK_ROUTES]
    assert config.broker_transport_options == settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert not config.deprecated_settings


def test_the_engines_tasks_go_to_its_queue_whatever_the_projects_routes_say(settings):
    """A route, not the task attribute `queue` (deprecated in Celery 5), so beat's entries and a
    task's own re-enqueue land on the engine's queue as the sends that name it do."""
    from celery.app.routes import Router, prepare

    from migrations_worker.celery import app

    settings.CELERY_TASK_ROUTES = {"*": {"queue": "shop"}}
    settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "QUEUE": "mw-night"}
    router = Router(prepare(conf.CelerySettings()["task_routes"]), app.amqp.queues,
                    create_missing=True, app=app)
    for task in ("migrations_worker.run_slice", conf.REQUEUE_STALE_RUNS, conf.ADVANCE_ROLLOUTS,
                 "migrations_worker.fleet_step"):
        assert router.route({}, task)["queue"].name == "mw-night"
    assert router.route({}, "shop.tick")["queue"].name == "shop"


def test_beat_re_sends_stale_runs_and_advances_rollouts_once_whether_or_not_the_project_schedules_them(
        settings):
    settings.CELERY_BEAT_SCHEDULE = {"mine": {"task": "shop.tick", "schedule": 5.0}}
    settings.MIGRATIONS_WORKER = {"REQUEUE_INTERVAL_SECONDS": 2}
    schedule = conf.CelerySettings()["beat_schedule"]
    assert schedule == {"mine": {"task": "shop.tick", "schedule": 5.0},
                        "migrations_worker.requeue-stale-runs": {
                            "task": conf.REQUEUE_STALE_RUNS, "schedule": 2.0},
                        "migrations_worker.advance-rollouts": {
                            "task": conf.ADVANCE_ROLLOUTS, "schedule": 2.0}}
    settings.CELERY_BEAT_SCHEDULE = {"own": {"task": conf.REQUEUE_STALE_RUNS, "schedule": 1.0},
                                     "fleet": {"task": conf.ADVANCE_ROLLOUTS, "schedule": 3.0}}
    assert conf.CelerySettings()["beat_schedule"] == settings.CELERY_BEAT_SCHEDULE
