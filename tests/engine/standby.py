"""A streaming standby of a test's own primary (`tests.chaos.services.PrivatePostgres`), made the
way an operator makes one: `pg_basebackup -R` (which writes `primary_conninfo` and
`standby.signal`), a data directory and a port of its own, and an `application_name` the primary
knows it by in pg_stat_replication.

It reports its positions every second (`wal_receiver_status_interval = 1s`, default 10 s), so a
test reads a lag at most a second old. Replay is paused and resumed on the standby
(`pg_wal_replay_pause()`), and the standby is stopped and started again with pg_ctl.
"""

from __future__ import annotations

import os
import shutil
import time

import psycopg

from tests.chaos.services import PrivatePostgres, traversable_tmpdir
from tests.workers import free_port

STATUS_INTERVAL = "1s"


class Standby(PrivatePostgres):
    def __init__(self, primary: PrivatePostgres, name: str = "mw_test_standby"):
        super().__init__(base=traversable_tmpdir("standby-pg-"), port=free_port())
        self.primary = primary
        self.name = name

    def start(self) -> Standby:
        if not (self.data / "PG_VERSION").exists():
            if os.geteuid() == 0:
                shutil.chown(self.base, "postgres", "postgres")
            self._run(str(self.bin / "pg_basebackup"), "-D", str(self.data), "-R", "-X", "stream",
                      "-c", "fast", "-d", f"host=127.0.0.1 port={self.primary.port} user=postgres "
                      f"application_name={self.name}")
            with open(self.data / "postgresql.auto.conf", "a") as conf:
                conf.write(f"wal_receiver_status_interval = '{STATUS_INTERVAL}'\n")
        self._pg_ctl("start")
        self.wait_streaming()
        return self

    def halt(self) -> None:
        """Stop it (fast), keeping its data: the primary's walsender for it goes away."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    # -- replay ---------------------------------------------------------------------------------

    def _standby_sql(self, statement: str):
        with psycopg.connect(self.url(), autocommit=True) as conn:
            return conn.execute(statement).fetchone()[0]

    def pause_replay(self) -> None:
        self._standby_sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self._standby_sql("SELECT pg_wal_replay_resume()")

    def replay_paused(self) -> bool:
        return self._standby_sql("SELECT pg_get_wal_replay_pause_state()") != "not paused"

    # -- as the primary sees it -----------------------------------------------------------------

    def replication_row(self) -> tuple | None:
        """(state, bytes behind) of this standby in the primary's pg_stat_replication. Behind
        what the primary has inserted, not only written: the test primary commits
        asynchronously, so a commit may still wait in its WAL buffers."""
        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            return conn.execute(
                "SELECT state, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), replay_lsn) "
                "FROM pg_stat_replication WHERE application_name = %s", [self.name]).fetchone()

    def wait_streaming(self, caught_up: bool = False, timeout: float = 60) -> None:
        """Until the primary lists it as streaming (and, with `caught_up`, 0 bytes behind)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.replication_row()
            if row is not None and row[0] == "streaming" and (not caught_up or row[1] <= 0):
                return
            time.sleep(0.1)
        raise AssertionError(f"standby {self.name} not streaming{' and caught up' if caught_up else ''}"
                             f" after {timeout}s: {self.replication_row()}\n{self.log()[-2000:]}")

    def ensure_healthy(self) -> None:
        """Running, replaying, caught up: what the next test starts from."""
        if not (self.data / "postmaster.pid").exists():
            self._pg_ctl("start")
        if self.replay_paused():
            self.resume_replay()
        self.wait_streaming(caught_up=True)


def primary_with_standby(name: str = "mw_test_standby") -> tuple[PrivatePostgres, Standby]:
    primary = PrivatePostgres(base=traversable_tmpdir("primary-pg-")).start()
    try:
        return primary, Standby(primary, name).start()
    except BaseException:
        primary.stop()
        raise
