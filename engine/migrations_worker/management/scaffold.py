"""What `manage.py startjob` writes, decided and rendered apart from the command that prints it.

A new data job is four files: the job module in its app's `jobs` package (which the engine
imports by being there), the pre-deploy migration that enqueues it, the post-deploy one that
waits for it, and a test module whose tests fail until the rules are pinned (and the package's
`__init__` when the app has none). Everything is checked before anything is written, and nothing
is ever written over.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from string import Template

from django.apps import AppConfig, apps
from django.db import DatabaseError, connections
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader

from migrations_worker.exceptions import InvalidInput, JobExists
from migrations_worker.job import get_job, job_names
from migrations_worker.lint.catalogue import MAX_IDENTIFIER_BYTES
from migrations_worker.operations import Stage
from migrations_worker.operations.stage import stage_of

TEMPLATES = Path(__file__).resolve().parent / "commands" / "startjob_templates"
ENGINE_APP = "migrations_worker"
JOB_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")  # a module name, and a class name once camel-cased
MAX_JOB_NAME = 60  # the files that name it stay within the line length
# An unquoted PostgreSQL identifier that means itself: lower case, as Django names tables.
SQL_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")

POST_PARENT_EXCUSE = '''
# TODO(startjob): confirm this: the migration it depends on shipped in an earlier release (whose
# post-deploy stage ended before this release's pre-deploy stage starts). If it ships with this
# release, make this migration post-deploy too and remove this excuse.
LINT_EXCEPTIONS = {
    "pre-deploy-depends-on-post-deploy":
    "$parent is a post-deploy migration of an earlier release, applied when "
    "that release's rollout ended, before this release's pre-deploy stage runs",
}
'''


def class_name(job_name: str) -> str:
    """`fill_alert_uuid` -> `FillAlertUuid`: file, `name` and class agree (STYLE.md, Jobs)."""
    return "".join(part.title() for part in job_name.split("_"))


def check_job_name(name: str) -> None:
    if not JOB_NAME.match(name) or keyword.iskeyword(name) or "__" in name:
        raise InvalidInput(f"job name {name!r} is not a lower-case Python identifier (letters, "
                           "digits and single underscores, starting with a letter), e.g. "
                           "backfill_alert_uuid")
    if len(name) > MAX_JOB_NAME:
        raise InvalidInput(f"job name {name!r} is longer than {MAX_JOB_NAME} characters")


def check_sql_name(what: str, name: str) -> None:
    if not SQL_NAME.match(name):
        raise InvalidInput(f"{what} {name!r} is not a lower-case SQL identifier (letters, digits "
                           "and underscores, not starting with a digit)")
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidInput(f"{what} {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes: "
                           "PostgreSQL would truncate it")


def app_named(label: str) -> AppConfig:
    if label == ENGINE_APP:
        raise InvalidInput("the engine holds no job of its own: a job lives in the app that owns "
                           "its table")
    try:
        return apps.get_app_config(label)
    except LookupError:
        known = ", ".join(sorted(a.label for a in apps.get_app_configs()))
        raise InvalidInput(f"unknown app {label!r}; installed apps: {known}") from None


@dataclass(frozen=True)
class Scaffold:
    """The files of one new job, and what its author should know before filling them in."""

    files: dict[Path, str]
    module: Path  # the job's, to fill in
    tests: Path  # its test module, failing until filled in
    warnings: list[str] = field(default_factory=list)

    def write(self) -> None:
        for path, text in self.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x") as out:  # never over a file that appeared since the check
                out.write(text)


def render(template: str, **values: str) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(values)


def migrations_dir(label: str) -> Path:
    module_name, _ = MigrationLoader.migrations_module(label)
    try:
        return Path(import_module(module_name).__file__).parent
    except (ImportError, TypeError):  # no package, or a namespace package without __init__
        raise InvalidInput(f"app {label!r} has no migrations package ({module_name}): run "
                           f"python manage.py makemigrations {label} first") from None


def latest_migration(loader: MigrationLoader, label: str) -> tuple[str, str] | None:
    leaves = loader.graph.leaf_nodes(label)
    if len(leaves) > 1:
        raise InvalidInput(f"app {label!r} has {len(leaves)} latest migrations "
                           f"({', '.join(n for _, n in leaves)}): merge them first "
                           f"(python manage.py makemigrations --merge {label})")
    return leaves[0] if leaves else None


def table_warnings(app: AppConfig, table: str, key: str, database: str) -> list[str]:
    """What about the table looks wrong; none of it stops the scaffold, since the table (or its
    key) may come with a migration of this same deploy."""
    found = []
    if table not in {model._meta.db_table for model in app.get_models()}:
        found.append(f"{table} is not the table of a model of {app.label}: a job lives in the app "
                     "that owns its table")
    connection = connections[database]
    try:
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
            columns = ([c.name for c in connection.introspection.get_table_description(cursor, table)]
                       if table in tables else [])
    except DatabaseError as exc:
        return [*found, f"could not look for table {table} in database {database!r}: {exc}"]
    if table not in tables:
        found.append(f"table {table} is not in database {database!r}: fine if a migration of this "
                     "deploy creates it (before the job's enqueue migration)")
    elif key not in columns:
        found.append(f"table {table} has no column {key}: fine if a migration of this deploy adds it")
    return found


def enqueue_dependencies(parent: tuple[str, str] | None, loader: MigrationLoader) -> str:
    """The app's latest migration and the engine's (whose tables EnqueueJob writes), one a line."""
    nodes = ([parent] if parent else []) + loader.graph.leaf_nodes(ENGINE_APP)
    return "\n".join(f'        ("{label}", "{name}"),' for label, name in nodes)


def plan(label: str, name: str, table: str, key: str, tests_dir: Path, database: str) -> Scaffold:
    """Every file of the new job, or the reason none can be written (before anything is read
    from the database, which only adds warnings)."""
    check_job_name(name)
    check_sql_name("table", table)
    check_sql_name("key", key)
    app = app_named(label)
    if name in job_names():
        raise JobExists(f"a job named {name!r} is registered already "
                        f"({type(get_job(name)).__module__}): choose another name")
    jobs, migrations = Path(app.path) / "jobs", migrations_dir(app.label)
    if (Path(app.path) / "jobs.py").exists():
        raise InvalidInput(f"{app.label} keeps its jobs in one module, jobs.py: make it a package "
                           "first (move it to jobs/__init__.py), then every module in it is a job's")
    loader = MigrationLoader(None, ignore_no_migrations=True)
    parent = latest_migration(loader, app.label)
    number = (MigrationAutodetector.parse_number(parent[1]) or 0) + 1 if parent else 1
    values = {"app": app.label, "name": name, "table": table, "key": key,
              "class_name": class_name(name), "enqueue": f"{number:04d}_enqueue_{name}",
              "require": f"{number + 1:04d}_require_{name}"}
    after_post = parent is not None and stage_of(loader.graph.nodes[parent]) == Stage.POST
    module, tests = jobs / f"{name}.py", tests_dir / f"test_{name}.py"
    files = {
        module: render("job.py-tpl", **values),
        migrations / f"{values['enqueue']}.py": render(
            "enqueue.py-tpl", **values, dependencies=enqueue_dependencies(parent, loader),
            lint_exceptions=Template(POST_PARENT_EXCUSE).substitute(parent=".".join(parent))
            if after_post else ""),
        migrations / f"{values['require']}.py": render("require.py-tpl", **values),
        tests: render("test.py-tpl", **values),
    }
    if not (jobs / "__init__.py").exists():
        files[jobs / "__init__.py"] = render("jobs_init.py-tpl", **values)
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise JobExists(f"{', '.join(existing)} exist(s) already: startjob never writes over a "
                        "file; choose another name or remove them")
    warnings = table_warnings(app, table, key, database)
    if after_post:
        warnings.append(f"{'.'.join(parent)} is post-deploy: {values['enqueue']} excuses depending "
                        "on it (LINT_EXCEPTIONS); confirm it shipped in an earlier release")
    return Scaffold(files, module, tests, warnings)
