"""`fleet plan`: the waves a rollout would take and, per target, what its stage would do there:
the pending migrations, the data jobs they enqueue or wait for, and an estimated time (the
deploy plan's, `deploy.plan`, read on that target); then, per PostgreSQL server, the WAL and
disk its targets' data jobs will write there. Nothing is changed anywhere.

The fleet's estimate is the waves', each as long as its slowest target when `parallel` covers
it (else its targets in `parallel` lanes): a canary of ten minutes makes the rollout at least ten
minutes longer, whatever the others take.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from django.db import DatabaseError, connections

from .. import conf, pg
from ..deploy import plan as deploy_plan
from ..exceptions import MigrationsWorkerError
from ..operations import Stage
from ..runs.server_slots import server_of
from . import waves


def target_plan(name: str, stage: Stage) -> dict:
    """One target's part of the plan; an unreachable target says why instead."""
    server = server_of(name)
    try:
        error = pg.wait_for_database(3.0, database=name)
        if error:
            return {"target": name, "server": server, "error": f"server {server} does not "
                    f"answer: {error}", "migrations": [], "jobs": {}, "seconds": None}
        found = deploy_plan.build(stage, name).as_dict()
    except (DatabaseError, MigrationsWorkerError) as exc:
        return {"target": name, "server": server, "error": f"{type(exc).__name__}: {exc}",
                "migrations": [], "jobs": {}, "seconds": None}
    finally:
        connections[name].close()
    return {
        "target": name, "server": server, "error": "",
        "migrations": [m["migration"] for m in found["migrations"]],
        "jobs": {job: {"rows": cost["rows"], "seconds": cost["seconds"]}
                 for job, cost in found["jobs"].items()},
        "seconds": found["totals"]["deploy_seconds"],  # its stage on the deploy's clock
        "wal_bytes": found["totals"]["wal_bytes"],
        "growth_bytes": found["totals"]["growth_bytes"],
        "settings": found["server"],
    }


def server_rooms(targets: list[dict]) -> list[dict]:
    """Each server's share of the rollout's writes: its targets' WAL and growth add up on it
    (one WAL stream, one disk, one max_wal_size), whatever the waves and the per-server limit
    do to when they are written. A target that could not be read leaves its server's sums
    unknown."""
    rooms: dict[str, dict] = {}
    for t in targets:
        room = rooms.setdefault(t["server"], {"server": t["server"], "targets": [],
                                              "wal_bytes": 0.0, "growth_bytes": 0.0,
                                              "settings": None})
        room["targets"].append(t["target"])
        for key in ("wal_bytes", "growth_bytes"):
            known = room[key] is not None and not t["error"] and t[key] is not None
            room[key] = room[key] + t[key] if known else None
        room["settings"] = room["settings"] or t.get("settings")
    return list(rooms.values())


def wave_seconds(members: list[dict], parallel: int) -> float | None:
    times = [m["seconds"] for m in members]
    if any(t is None for t in times):
        return None
    lanes = math.ceil(len(times) / parallel)
    return max(times, default=0.0) * lanes


def build(stage: str, waves_spec: str, parallel: int, select: Mapping[str, str]) -> dict:
    declared = conf.targets()
    cut = waves.cut(waves.selected(declared, select), waves_spec)
    planned = []
    for number, wave in enumerate(cut, start=1):
        members = [{"wave": number, **target_plan(name, Stage(stage))}
                   for name in wave]
        planned.append({"wave": number, "canary": number == 1, "targets": members,
                        "seconds": wave_seconds(members, parallel)})
    seconds = [w["seconds"] for w in planned]
    return {"stage": stage, "waves_spec": waves_spec, "parallel": parallel, "select": dict(select),
            "waves": planned,
            "seconds": None if any(s is None for s in seconds) else sum(seconds),
            "servers": server_rooms([t for w in planned for t in w["targets"]])}
