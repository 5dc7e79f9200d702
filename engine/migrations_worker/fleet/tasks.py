"""The fleet's Celery tasks: a target's step, on any worker; the rollout's tick, on beat.

Registered when the app is ready (apps.py), beside the run tasks (tasks.py), on the same queue:
a rollout needs no worker of its own, and Flower lists each step with its rollout, target and
stage.
"""

from __future__ import annotations

import logging

from celery import shared_task

from .. import conf
from ..exceptions import MigrationsWorkerError
from ..models import RolloutTarget
from . import rollouts
from .rollouts import STEP_TASK
from .step import run_step

log = logging.getLogger("migrations_worker.fleet")


@shared_task(bind=True, name=STEP_TASK, acks_late=True, reject_on_worker_lost=True,
             ignore_result=False)
def fleet_step(self, rollout_id: int, target: str, stage: str, attempt: int) -> dict:
    """One step of `target` in rollout `rollout_id` (fleet/step.py). A redelivered or duplicate
    message is harmless: the target's deploy lock keeps two steps apart, its attempt fences one
    sent before a retry."""
    try:
        done = run_step(rollout_id, target, stage, attempt, worker=self.request.hostname or "")
    except RolloutTarget.DoesNotExist:
        done = "gone"
    return {"rollout": rollout_id, "target": target, "stage": stage, "attempt": attempt,
            "step": done}


@shared_task(name=conf.ADVANCE_ROLLOUTS, ignore_result=True)
def advance_rollouts() -> str:
    """Beat's tick of the open rollout: it goes on without the command that started it."""
    try:
        rollout = rollouts.advance_open(actor="beat")
    except MigrationsWorkerError:
        log.exception("the open rollout was not advanced; the next beat tries again")
        return "error"
    return "" if rollout is None else f"rollout #{rollout.pk}: {rollout.status}"
