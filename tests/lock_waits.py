"""The application's lock waits, read from the PostgreSQL server's own log.

The README's bound (no application statement held up by the migration for more than about a
hundred milliseconds) is measured by the server, not sampled by the test: `deploy/services.sh`
has every test server log each lock wait longer than `deadlock_timeout` (100 ms,
`log_lock_waits`), once when it passes that mark ("still waiting for ... after 100.1 ms") and
again when the lock comes ("acquired ... after 523.4 ms"), under a line prefix naming the
waiting session's pid, application_name and database. A wait shorter than the bound leaves no
line at all, so a test that marks the log, runs the application beside the migration and then
finds no line of the application's sessions in its database has held the bound for every
statement, however short-lived.

The log is read through the server (`pg_read_binary_file`, a superuser's right), from the file
`pg_ctl -l` writes in the data directory, so a test needs no access to the server's files.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

BOUND_MS = 100
# Where deploy/services.sh has the server write its log (`pg_ctl -l`), relative to its data
# directory.
LOG_FILE = "server.log"
# What deploy/services.sh sets (as SHOW gives it back).
SETTINGS = {
    "log_lock_waits": "on",
    "deadlock_timeout": f"{BOUND_MS}ms",
    "log_line_prefix": "%m [%p] %q[%a] [%d] ",
}

# `%m [%p] %q[%a] [%d] ` then the level: "2026-12-06 12:07:44.866 UTC [23420] [app] [db] LOG:  "
# (a background process, the checkpointer say, stops at %q).
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[(?P<pid>\d+)\] "
                    r"(?:\[(?P<application>.*?)\] \[(?P<database>.*?)\] )?"
                    r"(?P<level>[A-Z]+\d?):  (?P<text>.*)$")
# PostgreSQL's messages of a wait that outlasted deadlock_timeout (proc.c, ProcSleep).
WAIT = re.compile(r"^process (?P<pid>\d+) (?P<event>still waiting for|acquired|avoided deadlock "
                  r"for|detected deadlock while waiting for) (?P<lock>.+?)(?: by rearranging "
                  r"queue order)? after (?P<ms>\d+(?:\.\d+)?) ms(?: at character \d+)?$")


HOLDERS = re.compile(r"Process(?:es)? holding the lock: (?P<pids>[\d, ]+)\.")
UNKNOWN = "?"  # a holder that logged nothing (its own wait, an error) since the mark


@dataclass
class LockWait:
    """One wait longer than the bound, from its log lines: the server logs "still waiting" once
    it passes deadlock_timeout (again whenever the queue changes), then "acquired" with its whole
    length (nothing more when it was cancelled, by lock_timeout say)."""

    pid: int
    application: str
    database: str
    lock: str
    milliseconds: float  # the longest any of its lines reports
    ended: str = ""  # "acquired", "detected deadlock while waiting for"...; "" none logged
    holders: dict[int, str] = field(default_factory=dict)  # pid -> application_name
    statement: str = ""

    def __str__(self) -> str:
        behind = ", ".join(f"{name} (pid {pid})" for pid, name in self.holders.items())
        return (f"{self.application} (pid {self.pid}) waited {self.milliseconds:.0f} ms"
                f"{' and ' + self.ended if self.ended else ''} {self.lock}, behind "
                f"{behind or UNKNOWN}: {self.statement[:200]}")


@dataclass
class _Record:
    pid: int
    application: str
    database: str
    level: str
    text: str


def _records(text: str) -> list[_Record]:
    """The log's records: a prefixed line and the lines a multi-line message goes on with."""
    records: list[_Record] = []
    for line in text.splitlines():
        match = RECORD.match(line)
        if match:
            records.append(_Record(int(match["pid"]), match["application"] or "",
                                   match["database"] or "", match["level"], match["text"]))
        elif records and line.startswith("\t"):  # the server indents a message's next lines
            records[-1].text += "\n" + line[1:]
    return records


def _names(records: list[_Record]) -> dict[int, str]:
    """Each session's application_name, from any line it logged."""
    return {r.pid: r.application for r in records if r.application not in ("", "[unknown]")}


def lock_waits(text: str) -> list[LockWait]:
    """Every wait the log `text` reports, with who held the lock and the statement that waited."""
    records = _records(text)
    names = _names(records)
    waits: list[LockWait] = []
    going: dict[int, LockWait] = {}  # pid -> its wait not yet ended
    for i, record in enumerate(records):
        match = WAIT.match(record.text) if record.level == "LOG" else None
        if match is None:
            continue
        wait = going.get(record.pid)
        if wait is None or wait.lock != match["lock"]:
            wait = LockWait(record.pid, record.application, record.database, match["lock"], 0.0)
            waits.append(wait)
            going[record.pid] = wait
        wait.milliseconds = max(wait.milliseconds, float(match["ms"]))
        if match["event"] != "still waiting for":
            wait.ended = match["event"]
            del going[record.pid]
        for following in records[i + 1:]:  # its DETAIL, CONTEXT, STATEMENT
            if following.pid != record.pid or following.level == "LOG":
                break
            holders = HOLDERS.search(following.text) if following.level == "DETAIL" else None
            for pid in holders["pids"].split(", ") if holders else ():
                wait.holders[int(pid)] = names.get(int(pid), UNKNOWN)
            if following.level == "STATEMENT":
                wait.statement = " ".join(following.text.split())
    return waits


class ServerLog:
    """The log of the server `url` points at, from the moment this object is made: `waits()`
    reads what was written since. Refuses (AssertionError, saying how to fix it) a server that
    does not log lock waits as deploy/services.sh sets it up, since it would find none."""

    def __init__(self, url: str):
        self.url = url
        with self._connect() as conn:
            wrong = [f"{name} is {shown!r}, not {want!r}" for name, want in SETTINGS.items()
                     if (shown := conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0])
                     != want]
            assert not wrong, (
                f"the server at {url} does not log lock waits as the tests read them "
                f"({'; '.join(wrong)}): start it with deploy/services.sh up (or second up), which "
                f"sets them on a running server too, or set them yourself: "
                + "; ".join(f"ALTER SYSTEM SET {n} = '{v}'" for n, v in SETTINGS.items())
                + "; SELECT pg_reload_conf()")
            self.start = self._size(conn)

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    @staticmethod
    def _size(conn: psycopg.Connection) -> int:
        row = conn.execute("SELECT size FROM pg_stat_file(%s, true)", [LOG_FILE]).fetchone()
        assert row is not None and row[0] is not None, (
            f"the server has no {LOG_FILE} in its data directory: start it with "
            f"deploy/services.sh, whose pg_ctl writes its log there")
        return row[0]

    def text(self) -> str:
        """What the server logged since this object was made (the whole file, should it have
        been started anew meanwhile)."""
        with self._connect() as conn:
            size = self._size(conn)
            start = self.start if size >= self.start else 0
            data = conn.execute("SELECT pg_read_binary_file(%s, %s, %s)",
                                [LOG_FILE, start, size - start]).fetchone()[0]
        return bytes(data).decode("utf-8", errors="replace")

    def waits(self, *, database: str, applications: Collection[str]) -> list[LockWait]:
        """The logged waits (each longer than the bound) of the sessions named `applications`
        in `database`."""
        return [w for w in lock_waits(self.text())
                if w.database == database and w.application in applications]


def assert_no_application_waited(log: ServerLog, *, database: str,
                                 applications: Collection[str]) -> None:
    """The bound itself: no session of `applications` in `database` logged a lock wait (each
    logged one outlasted BOUND_MS) since `log` was made. Whoever held the lock: the
    application's own statements are autocommitted single statements that hold a row for
    milliseconds, so a wait this long is the migration's (a batch, a DDL step, or a statement
    queued behind one)."""
    waits = log.waits(database=database, applications=applications)
    assert not waits, described(waits)


def described(waits: list[LockWait]) -> str:
    """For an assertion's message: each wait, the longest first."""
    lines = "\n".join(f"  {w}" for w in sorted(waits, key=lambda w: -w.milliseconds))
    return (f"{len(waits)} lock wait(s) of the application longer than {BOUND_MS} ms, the "
            f"longest first:\n{lines}")


def read_behind_an_exclusive_lock(url: str, table: str, seconds: float,
                                  *applications: str) -> list[float]:
    """A deliberately bad case, to show the check fails: ACCESS EXCLUSIVE on `table` held for
    `seconds` while a session of each of `applications` reads it (queued behind the lock); how
    long each read took."""
    taken = threading.Event()
    durations: list[float] = []

    def read(application: str) -> None:
        with psycopg.connect(url, autocommit=True, application_name=application) as conn:
            taken.wait(10)
            started = time.monotonic()
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            durations.append(time.monotonic() - started)

    readers = [threading.Thread(target=read, args=(name,)) for name in applications]
    with psycopg.connect(url, application_name="lock-wait-holder") as holder:
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
        for reader in readers:
            reader.start()
        taken.set()
        time.sleep(seconds)
        holder.commit()
    for reader in readers:
        reader.join(10)
    return durations
