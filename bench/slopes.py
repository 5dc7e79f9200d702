"""The scale run's figures as slopes: what each part of the staged deploy costs per million rows
at each measured size, and what that comes to at a billion alerts, for what an operator must
size before starting (time, disk, WAL kept for standbys, dead rows for vacuum).

Every table of the seed grows with the alerts (`seed_demo --size`: 2 prices and 0.1 assets per
alert), so "per million alerts" is the common measure, for a job that walks assets too. The
billion-row column is the largest measured size scaled linearly, which the
log-log slope between the two largest sizes (1.0: linear) says whether to trust.
"""

from __future__ import annotations

import math

from bench.report import X

BILLION = 1_000_000_000
# A DDL step that takes less than this at the largest size is a catalog change: the same
# milliseconds at any size (the scale table's "longest DDL wait" shows it), not a slope.
MIN_STEP_MS = 500


def _per_million(value: float, alerts: int) -> float:
    return value / alerts * 1e6


def _loglog(a: tuple[float, int], b: tuple[float, int]) -> str:
    """The log-log slope of (cost, alerts) from a to b: 1.0 is linear in the data."""
    (cost_a, size_a), (cost_b, size_b) = a, b
    if min(cost_a, cost_b) <= 0 or size_a == size_b:
        return "-"
    return f"{math.log(cost_b / cost_a) / math.log(size_b / size_a):.2f}"


def _duration(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.0f} s" if value >= 10 else f"{value:.2g} s"


def _size(value: float) -> str:
    for unit, scale in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value / 1024:,.0f} kB"


def parts(entry: dict) -> dict[str, tuple[str, float]]:
    """What one scale's deploy cost, by part: name -> (unit, amount). Seconds for the jobs (on
    the deploy's workers, side by side as it runs them) and the DDL steps; bytes for WAL, the
    archives and the rewritten tables."""
    found: dict[str, tuple[str, float]] = {}
    for job in entry.get("jobs", []):
        if job.get("seconds"):
            found[f"job {job['job']}"] = ("s", job["seconds"])
    for migration in entry.get("steps", []):
        for step in migration["steps"]:
            # The step names what it builds; its migration is where the log line landed.
            found[f"DDL: {step['step'].removeprefix('ddl ')[:70]}"] = ("s", step["ms"] / 1000)
    found["whole deploy (pre + post stages)"] = ("s", entry.get("work_seconds", entry["seconds"]))
    if entry.get("wal_bytes") is not None:
        found["WAL written during the deploy"] = ("B", entry["wal_bytes"])
    for table, size in sorted(entry.get("relation_bytes", {}).items()):
        found[f"table {table} after (with indexes)"] = ("B", size)
    return found


def table(entries: list[dict]) -> list[str]:
    """Per million alerts at each measured size, the slope between the two largest, and the
    billion-alert figure from the largest."""
    measured = sorted((e for e in entries if e.get("alerts")), key=lambda e: e["alerts"])
    if len(measured) < 2:
        return []
    by_scale = [parts(e) for e in measured]
    largest, previous = by_scale[-1], by_scale[-2]
    names = [n for n, (unit, amount) in largest.items()
             if not (n.startswith("DDL:") and amount * 1000 < MIN_STEP_MS)]
    lines = ["", "## Per million alerts, measured, and at a billion", "",
             "| part | " + " | ".join(f"{e['scale']} per 1M alerts" for e in measured)
             + f" | log-log slope {measured[-2]['scale']} → {measured[-1]['scale']} "
             "| at 1B alerts |",
             "|---|" + "--:|" * (len(measured) + 2)]
    for name in names:
        unit = largest[name][0]
        show = _duration if unit == "s" else _size
        cells = []
        for entry, found in zip(measured, by_scale, strict=True):
            cells.append(show(_per_million(found[name][1], entry["alerts"]))
                         if name in found else "-")
        slope = (_loglog((previous[name][1], measured[-2]["alerts"]),
                         (largest[name][1], measured[-1]["alerts"])) if name in previous else "-")
        at_billion = show(largest[name][1] * BILLION / measured[-1]["alerts"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {slope} | {at_billion} |")
    lines += ["", f"A slope near 1.0 is linear: the billion column is the {measured[-1]['scale']} "
              f"figure {X}{BILLION / measured[-1]['alerts']:,.0f}; above it the part grows faster "
              "than the data and the column is a floor."]
    return lines


def sizing(entries: list[dict]) -> list[str]:
    """What an operator must have before a billion-alert deploy, from the largest size."""
    measured = sorted((e for e in entries if e.get("alerts")), key=lambda e: e["alerts"])
    if not measured or measured[-1].get("wal_bytes") is None:
        return []
    e = measured[-1]
    factor = BILLION / e["alerts"]
    grown = (e["database_bytes"] - e["seed_bytes"]) * factor if e.get("seed_bytes") else None
    lines = ["", f"Before a billion alerts (from {e['scale']}, scaled {X}{factor:,.0f}):", ""]
    lines.append(f"- **Time**: the deploy's work about {_duration(e['work_seconds'] * factor)} "
                 "with 2 workers; `migrate_online --plan --workers N` estimates it for a real "
                 "database from the same rates.")
    if grown is not None:
        lines.append(f"- **Disk**: the database grows by about {_size(grown)} during the deploy "
                     "(new row versions of every rewritten row, the archives, the new indexes) "
                     "before vacuum returns the dead versions' space for reuse.")
    lines.append(f"- **WAL**: about {_size(e['wal_bytes'] * factor)} written; a standby or a "
                 "replication slot that falls behind keeps it all on the primary's disk "
                 "(`max_slot_wal_keep_size` bounds it), and the engine's replica-lag check "
                 "holds the jobs while a standby lags.")
    lines.append(f"- **Vacuum**: every alert gets a new version: {e['alerts'] * factor:,.0f} dead "
                 "rows; at the default `autovacuum_vacuum_scale_factor` (0.2) autovacuum starts "
                 "only after a fifth of the table is dead: lower it on the table for the run.")
    return lines
