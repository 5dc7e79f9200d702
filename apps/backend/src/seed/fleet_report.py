"""The fleet demo's summary: one row per database, from `demo_report --json` run on each.

    python -m seed.fleet_report --fleet FLEET.tsv --loads DIR [--phase "NAME=SECONDS"]... [--json F]

`FLEET.tsv` is what `python -m seed.fleet` printed (name, server, URL per line); `DIR` holds each
database's release loads as `demo_load` wrote them (`<name>.previous.json`, `<name>.new.json`).
`demo_report` reads everything from the database it is given (the jobs' runs, the archives, the
catalog) and checks that every write of either release is still there, so each row says what the
fixes did on that database, what both releases felt there, and whether it verifies.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seed.fleet import ROOT, manage_env

# (job, report counter, column heading): what each fix did, one column each.
FIX_COLUMNS = (
    ("alerts_uuid", "alerts_backfilled", "alerts\nbackfilled"),
    ("ticker_dedup", "groups_merged", "dup groups\nmerged"),
    ("ticker_dedup", "rows_repointed", "rows\nre-pointed"),
    ("legacy_columns", "values_archived", "texts\narchived"),
)
RELEASES = ("previous", "new")


def read_fleet(path: Path) -> list[tuple[str, str, str]]:
    return [tuple(line.split("\t")[:3]) for line in path.read_text().splitlines() if line.strip()]


def report_of(name: str, url: str, loads: Path) -> dict:
    """`demo_report --json` on one database, with its releases' loads."""
    args = [sys.executable, str(ROOT / "manage.py"), "demo_report", "--json"]
    for release in RELEASES:
        args += ["--load", str(loads / f"{name}.{release}.json")]
    done = subprocess.run(args, cwd=ROOT, env=manage_env(url), capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip() or done.stdout.strip())[-500:]}
    return json.loads(done.stdout)


def release_cell(report: dict, release: str) -> str:
    load = next((x for x in report.get("loads", []) if x.get("release") == release), None)
    if load is None or "missing" in load:
        return "no result"
    colour = "green" if load["errors"] == 0 else "red"
    return (f"{load['statements']:,} ops [{colour}]{load['errors']} err[/]\n"
            f"p50 {load['p50_ms']:.0f} / p99 {load['p99_ms']:.0f} / max {load['max_ms']:.0f} ms")


def fix_cell(report: dict, job: str, counter: str) -> str:
    run = report.get("jobs", {}).get(job)
    if run is None:
        return "-"
    value = (run.get("report") or {}).get(counter)
    text = f"{value:,}" if isinstance(value, int) else "-"
    return text if run["status"] == "finished" else f"{text} ({run['status']})"


def render(console: Console, fleet: list[tuple[str, str, str]], reports: dict[str, dict],
           phases: list[tuple[str, float]]) -> bool:
    """The table; True when every database verifies."""
    table = Table(title="The fleet after the deploy, one row per database", show_lines=True)
    table.add_column("database")
    table.add_column("server")
    for _, _, heading in FIX_COLUMNS:
        table.add_column(heading, justify="right")
    table.add_column("previous release\n(pre stage + rollout)")
    table.add_column("new release\n(rollout + post stage)")
    table.add_column("longest\nlock wait", justify="right")
    table.add_column("verification")
    all_ok = True
    for name, server, _ in fleet:
        report = reports[name]
        if "error" in report:
            all_ok = False
            table.add_row(name, server, *["-"] * (len(FIX_COLUMNS) + 3),
                          f"[red]demo_report failed[/]: {report['error']}")
            continue
        checks = report["checks"]
        passed = sum(c["passed"] for c in checks)
        all_ok &= passed == len(checks)
        colour = "green" if passed == len(checks) else "red"
        waits = [(x.get("lock_wait") or {}).get("seconds", 0.0) for x in report["loads"]]
        table.add_row(
            name, server, *(fix_cell(report, job, key) for job, key, _ in FIX_COLUMNS),
            *(release_cell(report, release) for release in RELEASES),
            f"{max(waits, default=0.0):.2f} s",
            f"[{colour}]{passed}/{len(checks)} passed[/]")
    console.print(table)
    for name, _, _ in fleet:
        report = reports[name]
        for check in report.get("checks", []):
            if not check["passed"]:
                console.print(f"  [red]FAIL[/] {name}: {escape(str(check['check']))}: "
                              f"{escape(str(check['detail']))}")
            elif "before the capture trigger" in check["detail"]:
                console.print(f"  note {name}: {escape(str(check['check']))}: {escape(str(check['detail']))}")
        for load in report.get("loads", []):
            for error in load.get("first_errors", [])[:3]:
                console.print(f"  [red]{name} {load['release']} release[/]: {escape(str(error))}")
    if phases:
        console.print("\n[bold]How long each phase took[/] (the whole fleet)")
        for phase, seconds in phases:
            console.print(f"  {phase:<56} {seconds:8.1f}s")
    verdict = ("[green]every database verified[/]" if all_ok
               else "[red]some database did not verify: see above[/]")
    console.print(f"\n{len(fleet)} database(s): {verdict}")
    return all_ok


def parse_phase(text: str) -> tuple[str, float]:
    name, sep, seconds = text.rpartition("=")
    try:
        if sep and name:
            return name, float(seconds)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"give NAME=SECONDS, not {text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seed.fleet_report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleet", type=Path, required=True, help="seed.fleet's output (TSV)")
    parser.add_argument("--loads", type=Path, required=True, help="the releases' load results")
    parser.add_argument("--phase", type=parse_phase, action="append", default=[],
                        metavar="NAME=SECONDS")
    parser.add_argument("--json", type=Path, default=None, help="also write every report here")
    args = parser.parse_args(argv)
    fleet = read_fleet(args.fleet)
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = pool.map(lambda member: report_of(member[0], member[2], args.loads), fleet)
        reports = dict(zip((name for name, _, _ in fleet), found, strict=True))
    if args.json is not None:
        args.json.write_text(json.dumps(reports, indent=1, default=str))
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 160
    return 0 if render(console, fleet, reports, args.phase) else 1


if __name__ == "__main__":
    sys.exit(main())
