"""The tables the extra test targets (`near`, `far`) are made with: the engine's and this app's.

Those databases are built from the models (TEST MIGRATE False, config/settings/test.py), and
the project's own models need what only their migrations create (sequences, triggers); a run on
a target needs only the engine's tables and the job's."""

from __future__ import annotations

TARGET_APPS = {"migrations_worker", "engine_app"}


class TestTargetsRouter:
    """Routes nothing; only keeps the project's apps off the extra test targets."""

    def allow_migrate(self, db: str, app_label: str, **hints) -> bool | None:
        if db in ("near", "far"):
            return app_label in TARGET_APPS
        return None
