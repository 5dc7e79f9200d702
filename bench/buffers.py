"""Where a profiled run's blocks came from, and what it made the server write: the server's
cumulative statistics read before and after the run, as deltas.

A block "read" in these views is one PostgreSQL did not find in `shared_buffers`: it came from
the operating system, its page cache or the disk (`track_io_timing`, switched on for the
profiled database by `time_reads`, tells which by how long a read took). Per table and per
index (`pg_statio_user_*`) and per database (`pg_stat_database`) the figures are the run's own;
checkpoints (`pg_stat_bgwriter`) and WAL (`pg_stat_wal`) are the whole server's, so anything
else the server ran meanwhile is in them too. (PostgreSQL 14 to 16: 17 moved the checkpoint
counters to `pg_stat_checkpointer`, and they then read as missing.)

A backend hands its counters to the shared statistics when it goes idle or exits, not as it
works: `Probe.finish` waits for every other session on the database to have ended before it
reads the "after" side.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from bench.common import APP_SAMPLER, admin_execute, connect

TABLE_COUNTERS = ("heap_blks_read", "heap_blks_hit", "idx_blks_read", "idx_blks_hit",
                  "toast_blks_read", "toast_blks_hit")
DATABASE_COUNTERS = ("blks_read", "blks_hit", "blk_read_time", "blk_write_time", "temp_files",
                     "temp_bytes", "tup_updated", "xact_commit")
CHECKPOINT_COUNTERS = ("checkpoints_timed", "checkpoints_req", "buffers_checkpoint",
                       "buffers_clean", "buffers_backend", "buffers_backend_fsync")
WAL_COUNTERS = ("wal_records", "wal_fpi", "wal_bytes", "wal_buffers_full")
Counters = dict[str, Any]


def block_size(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT current_setting('block_size')").fetchone()[0])


def sizes(conn: psycopg.Connection, tables: tuple[str, ...]) -> dict[str, Any]:
    """Each table's heap and each of its indexes in bytes, against `shared_buffers`: what has
    to fit for a pass over the table to stay in PostgreSQL's own cache."""
    found: dict[str, Any] = {}
    for table in tables:
        heap = conn.execute("SELECT pg_relation_size(%s::regclass)", [table]).fetchone()[0]
        indexes = dict(conn.execute(
            "SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid) "
            "FROM pg_index i WHERE i.indrelid = %s::regclass ORDER BY 1", [table]).fetchall())
        found[table] = {"heap": heap, "indexes": indexes}
    shared = conn.execute("SELECT pg_size_bytes(current_setting('shared_buffers'))").fetchone()[0]
    return {"tables": found, "shared_buffers": shared}


def _as_numbers(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, float | None]:
    return {name: (None if row.get(name) is None else float(row[name])) for name in names}


def snapshot(conn: psycopg.Connection, tables: tuple[str, ...]) -> Counters:
    """Every counter the report uses, now: per table, per index of those tables, the current
    database, the checkpoints and the WAL."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    statio = {}
    for table in tables:
        row = conn.execute("SELECT to_jsonb(s) FROM pg_statio_user_tables s WHERE relid = "
                           "%s::regclass", [table]).fetchone()[0]
        statio[table] = _as_numbers(row, TABLE_COUNTERS)
        # A HOT update adds no index entry: the share of them says whether the indexes are
        # written at all.
        updated, hot = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                                    "WHERE relid = %s::regclass", [table]).fetchone()
        statio[table].update(updated=float(updated), hot=float(hot))
    indexes = {
        index: {"table": table, "idx_blks_read": float(read), "idx_blks_hit": float(hit)}
        for index, table, read, hit in conn.execute(
            "SELECT indexrelid::regclass::text, relid::regclass::text, idx_blks_read, "
            "idx_blks_hit FROM pg_statio_user_indexes WHERE relid = ANY(%s::regclass[])",
            [list(tables)]).fetchall()
    }
    # Blocks a relation grew by count as read (fetched, not found) in these views, though
    # nothing was read: the sizes tell them apart.
    blocks = dict(conn.execute(
        "SELECT c.oid::regclass::text, pg_relation_size(c.oid) / current_setting('block_size')::int "
        "FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid "
        "WHERE c.oid = ANY(%(t)s::regclass[]) OR i.indrelid = ANY(%(t)s::regclass[])",
        {"t": list(tables)}).fetchall())
    database = conn.execute("SELECT to_jsonb(d) FROM pg_stat_database d "
                            "WHERE datname = current_database()").fetchone()[0]
    wal = conn.execute("SELECT to_jsonb(w) FROM pg_stat_wal w").fetchone()[0]
    bgwriter = conn.execute("SELECT to_jsonb(b) FROM pg_stat_bgwriter b").fetchone()[0]
    return {"tables": statio, "indexes": indexes, "blocks": blocks,
            "database": _as_numbers(database, DATABASE_COUNTERS),
            "checkpoints": _as_numbers(bgwriter, CHECKPOINT_COUNTERS), "wal": _as_numbers(wal, WAL_COUNTERS),
            "at": time.time()}


def delta(before: Counters, after: Counters) -> Counters:
    """`after - before`, counter by counter (None where either side lacks it)."""
    if isinstance(after, dict):
        return {key: delta(before.get(key) if isinstance(before, dict) else None, value)
                for key, value in after.items()}
    if isinstance(after, str):
        return after
    if after is None or before is None:
        return None
    return after - before


def wait_alone(conn: psycopg.Connection, timeout: float = 30.0) -> None:
    """Until this is the only session on its database: the others have then handed over
    their counters (a backend flushes them as it exits)."""
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()").fetchone()[0]:
        if time.monotonic() > deadline:
            raise TimeoutError("other sessions are still on the profiled database")
        time.sleep(0.05)


def time_reads(database: str) -> None:
    """Time every block read of the sessions that open on `database` from now on, so a read
    from the OS page cache (microseconds) tells itself apart from one from the disk."""
    admin_execute(sql.SQL("ALTER DATABASE {} SET track_io_timing = on").format(
        sql.Identifier(database)))


class Probe:
    """The counters of `tables` on `database` from its creation until `finish()`, which is
    called once every session doing the work has been closed."""

    def __init__(self, database: str, tables: tuple[str, ...]):
        self.database, self.tables = database, tables
        with connect(database, APP_SAMPLER) as conn:
            self.before = snapshot(conn, tables)

    def finish(self) -> Counters:
        with connect(self.database, APP_SAMPLER) as conn:
            wait_alone(conn)
            return delta(self.before, snapshot(conn, self.tables))


def summary(counters: Counters, rows: int, block: int) -> dict[str, Any]:
    """The figures the report compares, from one run's deltas: hits and reads by kind of block,
    bytes read from outside shared_buffers, WAL and reads per row. A block a relation grew by
    is counted as new, not as read."""
    grown = {name: max(0, blocks) for name, blocks in counters["blocks"].items()}
    per_table = {}
    for table, stats in counters["tables"].items():
        mine = [name for name, i in counters["indexes"].items() if i["table"] == table]
        index_hit = sum(counters["indexes"][name]["idx_blks_hit"] for name in mine)
        index_new = sum(grown.get(name, 0) for name in mine)
        index_read = max(0, sum(counters["indexes"][name]["idx_blks_read"] for name in mine)
                         - index_new)
        heap_read = max(0, stats["heap_blks_read"] - grown.get(table, 0))
        per_table[table] = {
            "heap_hit": stats["heap_blks_hit"], "heap_read": heap_read,
            "heap_new": grown.get(table, 0), "index_hit": index_hit, "index_read": index_read,
            "index_new": index_new,
            "heap_hit_ratio": ratio(stats["heap_blks_hit"], heap_read),
            "hot_share": stats["hot"] / stats["updated"] if stats["updated"] else None,
            "index_hit_ratio": ratio(index_hit, index_read),
            "read_bytes": (heap_read + index_read) * block,
        }
    database, wal = counters["database"], counters["wal"]
    reads = max(0, database["blks_read"] - sum(grown.values()))
    return {
        "tables": per_table,
        "indexes": {name: {**i, "new": grown.get(name, 0),
                           "idx_blks_read": max(0, i["idx_blks_read"] - grown.get(name, 0))}
                    for name, i in counters["indexes"].items()},
        "database_hit_ratio": ratio(database["blks_hit"], reads),
        "read_bytes": reads * block,
        "reads_per_1000_rows": reads / rows * 1000 if rows else None,
        "read_us_per_block": (database["blk_read_time"] * 1000 / reads
                              if reads and database["blk_read_time"] is not None else None),
        "temp_bytes": database["temp_bytes"],
        "rows_updated": database["tup_updated"],
        "wal_bytes_per_row": wal["wal_bytes"] / rows if rows else None,
        "wal_fpi_per_1000_rows": wal["wal_fpi"] / rows * 1000 if rows else None,
        "wal": wal,
        "checkpoints": counters["checkpoints"],
    }


def ratio(hits: float | None, reads: float | None) -> float | None:
    """Hits over all accesses: the share of blocks found in shared_buffers."""
    if hits is None or reads is None or hits + reads == 0:
        return None
    return hits / (hits + reads)


def over_a_deploy(counters: Counters, block: int) -> dict[str, Any]:
    """What a whole deploy did to the cache, the checkpoints and the WAL, from its deltas: per
    table, heap and index (all its indexes, the ones the deploy built too) hits and reads, a
    heap block the table grew by counted as new, not read."""
    tables = {}
    for table, stats in counters["tables"].items():
        heap_new = max(0, counters["blocks"].get(table) or 0)
        heap_read = max(0, (stats["heap_blks_read"] or 0) - heap_new)
        tables[table] = {
            "heap_hit_ratio": ratio(stats["heap_blks_hit"], heap_read),
            "index_hit_ratio": ratio(stats["idx_blks_hit"], stats["idx_blks_read"]),
            "read_bytes": (heap_read + (stats["idx_blks_read"] or 0)) * block,
            "heap_new_bytes": heap_new * block,
            "hot_share": stats["hot"] / stats["updated"] if stats["updated"] else None,
        }
    database, wal, checkpoints = counters["database"], counters["wal"], counters["checkpoints"]
    return {
        "tables": tables,
        "database_hit_ratio": ratio(database["blks_hit"], database["blks_read"]),
        "database_read_bytes": (database["blks_read"] or 0) * block,
        "read_ms_per_block": (database["blk_read_time"] / database["blks_read"]
                              if database["blks_read"] else None),
        "checkpoints_requested": checkpoints["checkpoints_req"],
        "checkpoints_timed": checkpoints["checkpoints_timed"],
        "buffers_written_by_backends": checkpoints["buffers_backend"],
        "wal_bytes": wal["wal_bytes"], "wal_full_page_images": wal["wal_fpi"],
        "wal_buffers_full": wal["wal_buffers_full"],
    }
