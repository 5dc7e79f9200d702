"""When a migration may run in a rolling deploy, declared on the migration itself:

    class Migration(migrations.Migration):
        stage = Stage.POST

During a rolling deploy the previous release serves traffic while migrations apply, and both
releases run side by side until the rollout ends. A PRE (expand) migration is safe while the
previous release runs: new nullable columns, new tables, concurrent indexes, triggers that keep
both releases' data in step, data jobs. A POST (contract) migration needs the new release
everywhere: dropped columns, removed compatibility triggers, constraints the previous release
could violate. `migrate_online --stage pre` runs before the rollout, `--stage post` after it
(GitLab's `db/post_migrate`, django-syzygy's stages). A migration that declares nothing (Django's
own apps, third-party apps) is PRE: they only add; the linter requires a declaration of the
project's own migrations.
"""

from __future__ import annotations

import enum

from django.db.migrations.migration import Migration


class Stage(enum.StrEnum):
    PRE = "pre"  # expand: before the new release starts, safe for the previous one
    POST = "post"  # contract: after the rollout, when only the new release runs


def declared_stage(migration: Migration) -> Stage | None:
    stage = getattr(migration, "stage", None)
    return None if stage is None else Stage(stage)


def stage_of(migration: Migration) -> Stage:
    return declared_stage(migration) or Stage.PRE
