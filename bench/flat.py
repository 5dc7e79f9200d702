"""Flat with size: the alerts backfill's rows/s at a large scale against a small one, measured
between two runs of the small one, so the machine's own drift shows instead of passing for size.

    python -m bench.flat [--small medium] [--large xlarge] [--rounds 2]

Each round runs `alerts_uuid` alone, inline (the RunWorker loop a Celery slice runs), no live
load, autovacuum as the server runs it, on fresh copies of the alerts templates: small, large,
small again (bench.footprint.measure). The large run's rows/s is held against the mean of the two
small runs around it, and against the faster of them. On a shared machine whose speed moves by
half within minutes, a ratio of runs far apart in time says more about the machine than the data.

Writes bench/results/scale/flat.md (and raw/flat.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.common import APP_SAMPLER, RESULTS, connect, server_settings, settings_words
from seed.dataset import SIZES

JOB = "alerts_uuid"


def run(scale: str) -> dict:
    from bench import footprint
    from bench.profile_engine import ensure_templates  # (sets Django up)

    templates = ensure_templates(scale, rebuild=False, log=print, alerts_only=True)
    started = time.strftime("%H:%M:%S", time.gmtime())
    found = footprint.measure(JOB, templates.alerts, autovacuum=True)
    return {"scale": scale, "started": started, "rows_per_second": found["rows"] / found["seconds"],
            **found}


def ratios(round_: dict) -> tuple[float, float]:
    """The large run's rows/s over the mean of the small runs around it, and over the faster."""
    small = [r["rows_per_second"] for r in (round_["before"], round_["after"])]
    large = round_["large"]["rows_per_second"]
    return large / statistics.mean(small), large / max(small)


def report(found: dict) -> str:
    small, large = found["small"], found["large"]
    lines = [
        f"# Flat with size: the alerts backfill at {large} against {small} ({found['started']})",
        "",
        f"`{found['command']}`: `{JOB}` alone, inline, no live load, autovacuum as the server runs "
        f"it, on fresh copies of the alerts templates; each round runs {small}, {large}, {small} "
        f"again, and holds {large}'s rows/s against the two {small} runs around it.",
        "",
        f"Server settings: {found['settings']}.",
        "",
        f"| round | {small} before | {large} | {small} after | ÷ their mean | ÷ the faster |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for number, r in enumerate(found["rounds"], start=1):
        mean, fastest = ratios(r)
        lines.append(
            f"| {number} | {r['before']['rows_per_second']:,.0f}/s ({r['before']['started']}) "
            f"| {r['large']['rows_per_second']:,.0f}/s | {r['after']['rows_per_second']:,.0f}/s "
            f"| {mean:.2f}x | {fastest:.2f}x |")
    means = [ratios(r)[0] for r in found["rounds"]]
    lines += ["", f"Median over the rounds, {large} ÷ the mean of its {small} runs: "
              f"**{statistics.median(means):.2f}x** (goal 0.9x)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", choices=list(SIZES), default="medium")
    parser.add_argument("--large", choices=list(SIZES), default="xlarge")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only rewrite the report from raw")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    raw = RESULTS / "scale" / "raw" / "flat.json"
    if not args.report:
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        rounds = [{"before": run(args.small), "large": run(args.large), "after": run(args.small)}
                  for _ in range(args.rounds)]
        with connect("postgres", APP_SAMPLER) as conn:
            settings = settings_words(server_settings(conn))
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps({
            "small": args.small, "large": args.large, "started": started, "rounds": rounds,
            "settings": settings, "command": f"python -m bench.flat --small {args.small} "
                                             f"--large {args.large} --rounds {args.rounds}"},
            indent=1))
    out = RESULTS / "scale" / "flat.md"
    out.write_text(report(json.loads(raw.read_text())))
    print(out.read_text())


if __name__ == "__main__":
    main()
