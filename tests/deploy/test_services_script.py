"""deploy/services.sh against an isolated PostgreSQL and Redis of its own.

Each test gets a fresh data directory and two free ports, with DATABASE_URL / REDIS_URL removed
from the environment, so the instance the rest of the suite uses is never touched. Whatever a
test starts is stopped afterwards, even when it fails.
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from tests.lock_waits import ServerLog, read_behind_an_exclusive_lock

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "services.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def traversable_by_everyone(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def make_base_dir() -> Path:
    """A directory the `postgres` system user can reach (the script runs PostgreSQL as that user
    when it runs as root); pytest's tmp_path under /tmp/pytest-of-root is mode 0700."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        parent = Path(candidate)
        if parent.is_dir() and traversable_by_everyone(parent):
            base = Path(tempfile.mkdtemp(prefix="services-sh-", dir=parent))
            base.chmod(0o755)
            return base
    pytest.fail("no temporary directory that the postgres user can traverse")


@dataclass
class Services:
    base: Path
    local: Path
    pg_port: int
    redis_port: int
    env: dict[str, str]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
        return subprocess.run(
            [str(SCRIPT), *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def pg_connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.pg_port,
            user="postgres",
            dbname="investments",
            connect_timeout=5,
            autocommit=True,
        )

    def redis(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=5)


def stop_leftovers(services: Services) -> None:
    """Last resort when `down` failed: stop the processes this test's instance wrote pid files
    for (and only those)."""
    for pid_file in (services.local / "standby" / "postmaster.pid",
                     services.local / "postgres2" / "postmaster.pid",
                     services.local / "postgres" / "postmaster.pid", services.local / "redis" /
                     "redis.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


@pytest.fixture
def services():
    base = make_base_dir()
    pg_port, redis_port = free_port(), free_port()
    while redis_port == pg_port:
        redis_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        LOCAL_SERVICES_DIR=str(base / "local"),
        PG_PORT=str(pg_port),
        REDIS_PORT=str(redis_port),
    )
    instance = Services(base, base / "local", pg_port, redis_port, env)
    try:
        yield instance
    finally:
        try:
            instance.run("down", timeout=120)
        finally:
            stop_leftovers(instance)
            shutil.rmtree(base, ignore_errors=True)


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def test_up_starts_a_postgres_that_accepts_connections(services):
    result = services.run("up")
    assert result.returncode == 0, output(result)
    with services.pg_connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # It is this test's instance, not the one the suite runs on.
        data_directory = conn.execute("SHOW data_directory").fetchone()[0]
    assert Path(data_directory).resolve() == (services.local / "postgres").resolve()


def test_up_starts_a_redis_that_answers_ping(services):
    result = services.run("up")
    assert result.returncode == 0, output(result)
    client = services.redis()
    assert client.ping() is True
    assert Path(client.config_get("dir")["dir"]).resolve() == (services.local / "redis").resolve()


def test_status_exits_0_and_names_the_ports_while_both_run(services):
    assert services.run("up").returncode == 0
    result = services.run("status")
    assert result.returncode == 0, output(result)
    assert f"postgres: running on 127.0.0.1:{services.pg_port}" in result.stdout
    assert f"redis: running on 127.0.0.1:{services.redis_port}" in result.stdout


def test_status_exits_1_before_anything_was_started(services):
    result = services.run("status")
    assert result.returncode == 1
    assert "postgres: stopped" in result.stdout
    assert "redis: stopped" in result.stdout


def test_down_stops_both_and_status_then_exits_1(services):
    assert services.run("up").returncode == 0
    result = services.run("down")
    assert result.returncode == 0, output(result)
    assert "PostgreSQL stopped" in result.stdout
    assert "Redis stopped" in result.stdout
    assert not listening(services.pg_port)
    assert not listening(services.redis_port)
    with pytest.raises(psycopg.OperationalError):
        services.pg_connect()

    status = services.run("status")
    assert status.returncode == 1
    assert "postgres: stopped" in status.stdout
    assert "redis: stopped" in status.stdout


def test_up_again_after_down_reuses_the_data_directory(services):
    assert services.run("up").returncode == 0
    with services.pg_connect() as conn:
        conn.execute("CREATE TABLE survives_restart (id int)")
    assert services.run("down").returncode == 0

    result = services.run("up")
    assert result.returncode == 0, output(result)
    assert "initialising PostgreSQL" not in result.stdout
    with services.pg_connect() as conn:
        assert conn.execute("SELECT to_regclass('survives_restart')").fetchone()[0] is not None


def test_up_twice_is_harmless_and_says_already_running(services):
    assert services.run("up").returncode == 0
    result = services.run("up")
    assert result.returncode == 0, output(result)
    assert f"PostgreSQL already running on 127.0.0.1:{services.pg_port}" in result.stdout
    assert f"Redis already running on 127.0.0.1:{services.redis_port}" in result.stdout


def test_up_has_postgres_log_every_lock_wait_over_100_ms_also_on_a_server_that_ran_without(services):
    assert services.run("up").returncode == 0
    url = f"postgres://postgres@127.0.0.1:{services.pg_port}/investments"
    ServerLog(url)  # a new data directory: set up as the tests read it
    with services.pg_connect() as conn:  # as a data directory from before this script set them
        conn.execute("ALTER SYSTEM RESET ALL")
        conn.execute("SELECT pg_reload_conf()")
    for _ in range(50):
        with services.pg_connect() as conn:
            if conn.execute("SHOW log_lock_waits").fetchone()[0] == "off":
                break
        time.sleep(0.1)
    with pytest.raises(AssertionError, match="log_lock_waits is 'off'"):
        ServerLog(url)

    result = services.run("up")  # the server keeps running, and gets them all the same
    assert result.returncode == 0, output(result)
    assert f"PostgreSQL already running on 127.0.0.1:{services.pg_port}" in result.stdout
    log = ServerLog(url)
    with services.pg_connect() as conn:
        conn.execute("CREATE TABLE quotes (id int)")
    read_behind_an_exclusive_lock(url, "quotes", 0.3, "svc-reader")
    waits = log.waits(database="investments", applications={"svc-reader"})
    assert [(w.ended, w.milliseconds >= 250) for w in waits] == [("acquired", True)]
    assert "[svc-reader] [investments] LOG:  process" in (
        services.local / "postgres" / "server.log").read_text()


def test_env_prints_urls_for_the_configured_ports(services):
    result = services.run("env")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"DATABASE_URL=postgres://postgres@127.0.0.1:{services.pg_port}/investments",
        f"REDIS_URL=redis://127.0.0.1:{services.redis_port}/0",
    ]


EXTERNAL = {
    "DATABASE_URL": "postgres://app@db.example.invalid:5432/investments",
    "REDIS_URL": "redis://cache.example.invalid:6379/0",
}


def test_with_external_urls_up_starts_nothing_and_status_reports_external(services):
    result = services.run("up", env=EXTERNAL)
    assert result.returncode == 0, output(result)
    assert "DATABASE_URL is set: using it, not starting PostgreSQL" in result.stdout
    assert "REDIS_URL is set: using it, not starting Redis" in result.stdout
    assert not (services.local / "postgres").exists()
    assert not (services.local / "redis").exists()
    assert not listening(services.pg_port)
    assert not listening(services.redis_port)

    status = services.run("status", env=EXTERNAL)
    assert status.returncode == 0, output(status)
    assert "postgres: external (DATABASE_URL)" in status.stdout
    assert "redis: external (REDIS_URL)" in status.stdout


def test_env_passes_external_urls_through(services):
    result = services.run("env", env=EXTERNAL)
    assert result.stdout.splitlines() == [
        f"DATABASE_URL={EXTERNAL['DATABASE_URL']}",
        f"REDIS_URL={EXTERNAL['REDIS_URL']}",
    ]


def test_with_external_urls_down_leaves_the_local_instance_alone(services):
    assert services.run("up").returncode == 0
    result = services.run("down", env=EXTERNAL)
    assert result.returncode == 0, output(result)
    assert "stopped" not in result.stdout
    with services.pg_connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert services.redis().ping() is True


def path_without(tmp_path: Path, hidden: set[str]) -> str:
    """A PATH with every program of the current one except `hidden` (linked into one dir)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not Path(directory).is_dir():
            continue
        for program in Path(directory).iterdir():
            target = bin_dir / program.name
            if program.name in hidden or target.exists() or target.is_symlink():
                continue
            if program.is_file() and os.access(program, os.X_OK):
                target.symlink_to(program)
    return str(bin_dir)


def test_with_external_urls_up_needs_no_local_binaries(services, tmp_path):
    # The script's own advice when binaries are missing is "or set DATABASE_URL and REDIS_URL":
    # that must work on a machine without redis-server (and, as root, must not apt-get it).
    hidden = {"redis-server", "redis-cli", "apt-get", "apt"}
    env = {**EXTERNAL, "PATH": path_without(tmp_path, hidden)}
    result = services.run("up", env=env)
    assert result.returncode == 0, output(result)
    assert "installing" not in result.stdout
    status = services.run("status", env=env)
    assert status.returncode == 0, output(status)


def test_without_redis_server_up_says_what_to_install(services, tmp_path):
    # apt-get hidden too: as root the script would otherwise install redis-server.
    env = {"PATH": path_without(tmp_path, {"redis-server", "redis-cli", "apt-get", "apt"})}
    result = services.run("up", env=env)
    assert result.returncode == 2
    assert "missing redis-server" in result.stderr
    assert "set DATABASE_URL and REDIS_URL" in result.stderr
    assert not listening(services.pg_port)


# -- the standby ------------------------------------------------------------------------------------


def standby_env() -> dict[str, str]:
    return {"STANDBY_PORT": str(free_port()), "STANDBY_NAME": "svc_standby"}


def test_standby_up_makes_a_streaming_replica_the_primary_knows_by_its_name(services):
    assert services.run("up").returncode == 0
    env = standby_env()
    port = int(env["STANDBY_PORT"])
    result = services.run("standby", "up", env=env)
    assert result.returncode == 0, output(result)
    assert f"standby 'svc_standby' streaming on 127.0.0.1:{port}" in result.stdout
    assert "export MW_EXPECTED_STANDBYS=svc_standby" in result.stdout
    with services.pg_connect() as primary:
        assert primary.execute("SELECT application_name, state FROM pg_stat_replication").fetchall() == [
            ("svc_standby", "streaming")]
        primary.execute("CREATE TABLE made_on_the_primary (id int)")
        primary.execute("INSERT INTO made_on_the_primary VALUES (42)")
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="investments",
                         connect_timeout=5, autocommit=True) as standby:
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        data_directory = standby.execute("SHOW data_directory").fetchone()[0]
        for _ in range(50):  # replayed within moments
            if standby.execute("SELECT to_regclass('made_on_the_primary')").fetchone()[0]:
                break
            time.sleep(0.1)
        assert standby.execute("SELECT id FROM made_on_the_primary").fetchall() == [(42,)]
    assert Path(data_directory).resolve() == (services.local / "standby").resolve()

    status = services.run("status", env=env)
    assert status.returncode == 0, output(status)
    assert (f"standby: running on 127.0.0.1:{port}, streaming as 'svc_standby', 0 bytes behind"
            in status.stdout)
    again = services.run("standby", "up", env=env)
    assert again.returncode == 0 and "standby already running" in again.stdout

    down = services.run("standby", "down", env=env)
    assert down.returncode == 0 and "standby stopped" in down.stdout
    assert not listening(port)
    with services.pg_connect() as primary:
        assert primary.execute("SELECT count(*) FROM pg_stat_replication").fetchone() == (0,)
    status = services.run("status", env=env)
    assert status.returncode == 1
    assert "standby: stopped" in status.stdout

    # Started again from its own data (no new copy), and `down` stops it with the rest.
    result = services.run("standby", "up", env=env)
    assert result.returncode == 0, output(result)
    assert "copying the primary" not in result.stdout
    assert services.run("down", env=env).returncode == 0
    assert not listening(port) and not listening(services.pg_port)


def test_standby_up_without_the_primary_running_says_to_start_it_first(services):
    result = services.run("standby", "up", env=standby_env())
    assert result.returncode == 2
    assert "start it first (deploy/services.sh up)" in result.stderr
    assert not (services.local / "standby").exists()


def test_second_up_starts_another_postgres_server_on_its_own_port_with_its_own_database(services):
    assert services.run("up").returncode == 0
    port = free_port()
    while port in (services.pg_port, services.redis_port):
        port = free_port()
    env = {"SECOND_PG_PORT": str(port), "SECOND_PG_DB": "second_db"}
    result = services.run("second", "up", env=env)
    assert result.returncode == 0, output(result)
    assert f"PostgreSQL up on 127.0.0.1:{port}" in result.stdout
    assert "created database second_db" in result.stdout
    url = services.run("second", "env", env=env).stdout.strip()
    assert url == f"SECOND_DATABASE_URL=postgres://postgres@127.0.0.1:{port}/second_db"
    with psycopg.connect(url.split("=", 1)[1], connect_timeout=5, autocommit=True) as second, \
            services.pg_connect() as first:
        ids = [c.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
               for c in (first, second)]
        assert ids[0] != ids[1], "the second server is a server of its own, not a database of the first"
        assert Path(second.execute("SHOW data_directory").fetchone()[0]).resolve() == (
            services.local / "postgres2").resolve()
    status = services.run("status", env=env)
    assert status.returncode == 0, output(status)
    assert f"second postgres: running on 127.0.0.1:{port}" in status.stdout
    again = services.run("second", "up", env=env)
    assert again.returncode == 0 and f"PostgreSQL already running on 127.0.0.1:{port}" in again.stdout

    assert services.run("second", "down", env=env).returncode == 0
    assert not listening(port) and listening(services.pg_port)
    status = services.run("status", env=env)
    assert status.returncode == 1 and "second postgres: stopped" in status.stdout
    # Started again from its own data; `down` stops it with the rest.
    assert services.run("second", "up", env=env).returncode == 0
    assert services.run("down", env=env).returncode == 0
    assert not listening(port) and not listening(services.pg_port)


def test_second_up_on_the_first_servers_port_is_refused(services):
    result = services.run("second", "up", env={"SECOND_PG_PORT": str(services.pg_port)})
    assert result.returncode == 2
    assert "SECOND_PG_PORT" in result.stderr and "must differ from PG_PORT" in result.stderr
    assert not (services.local / "postgres2").exists()


# -- a port another server holds ------------------------------------------------------------------


@pytest.fixture
def occupy():
    """Someone else's server on a port (another checkout's, a PostgreSQL of the machine): a socket
    that listens and never answers; closed after the test."""
    sockets = []

    def listen(port: int) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        sock.listen()
        sockets.append(sock)

    yield listen
    for sock in sockets:
        sock.close()


def suggested(result: subprocess.CompletedProcess, variable: str) -> int:
    found = re.search(rf"Choose another port: {variable}=(\d+) deploy/services.sh", result.stderr)
    assert found, output(result)
    return int(found.group(1))


def test_up_on_a_port_another_server_holds_says_which_and_how_to_choose_another(services, occupy):
    occupy(services.pg_port)
    result = services.run("up")
    assert result.returncode == 2
    assert f"127.0.0.1:{services.pg_port} is already taken by another server" in result.stderr
    assert "PG_PORT=" in result.stderr and "deploy/services.sh up" in result.stderr
    assert "could not start server" not in output(result)
    assert not (services.local / "postgres").exists()  # stopped before initdb
    assert not listening(services.redis_port)

    # The advice works: the suggested port is free, and the server starts there.
    port = suggested(result, "PG_PORT")
    assert port != services.pg_port and not listening(port)
    again = services.run("up", env={"PG_PORT": str(port)})
    assert again.returncode == 0, output(again)
    assert f"PostgreSQL up on 127.0.0.1:{port}" in again.stdout


def test_up_on_a_redis_port_another_server_holds_names_redis_port(services, occupy):
    occupy(services.redis_port)
    result = services.run("up", env={"DATABASE_URL": EXTERNAL["DATABASE_URL"]})
    assert result.returncode == 2
    assert f"127.0.0.1:{services.redis_port} is already taken" in result.stderr
    assert suggested(result, "REDIS_PORT") != services.redis_port
    assert not (services.local / "redis" / "redis.pid").exists()


def test_second_up_on_a_port_another_server_holds_names_second_pg_port(services, occupy):
    port = free_port()
    while port in (services.pg_port, services.redis_port):
        port = free_port()
    occupy(port)
    result = services.run("second", "up", env={"SECOND_PG_PORT": str(port)})
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already taken" in result.stderr
    assert "deploy/services.sh second up" in result.stderr
    assert suggested(result, "SECOND_PG_PORT") != port
    assert not (services.local / "postgres2").exists()


def machine_mib() -> int:
    """The machine's memory as the script reads it: MemTotal, or a lower cgroup limit."""
    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = "max"
    if limit.isdigit():
        kib = min(kib, int(limit) // 1024)
    return kib // 1024


def test_up_sizes_postgres_memory_from_the_machine_not_from_postgres_defaults(services):
    result = services.run("up", env={"PG_MEMORY_SERVERS": "4"})
    assert result.returncode == 0, output(result)
    share = machine_mib() // 4
    want = {"shared_buffers": min(max(share // 4, 128), 8192),
            "effective_cache_size": max(share * 3 // 4, 512),
            "maintenance_work_mem": min(max(share // 16, 64), 2048),
            "max_wal_size": 4096}
    with services.pg_connect() as conn:
        got = {name: conn.execute(
            "SELECT setting::bigint * pg_size_bytes(CASE WHEN unit ~ '^[0-9]' THEN unit "
            "ELSE '1' || unit END) / 1048576 "
            "FROM pg_settings WHERE name = %s", [name]).fetchone()[0] for name in want}
    assert got == want
    assert got["shared_buffers"] > 128 or share < 1024  # not PostgreSQL's default on a real machine
    printed = services.run("settings", env={"PG_MEMORY_SERVERS": "4"})
    assert f"shared_buffers={want['shared_buffers']}MB" in printed.stdout.split()


def test_up_refuses_a_share_of_memory_that_is_not_a_number_of_servers(services):
    result = services.run("up", env={"PG_MEMORY_SERVERS": "half"})
    assert result.returncode == 2
    assert "PG_MEMORY_SERVERS must be a whole number of servers, not 'half'" in output(result)
    assert not listening(services.pg_port)
