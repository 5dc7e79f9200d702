"""What preparing a batch's own statements saves (runs/prepared.py), per batch.

    python -m bench.prepared [--scale medium] [--rounds 3] [--report]

The engine's RunWorker loop inline on fresh copies of the alerts template, one process, no live
load (bench/profile_engine.py measures it the same way, step by step), with
`MIGRATIONS_WORKER["PREPARED_STATEMENTS"]` off and on in interleaved rounds (the order turns each
round), beside the single UPDATE. The per-batch figures are the steady ones: on this machine a
whole run varies by more than what preparing saves. Writes bench/results/<scale>/prepared.md
(raw/prepared.json); `--report` rewrites it from the raw figures.
"""

from __future__ import annotations

import argparse
import json
import statistics

from bench.common import RESULTS, server_settings, settings_words
from seed.dataset import SIZES

STEPS = {"claim a batch": "claim", "batch: bookkeeping + commit": "bookkeeping",
         "batch: the job's statements": "job"}


def measure(scale: str, rounds: int) -> tuple[list[dict], int]:
    """Each round's records, and the alerts the template holds."""
    from django.conf import settings  # (after bench.profile_engine has set Django up)

    from bench import profile_engine

    templates = profile_engine.ensure_templates(scale, rebuild=False, log=print, alerts_only=True)
    template = templates.alerts
    records = []
    for number in range(rounds):
        records.append({"round": number, "kind": "single",
                        "seconds": profile_engine.single(template)["seconds"]})
        for on in (False, True) if number % 2 == 0 else (True, False):
            settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "PREPARED_STATEMENTS": on}
            run = profile_engine.engine(template, job_target(profile_engine.JOB))
            records.append({"round": number, "kind": "prepared" if on else "unprepared",
                            "seconds": run["seconds"], "batches": run["batches"],
                            "steps": run["steps"], "statements": run["statements"]})
            print(f"round {number}: {records[-1]['kind']} {run['seconds']:.1f} s", flush=True)
    return records, templates.alerts_total


def job_target(job: str) -> float:
    """The job's own target batch duration."""
    from migrations_worker.job import get_job

    return get_job(job).defaults["target_batch_seconds"]


def per_batch(record: dict, step: str) -> float:
    return record["steps"].get(step, 0.0) / record["batches"] * 1000


def report(raw: dict) -> str:
    records = raw["records"]
    kinds = ("unprepared", "prepared")
    lines = [
        f"# Prepared statements: what a batch's bookkeeping costs without and with them ({raw['scale']})",
        "",
        f"`{raw['command']}`, measured {raw['measured']}: the engine inline on fresh copies of "
        f"the alerts template ({raw['alerts']:,} alerts), `PREPARED_STATEMENTS` off and on in "
        f"{raw['rounds']} interleaved rounds, beside the single UPDATE. Server: "
        f"{raw['settings_words']}.",
        "",
        "| round | single UPDATE | " + " | ".join(
            f"{k}: run, batches, claim / bookkeeping / job's statements per batch" for k in kinds)
        + " |",
        "|---|--:|" + "--:|" * len(kinds),
    ]
    for number in range(raw["rounds"]):
        mine = {r["kind"]: r for r in records if r["round"] == number}
        cells = [f"{mine[k]['seconds']:.1f} s, {mine[k]['batches']}, "
                 + " / ".join(f"{per_batch(mine[k], step):.2f} ms" for step in STEPS)
                 for k in kinds]
        lines.append(f"| {number + 1} | {mine['single']['seconds']:.1f} s | " + " | ".join(cells)
                     + " |")
    medians = {k: {name: statistics.median(per_batch(r, step) for r in records if r["kind"] == k)
                   for step, name in STEPS.items()} for k in kinds}
    before, after = medians["unprepared"], medians["prepared"]
    own_before = before["claim"] + before["bookkeeping"]
    own_after = after["claim"] + after["bookkeeping"]
    lines += [
        "",
        f"Medians per batch: the claim {before['claim']:.2f} -> {after['claim']:.2f} ms, the "
        f"bookkeeping and commit {before['bookkeeping']:.2f} -> {after['bookkeeping']:.2f} ms: "
        f"the engine's own time per batch {own_before:.2f} -> {own_after:.2f} ms "
        f"({own_after / own_before:.2f}x), against {after['job']:.1f} ms of the job's statements "
        f"(the batch size keeps them near the job's target, so what planning saves there goes "
        f"into more alerts per batch, not less time). The whole run's time varies from round to "
        f"round by more than that.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=list(SIZES), default="medium")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="only rewrite the report")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    out = RESULTS / args.scale
    store = out / "raw" / "prepared.json"
    if not args.report:
        from datetime import UTC, datetime

        records, alerts = measure(args.scale, args.rounds)
        settings = server_settings()
        raw = {"scale": args.scale, "rounds": args.rounds, "records": records, "alerts": alerts,
               "measured": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
               "settings_words": settings_words(settings),
               "command": f"python -m bench.prepared --scale {args.scale} --rounds {args.rounds}"}
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(raw, indent=1))
    text = report(json.loads(store.read_text()))
    (out / "prepared.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
