"""bench/results/fleet/fleet.md from the fleet case's raw result (bench/fleet.py).

The goals (issue #21): the rollout takes at most 0.6x the loop's wall time with 2 workers, and no
database's live load is worse under the rollout than under the loop. "Worse" is judged per pair
of databases in the same position (the loop's `_03` against the rollout's `_03`: same server,
same seeded copy): more errors, or a p99 above the loop's by more than 10% (two runs minutes
apart on a shared machine differ by that much with nothing changed).
"""

from __future__ import annotations

from pathlib import Path

GOAL_RATIO = 0.6
P99_MARGIN = 1.10


def worse(rollout: dict, loop: dict) -> str:
    """Why the rollout's load on a database was worse than the loop's, or ''."""
    if rollout["errors"] > loop["errors"]:
        return f"{rollout['errors']} errors against {loop['errors']}"
    if rollout["p99_ms"] > loop["p99_ms"] * P99_MARGIN:
        return f"p99 {rollout['p99_ms']:.0f} ms against {loop['p99_ms']:.0f} ms"
    return ""


def pairs(result: dict) -> list[tuple[str, dict, dict]]:
    loop = result["contenders"]["loop"]["databases"]
    rollout = result["contenders"]["rollout"]["databases"]
    return [(name.rsplit("_", 1)[1], loop[name], rollout[other])
            for name, other in zip(sorted(loop), sorted(rollout), strict=True)]


def time_notes(loop: dict, rollout: dict) -> list[str]:
    """The loop's time per database, and the rollout's per wave."""
    notes = []
    for stage, took in loop.get("per_database", {}).items():
        if took:
            notes.append(f"- loop, {stage} stage: {len(took)} runs of `deploy/deploy.sh {stage}`, "
                         f"one after the other, {sum(took) / len(took):.1f}s each "
                         f"({min(took):.1f}-{max(took):.1f}s)")
    for wave in rollout.get("waves", []):
        notes.append(f"- rollout, {wave['stage']} stage, wave {wave['wave']}"
                     f"{' (canary)' if wave['wave'] == 1 else ''}: {wave['targets']} database(s) "
                     f"in {wave['seconds']:.1f}s")
    return notes


def render(result: dict) -> str:
    loop, rollout = result["contenders"]["loop"], result["contenders"]["rollout"]
    ratio = rollout["seconds"] / loop["seconds"] if loop["seconds"] else float("nan")
    found = pairs(result)
    worse_ones = [(n, why) for n, l_, r in found if (why := worse(r, l_))]
    time_goal = "met" if ratio <= GOAL_RATIO else "MISSED"
    load_goal = "met" if not worse_ones else "MISSED"
    lines = [
        "# The fleet case: `fleet rollout` against the shell loop of `deploy/deploy.sh`",
        "",
        f"{result['when']}, {result['machine']}; {result['databases']} seeded databases "
        f"({result['scale']}) per contender over two PostgreSQL servers "
        f"({', '.join(f'{k} {v}' for k, v in result['servers'].items())}); "
        f"{result['workers']} Celery workers (solo pool) and beat for both; the live load at "
        f"{result['rate']:g} statements/s on every database. `python -m bench.fleet`, "
        "bench/README.md.",
        "",
        "## The goals",
        "",
        "| goal | figure | |",
        "|---|---|---|",
        f"| rollout ≤ {GOAL_RATIO}x the loop's wall time | {ratio:.2f}x | {time_goal} |",
        f"| no database's load worse than in the loop (more errors, or p99 > "
        f"{P99_MARGIN:.1f}x the loop's) | {len(worse_ones)} of {len(found)} worse | {load_goal} |",
        "",
        f"Each database's load is measured over its contender's whole run: {loop['seconds']:.0f}s "
        f"for the loop, in which each database is deployed for about "
        f"1/{len(found)} of the time and idles the rest, and {rollout['seconds']:.0f}s for the "
        "rollout, in which the databases of a wave are deployed side by side.",
        "",
        "## Wall time",
        "",
        "| contender | pre stage | post stage | both |",
        "|---|---:|---:|---:|",
    ]
    for name, figures in (("shell loop of `deploy/deploy.sh`", loop),
                          ("`fleet rollout` (waves 1,25%,100%)", rollout)):
        stages = figures["stages"]
        lines.append(f"| {name} | {stages.get('pre', 0):.1f}s | {stages.get('post', 0):.1f}s | "
                     f"{figures['seconds']:.1f}s |")
    lines += ["", "## Where the time went", "", *time_notes(loop, rollout)]
    lines += [
        "",
        "## The live load on each database, from the pre stage's start to the post stage's end",
        "",
        "| database | server | loop: statements, errors | loop p50 / p99 / max | "
        "rollout: statements, errors | rollout p50 / p99 / max | worse? |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for number, l_, r in found:
        lines.append(
            f"| _{number} | {l_['server']} | {l_['statements']:,}, {l_['errors']} | "
            f"{l_['p50_ms']:.1f} / {l_['p99_ms']:.1f} / {l_['max_ms']:.0f} ms | "
            f"{r['statements']:,}, {r['errors']} | "
            f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.0f} ms | "
            f"{worse(r, l_) or 'no'} |")
    errors = [(c, name, e) for c in ("loop", "rollout")
              for name, d in result["contenders"][c]["databases"].items()
              for e in d.get("first_errors", [])]
    if errors:
        lines += ["", "First load errors:", ""]
        lines += [f"- {c} {name}: {e[:200]}" for c, name, e in errors[:10]]
    return "\n".join(lines) + "\n"


def write_report(result: dict, path: Path) -> str:
    text = render(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
