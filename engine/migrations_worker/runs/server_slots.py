"""A limit per PostgreSQL server: jobs of at most `SERVER_LIMIT` databases of one server at once.

Fifty databases on one server, each migrated online by its own run, would otherwise share its
disks, WAL and standbys fifty ways at once: every run's health checks could pass while together
they swamp the server. So a run takes one of its server's slots before a batch; the runs of
other databases on that server wait, on hold `server_busy` (the text names who holds the
slots), and start as those finish. Runs on one database share its slot: the limit counts
databases, not runs.

A slot is a lease, a row of `ServerSlot` in the control database (`default`), which every
worker of every host reads:

- it is taken, or renewed, at each health check of a run (at most once a second, before a
  batch), under a transaction-scoped advisory lock on the server's name, so two workers never
  both take the last slot;
- it is given back when the run leaves `running` (finished, paused, cancelled, failed);
- a worker that dies renews nothing: its lease runs out after the stale-heartbeat time (or the
  run's batch lease, if longer) and the slot is free. A batch lasting longer than that outlives
  the lease, as it outlives its own claim.

The limit is read by every worker from its own settings: give all of them the same one.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from .. import conf
from ..exceptions import InvalidTuning
from ..models import HoldKind
from ..targets import Target
from .throttle import Hold, Tuning

# pg_advisory_xact_lock(class, key): the class keeps the engine's keys apart from others'.
SLOTS_LOCK_CLASS = 0x6D77  # "mw"

# Under the server's lock: is the table there (an engine ahead of its migration 0006 works
# without a limit rather than failing), then the other databases holding unexpired leases.
LOCK = """
SELECT pg_advisory_xact_lock(%s, hashtext(%s)),
       to_regclass('migrations_worker_serverslot') IS NOT NULL
"""
RENEW = """
UPDATE migrations_worker_serverslot SET lease_until = now() + make_interval(secs => %s), holder = %s
WHERE target = %s AND run_id = %s AND lease_until >= now()
"""
HOLDERS = """
SELECT target, string_agg(run_id::text, ', ' ORDER BY run_id)
FROM migrations_worker_serverslot WHERE server = %s AND lease_until >= now() GROUP BY target ORDER BY target
"""
TAKE = """
INSERT INTO migrations_worker_serverslot (server, target, run_id, holder, taken_at, lease_until)
VALUES (%s, %s, %s, %s, now(), now() + make_interval(secs => %s))
ON CONFLICT (target, run_id) DO UPDATE
SET server = excluded.server, holder = excluded.holder, taken_at = excluded.taken_at,
    lease_until = excluded.lease_until
"""
RELEASE = "DELETE FROM migrations_worker_serverslot WHERE target = %s AND run_id = %s"
EXPIRED = "DELETE FROM migrations_worker_serverslot WHERE server = %s AND lease_until < now()"


def limit() -> int | None:
    """`MIGRATIONS_WORKER["SERVER_LIMIT"]`: None when there is none (None or 0)."""
    value = conf.get("SERVER_LIMIT")
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidTuning(f"SERVER_LIMIT must be a whole number of databases (0: no limit), "
                            f"not {value!r}")
    return value


def server_of(using: str) -> str:
    """The server the target `using` lives on: its `server` label, else its host and port."""
    labels = conf.targets().get(using, {})
    return Target(using, None, labels).server(connections[using].settings_dict)


def lease_seconds(tuning: Tuning) -> float:
    """How long a slot outlives its last renewal: as long as a run's heartbeat may go quiet
    before beat re-sends it, or its batch's lease if longer."""
    return max(float(conf.get("STALE_HEARTBEAT_SECONDS")), tuning.lease_seconds)


def take(using: str, run_id: int, holder: str, tuning: Tuning) -> Hold | None:
    """Take or renew the slot of run `run_id` of target `using`: None once it holds one, else
    a `server_busy` hold naming the databases that hold the server's slots."""
    most = limit()
    if most is None:
        return None
    server = server_of(using)
    seconds = lease_seconds(tuning)
    with transaction.atomic(using=DEFAULT_DB_ALIAS), \
            connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(LOCK, [SLOTS_LOCK_CLASS, server])
        if not cursor.fetchone()[1]:
            return None
        cursor.execute(RENEW, [seconds, holder, using, run_id])
        if cursor.rowcount:
            return None
        cursor.execute(HOLDERS, [server])
        holders = cursor.fetchall()
        if using not in {target for target, _ in holders} and len(holders) >= most:
            named = ", ".join(f"{target} (run {runs})" for target, runs in holders)
            return Hold(HoldKind.SERVER_BUSY,
                        f"server '{server}' already runs jobs on {len(holders)} database(s), its "
                        f"limit (SERVER_LIMIT {most}): {named}; waiting for one to finish")
        cursor.execute(EXPIRED, [server])
        cursor.execute(TAKE, [server, using, run_id, holder, seconds])
    return None


def release(using: str, run_id: int) -> None:
    """Give the slot of run `run_id` of target `using` back: the run left `running`."""
    if limit() is None:
        return
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT to_regclass('migrations_worker_serverslot') IS NOT NULL")
        if cursor.fetchone()[0]:
            cursor.execute(RELEASE, [using, run_id])
