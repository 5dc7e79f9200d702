"""Real Celery workers and beat as subprocesses, so tests can SIGKILL them like production does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
CELERY = [sys.executable, "-m", "celery", "-A", "migrations_worker"]


class Processes:
    """Starts worker and beat processes against the test database; kills whatever is left."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        return self.spawn(name, CELERY + args)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Any program as one of these processes: its own log, process group and kill."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env if env is None else env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def worker(self, name: str) -> subprocess.Popen:
        return self._spawn(name, [
            "worker", "-Q", "migrations", "--pool", "solo", "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
        ])

    def beat(self) -> subprocess.Popen:
        schedule = self.log_dir / "celerybeat-schedule"
        return self._spawn("beat", ["beat", "-s", str(schedule), "-l", "INFO"])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


def flush_broker(url: str) -> None:
    """Drop messages left by earlier tests; they are fenced anyway, but they cost time."""
    redis.Redis.from_url(url).flushdb()


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")


class PrivateRedis:
    """A Redis server of the test's own, so restarting it disturbs no other test."""

    def __init__(self, directory: Path, port: int):
        self.directory = directory
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        subprocess.run(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             str(self.directory), "--daemonize", "yes", "--save", "", "--appendonly", "no",
             "--pidfile", str(self.directory / "redis.pid"),
             "--logfile", str(self.directory / "redis.log")],
            check=True,
        )
        wait_until(self.ping, 10, 0.05, "redis to accept connections")

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
                       capture_output=True, check=False)
        wait_until(lambda: not self.ping(), 10, 0.05, "redis to stop")

    def ping(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.ConnectionError:
            return False


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
