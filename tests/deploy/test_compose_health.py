"""docker-compose.yml's Redis and health checks, run for real without Docker: the redis service's
own command (only its port and directory changed) must demand the password the apps' REDIS_URL
carries without showing it in `ps`; web's health check must pass against gunicorn as compose
starts it, under production settings; beat's must tell a fresh schedule file from a stale one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.conftest import ROOT
from tests.deploy.compose import redis_script
from tests.deploy.test_compose import COMPOSE_ENV, as_argv, interpolate_all, load_raw
from tests.workers import free_port, wait_until

IMAGE_ROOT = "/app"  # deploy/Dockerfile's WORKDIR


@pytest.fixture(scope="module")
def services() -> dict:
    return interpolate_all(load_raw(), COMPOSE_ENV)["services"]


def healthcheck_script(service: dict) -> str:
    argv = as_argv(service["healthcheck"]["test"])
    assert argv[:3] == ["CMD", "python", "-c"], argv
    return argv[3]


@pytest.fixture
def compose_redis(services, tmp_path):
    """The redis service's command on a port of the test's own; (port, process)."""
    port = free_port()
    script = redis_script(services["redis"], port, tmp_path)
    env = {**os.environ, **services["redis"]["environment"]}
    proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: answers_ping(port) or proc.poll() is not None, timeout=30,
                   message="redis to answer")
        assert proc.poll() is None
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def answers_ping(port: int) -> bool:
    try:
        redis.Redis(port=port, socket_timeout=1).ping()
    except redis.AuthenticationError:
        return True
    except redis.RedisError:
        return False
    return True


def test_redis_refuses_clients_without_the_password_the_apps_url_carries(services, compose_redis):
    port, _proc = compose_redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    app_url = services["worker"]["environment"]["REDIS_URL"].replace("@redis:6379", f"@127.0.0.1:{port}")
    assert redis.Redis.from_url(app_url).ping()


def test_redis_password_is_not_in_its_process_arguments(compose_redis):
    _port, proc = compose_redis
    arguments = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
    assert "redis-server" in arguments  # sh exec'd redis-server: it is the container's PID 1
    assert COMPOSE_ENV["REDIS_PASSWORD"] not in arguments


def test_redis_healthcheck_passes_with_the_services_environment_and_fails_without(
        services, compose_redis):
    port, _proc = compose_redis
    line = as_argv(services["redis"]["healthcheck"]["test"])[1].replace("redis-cli", f"redis-cli -p {port}")
    with_env = subprocess.run(["sh", "-c", line], env={**os.environ, **services["redis"]["environment"]})
    assert with_env.returncode == 0
    without = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    assert subprocess.run(["sh", "-c", line], env=without).returncode != 0


def test_beat_healthcheck_looks_at_the_schedule_file_beat_writes(services):
    in_image = settings.CELERY_BEAT_SCHEDULE_FILENAME.replace(str(ROOT), IMAGE_ROOT, 1)
    assert f'glob.glob("{in_image}*")' in healthcheck_script(services["beat"])


@pytest.mark.parametrize(("age", "healthy"), [(None, False), (5, True), (600, False)])
def test_beat_healthcheck_wants_a_schedule_file_written_in_the_last_minutes(
        services, tmp_path, age, healthy):
    schedule = tmp_path / "celerybeat-schedule"
    script = healthcheck_script(services["beat"]).replace(
        f"{IMAGE_ROOT}/.local/celerybeat-schedule", str(schedule))
    if age is not None:
        schedule.write_bytes(b"")
        os.utime(schedule, (time.time() - age, time.time() - age))
    assert (subprocess.run([sys.executable, "-c", script]).returncode == 0) is healthy


def test_web_healthcheck_passes_against_gunicorn_as_compose_starts_it(services, test_database_url,
                                                                       tmp_path):
    port = free_port()
    web = services["web"]
    argv = [str(Path(sys.executable).parent / arg) if arg == "gunicorn" else arg
            for arg in as_argv(web["command"])]
    argv[argv.index("0.0.0.0:8000")] = f"127.0.0.1:{port}"
    argv[argv.index("--workers") + 1] = "1"
    env = {**{k: v for k, v in os.environ.items() if k not in ("DEBUG", "MW_TARGETS_FILE")},
           **web["environment"], "ALLOWED_HOSTS": "ops.example.org,localhost",
           "DATABASE_URL": test_database_url, "REDIS_URL": settings.CELERY_BROKER_URL,
           # This checkout's engine, as the image installs it (not another checkout's install).
           "PYTHONPATH": os.pathsep.join(map(str, (ROOT / "engine", ROOT / "apps/backend/src")))}
    script = healthcheck_script(web).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: subprocess.run([sys.executable, "-c", script], env=env,
                                          capture_output=True).returncode == 0
                   or proc.poll() is not None, timeout=60, message="the web health check")
        assert proc.poll() is None, log.read_text()
        assert '"GET /ops/health HTTP/1.1" 200' in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
