"""The profile of the alerts backfill reads the server's statistics around a run and says what
they show (bench/buffers.py, bench/explain.py, bench/profile_report.py). A wrong delta or a
counter read before the working session handed it over would make a by-hand xlarge profile
say something false; here they run against a real small database shaped like the job's tables,
copied fresh as the profile copies its template, with the job's own statements."""

from __future__ import annotations

import pytest
from django.db import connection

import bench.common
from bench import profile_report
from bench.buffers import Probe, block_size, sizes, summary, time_reads
from bench.common import connect, server_settings
from bench.databases import create, drop
from bench.explain import explain_batch
from investments.jobs.alerts_uuid import ASSIGN_UUIDS, COPY_TO_TRIGGERS
from tests.scratch import server_url

TABLES = ("investments_alert", "investments_alerttrigger")
SCHEMA = """
CREATE TABLE investments_alert (id bigint PRIMARY KEY, name text NOT NULL, uuid uuid);
CREATE INDEX investments_alert_name ON investments_alert (name);
CREATE TABLE investments_alerttrigger (id bigserial PRIMARY KEY, alert_id bigint NOT NULL,
                                       alert_uuid uuid);
CREATE INDEX investments_alerttrigger_alert_id ON investments_alerttrigger (alert_id);
CREATE FUNCTION sync_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM investments_alert WHERE id = NEW.alert_id FOR SHARE;
    RETURN NEW;
END $$;
CREATE TRIGGER sync_alert BEFORE UPDATE OF alert_uuid ON investments_alerttrigger
FOR EACH ROW EXECUTE FUNCTION sync_alert();
"""
BATCH = 1_000


@pytest.fixture
def templates(monkeypatch):
    """Two templates shaped like the alerts template (every alert without its UUID, one
    trigger row per five alerts), of 20,000 and 40,000 alerts, on the tests' server."""
    monkeypatch.setattr(bench.common, "PG_SERVER", server_url("").rstrip("/"))
    prefix = f"bench_{connection.settings_dict['NAME']}"
    made = {}
    for label, alerts in (("small", 20_000), ("double", 40_000)):
        name = made[label] = f"{prefix}_{label}"
        create(name)
        with connect(name) as conn:
            conn.execute(SCHEMA)
            conn.execute("INSERT INTO investments_alert (id, name) "
                         "SELECT g, md5(g::text) FROM generate_series(1, %s) g", [alerts])
            conn.execute("INSERT INTO investments_alerttrigger (alert_id) "
                         "SELECT g FROM generate_series(1, %s, 5) g", [alerts])
            conn.execute("VACUUM (FREEZE, ANALYZE)")
    yield made
    for name in [*made.values(), f"{prefix}_copy"]:
        drop(name)


def fresh_copy(template: str) -> str:
    """As the profile does: a file copy, its relations in no shared buffer yet."""
    copy = f"{template.rsplit('_', 1)[0]}_copy"
    create(copy, template)
    time_reads(copy)
    return copy


def backfill(copy: str) -> float:
    """The job's statements over every batch, a commit each: (rows, seconds)."""
    import time

    started = time.perf_counter()
    with connect(copy) as conn:
        high = conn.execute("SELECT max(id) FROM investments_alert").fetchone()[0]
        for start in range(0, high, BATCH):
            with conn.transaction():
                conn.execute(ASSIGN_UUIDS, [start, start + BATCH])
                conn.execute(COPY_TO_TRIGGERS, {"start": start, "end": start + BATCH})
    return time.perf_counter() - started


def test_a_probe_counts_the_blocks_a_backfill_read_hit_and_added_once_its_session_has_ended(
        templates):
    copy = fresh_copy(templates["small"])
    with connect(copy) as conn:
        heap_blocks = conn.execute("SELECT pg_relation_size('investments_alert') / "
                                   "current_setting('block_size')::int").fetchone()[0]
    probe = Probe(copy, TABLES)
    backfill(copy)
    counters = probe.finish()
    with connect(copy) as conn:
        block = block_size(conn)
        grown = conn.execute("SELECT pg_relation_size('investments_alert') / "
                             "current_setting('block_size')::int").fetchone()[0] - heap_blocks

    # Handed over by the backfill's session as it ended, not lost to the read racing it.
    assert counters["database"]["tup_updated"] == 20_000 + 4_000
    assert counters["tables"]["investments_alert"]["updated"] == 20_000
    figures = summary(counters, rows=20_000, block=block)
    alerts = figures["tables"]["investments_alert"]
    # A fresh copy is in no shared buffer: every block of the heap came from outside once, and
    # the blocks the updates added to it are counted as new, not as read.
    assert alerts["heap_new"] == grown > 0
    assert heap_blocks <= alerts["heap_read"] <= heap_blocks + 5
    assert alerts["heap_hit"] > alerts["heap_read"]
    assert 0 < alerts["heap_hit_ratio"] < 1
    assert alerts["hot_share"] == counters["tables"]["investments_alert"]["hot"] / 20_000
    assert alerts["index_read"] > 0
    assert alerts["read_bytes"] == (alerts["heap_read"] + alerts["index_read"]) * block
    assert set(figures["indexes"]) == {"investments_alert_pkey", "investments_alert_name",
                                       "investments_alerttrigger_pkey",
                                       "investments_alerttrigger_alert_id"}
    # Every alert's new version was logged; the WAL counter is the whole server's.
    assert figures["wal_bytes_per_row"] > 50
    assert figures["read_us_per_block"] is not None


def test_a_sampled_batch_is_explained_part_by_part_and_leaves_the_data_as_it_was(templates):
    copy = fresh_copy(templates["small"])
    batch = explain_batch(copy, [(ASSIGN_UUIDS, [5_000, 6_000]),
                                 (COPY_TO_TRIGGERS, {"start": 5_000, "end": 6_000})], TABLES)

    alerts, triggers = batch["statements"]
    assert alerts["rows"] == 1_000
    assert alerts["scan"]["node"] == "Index Scan on investments_alert_pkey"
    assert alerts["scan"]["read"] > 0  # a fresh copy: from outside shared_buffers
    assert alerts["update"]["hit"] > 0 and alerts["wal_bytes"] > 0
    assert triggers["rows"] == 200
    assert [(t["name"], t["calls"]) for t in triggers["triggers"]] == [("sync_alert", 200)]
    assert triggers["update"]["ms"] + triggers["triggers"][0]["ms"] <= triggers["ms"]
    # The new index entries of the alerts' row versions, one per index.
    assert batch["indexes"]["investments_alert_name"]["idx_blks_hit"] > 0
    with connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM investments_alert WHERE uuid IS NULL"
                            ).fetchone()[0] == 20_000


def profiled(template: str, scale: str) -> dict:
    """One scale's entry as bench.profile_engine stores it; the one measured backfill stands
    for each of the runs (the report only reads their figures)."""
    copy = fresh_copy(template)
    with connect(copy) as conn:
        found = {"sizes": sizes(conn, TABLES), "settings": server_settings(conn),
                 "block": block_size(conn), "alerts": conn.execute(
                     "SELECT count(*) FROM investments_alert").fetchone()[0]}
    found["sampled"] = {"start": {"start": 0, "end": BATCH, **explain_batch(
        copy, [(ASSIGN_UUIDS, [0, BATCH]), (COPY_TO_TRIGGERS, {"start": 0, "end": BATCH})],
        TABLES)}}
    probe = Probe(copy, TABLES)
    seconds = backfill(copy)
    stats = probe.finish()
    run = {"target": 0.08, "seconds": seconds, "stats": stats, "bare_seconds": seconds,
           "bare_stats": stats}
    return {**found, "scale": scale, "single": seconds, "single_stats": stats, "runs": [run],
            "width": BATCH, "measured": "now", "load_average": (1.0, 1.0, 1.0)}


def test_the_side_by_side_report_says_what_the_two_scales_measured_and_on_which_settings(
        templates):
    base, other = profiled(templates["small"], "small"), profiled(templates["double"], "double")

    text = profile_report.compare(base, other, command="python -m bench.profile_engine ...")

    with connect(templates["small"]) as conn:
        shared = conn.execute("SELECT current_setting('shared_buffers')").fetchone()[0]
    assert f"shared_buffers {shared}," in text
    assert "Both scales ran on these settings." in text
    rate = {entry["scale"]: entry["alerts"] / entry["runs"][0]["seconds"] for entry in (base, other)}
    share = rate["double"] / rate["small"]
    assert (f"The engine backfilled {rate['double']:,.0f} alerts/s at double against "
            f"{rate['small']:,.0f} at small: {share:.2f}\u00d7 (goal 0.9\u00d7: "
            f"{'met' if share >= 0.9 else '**not met**'})") in text
    for entry in (base, other):
        figures = summary(entry["runs"][0]["stats"], entry["alerts"], entry["block"])
        read = profile_report.mb(figures["tables"]["investments_alert"]["read_bytes"])
        assert f"During the engine's run {entry['scale']} read {read} of the alerts table" in text
        wal = f"{figures['wal_bytes_per_row']:,.0f} B"
        assert wal in text
    assert "| investments_alert_name |" in text
    assert "sync_alert" in text
    section = "\n".join(profile_report.scale_section(base))
    assert "## Blocks, WAL and checkpoints" in section and "| alerts per second |" in section
