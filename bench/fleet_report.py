"""bench/results/fleet/fleet.md from the fleet case's raw result (bench/fleet.py).

The goals (issue #21): the rollout takes at most 0.6x the loop's wall time with 2 workers, and no
database's live load is worse under the rollout than under the loop. "Worse" is judged per pair
of databases in the same position (the loop's `_03` against the rollout's `_03`: same server,
same seeded copy), each over its own deploy windows (the loop: that database's `deploy.sh pre`
and `post` runs; the rollout: its target's pre and post steps, dispatch to pass), the same
statements counted the same way: a load error anywhere in the run, or a p99 above the loop's by
more than 10% (two runs minutes apart on a shared machine differ by that much with nothing
changed). The whole run's figures are shown beside, for reference only: in the loop each
database idles most of the run, which dilutes its p99 with idle statements.
"""

from __future__ import annotations

from pathlib import Path

GOAL_RATIO = 0.6
P99_MARGIN = 1.10


def worse(rollout: dict, loop: dict, over: str = "own") -> str:
    """Why the rollout's load on a database was worse than the loop's, judged `over` its own
    deploy windows (or the whole run), or ''. Errors count over the whole run either way."""
    if rollout["whole"]["errors"] > loop["whole"]["errors"]:
        return f"{rollout['whole']['errors']} errors against {loop['whole']['errors']}"
    if rollout[over]["p99_ms"] > loop[over]["p99_ms"] * P99_MARGIN:
        return f"p99 {rollout[over]['p99_ms']:.1f} ms against {loop[over]['p99_ms']:.1f} ms"
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


def cells(load: dict, seconds: bool = False) -> str:
    """Two table cells: how much load (and over how long), and its latency."""
    span = f"{load['seconds']:.1f}s, " if seconds else ""
    return (f"{span}{load['statements']:,}, {load['errors']} | {load['p50_ms']:.1f} / "
            f"{load['p99_ms']:.1f} / {load['max_ms']:.0f} ms")


def load_cpu(result: dict) -> list[str]:
    """What the load itself cost the machine, per contender (bench/README.md: the rate)."""
    found = [(c, result["contenders"][c].get("load_cpu")) for c in ("loop", "rollout")]
    if not all(used for _, used in found):
        return []
    return ["", "The load itself (its threads + its database sessions) used " + ", ".join(
        f"{used['client_cores']:.2f} + {used['server_cores']:.2f} cores during the {name}"
        for name, used in found) + "."]


def render(result: dict) -> str:
    loop, rollout = result["contenders"]["loop"], result["contenders"]["rollout"]
    ratio = rollout["seconds"] / loop["seconds"] if loop["seconds"] else float("nan")
    found = pairs(result)
    worse_ones = [(n, why) for n, l_, r in found if (why := worse(r, l_))]
    worse_whole = [n for n, l_, r in found if worse(r, l_, over="whole")]
    error_count = sum(d["whole"]["errors"] for _, l_, r in found for d in (l_, r))
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
        f"| no database's load worse than in the loop during its own deploy windows (more "
        f"errors, or p99 > {P99_MARGIN:.1f}x the loop's) | {len(worse_ones)} of {len(found)} "
        f"worse | {load_goal} |",
        f"| no load error, either contender, whole run | {error_count} | "
        f"{'met' if not error_count else 'MISSED'} |",
        "",
        "Each database's load is judged over its own deploy windows: in the loop its "
        "`deploy.sh pre` and `post` runs, in the rollout its target's pre and post steps "
        "(started_at..finished_at in the control database). For reference, judged over each "
        f"contender's whole run instead ({loop['seconds']:.0f}s for the loop, in which each "
        f"database idles about {len(found) - 1}/{len(found)} of the time; "
        f"{rollout['seconds']:.0f}s for the rollout) it would be {len(worse_whole)} of "
        f"{len(found)} worse.",
        *load_cpu(result),
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
        "## The live load on each database during its own deploy windows (judged)",
        "",
        "| database | server | loop: seconds, statements, errors | loop p50 / p99 / max | "
        "rollout: seconds, statements, errors | rollout p50 / p99 / max | worse? |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines += [f"| _{number} | {l_['server']} | {cells(l_['own'], True)} | "
              f"{cells(r['own'], True)} | {worse(r, l_) or 'no'} |" for number, l_, r in found]
    lines += [
        "",
        "## The same, from the pre stage's start to the post stage's end (for reference)",
        "",
        "| database | server | loop: statements, errors | loop p50 / p99 / max | "
        "rollout: statements, errors | rollout p50 / p99 / max |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| _{number} | {l_['server']} | {cells(l_['whole'])} | {cells(r['whole'])} |"
              for number, l_, r in found]
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
