"""A batch of a job taken apart: its statements under `EXPLAIN (ANALYZE, BUFFERS, WAL)`, in a
transaction that is rolled back, so the data is left as it was.

Per statement: the time and the blocks of the scan that finds the batch's rows, of the update
itself (the new row versions and an entry in every index of the table for each: ModifyTable's
own share, its total less its input's), and of each trigger it fired. Per index: the blocks
the batch hit and read there (`pg_statio_user_indexes` around the batch, as the plan has no
per-index figure for an UPDATE's index maintenance). In the plan a block the table grew by
shows as written, not read: its reads are real ones.
"""

from __future__ import annotations

from typing import Any

from bench.buffers import Probe
from bench.common import APP_SAMPLER, connect


def _blocks(node: dict[str, Any]) -> dict[str, float]:
    return {"hit": node.get("Shared Hit Blocks", 0), "read": node.get("Shared Read Blocks", 0),
            "dirtied": node.get("Shared Dirtied Blocks", 0),
            "written": node.get("Shared Written Blocks", 0),
            "read_ms": node.get("I/O Read Time", 0.0)}


def _minus(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {key: a[key] - b[key] for key in a}


def _scan_name(node: dict[str, Any]) -> str:
    """The node, with the scans under it: which index found the batch's rows."""
    name = node["Node Type"]
    if node.get("Index Name") or node.get("Relation Name"):
        return f"{name} on {node.get('Index Name') or node['Relation Name']}"
    below = ", ".join(_scan_name(child) for child in node.get("Plans", []))
    return f"{name} ({below})" if below else name


def parse(plan: dict[str, Any]) -> dict[str, Any]:
    """One statement's EXPLAIN (FORMAT JSON) document as the parts the report shows."""
    top = plan["Plan"]
    child = (top.get("Plans") or [None])[0]
    child_blocks = _blocks(child) if child else _blocks({})
    child_ms = child["Actual Total Time"] if child else 0.0
    triggers = [{"name": t["Trigger Name"], "relation": t.get("Relation"), "ms": t["Time"],
                 "calls": t["Calls"]} for t in plan.get("Triggers", [])]
    trigger_ms = sum(t["ms"] for t in triggers)
    # A BEFORE ROW trigger runs inside the ModifyTable node, an AFTER trigger once the node is
    # done: what the triggers took beyond the time after the node was inside it.
    inside = max(0.0, trigger_ms - (plan["Execution Time"] - top["Actual Total Time"]))
    return {
        "ms": plan["Execution Time"] + plan.get("Planning Time", 0.0),
        "planning_ms": plan.get("Planning Time", 0.0),
        "rows": child["Actual Rows"] if child else top["Actual Rows"],
        "scan": {"node": _scan_name(child) if child else top["Node Type"], "ms": child_ms,
                 **child_blocks},
        "update": {"ms": top["Actual Total Time"] - child_ms - inside,
                   **_minus(_blocks(top), child_blocks)},
        "triggers": triggers,
        "total": _blocks(top),
        "wal_bytes": top.get("WAL Bytes", 0), "wal_records": top.get("WAL Records", 0),
        "wal_fpi": top.get("WAL FPI", 0),
    }


def explain_batch(database: str, statements: list[tuple[str, Any]],
                  tables: tuple[str, ...]) -> dict[str, Any]:
    """The batch's `statements` (text, parameters), in order, in one transaction rolled back
    at the end; with the blocks each index of `tables` saw meanwhile."""
    probe = Probe(database, tables)
    parts = []
    with connect(database, APP_SAMPLER) as conn, conn.transaction(force_rollback=True):
        for statement, params in statements:
            document = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " + statement, params
            ).fetchone()[0]
            parts.append(parse(document[0]))
    counters = probe.finish()
    return {"statements": parts, "indexes": counters["indexes"], "tables": counters["tables"]}
