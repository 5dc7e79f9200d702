"""The scale run: the staged deploy (bench/deploy.py) at each size, and what it costs as the data
grows: deploy time, each job's rows/s, peak worker RSS, database size; a table and a chart.

    python -m bench.scale --scales small medium large xlarge   # by hand: xlarge seeds ~5 GB
    python -m bench.scale --report                              # redraw from raw/scale.json
    python -m bench.scale --scales medium xlarge --window       # ... against a maintenance window

Each scale is seeded once into its template (`bench_seed_<scale>`, reused while the seed and the
migrations are unchanged) and deployed on a copy; results accumulate in
bench/results/scale/raw/scale.json, one entry per scale (a scale run again replaces its entry),
so the sizes can be run one at a time. Writes bench/results/scale/scale.md and scale.png.

`--window` also measures, per size and on separate copies, the online deploy with 1 worker and
the same release applied offline in a maintenance window (bench/window.py), one after another
(online with 2 workers, the window, online with 1 worker: the window sits between the two runs it
is set against), and adds the table "online against a maintenance window".
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from pathlib import Path

from bench import slopes
from bench.common import RESULTS, admin_scalar, server_settings, settings_words
from bench.databases import ensure_templates
from bench.deploy import measure_deploy
from bench.report import X, gib, mib, seconds
from bench.window import differences, measure_window

SCALES = ("small", "medium", "large", "xlarge")
# Issue 24: the plan's estimate of the whole deploy (read before it starts) against its work.
MAX_PLAN_ERROR = 0.25
OUT = RESULTS / "scale"
# The goals: time linear in the data (each step's log-log slope at most this), worker memory
# within this much of medium's at any scale.
MAX_SLOPE, MAX_RSS_VS_MEDIUM = 1.15, 1.2
# Issue 24: the online deploy's work (pre + post) against the maintenance window at xlarge.
MAX_VS_WINDOW = {2: 1.0, 1: 1.25}


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_scale(scale: str, args) -> dict:
    started = time.time()
    templates = ensure_templates(scale, rebuild=args.rebuild, log=log, seed_only=True)
    seeded = time.time() - started
    seed_bytes = admin_scalar("SELECT pg_database_size(%s)", [templates.seed])
    logs = OUT / "raw" / "logs"
    deploy = measure_deploy(templates, args, logs, log)
    deploy["settings"] = server_settings()
    deploy.pop("samples", None)  # the chart here is cost against size, not latency over time
    online = deploy.pop("schema")
    entry = {**deploy, "template_seconds": seeded, "seed_bytes": seed_bytes,
             "measured": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_average": os.getloadavg()}
    if args.window:
        window = measure_window(templates, args, logs, log)
        one = measure_deploy(templates, args, logs, log, workers=1)
        described = window.pop("schema")
        window["schema_differences"] = differences(described, online)
        window["schema_differences_1_worker"] = differences(described, one.pop("schema"))
        window["online_1_worker"] = {key: one[key] for key in ONLINE_KEPT}
        window["online_1_worker"]["load_average"] = os.getloadavg()
        entry["window"] = window
    return entry


# What the window table reads of an online deploy's result.
ONLINE_KEPT = ("workers", "seconds", "work_seconds", "stages", "error_count", "previous", "new",
               "longest_deploy_wait_ms", "longest_batch_wait_ms", "jobs")


def slope(a: dict, b: dict, key: str) -> float | None:
    """log(cost ratio) / log(size ratio) between two scales: 1.0 is linear."""
    if not a.get(key) or not b.get(key) or a["alerts"] == b["alerts"]:
        return None
    return math.log(b[key] / a[key]) / math.log(b["alerts"] / a["alerts"])


def job_rate(entry: dict, job: str) -> float | None:
    found = next((j for j in entry["jobs"] if j["job"] == job), None)
    return found["rows"] / found["seconds"] if found and found.get("seconds") else None


def template_time(entry: dict) -> str:
    """How long the seeded template took to build; checking a template that is still current
    takes well under a second, and then there is no build time to show."""
    return "reused" if entry["template_seconds"] < 1.0 else seconds(entry["template_seconds"])


def markdown(entries: list[dict]) -> str:
    jobs = sorted({j["job"] for e in entries for j in e["jobs"]})
    medium = next((e for e in entries if e["scale"] == "medium"), None)
    lines = [
        "# Scale: the staged deploy at four sizes",
        "",
        "`python -m bench.scale --scales small medium large xlarge` (by hand: not part of "
        "`make bench`). Each size is the seed of `seed_demo --size <scale>` on the legacy schema, "
        "deployed with the staged deploy of bench/deploy.py: the previous release's traffic, "
        "`migrate_online --stage pre --wait`, both releases, `--stage post --wait`; 2 Celery "
        "workers and beat; the live load on every altered table. Same machine, one size after "
        "another (the machine is shared: see each row's load average).",
        "",
        "| scale | alerts | prices | seeded database | template built in | pre-deploy "
        "| post-deploy | whole deploy | per 1M alerts | "
        + " | ".join(f"{job} rows/s" for job in jobs)
        + " | peak worker RSS | peak deploy-step RSS | database after | longest DDL wait "
        "| load avg |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|" + "--:|" * len(jobs) + "--:|--:|--:|--:|--:|",
    ]
    for e in entries:
        rates = [job_rate(e, job) for job in jobs]
        lines.append(
            f"| {e['scale']} | {e['alerts']:,} | {e.get('prices', 0):,} | {gib(e['seed_bytes'])} "
            f"| {template_time(e)} | {seconds(e['stages']['pre']['seconds'])} "
            f"| {seconds(e['stages']['post']['seconds'])} | {seconds(e['seconds'])} "
            f"| {e['seconds'] / e['alerts'] * 1e6:.1f} s | "
            + " | ".join(f"{r:,.0f}" if r else "-" for r in rates)
            + f" | {mib(e['peak_worker_rss_kib'])} | {mib(e['peak_deploy_rss_kib'])} "
            f"| {gib(e['database_bytes'])} | {e['longest_deploy_wait_ms']:.0f} ms "
            f"| {e['load_average'][0]:.1f} |")
    lines += ["", "## Goals", "", "| goal | measured | met |", "|---|---|---|"]
    for a, b in itertools.pairwise(entries):
        growth = slope(a, b, "seconds")
        if growth is not None:
            lines.append(f"| deploy time linear in the data, {a['scale']} → {b['scale']} "
                         f"(log-log slope ≤ {MAX_SLOPE}) | {b['alerts'] / a['alerts']:.0f}{X} "
                         f"the alerts took {b['seconds'] / a['seconds']:.1f}{X} the time "
                         f"(slope {growth:.2f}) | {'yes' if growth <= MAX_SLOPE else '**no**'} |")
    if medium:
        for e in entries:
            if e is medium or not e["peak_worker_rss_kib"]:
                continue
            ratio = e["peak_worker_rss_kib"] / medium["peak_worker_rss_kib"]
            lines.append(f"| worker RSS at {e['scale']} within {MAX_RSS_VS_MEDIUM}{X} medium's "
                         f"| {mib(e['peak_worker_rss_kib'])} = {ratio:.2f}{X} "
                         f"{mib(medium['peak_worker_rss_kib'])} "
                         f"| {'yes' if ratio <= MAX_RSS_VS_MEDIUM else '**no**'} |")
    for e in entries:
        estimate = (e.get("plan") or {}).get("deploy_seconds")
        if estimate and e.get("work_seconds"):
            off = estimate / e["work_seconds"] - 1
            judged = e["scale"] == "xlarge"
            lines.append(f"| `migrate_online --plan`'s estimate within {MAX_PLAN_ERROR:.0%} of the "
                         f"deploy's work at {e['scale']}" + ("" if judged else " (for information)")
                         + f" | {seconds(estimate)} estimated, {seconds(e['work_seconds'])} "
                         f"measured ({off:+.0%}) | "
                         + (("yes" if abs(off) <= MAX_PLAN_ERROR else "**no**") if judged else "-")
                         + " |")
    lines += window_table([e for e in entries if "window" in e])
    lines += buffers_table(entries)
    lines += slopes.table(entries) + slopes.sizing(entries)
    lines += ["", "![cost against size](scale.png)", "", BILLION.strip(), ""]
    return "\n".join(lines)


def buffers_table(entries: list[dict]) -> list[str]:
    """The profile of each deploy (bench/buffers.py): how much of what the jobs rewrite was found
    in shared_buffers, what was read from outside it and how fast, checkpoints and WAL."""
    rows = [e for e in entries if e.get("buffers")]
    if not rows:
        return []
    lines = ["", "## The cache, checkpoints and WAL during each deploy", "",
             "Counters of `pg_statio_user_tables`, `pg_stat_database`, `pg_stat_bgwriter` and "
             "`pg_stat_wal` over the deploy (server-wide for checkpoints and WAL); a heap block "
             "a table grew by is new, not read. Settings: "
             + "; ".join(f"{e['scale']}: {settings_words(e.get('settings', {}))}" for e in rows)
             + ".", "",
             "| scale | alerts heap hit | alerts index hit | alerts read from outside "
             "shared_buffers | HOT updates | database hit | ms per block read | checkpoints "
             "(requested / timed) | buffers written by backends | WAL | WAL per alert "
             "| full-page images |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    for e in rows:
        b = e["buffers"]
        alerts = b["tables"].get("investments_alert", {})
        per_block = b["read_ms_per_block"]
        lines.append(
            f"| {e['scale']} | {share(alerts.get('heap_hit_ratio'))} "
            f"| {share(alerts.get('index_hit_ratio'))} | {gib(alerts.get('read_bytes'))} "
            f"| {share(alerts.get('hot_share'))} | {share(b['database_hit_ratio'])} "
            f"| {'-' if per_block is None else f'{per_block:.3f}'} "
            f"| {b['checkpoints_requested']:.0f} / {b['checkpoints_timed']:.0f} "
            f"| {b['buffers_written_by_backends']:,.0f} | {gib(b['wal_bytes'])} "
            f"| {b['wal_bytes'] / e['alerts']:,.0f} B | {b['wal_full_page_images']:,.0f} |")
    return lines


def lost_writes(online: dict) -> str:
    """What the application lost to an online deploy: writes that failed (the live load's and both
    releases'), and the longest a write waited behind the deploy's DDL and behind a batch."""
    failed = online.get("error_count", len(online.get("errors", [])))
    failed += sum(online.get(r, {}).get("errors", 0) for r in ("previous", "new"))
    return (f"{failed} failed; waits ≤ {online['longest_deploy_wait_ms']:.0f} ms (DDL), "
            f"{online['longest_batch_wait_ms']:.0f} ms (batch)")


def biggest_parts(window: dict, count: int = 3) -> str:
    parts = sorted(window["jobs"] + window["migrations"], key=lambda p: -p["seconds"])[:count]
    return ", ".join(f"{p['name']} {seconds(p['seconds'])}" for p in parts)


def window_table(entries: list[dict]) -> list[str]:
    """The online deploy set against the same release applied in a maintenance window."""
    if not entries:
        return []
    lines = [
        "", "## Online against a maintenance window", "",
        "`--window`: the same release applied offline on its own copy (bench/window.py: one "
        "session, the oracle's set-based SQL for each job, plain `ALTER TABLE` and `CREATE INDEX`, "
        "no load: the application is stopped). Online time is the stages' work (pre + post), the "
        "rollout pause between them not counted; the whole deploy is in brackets. Lost writes: "
        "the window loses every write for its whole duration; online, the writes that failed and "
        "the longest a write waited.",
        "",
        "| scale | alerts | window | its biggest parts | online, 2 workers | ÷ window "
        "| online, 1 worker | ÷ window | writes lost: window | online, 2 workers "
        "| online, 1 worker | jobs left (window) | same schema as online |",
        "|---|--:|--:|---|--:|--:|--:|--:|--:|---|---|--:|---|",
    ]
    goals = []
    for e in entries:
        w, one = e["window"], e["window"]["online_1_worker"]
        same = not w["schema_differences"] and not w["schema_differences_1_worker"]
        lines.append(
            f"| {e['scale']} | {e['alerts']:,} | {seconds(w['seconds'])} | {biggest_parts(w)} "
            f"| {seconds(e['work_seconds'])} ({seconds(e['seconds'])}) "
            f"| {e['work_seconds'] / w['seconds']:.2f}{X} "
            f"| {seconds(one['work_seconds'])} ({seconds(one['seconds'])}) "
            f"| {one['work_seconds'] / w['seconds']:.2f}{X} | {seconds(w['seconds'])} "
            f"| {lost_writes(e)} | {lost_writes(one)} | {w['remaining']} "
            f"| {'yes' if same else '**no**'} |")
        failed = [lost_writes(o).split(" ", 1)[0] for o in (e, one)]
        goals.append(f"| no write lost online, against the window's {seconds(w['seconds'])}, "
                     f"{e['scale']} | {' and '.join(failed)} failed (2 and 1 workers) "
                     f"| {'yes' if failed == ['0', '0'] else '**no**'} |")
        if e["scale"] != "xlarge":  # the time goals are judged at xlarge only
            continue
        for workers, online in ((2, e), (1, one)):
            ratio = online["work_seconds"] / w["seconds"]
            goals.append(f"| online with {workers} worker{'s' if workers > 1 else ''} at most "
                         f"{MAX_VS_WINDOW[workers]}{X} the window's time at xlarge "
                         f"| {ratio:.2f}{X} | {'yes' if ratio <= MAX_VS_WINDOW[workers] else '**no**'} |")
    if not any(e["scale"] == "xlarge" for e in entries):
        goals.append(f"| online at most {MAX_VS_WINDOW[2]}{X} (2 workers) and {MAX_VS_WINDOW[1]}{X} "
                     "(1 worker) the window's time at xlarge | not measured in this run | - |")
    lines += ["", "| goal (issue 24) | measured | met |", "|---|---|---|", *goals, "",
              "Where the window's time goes (every step over 1% of it, in order):", ""]
    for e in entries:
        w = e["window"]
        parts = [p for p in w["steps"] if p["seconds"] >= 0.01 * w["seconds"]]
        lines.append(f"- {e['scale']}: " + ", ".join(
            f"{p['name']} {seconds(p['seconds'])}" for p in parts))
    differ = [f"- {e['scale']}: {line}" for e in entries
              for line in e["window"]["schema_differences"] + e["window"]["schema_differences_1_worker"]]
    if differ:
        lines += ["", "Where the window's schema differs from the online deploy's:", "", *differ]
    return lines


# On paper; kept next to the table it extrapolates from (bench/results/scale/scale.md).
BILLION = """
## At a billion rows (on paper, not measured)

What the table above does not show, and what would change with 1B alerts (100x xlarge):

- **The jobs scale; the deploy's waits do not.** Batch size follows the batch duration, not the
  table, and a batch's work is an index range scan, so rows/s stays as in the table: at the
  xlarge rate of the alerts backfill, 1B alerts are ~100x its xlarge time with 2 workers
  (hours, not minutes). `migrate_online --wait` would sit at the gate for that long: at this size
  the deploy should stop at the gate (exit 0) and be run again once `backfill status` says done.
  Bookkeeping stays per batch: ~125k batch rows for 1B alerts, folded by their index
  (`mw_batch_run_folded_idx`), never scanned whole.
- **Index builds.** `CREATE INDEX CONCURRENTLY` reads the table twice and sorts it: minutes per
  index at xlarge become hours at 1B (the alert uuid unique index, random UUIDs, is the slowest:
  no correlation with the heap). It blocks no writer, but a build that fails leaves an INVALID
  index to drop and rebuild (the operation does both), and the deploy holds its gate meanwhile.
  Set `maintenance_work_mem` high for the deploy session and let
  `max_parallel_maintenance_workers` split the sort. `VALIDATE CONSTRAINT` (the NOT NULL check
  and the re-created foreign keys) scans the table too, under SHARE UPDATE EXCLUSIVE: no writer
  waits, but autovacuum cannot run on that table while it does.
- **The archive tables grow with the data.** `assets_assetlegacytext` keeps up to two rows per
  asset, `assets_assetmergearchive` a jsonb before-image of every row a merge changed or removed
  (~2% of assets and everything that referred to them): at 1B rows that is tens of GB of jsonb.
  They are written once and read for audit or undo: partition them by time or group, and drop or
  move old partitions to cheaper storage after the retention the business sets.
- **Vacuum.** The backfill writes a new version of every alert: 1B dead tuples, the table twice
  its size until vacuum reclaims them, and the visibility map cleared, so index-only scans stop
  being index-only and the next anti-wraparound vacuum reads everything. Batches commit as they
  go, so autovacuum can keep up, but at default settings (scale factor 0.2) it starts only after
  200M dead rows: lower `autovacuum_vacuum_scale_factor` on the table for the run (or run VACUUM
  between slices), and expect WAL of the order of the table's size (hundreds of GB): replicas
  fall behind, and the engine's replica-lag health check puts the run on hold until they catch up.
- **What would not change:** the worker's memory (batches are bounded; the table shows it flat),
  the application's wait behind a DDL step (catalog-only steps take the same milliseconds at any
  size; the lock-retry table bounds the wait per request), and the verification's single pass
  (one sequential scan: minutes at 1B).
"""


def chart(entries: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alerts = [e["alerts"] for e in entries]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    ax = axes[0]
    ax.plot(alerts, [e["seconds"] for e in entries], "o-", color="black", label="whole deploy")
    for job in sorted({j["job"] for e in entries for j in e["jobs"]}):
        points = [(e["alerts"], j["seconds"]) for e in entries for j in e["jobs"]
                  if j["job"] == job and j.get("seconds")]
        ax.plot(*zip(*points, strict=True), "o--", label=job)
    reference = next((e for e in entries if e["scale"] == "medium"), entries[0])
    ax.plot(alerts, [reference["seconds"] * n / reference["alerts"] for n in alerts], ":",
            color="grey", label=f"linear through {reference['scale']}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("alerts (the other tables grow with them)")
    ax.set_ylabel("seconds")
    ax.set_title("time against size")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(alerts, [(e["peak_worker_rss_kib"] or 0) / 1024 for e in entries], "o-",
            label="peak worker RSS")
    ax.plot(alerts, [(e["peak_deploy_rss_kib"] or 0) / 1024 for e in entries], "s-",
            label="peak deploy-step RSS")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("alerts")
    ax.set_ylabel("MiB")
    ax.set_title("memory against size")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(alerts, [e["seed_bytes"] / 2**30 for e in entries], "o-", label="seeded (legacy)")
    ax.plot(alerts, [e["database_bytes"] / 2**30 for e in entries], "s-", label="after the deploy")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("alerts")
    ax.set_ylabel("GiB")
    ax.set_title("database size against size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(entries: dict[str, dict]) -> list[Path]:
    ordered = [entries[s] for s in SCALES if s in entries]
    md, png = OUT / "scale.md", OUT / "scale.png"
    md.write_text(markdown(ordered))
    chart(ordered, png)
    return [md, png]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", choices=SCALES, default=list(SCALES))
    parser.add_argument("--report", action="store_true", help="only redraw from raw/scale.json")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--tail", type=float, default=2.0)
    parser.add_argument("--rollout", type=float, default=5.0)
    parser.add_argument("--release-pause", type=float, default=0.05)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--window", action="store_true",
                        help="also the online deploy with 1 worker and a maintenance window")
    args = parser.parse_args(argv)
    raw = OUT / "raw"
    (raw / "logs").mkdir(parents=True, exist_ok=True)
    store = raw / "scale.json"
    entries = json.loads(store.read_text()) if store.exists() else {}
    if not args.report:
        for scale in args.scales:
            entries[scale] = run_scale(scale, args)
            store.write_text(json.dumps(entries, indent=1, default=str))
    log(f"wrote {', '.join(str(p) for p in write(entries))}")


if __name__ == "__main__":
    main()
