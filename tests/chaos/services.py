"""A PostgreSQL server of the test's own, so restarting it disturbs no other test or engineer.

The shared server on 55432 must never be stopped: a restart there would fail everyone's tests.
A private cluster costs ~2 s to `initdb` and runs as the `postgres` system user when the tests
run as root (PostgreSQL refuses root), in a directory that user can traverse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from tests.workers import PrivateRedis, free_port


def pg_bindir() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    if found is None:
        raise RuntimeError("pg_ctl not found: install PostgreSQL (deploy/services.sh does)")
    return Path(found).parent


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def traversable_tmpdir(prefix: str) -> Path:
    """A fresh directory under a world-traversable parent (pytest's tmp_path is 0700 for root)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    return base


class PrivatePostgres:
    """initdb + pg_ctl on a free port; `restart()` is the fault, `stop()` the teardown."""

    def __init__(self, base: Path | None = None, port: int | None = None):
        self.base = base or traversable_tmpdir("chaos-pg-")
        self.data = self.base / "data"
        self.port = port or free_port()
        self.bin = pg_bindir()
        self.restarts = 0

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(_as_postgres([*args]), check=True, capture_output=True, timeout=timeout)

    def start(self) -> PrivatePostgres:
        if not (self.data / "PG_VERSION").exists():
            if os.geteuid() == 0:
                shutil.chown(self.base, "postgres", "postgres")
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "--auth=trust", "--encoding=UTF8", "--no-locale")
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} "
                   "-c max_connections=100 -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.base / "server.log"), "-w", "-t", "60", *extra, action, "-o", options)

    def restart(self, down_for: float = 0.0) -> float:
        """Stop (fast: every session is terminated, as in a failover), stay down `down_for`
        seconds, start again; returns the seconds it was unavailable."""
        started = time.monotonic()
        if down_for:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            time.sleep(down_for)
            self._pg_ctl("start")
        else:
            self._pg_ctl("restart", "-m", "fast")
        self.restarts += 1
        return time.monotonic() - started

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                                         "immediate", "-w", "stop"]), capture_output=True,
                           timeout=60, check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def require_password(self, role: str, password: str) -> None:
        """A login role that must authenticate with `password` over TCP (scram-sha-256), while
        the harness's own `postgres` sessions keep trust."""
        hba = self.data / "pg_hba.conf"
        line = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
        text = hba.read_text()
        if line not in text:
            hba.write_text(line + text)  # first match wins: before the trust lines
            if os.geteuid() == 0:
                shutil.chown(hba, "postgres", "postgres")
        self.admin(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "reload")

    def log(self) -> str:
        path = self.base / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- databases ----------------------------------------------------------------------------

    def admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str, template: str | None = None) -> str:
        self.drop_database(name)
        if template is None:
            self.admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            self.admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class PasswordRedis(PrivateRedis):
    """A private Redis that demands a password, as a production one does."""

    def __init__(self, directory: Path, port: int, password: str):
        super().__init__(directory, port)
        self.password = password
        self.url = f"redis://:{password}@127.0.0.1:{port}/0"

    def start(self) -> None:
        subprocess.run(
            ["redis-server", "-"], input=(
                f"bind 127.0.0.1\nport {self.port}\ndir {self.directory}\ndaemonize yes\n"
                f'save ""\nappendonly no\npidfile {self.directory / "redis.pid"}\n'
                f"logfile {self.directory / 'redis.log'}\nrequirepass {self.password}\n"
            ).encode(), check=True,
        )
        deadline = time.monotonic() + 10
        while not self.ping():
            if time.monotonic() > deadline:
                raise RuntimeError("the password-protected Redis did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "--no-auth-warning", "-a",
                        self.password, "shutdown", "nosave"], capture_output=True, check=False)
