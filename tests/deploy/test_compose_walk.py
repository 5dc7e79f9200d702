"""`docker compose up`, walked without Docker: every service of docker-compose.yml as Compose
resolves it (`config`, tests/deploy/compose.py), started directly as a process here, in the order
its `depends_on` declares and no other. A service starts once each dependency reached its
condition (started; healthy by its OWN declared health check, run as Docker runs it with the
service's environment; or exited 0), exactly as Compose waits. So the walk breaks when compose
changes its order, a command, a health check or an environment variable the way a real `up` would.

What stands in for Docker, and nothing else:
- the network: `postgres:5432` is the test server, `redis:6379` the redis service's own command on
  a free port, published ports are free ports on 127.0.0.1;
- the image: /app is this checkout, deploy/Dockerfile's ENV is the environment every app service
  starts from (the engine, which the image pip-installs, comes from this checkout), and its
  build-time `collectstatic` is run once into a directory of the test's own;
- the database: a scratch database owned by a plain owner role (POSTGRES_USER), as on a managed
  server, holding the previous release's schema and a small seeded dataset, with every gate set to
  wait for its job as on a large database (MW_GATE_INLINE_LIMIT=0): the first `up` of this release
  on a database in use. The `migrate` service creates the app role (APP_DATABASE_USER) as it does
  in compose.
Beat writes its schedule where the image's beat does (this checkout's .local/), so a file left
there by an earlier run is removed first: its health check must see this beat's.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import ROOT
from tests.deploy.compose import (
    dependencies,
    generated_secrets,
    healthcheck_argv,
    redis_script,
    resolved_services,
    seconds,
    unescaped,
)
from tests.deploy.test_app_role import Roles
from tests.deploy.test_compose import dockerfile_instructions
from tests.scratch import Database
from tests.workers import Processes, free_port

IMAGE_ROOT = "/app"  # deploy/Dockerfile's WORKDIR
GATE_JOBS = ("alerts_uuid", "legacy_columns", "ticker_dedup")  # the jobs the project's gates wait for
VENV_BIN = Path(sys.executable).parent
WALK_WITHIN = 900  # seconds for the whole `up`: two deploy stages and five processes, on 2 cores
PROXY = {"Host": "localhost", "X-Forwarded-Proto": "https"}  # as compose's web health check asks
SATISFIES = {"started": {"started", "healthy", "completed"}, "healthy": {"healthy"},
             "completed": {"completed"}}


def in_checkout(value: str) -> str:
    """A path of the image (under /app) as the same path in this checkout."""
    return re.sub(rf"{IMAGE_ROOT}(?=/|$)", str(ROOT), value)


def image_environment() -> dict[str, str]:
    """What deploy/Dockerfile's ENV gives every container, with /app read as this checkout."""
    env = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = in_checkout(value)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "engine"), env["PYTHONPATH"]])
    return env


class Service:
    """One compose service run here: its command and health check as Compose resolved them, with
    the network and the image's paths replaced by this machine's (`host`: old -> new)."""

    def __init__(self, name: str, spec: dict, host: dict[str, str], env: dict[str, str],
                 command: list[str] | None) -> None:
        self.name, self.spec = name, spec
        self.needs = dependencies(spec)
        self.env = {**env, **{k: self.on_host(str(v), host) for k, v in
                              (spec.get("environment") or {}).items()}}
        self.command = None if command is None else [self.on_host(a, host) for a in command]
        check = healthcheck_argv(spec)
        self.check = None if check is None else [self.on_host(a, host) for a in check]
        self.check_timeout = seconds((spec.get("healthcheck") or {}).get("timeout"))
        self.one_shot = spec.get("restart") == "no"
        self.state = "pending"
        self.proc: subprocess.Popen | None = None
        self.next_check = 0.0

    @staticmethod
    def on_host(value: str, host: dict[str, str]) -> str:
        for old, new in host.items():
            value = re.sub(old, new, value)
        return value

    def check_passes(self) -> bool:
        """The declared health check, run as Docker runs it: the service's environment, its
        declared timeout."""
        try:
            return subprocess.run(self.check, cwd=ROOT, env=self.env, capture_output=True,
                                  timeout=self.check_timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def settled(self) -> bool:
        if self.one_shot:
            return self.state == "completed"
        return self.state == "healthy" or (self.state == "started" and self.check is None)


class ComposeUp:
    """The services and the processes running them; `walk()` is `docker compose up`."""

    def __init__(self, services: dict[str, Service], processes: Processes,
                 ports: dict[str, int], owner: Database) -> None:
        self.services, self.processes, self.owner = services, processes, owner
        self.ports = ports  # service -> where its published port is here
        self.timeline: list[tuple[str, str]] = []
        self.began = time.monotonic()

    def reached(self, name: str, need: str) -> bool:
        return self.services[name].state in SATISFIES[need]

    def record(self, service: Service, state: str) -> None:
        service.state = state
        self.timeline.append((state, service.name))
        print(f"[compose up] {time.monotonic() - self.began:6.1f}s {service.name} {state}")

    def start_ready(self) -> None:
        """Start every service whose dependencies reached their conditions, until none is left
        (one started may be all another waits for)."""
        ready = [service for service in self.services.values() if service.state == "pending"
                 and all(self.reached(dep, need) for dep, need in service.needs.items())]
        for service in ready:
            if service.command is not None:
                service.proc = self.processes.spawn(service.name, service.command, env=service.env)
            self.record(service, "started")
        if ready:
            self.start_ready()

    def step(self) -> None:
        self.start_ready()
        for service in self.services.values():
            if service.state not in ("started", "healthy"):
                continue
            exited = service.proc is not None and service.proc.poll() is not None
            if exited and not (service.one_shot and service.proc.returncode == 0):
                raise AssertionError(f"{service.name} exited {service.proc.returncode} "
                                     f"after {self.timeline}\n{self.processes.logs()}")
            if exited:
                self.record(service, "completed")
            elif (service.state == "started" and service.check is not None
                  and time.monotonic() >= service.next_check):
                service.next_check = time.monotonic() + 2
                if service.check_passes():
                    self.record(service, "healthy")

    def walk(self) -> None:
        deadline = time.monotonic() + WALK_WITHIN
        while not all(service.settled() for service in self.services.values()):
            assert time.monotonic() < deadline, (
                f"compose up did not settle in {WALK_WITHIN}s: "
                f"{ {s.name: s.state for s in self.services.values()} }\n{self.processes.logs()}")
            self.step()
            time.sleep(0.5)

    def at(self, state: str, name: str) -> int:
        return self.timeline.index((state, name))


@pytest.fixture
def roles():
    """The database as the previous release left it: its schema and data, owned by its owner."""
    roles = Roles().create()
    roles.as_owner.migrate_legacy()
    roles.as_owner.manage("seed_demo", "--size", "small", "--seed", "7")
    yield roles
    roles.drop()


@pytest.fixture
def static_root(tmp_path) -> Path:
    """The image's build-time steps (deploy/Dockerfile): .local/ for beat's schedule, and
    `collectstatic`, here into the test's own directory."""
    (ROOT / ".local").mkdir(exist_ok=True)
    static = tmp_path / "static"
    env = {**image_environment(), "PATH": os.environ["PATH"], "STATIC_ROOT": str(static),
           "SECRET_KEY": generated_secrets()["SECRET_KEY"], "ALLOWED_HOSTS": "build",
           "DATABASE_URL": "postgres://build@127.0.0.1:1/build", "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput",
                             "--verbosity", "0"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return static


@pytest.fixture
def compose_up(roles, static_root, tmp_path):
    """`docker compose up` as this machine can run it; the processes are stopped afterwards."""
    variables = {**generated_secrets(), "POSTGRES_USER": roles.owner, "POSTGRES_DB": roles.scratch.name,
                 "APP_DATABASE_USER": roles.app, "WEB_CONCURRENCY": "1", "WORKER_CONCURRENCY": "1"}
    resolved = unescaped(resolved_services(variables))
    database = settings.DATABASES["default"]
    redis_port = free_port()
    network = {r"@postgres:5432/": f"@{database['HOST']}:{database['PORT']}/",
               r"@redis:6379/": f"@127.0.0.1:{redis_port}/",
               rf"{IMAGE_ROOT}(?=/)": str(ROOT)}
    home = tmp_path / "home"
    home.mkdir()
    base = {"PATH": os.pathsep.join([str(VENV_BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(home), "LANG": "C.UTF-8", "HOSTNAME": socket.gethostname()}
    app = {**base, **image_environment(), "STATIC_ROOT": str(static_root),
           "MW_GATE_INLINE_LIMIT": "0"}
    services, ports = {}, {}
    for name, spec in resolved.items():
        host = dict(network)
        command = spec.get("command")
        if name == "postgres":  # the test server, already up: only its health check runs
            env, command = {**base, "PGHOST": database["HOST"], "PGPORT": str(database["PORT"])}, None
        elif name == "redis":
            env, command = base, ["sh", "-c", redis_script(spec, redis_port, tmp_path)]
            host[r"\bredis-cli\b"] = f"redis-cli -p {redis_port}"
        elif "build" in spec:  # the application image
            env = app
            for published in spec.get("ports", []):
                container = int(published["target"] if isinstance(published, dict)
                                else str(published).split("/")[0].rsplit(":", 1)[1])
                ports[name] = free_port()
                host[rf"\b{container}\b"] = str(ports[name])
                host[r"0\.0\.0\.0"] = "127.0.0.1"
        else:
            pytest.fail(f"compose service {name} ({spec.get('image')}): the walk has no way to run "
                        "it here; teach tests/deploy/test_compose_walk.py")
        services[name] = Service(name, spec, host, env, command)
    for stale in (ROOT / ".local").glob("celerybeat-schedule*"):
        stale.unlink()
    processes = Processes(app, tmp_path)
    try:
        yield ComposeUp(services, processes, ports, roles.as_owner)
    finally:
        for name, proc in list(processes.procs.items()):
            if proc.poll() is not None:  # a one-shot that finished: nothing left to stop
                processes.procs.pop(name)
        processes.stop_all()


def get(url: str) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=PROXY)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_compose_up_in_its_declared_order_deploys_and_serves_with_processes_started_directly(
        compose_up):
    compose_up.walk()

    at = compose_up.at
    # The order the issue asks for, as compose's depends_on produced it: the pre-deploy stage
    # finished before the release served; the worker came with it, since its gates waited for
    # jobs only a worker runs; the post-deploy stage after web and worker were healthy.
    assert all(at("completed", "migrate") < at("started", name) for name in ("web", "beat"))
    assert at("started", "migrate") < at("started", "worker") < at("completed", "migrate")
    # Every gate waited for its job, and the worker ran each one to the end.
    assert compose_up.owner.rows("SELECT job_name, status FROM migrations_worker_jobrun ORDER BY "
                                 "job_name") == [(job, "finished") for job in GATE_JOBS]
    assert all(at("healthy", name) < at("started", "migrate-post") for name in ("web", "worker"))
    assert {state for state, name in compose_up.timeline if name == "migrate-post"} == {
        "started", "completed"}
    # After the post-deploy stage the release still serves: each health check passes again, and
    # the admin renders with its stylesheet served by WhiteNoise from gunicorn.
    for name, service in compose_up.services.items():
        if service.check is not None:
            assert service.check_passes(), f"{name} unhealthy after migrate-post\n" + \
                compose_up.processes.logs()
    web = f"http://127.0.0.1:{compose_up.ports['web']}"
    status, _type, page = get(f"{web}/admin/login/")
    assert status == 200
    stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, page[:2000]
    status, content_type, _css = get(f"{web}{stylesheet[1]}")
    assert (status, content_type.split(";")[0]) == (200, "text/css")
