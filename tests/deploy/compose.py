"""docker-compose.yml as Compose itself reads it: `docker compose config` where the plugin is
installed, else `docker-compose config` (Debian's `docker-compose`, Compose v1), neither of which
needs a Docker daemon to resolve the file. The tests give it `.env.example` and, in the process
environment (which overrides the file), the secrets an operator would fill in, generated here.

Also what the other compose tests share about the resolved file: the order its `depends_on`
declares, health-check commands as a container would run them, durations in compose's notation.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.deploy.test_env_example import EXAMPLE, example

COMPOSE_FILE = ROOT / "docker-compose.yml"
INSTALL = ("install it with `deploy/compose_cli.sh` as root (Debian's docker-compose; `config` needs no "
           "Docker daemon), or `sudo apt-get install --no-install-recommends docker-compose`")
# What each depends_on condition waits for, as the state a service reaches.
CONDITION_STATE = {
    "service_started": "started",
    "service_healthy": "healthy",
    "service_completed_successfully": "completed",
}


def compose_command() -> list[str]:
    """`docker compose` (the plugin) where it works, else `docker-compose`; fails the test, saying
    what to install, when there is neither."""
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail(f"neither `docker compose` nor `docker-compose` is installed: {INSTALL}",
                pytrace=False)


def required_secrets() -> list[str]:
    """The variables `.env.example` leaves for the operator to fill in (empty, not commented)."""
    return [name for name, (value, commented) in example().items() if not commented and not value]


def generated_secrets() -> dict[str, str]:
    """A value for each required secret, of the shape it needs (Flower's is user:password)."""
    return {name: f"ops:{secrets.token_urlsafe(16)}" if name.endswith("BASIC_AUTH")
            else secrets.token_urlsafe(64 if name == "SECRET_KEY" else 24)
            for name in required_secrets()}


def compose_config(variables: dict[str, str]) -> subprocess.CompletedProcess:
    """`config` on docker-compose.yml with `.env.example` and `variables` as the only environment."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
           **variables}
    return subprocess.run(
        [*compose_command(), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
         "--env-file", str(EXAMPLE), "config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def resolved_services(variables: dict[str, str]) -> dict[str, dict]:
    """The services as Compose resolved them: anchors merged, variables substituted; a literal `$`
    still written `$$`, as in a compose file (`unescaped` gives what the container gets)."""
    result = compose_config(variables)
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)["services"]


def unescaped(node):
    """`$$` -> `$` in every string: what Compose hands the container."""
    if isinstance(node, str):
        return node.replace("$$", "$")
    if isinstance(node, list):
        return [unescaped(item) for item in node]
    if isinstance(node, dict):
        return {key: unescaped(value) for key, value in node.items()}
    return node


def dependencies(service: dict) -> dict[str, str]:
    """dependency -> the state it must reach first (`depends_on`, short form = started)."""
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return dict.fromkeys(depends_on, "started")
    return {name: CONDITION_STATE[spec.get("condition", "service_started")]
            for name, spec in depends_on.items()}


def start_waves(services: dict[str, dict]) -> list[set[str]]:
    """The services in the order compose may start them: each wave needs only earlier ones."""
    wave: dict[str, int] = {}

    def depth(name: str, path: tuple[str, ...] = ()) -> int:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        if name not in wave:
            deps = dependencies(services[name])
            wave[name] = 1 + max((depth(dep, (*path, name)) for dep in deps), default=-1)
        return wave[name]

    for name in services:
        depth(name)
    return [{name for name, at in wave.items() if at == level} for level in range(max(wave.values()) + 1)]


def healthcheck_argv(service: dict) -> list[str] | None:
    """The argv Docker runs for the service's health check, or None when it has none."""
    test = (service.get("healthcheck") or {}).get("test")
    if not test or service["healthcheck"].get("disable") or test[:1] == ["NONE"]:
        return None
    if isinstance(test, str):
        return ["sh", "-c", test]
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1]]
    assert test[0] == "CMD", test
    return list(test[1:])


def seconds(duration: str | int | float | None, default: float = 30.0) -> float:
    """A compose duration ('1m30s', '500ms', '10s') in seconds."""
    if duration is None:
        return default
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(a + b for a, b in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(amount) * units[unit] for amount, unit in parts)


def redis_script(redis: dict, port: int, directory: Path) -> str:
    """The redis service's own shell command (`$` unescaped), on loopback, on a port and in a
    directory of the test's own."""
    argv = redis["command"]
    assert argv[:2] == ["sh", "-c"] and "exec redis-server -\n" in argv[2].replace(" - <<", " -\n")
    return argv[2].replace("exec redis-server -", f"exec redis-server --bind 127.0.0.1 "
                           f"--port {port} --dir {directory} --save '' -", 1)
