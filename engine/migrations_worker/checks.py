"""System checks: the engine works only on PostgreSQL 13 or newer, and says so before anything
runs; every job a migration names is registered, so a typo fails `check`, not a deploy; and the
standbys the site expects are written as a count or names; `MIGRATE_STAGE` is a stage plain
`migrate` can run; MIGRATIONS_WORKER holds only keys the engine reads (a misspelt one would be
ignored without a word); and a status token, when set, is long enough not to be guessed.

Why 13: the migrations rely on `gen_random_uuid()` in core (13+; before, it needs pgcrypto), and
the engine on `FOR UPDATE SKIP LOCKED`, `lock_timeout` and concurrent index builds. An older
server would fail half-way through the online migration, so the commands that change anything
(`migrate_online`, `backfill`) refuse it up front, and `manage.py check --database default`
reports it.
"""

from __future__ import annotations

from django.core.checks import Error, register
from django.db import connections
from django.db.migrations.loader import MigrationLoader

from . import conf
from .exceptions import InvalidTuning, UnsupportedDatabase
from .job import job_names
from .operations.jobs import JobOperation
from .operations.walk import operations_of
from .runs.server_slots import limit as server_limit
from .runs.throttle import Expected

MINIMUM_SERVER_VERSION = 130000  # PostgreSQL 13.0, as connection.pg_version reports it


def version_problem(server_version: int) -> str:
    """Why a server of this version (e.g. 150004 for 15.4) cannot run the engine, or ''."""
    if server_version >= MINIMUM_SERVER_VERSION:
        return ""
    major, minor = divmod(server_version, 10000)
    if major < 10:  # before 10 the numbering was major.minor.patch: 90624 is 9.6.24
        major, minor = divmod(server_version, 100)
        shown = f"{major // 100}.{major % 100}"
    else:
        shown = f"{major}.{minor}"
    return (f"PostgreSQL {shown} is too old: the online migration engine needs PostgreSQL 13 or "
            "newer (gen_random_uuid() in core, and the locking it relies on)")


def database_problem(alias: str = "default") -> str:
    """What makes database `alias` unusable for the engine, or '' (connects to read the version)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return (f"database '{alias}' is {connection.vendor}; the online migration engine needs "
                "PostgreSQL")
    return version_problem(connection.pg_version)


def require_supported_database(alias: str = "default") -> None:
    """Refuse, with the reason, before a command changes anything on an unsupported database."""
    problem = database_problem(alias)
    if problem:
        raise UnsupportedDatabase(f"{problem}. Point DATABASE_URL at a PostgreSQL 13+ server.")


@register("database")
def postgresql_only(app_configs=None, databases=None, **kwargs) -> list[Error]:
    """Every configured database must be PostgreSQL (no connection needed to tell); the ones
    the check was asked about (`check --database`, `migrate`) must also be 13 or newer."""
    errors = []
    for alias in connections:
        vendor = connections[alias].vendor
        if vendor != "postgresql":
            errors.append(Error(
                f"Database '{alias}' is {vendor}; the online migration engine needs PostgreSQL.",
                hint="Point DATABASE_URL at a PostgreSQL 13+ server.",
                id="migrations_worker.E001",
            ))
        elif alias in (databases or ()):
            problem = version_problem(connections[alias].pg_version)
            if problem:
                errors.append(Error(problem + ".", hint="Upgrade the server, or point "
                                    "DATABASE_URL at a PostgreSQL 13+ server.",
                                    id="migrations_worker.E002"))
    return errors


@register()
def migrations_name_registered_jobs(app_configs=None, **kwargs) -> list[Error]:
    """An EnqueueJob / RequireJob naming a job no app's `jobs` module registers would fail
    half-way through a deploy; read from the migration files, no database needed."""
    known = set(job_names())
    loader = MigrationLoader(None, ignore_no_migrations=True)
    errors = []
    for (app, name), migration in sorted(loader.disk_migrations.items()):
        for operation in operations_of(migration.operations, JobOperation):
            if operation.job_name not in known:
                errors.append(Error(
                    f"migration {app}.{name} names data job {operation.job_name!r} "
                    f"({type(operation).__name__}), which no installed app registers",
                    hint=f"Define it in its app's jobs module with @register; known jobs: "
                         f"{', '.join(sorted(known)) or 'none'}.",
                    id="migrations_worker.E003",
                ))
    return errors


@register()
def expected_standbys_are_well_formed(app_configs=None, **kwargs) -> list[Error]:
    """MIGRATIONS_WORKER["STANDBYS"] (MW_EXPECTED_STANDBYS) is a count or application_names: a
    typo there would otherwise surface as a hold on every run, or as no check at all."""
    try:
        Expected.parse(conf.get("STANDBYS"))
    except InvalidTuning as exc:
        return [Error(str(exc), hint="Set MW_EXPECTED_STANDBYS to a count (\"1\") or to the "
                      "standbys' application_names (\"replica_a,replica_b\").",
                      id="migrations_worker.E004")]
    return []


@register()
def server_limit_is_well_formed(app_configs=None, **kwargs) -> list[Error]:
    """MIGRATIONS_WORKER["SERVER_LIMIT"] (MW_SERVER_LIMIT) is a whole number: a typo there
    would otherwise fail every run's health check."""
    try:
        server_limit()
    except InvalidTuning as exc:
        return [Error(str(exc), hint="Set MW_SERVER_LIMIT to how many databases of one server "
                      "may be migrated at once (\"4\"), or 0 for no limit.",
                      id="migrations_worker.E006")]
    return []


MIGRATE_STAGES = ("all", "pre")


@register()
def migrate_stage_is_known(app_configs=None, **kwargs) -> list[Error]:
    """MIGRATIONS_WORKER["MIGRATE_STAGE"] is "all" or "pre": anything else would leave plain
    `migrate` guessing what a deploy may apply."""
    value = conf.get("MIGRATE_STAGE")
    if value in MIGRATE_STAGES:
        return []
    return [Error(f"MIGRATIONS_WORKER['MIGRATE_STAGE'] is {value!r}; plain `migrate` applies "
                  "\"all\" (every migration in order) or \"pre\" (the pre-deploy stage only)",
                  hint="Set it to \"pre\" where a release step may run plain `migrate` against a "
                       "database the previous release serves from, else leave the default \"all\".",
                  id="migrations_worker.E008")]


@register()
def engine_settings_are_known(app_configs=None, **kwargs) -> list[Error]:
    """Every MIGRATIONS_WORKER key is one the engine reads (conf.DEFAULTS)."""
    return [Error(f"MIGRATIONS_WORKER[{key!r}] is not an engine setting",
                  hint=f"Known settings: {', '.join(sorted(conf.DEFAULTS))} (docs/engine-install.md).",
                  id="migrations_worker.E005")
            for key in conf.unknown_keys()]


@register()
def status_token_is_long_enough(app_configs=None, **kwargs) -> list[Error]:
    """A short MW_STATUS_TOKEN opens the status API to whoever guesses it: refused before any
    command runs (and never accepted by the API, `conf.status_token_problem`)."""
    problem = conf.status_token_problem()
    if not problem:
        return []
    return [Error(problem + ".", hint=f"Make one with: {conf.RANDOM_STRING_COMMAND}",
                  id="migrations_worker.E007")]
