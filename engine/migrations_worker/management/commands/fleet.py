"""`manage.py fleet`: one deploy stage across every target, in waves, the canary first.

    fleet plan --stage pre|post [--waves 1,25%,100%] [--parallel N] [--select label=value] [--json]
                            the waves and, per target, its pending migrations, jobs and estimate
    fleet rollout --stage pre|post [--waves ...] [--parallel N] [--select label=value] [--detach]
                            start the rollout (or resume the open one) and follow it to the end
    fleet status [--rollout ID] [--json] [--watch]
    fleet pause|resume [--reason TEXT]
    fleet retry TARGET --reason TEXT    work a failed (or held) target again, its failed jobs too
    fleet skip TARGET --reason TEXT     leave a target out of this rollout

The steps run on the Celery workers (any host, the engine's queue) and beat advances an open
rollout every few seconds, so `--detach`, a closed terminal or a killed command loses nothing:
running the same `fleet rollout` again resumes it. Exit codes (docs/troubleshooting.md): 0 the
rollout is done, 2 bad input, 3 another rollout is open (or this one with other options), 4 a
target failed and the rollout halted (the message says which, why, and the command to go on), 6
the broker is unreachable, 8 the rollout is paused.

Every action takes `--json`: its result as JSON, the rollout as `fleet.view.snapshot` has it
(what `/ops/fleet.json` answers); `rollout --json` prints it once, when the rollout stops.
`--verbosity 0` prints only the result: `rollout` leaves out the line per target as it moves.
"""

from __future__ import annotations

import time

from migrations_worker.deploy import costs
from migrations_worker.exceptions import RolloutHalted, RolloutPaused
from migrations_worker.fleet import plan, rollouts, view, waves
from migrations_worker.management.arguments import add_output_flags, positive_int, positive_seconds
from migrations_worker.management.base import EngineCommand
from migrations_worker.models import RolloutStatus
from migrations_worker.runs.dispatch import ensure_broker
from migrations_worker.runs.progress import format_duration

ACTOR = "fleet"


def job_words(jobs: list[dict]) -> str:
    return "; ".join(
        f"{j['job']} {j.get('status')}"
        + (f" {j['percent']:.0f}% ({j['rows_done']:,}/~{j['estimated_total']:,}), ETA {j['eta']}"
           if "percent" in j else "")
        + (f", {j['hold']}" if j.get("hold") else "")
        for j in jobs)


def target_line(t: dict) -> str:
    words = t["error"] or (job_words(t["jobs"]) if t["status"] == "waiting" and t["jobs"]
                           else t["detail"])
    took = f" {format_duration(t['seconds'])}" if t["seconds"] is not None else ""
    reason = f" (reason: {t['reason']})" if t["reason"] else ""
    return f"  wave {t['wave']}  {t['target']:<16} {t['server']:<18} {t['status']:<8}{took}  " \
           f"{words}{reason}"


def status_lines(found: dict) -> list[str]:
    r = found["rollout"]
    if r is None:
        return ["no fleet rollout yet: `python manage.py fleet plan --stage pre` shows one"]
    lines = [f"rollout #{r['id']}: {r['stage']} stage, {r['status']}, {r['through']}/"
             f"{r['targets']} target(s) through, waves {r['waves']}, {r['parallel']} at a time"
             + (f", wave {r['current_wave']} under way" if r["current_wave"] else "")]
    for wave in found["waves"]:
        lines += [target_line(t) for t in wave["targets"]]
    if r["error"]:
        lines.append(f"HALTED: {r['error']}")
    return lines


class Command(EngineCommand):
    help = "Roll one deploy stage out across every target database, in waves, the canary first."
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        for name, text in (("plan", "the waves, and per target what its stage would do"),
                           ("rollout", "start the rollout, or resume the open one, and follow it")):
            command = sub.add_parser(name, help=text)
            command.add_argument("--stage", choices=rollouts.STAGES, required=True)
            command.add_argument("--waves", default=None, metavar="SIZES",
                                 help=f"cumulative wave sizes, counts or percentages (default "
                                      f"{waves.DEFAULT_WAVES}); the first is the canary")
            command.add_argument("--parallel", type=positive_int, default=None, metavar="N",
                                 help="targets of a wave worked at once (default "
                                      f"{rollouts.DEFAULT_PARALLEL})")
            command.add_argument("--select", action="append", default=[], metavar="LABEL=VALUE",
                                 help="only targets with this label (repeatable: all must match)")
        rollout = sub.choices["rollout"]
        rollout.add_argument("--detach", action="store_true",
                             help="start or resume it and return; workers and beat carry it on")
        rollout.add_argument("--poll", type=positive_seconds, default=1.0, metavar="SECONDS")
        status = sub.add_parser("status", help="where the rollout stands, target by target")
        status.add_argument("--rollout", type=positive_int, default=None, metavar="ID")
        status.add_argument("--watch", action="store_true", help="refresh until it is not running")
        for name in ("pause", "resume"):
            sub.add_parser(name, help=f"{name} the open rollout").add_argument(
                "--reason", default="")
        for name, text in (("retry", "work a failed or held target again"),
                           ("skip", "leave a target out of the open rollout")):
            command = sub.add_parser(name, help=text)
            command.add_argument("target")
            command.add_argument("--reason", required=True)
        for command in sub.choices.values():
            add_output_flags(command)
            command.add_argument("--json", action="store_true",
                                 help="the result as JSON (the rollout as /ops/fleet.json has it)")

    def handle(self, *args, **options) -> None:
        action = options["action"]
        self.as_json = options["json"]
        if action in ("plan", "rollout"):
            select = waves.parse_select(options["select"])
            if options["waves"] is not None:
                waves.sizes(options["waves"], 1)  # refuse a malformed spec before anything
            if action == "plan":
                return self.plan(options, select)
            return self.rollout(options, select)
        if action == "status":
            return self.status(options)
        if action == "pause":
            self.show(rollouts.pause(ACTOR, options["reason"]), "paused")
        elif action == "resume":
            ensure_broker()
            self.show(rollouts.resume(ACTOR, options["reason"]), "resumed")
        elif action == "retry":
            ensure_broker()
            self.show(rollouts.retry(options["target"], reason=options["reason"], actor=ACTOR),
                      f"{options['target']} retried")
        elif action == "skip":
            self.show(rollouts.skip(options["target"], reason=options["reason"], actor=ACTOR),
                      f"{options['target']} skipped")

    def show(self, rollout, what: str) -> None:
        if self.as_json:
            return self.print_json(view.snapshot(rollout))
        self.stdout.write(f"rollout #{rollout.pk}: {what}; now {rollout.status}")

    def line(self, text: str) -> None:
        """A line of the rollout's progress: not under --json, nor --verbosity 0."""
        if not self.as_json and self.verbosity >= 1:
            self.stdout.write(text)

    def plan(self, options, select) -> None:
        spec = options["waves"] or waves.DEFAULT_WAVES
        found = plan.build(options["stage"], spec, options["parallel"] or rollouts.DEFAULT_PARALLEL,
                           select)
        if self.as_json:
            return self.print_json(found)
        self.stdout.write(f"{options['stage']} stage in {len(found['waves'])} wave(s) ({spec}), "
                          f"{costs.approx(found['seconds'])} in all:")
        for wave in found["waves"]:
            self.stdout.write(f"wave {wave['wave']}{' (canary, alone)' if wave['canary'] else ''}"
                              f": {costs.approx(wave['seconds'])}")
            for t in wave["targets"]:
                if t["error"]:
                    self.stdout.write(f"  {t['target']:<16} {t['server']:<18} {t['error']}")
                    continue
                jobs = ", ".join(f"{job} ({cost['rows'] if cost['rows'] is not None else '?'} "
                                 f"rows)" for job, cost in t["jobs"].items()) or "no data job"
                self.stdout.write(f"  {t['target']:<16} {t['server']:<18} "
                                  f"{len(t['migrations'])} migration(s), {jobs}, "
                                  f"{costs.approx(t['seconds'])}")
        self.stdout.write("room per server (its targets' data jobs, at the bytes a row measured):")
        for room in found["servers"]:
            settings = costs.Server.from_dict(room["settings"]) if room["settings"] else None
            self.stdout.write(
                f"  {room['server']}: WAL {costs.about(room['wal_bytes'])} for "
                f"{len(room['targets'])} target(s)"
                f"{costs.checkpoint_words(room['wal_bytes'], settings, 'the rollout')}; "
                f"disk {costs.about(room['growth_bytes'])} more until vacuum")
            if settings:
                for line in costs.slot_lines(settings):
                    self.stdout.write(f"  {line}")

    def rollout(self, options, select) -> None:
        ensure_broker()
        rollout, resumed = rollouts.start(options["stage"], waves_spec=options["waves"],
                                          parallel=options["parallel"], select=select or None,
                                          actor=ACTOR)
        self.line(f"{'resuming' if resumed else 'started'} rollout #{rollout.pk}: "
                  f"{rollout.stage} stage, waves {rollout.waves_spec}, {rollout.parallel} at a time")
        if rollout.status in (RolloutStatus.HALTED, RolloutStatus.PAUSED):
            return self.stopped(rollout)
        if options["detach"]:
            rollout = rollouts.advance(rollout.pk, ACTOR)
            if self.as_json:
                return self.print_json(view.snapshot(rollout))
            self.stdout.write(f"rollout #{rollout.pk} detached: workers and beat carry it on; "
                              "`python manage.py fleet status --watch` follows it")
            return
        self.follow(rollout.pk, options["poll"])

    def follow(self, rollout_id: int, poll: float) -> None:
        """Advance and print what changes until the rollout is done, halted or paused."""
        seen: dict[str, tuple] = {}
        last_summary = 0.0
        while True:
            rollout = rollouts.advance(rollout_id, ACTOR)
            found = view.snapshot(rollout)
            for wave in found["waves"]:
                for t in wave["targets"]:
                    key = (t["status"], t["detail"], t["error"])
                    if seen.get(t["target"]) != key:
                        seen[t["target"]] = key
                        self.line(target_line(t))
            if time.monotonic() - last_summary >= 10:
                last_summary = time.monotonic()
                for wave in found["waves"]:
                    for t in wave["targets"]:
                        if t["status"] == "waiting" and t["jobs"]:
                            self.line(target_line(t))
            if rollout.status != RolloutStatus.RUNNING:
                return self.stopped(rollout, found)
            time.sleep(poll)

    def stopped(self, rollout, found: dict | None = None) -> None:
        """Where a rollout that is not running stands, and its exit code."""
        found = found or view.snapshot(rollout)
        if self.as_json:
            self.print_json(found)
        elif rollout.status == RolloutStatus.DONE:
            self.stdout.write("\n".join(status_lines(found)))
            self.stdout.write(f"rollout #{rollout.pk} done")
        if rollout.status == RolloutStatus.HALTED:
            raise RolloutHalted(rollout.error)
        if rollout.status == RolloutStatus.PAUSED:
            raise RolloutPaused(f"rollout #{rollout.pk} is paused: `python manage.py fleet "
                                "resume`, then `python manage.py fleet rollout` again to follow it")

    def status(self, options) -> None:
        while True:
            rollout = view.latest(options["rollout"])
            found = view.snapshot(rollout)
            if self.as_json:
                self.print_json(found)
            else:
                self.stdout.write("\n".join(status_lines(found)))
            if not options["watch"] or rollout is None or rollout.status != RolloutStatus.RUNNING:
                return
            time.sleep(2.0)
