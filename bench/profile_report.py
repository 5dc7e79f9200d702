"""The buffers part of bench.profile_engine's reports: the settings a profile ran on, the sizes
of what the job writes against `shared_buffers`, each run's hits, reads, WAL and checkpoints
(bench/buffers.py), the sampled batches (bench/explain.py), and, for two scales side by side,
what the figures show, in words computed from them.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.buffers import summary
from bench.common import SERVER_SETTINGS as SETTINGS

X = "\u00d7"
ALERTS, TRIGGERS = "investments_alert", "investments_alerttrigger"
# A block read that takes less than this on average came from the OS page cache, not the disk.
PAGE_CACHE_US = 50.0
# The goal of issue #24: the alerts backfill at xlarge at least this share of medium's rows/s.
GOAL = 0.9


def mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MB" if n >= 10 * 2**20 else f"{n / 2**20:.1f} MB"


def pct(n: float | None) -> str:
    return "-" if n is None else f"{n * 100:.1f}%"


def num(n: float | None, digits: int = 0) -> str:
    return "-" if n is None else f"{n:,.{digits}f}"


def settings_line(entry: dict) -> str:
    shown = ", ".join(f"{name} {entry['settings'].get(name, '?')}" for name in SETTINGS)
    return (f"Server settings during the runs: {shown} (track_io_timing is switched on for the "
            "profiled copies only, to time their reads).")


def columns(entry: dict) -> list[tuple[str, dict]]:
    """(label, figures) of each measured run of one scale: the single UPDATE, then per target
    the engine and the bare loop over its batches."""
    rows, block = entry["alerts"], entry["block"]

    def figures(seconds: float, counters: dict) -> dict:
        return {"seconds": seconds, "rows": rows, "s": summary(counters, rows, block)}

    found = [("single UPDATE", figures(entry["single"], entry["single_stats"]))]
    for run in entry["runs"]:
        found.append((f"engine, target {run['target']} s", figures(run["seconds"], run["stats"])))
        found.append(("bare loop, its batches", figures(run["bare_seconds"], run["bare_stats"])))
    return found


def _table(name: str) -> Callable[[dict], dict]:
    return lambda c: c["s"]["tables"][name]


def _checkpoint(key: str) -> Callable[[dict], float | None]:
    return lambda c: c["s"]["checkpoints"].get(key)


# (label, value of a column's figures, format): the rows of every stats table.
METRICS: list[tuple[str, Callable[[dict], float | None], Callable[[float | None], str]]] = [
    ("time", lambda c: c["seconds"], lambda v: f"{v:.1f} s"),
    ("alerts per second", lambda c: c["rows"] / c["seconds"], num),
    # Every alert and trigger row once (and the engine's own rows): less would mean counters
    # read before the run's sessions handed them over.
    ("rows updated in the database (the server's count)", lambda c: c["s"]["rows_updated"], num),
    ("alerts heap: blocks hit in shared_buffers", lambda c: _table(ALERTS)(c)["heap_hit"], num),
    ("alerts heap: blocks read from outside", lambda c: _table(ALERTS)(c)["heap_read"], num),
    ("alerts heap: hit ratio", lambda c: _table(ALERTS)(c)["heap_hit_ratio"], pct),
    ("alerts indexes: blocks hit", lambda c: _table(ALERTS)(c)["index_hit"], num),
    ("alerts indexes: blocks read from outside", lambda c: _table(ALERTS)(c)["index_read"], num),
    ("alerts indexes: hit ratio", lambda c: _table(ALERTS)(c)["index_hit_ratio"], pct),
    ("alerts: HOT updates (no new index entries)", lambda c: _table(ALERTS)(c)["hot_share"], pct),
    ("alerts: new blocks (heap + indexes grew by)",
     lambda c: _table(ALERTS)(c)["heap_new"] + _table(ALERTS)(c)["index_new"], num),
    ("alert triggers heap / indexes: hit ratio", lambda c: None, str),
    ("database: read from outside shared_buffers", lambda c: c["s"]["read_bytes"], mb),
    ("database: blocks read per 1,000 alerts", lambda c: c["s"]["reads_per_1000_rows"],
     lambda v: num(v, 1)),
    ("database: time per block read", lambda c: c["s"]["read_us_per_block"],
     lambda v: "-" if v is None else f"{v:.1f} \u00b5s"),
    ("database: temporary files", lambda c: c["s"]["temp_bytes"], mb),
    ("WAL per alert (server-wide)", lambda c: c["s"]["wal_bytes_per_row"],
     lambda v: "-" if v is None else f"{v:,.0f} B"),
    ("WAL full-page images per 1,000 alerts", lambda c: c["s"]["wal_fpi_per_1000_rows"],
     lambda v: num(v, 1)),
    ("WAL written in all", lambda c: c["s"]["wal"]["wal_bytes"], mb),
    ("WAL buffers full (a backend wrote WAL itself)", lambda c: c["s"]["wal"]["wal_buffers_full"],
     num),
    ("checkpoints timed / requested", lambda c: None, str),
    ("buffers written by the checkpointer", _checkpoint("buffers_checkpoint"), num),
    ("... by the background writer", _checkpoint("buffers_clean"), num),
    ("... by backends themselves", _checkpoint("buffers_backend"), num),
    ("backend fsyncs", _checkpoint("buffers_backend_fsync"), num),
]


def _cell(label: str, figures: dict, value: Callable, fmt: Callable) -> str:
    if label == "checkpoints timed / requested":
        points = figures["s"]["checkpoints"]
        return f"{num(points['checkpoints_timed'])} / {num(points['checkpoints_req'])}"
    if label == "alert triggers heap / indexes: hit ratio":
        mine = figures["s"]["tables"][TRIGGERS]
        return f"{pct(mine['heap_hit_ratio'])} / {pct(mine['index_hit_ratio'])}"
    return fmt(value(figures))


def stats_table(cols: list[tuple[str, dict]], ratio_of: tuple[int, int] | None = None,
                ratio_label: str = "") -> list[str]:
    """A row per metric, a column per run; with `ratio_of` (two column positions) a last
    column, the second's value over the first's."""
    head = "| | " + " | ".join(label for label, _ in cols)
    rule = "|---|" + "--:|" * len(cols)
    if ratio_of:
        head, rule = head + f" | {ratio_label}", rule + "--:|"
    lines = [head + " |", rule]
    for label, value, fmt in METRICS:
        cells = [_cell(label, figures, value, fmt) for _, figures in cols]
        if ratio_of:
            a, b = (value(cols[i][1]) for i in ratio_of)
            cells.append(f"{b / a:.2f}{X}" if a and b is not None else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def size_lines(entry: dict) -> list[str]:
    shared = entry["sizes"]["shared_buffers"]
    lines = ["| relation | size | share of shared_buffers |", "|---|--:|--:|"]
    for table, found in entry["sizes"]["tables"].items():
        for name, size in [(f"{table} (heap)", found["heap"]), *found["indexes"].items()]:
            lines.append(f"| {name} | {mb(size)} | {size / shared * 100:.0f}% |")
    lines.append(f"| **{ALERTS} and its indexes** | {mb(alerts_bytes(entry))} "
                 f"| {alerts_bytes(entry) / shared * 100:.0f}% |")
    return lines


def alerts_bytes(entry: dict) -> int:
    found = entry["sizes"]["tables"][ALERTS]
    return found["heap"] + sum(found["indexes"].values())


def batch_lines(entry: dict) -> list[str]:
    """Each sampled batch's statements: where the time went and the blocks behind it."""
    lines = [f"Sampled batches of {entry['width']:,} keys (the engine's median batch), "
             "`EXPLAIN (ANALYZE, BUFFERS, WAL)` on a fresh copy, rolled back:", "",
             "| batch | statement | rows | time | scan (node: ms, hit/read) | the update: new "
             "versions + index entries (ms, hit/read) | triggers (ms) | WAL |",
             "|---|---|--:|--:|---|--:|--:|--:|"]
    for where, batch in entry["sampled"].items():
        for name, part in zip(("alerts", "trigger rows"), batch["statements"], strict=True):
            scan, update = part["scan"], part["update"]
            triggers = ", ".join(f"{t['name']} {t['ms']:.1f}" for t in part["triggers"]) or "-"
            lines.append(
                f"| {where} ({batch['start']:,}-{batch['end']:,}) | {name} | {part['rows']:,} "
                f"| {part['ms']:.1f} ms | {scan['node']}: {scan['ms']:.1f}, "
                f"{scan['hit']:,}/{scan['read']:,} | {update['ms']:.1f}, "
                f"{update['hit']:,}/{update['read']:,} | {triggers} | {mb(part['wal_bytes'])} |")
    lines += ["", "Blocks per index over the sampled batches (hit / read from outside, new "
              "blocks left out):", "", "| index | " + " | ".join(entry["sampled"]) + " |",
              "|---|" + "--:|" * len(entry["sampled"])]
    names = sorted({name for b in entry["sampled"].values() for name in b["indexes"]})
    for name in names:
        cells = [f"{b['indexes'][name]['idx_blks_hit']:,.0f} / "
                 f"{b['indexes'][name]['idx_blks_read']:,.0f}" for b in entry["sampled"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def scale_section(entry: dict) -> list[str]:
    """The buffers part of one scale's profile.md."""
    return ["", "## Blocks, WAL and checkpoints", "", settings_line(entry), "", *size_lines(entry),
            "", *stats_table(columns(entry)), "", *batch_lines(entry), ""]


def engine_column(entry: dict) -> dict:
    return next(figures for label, figures in columns(entry) if label.startswith("engine"))


def findings(base: dict, other: dict) -> list[str]:
    """What the side-by-side figures show, in sentences computed from them."""
    a, b = engine_column(base), engine_column(other)
    rate_a, rate_b = a["rows"] / a["seconds"], b["rows"] / b["seconds"]
    share = rate_b / rate_a
    shared = other["sizes"]["shared_buffers"]
    said = [
        f"- The engine backfilled {rate_b:,.0f} alerts/s at {other['scale']} against "
        f"{rate_a:,.0f} at {base['scale']}: {share:.2f}{X} (goal {GOAL}{X}: "
        f"{'met' if share >= GOAL else '**not met**'}).",
    ]
    for entry in (base, other):
        size = alerts_bytes(entry)
        said.append(f"- At {entry['scale']} the alerts table and its indexes are {mb(size)}, "
                    f"{size / entry['sizes']['shared_buffers']:.2f}{X} shared_buffers "
                    f"({mb(entry['sizes']['shared_buffers'])}).")
    for entry, figures in ((base, a), (other, b)):
        alerts = figures["s"]["tables"][ALERTS]
        missed = [(kind, 1 - figures["s"]["tables"][ALERTS][f"{kind}_hit_ratio"])
                  for kind in ("index", "heap")
                  if figures["s"]["tables"][ALERTS][f"{kind}_hit_ratio"] is not None]
        misses = " and ".join(f"{m * 100:.1f}% of its {kind} block accesses" for kind, m in missed)
        said.append(f"- During the engine's run {entry['scale']} read "
                    f"{mb(alerts['read_bytes'])} of the alerts table and its indexes from outside "
                    f"shared_buffers ({misses or 'no access'} missed; "
                    f"{pct(alerts['hot_share'])} of its updates were HOT, adding no index "
                    "entry), "
                    f"{num(figures['s']['reads_per_1000_rows'], 1)} blocks per 1,000 alerts in "
                    "the whole database.")
        per_block = figures["s"]["read_us_per_block"]
        if per_block is not None:
            where = ("the OS page cache, not the disk" if per_block < PAGE_CACHE_US
                     else "at least partly the disk")
            said.append(f"  A block read took {per_block:.1f} \u00b5s on average: {where} "
                        f"(under {PAGE_CACHE_US:.0f} \u00b5s is read as the page cache).")
    wal_a, wal_b = a["s"]["wal_bytes_per_row"], b["s"]["wal_bytes_per_row"]
    said.append(f"- WAL per alert: {wal_b:,.0f} B at {other['scale']} against {wal_a:,.0f} B "
                f"at {base['scale']} ({wal_b / wal_a:.2f}{X}); full-page images per 1,000 "
                f"alerts {num(b['s']['wal_fpi_per_1000_rows'], 1)} against "
                f"{num(a['s']['wal_fpi_per_1000_rows'], 1)}.")
    for entry, figures in ((base, a), (other, b)):
        points = figures["s"]["checkpoints"]
        said.append(
            f"- Checkpoints during {entry['scale']}'s engine run: "
            f"{num(points['checkpoints_req'])} requested (one is, each time the WAL since the "
            f"last reaches max_wal_size, {entry['settings'].get('max_wal_size')}), "
            f"{num(points['checkpoints_timed'])} timed; "
            f"{num(points['buffers_checkpoint'])} buffers written by the checkpointer, "
            f"{num(points['buffers_clean'])} by the background writer, "
            f"{num(points['buffers_backend'])} by the backends themselves.")
    said += [batch_sentence(entry) for entry in (base, other)]
    if alerts_bytes(other) > shared >= alerts_bytes(base):
        said.append(f"- The alerts table and its indexes fit in shared_buffers at {base['scale']} "
                    f"and not at {other['scale']}.")
    return said


def batch_sentence(entry: dict) -> str:
    """Where a sampled batch's time went, per 1,000 alerts, averaged over the samples."""
    batches = list(entry["sampled"].values())
    alerts = sum(b["statements"][0]["rows"] for b in batches) / 1000 or 1
    first = [b["statements"][0] for b in batches]
    second = [b["statements"][1] for b in batches]
    trigger = sum(t["ms"] for part in second for t in part["triggers"])
    reads = sum(p["scan"]["read"] + p["update"]["read"] for p in first + second)
    return (f"- {entry['scale']}'s sampled batches ({entry['width']:,} keys), per 1,000 alerts: "
            f"{sum(p['ms'] for p in first) / alerts:.1f} ms for the alerts' statement (finding "
            f"them {sum(p['scan']['ms'] for p in first) / alerts:.1f}, their new versions and "
            f"index entries {sum(p['update']['ms'] for p in first) / alerts:.1f}), "
            f"{sum(p['ms'] for p in second) / alerts:.1f} ms for the trigger rows' (of which "
            f"their trigger {trigger / alerts:.1f}); {reads / alerts:,.0f} blocks read from "
            "outside shared_buffers.")


def compare(base: dict, other: dict, command: str) -> str:
    cols = [(f"{entry['scale']}: {label}", figures) for entry in (base, other)
            for label, figures in columns(entry)]
    engines = [i for i, (label, _) in enumerate(cols) if ": engine" in label]
    differ = [name for name in SETTINGS if base["settings"].get(name) != other["settings"].get(name)]
    lines = [
        f"# The alerts backfill at {base['scale']} and {other['scale']}: blocks, WAL and "
        "checkpoints",
        "",
        f"`{command}`: for each scale, on fresh copies of its alerts template, one process, no "
        "live load: the single UPDATE, the engine's RunWorker loop inline at its target, the "
        "bare keyset loop over the engine's batches; the server's statistics read around each "
        "run (bench/buffers.py). Checkpoints and WAL are the whole server's.",
        "",
        f"{base['scale']}: {base['alerts']:,} alerts, measured {base['measured']}, load average "
        f"{base['load_average'][0]:.1f}. {other['scale']}: {other['alerts']:,} alerts, measured "
        f"{other['measured']}, load average {other['load_average'][0]:.1f}.",
        "",
        settings_line(other),
        "",
        ("**The two scales ran on different settings**: " + ", ".join(
            f"{name} {base['settings'].get(name)} / {other['settings'].get(name)}"
            for name in differ) + ".") if differ else "Both scales ran on these settings.",
        "",
        "## What the figures show",
        "",
        *findings(base, other),
        "",
        "## Side by side",
        "",
        *stats_table(cols, (engines[0], engines[1]), f"engine {other['scale']}/{base['scale']}"),
    ]
    for entry in (base, other):
        lines += ["", f"## {entry['scale']}: sizes and sampled batches", "", *size_lines(entry),
                  "", *batch_lines(entry)]
    return "\n".join(lines) + "\n"
