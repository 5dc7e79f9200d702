"""A gate is decided once per migration: by the deploy executor before the migration starts
under `migrate_online` (its `RequireJob` is told so), by the `RequireJob` itself under `migrate`."""

import pytest
from django.core.management import call_command

from migrations_worker.models import JobRun
from migrations_worker.runs import gates
from tests.engine_app.support import JOB, LATEST, applied, make_widgets, migrate_to, touches_histogram

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def decisions(monkeypatch) -> list[str]:
    """The jobs whose gate was decided, in order (the real decision, only counted)."""
    decided: list[str] = []
    real = gates.decide

    def counted(job_name, inline_limit, **options):
        decided.append(job_name)
        return real(job_name, inline_limit, **options)

    monkeypatch.setattr(gates, "decide", counted)
    return decided


@pytest.mark.parametrize("command", ["migrate_online", "migrate"])
def test_a_gate_is_decided_once_by_migrate_online_and_once_by_plain_migrate(decisions, command):
    migrate_to(("engine_app", "0002_enqueue_touch_widgets"))
    JobRun.objects.all().delete()
    make_widgets(500)
    try:
        call_command(command, *(["engine_app"] if command == "migrate" else []), verbosity=0)
        assert applied("engine_app", "0003_require_touch_widgets")
        assert touches_histogram() == {1: 500}  # finished inline at the gate
        assert decisions.count(JOB) == 1
    finally:
        migrate_to(LATEST)
