"""The alerts backfill's goals judged over two separate runs of the bench, side by side.

    python -m bench.two_runs RUN1/results.json RUN2/results.json [--out FILE]

One run of interleaved rounds can meet a goal that the next run misses (issue #24: 0.97x in one
run, 0.90x in the next, on the same kind of machine): a goal counts as met only when the median of
its rounds meets it in both runs. Each run is `python -m bench.run --only single_alerts_uuid
engine1_alerts_uuid engine2_alerts_uuid --no-deploy --repeat 5 --out DIR`, one after the other.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import settings_words
from bench.report import X, cpu_ratio, merged, single_for, targets

GOAL_PREFIX = "alerts backfill ≥"


def alerts_goals(results: dict) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) of the alerts throughput goals of one run."""
    return [(name, value, bool(met)) for name, value, met, _ in targets(results)
            if name.startswith(GOAL_PREFIX)]


def cpu_ratios(results: dict) -> dict[str, float]:
    """Rows per CPU-second of each engine contender over the single UPDATE's (pooled runs)."""
    records = merged(results["contenders"])
    single = single_for(records, "alerts_uuid")
    return {r["label"]: cpu_ratio(r, single) for r in records
            if r["engine"] and r["job"] == "alerts_uuid" and single and "rows_per_cpu_second" in r}


def markdown(runs: list[dict], sources: list[Path]) -> str:
    goals = [alerts_goals(results) for results in runs]
    names = list(dict.fromkeys(name for run in goals for name, _, _ in run))
    lines = ["# The alerts backfill's goals, two separate runs", "",
             "`python -m bench.two_runs` over "
             + " and ".join(f"`{s}`" for s in sources)
             + ": each goal is the median of the interleaved rounds of one run; it is met only "
             "when it is met in both.", ""]
    for number, results in enumerate(runs, start=1):
        m = results["machine"]
        lines.append(f"- Run {number}: {results['started']}, {results['settings']['repeat']} "
                     f"rounds, load average {m['load_average_at_start'][0]:.1f} at the start; "
                     f"PostgreSQL {m['postgres']} ({settings_words(m['postgres_settings'])}).")
    lines += ["", "| goal | " + " | ".join(f"run {n}" for n in range(1, len(runs) + 1))
              + " | met in both |", "|---|" + "---|" * len(runs) + "---|"]
    for name in names:
        cells = [next(((value, met) for goal, value, met in run if goal == name), ("-", False))
                 for run in goals]
        lines.append(f"| {name} | " + " | ".join(v for v, _ in cells)
                     + f" | {'yes' if all(met for _, met in cells) else '**no**'} |")
    lines += ["", f"Rows per CPU-second, {X} the single UPDATE's (the steadier view on a shared "
              "machine):", ""]
    for number, results in enumerate(runs, start=1):
        ratios = cpu_ratios(results)
        lines.append(f"- Run {number}: " + ", ".join(f"{label} {ratio:.2f}{X}"
                                                     for label, ratio in ratios.items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs=2, type=Path, help="two results.json files")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown here too")
    args = parser.parse_args(argv)
    text = markdown([json.loads(p.read_text()) for p in args.runs], args.runs)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
