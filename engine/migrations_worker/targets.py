"""Targets: the databases the engine migrates, declared in one file, with the environment on top.

Regional databases, large customers' own databases and shards all receive the same fixes, each
online. A target is a Django database alias with a URL and labels (`server`, `region`, ...);
its progress tables live in it, beside the rows they describe, so a batch's data and its
progress still commit in one transaction. Without a file there is one target, the project's
`default` database: a fleet of one, with every command working as it always has.

The file is TOML (`MW_TARGETS_FILE`; the project's settings `load()` it once and take
`databases()` for DATABASES and `labels()` for MIGRATIONS_WORKER["TARGETS"]):

    [targets.eu]
    url = "postgres://app@pg-eu-1:5432/shop"
    labels = { server = "pg-eu-1", region = "eu" }

    [targets.default]                 # optional: labels for the project's own database
    labels = { region = "us" }

`MW_TARGET_<NAME>_URL` in the environment overrides a target's url, so a password need not sit
in a file. A target's `server` label says which PostgreSQL server holds it (health checks and
the per-server limit count by it); without one it is the URL's host and port.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from .exceptions import InvalidTargets

DEFAULT = "default"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
LABEL = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
KEYS = {"url", "labels"}


@dataclass(frozen=True)
class Target:
    """One database the engine migrates: its alias, where it is, and how operators group it."""

    name: str
    url: str | None  # None for `default`: its settings are the project's own DATABASES entry
    labels: Mapping[str, str] = field(default_factory=dict)

    def server(self, settings_dict: Mapping) -> str:
        """The PostgreSQL server this target lives on, for per-server health and limits."""
        return self.labels.get("server") or f"{settings_dict.get('HOST') or 'localhost'}:" \
            f"{settings_dict.get('PORT') or 5432}"


def database_flag(using: str) -> str:
    """What a command an operator is told to run needs to reach the database `using`: '' for
    `default`, else ` --database NAME` (a fleet's halt names `backfill retry JOB --database eu`,
    not a command that would look at the wrong database)."""
    return "" if using == DEFAULT else f" --database {using}"


def env_override(name: str) -> str:
    return f"MW_TARGET_{name.upper()}_URL"


def parse(text: str, environ: Mapping[str, str], source: str = "targets file") -> list[Target]:
    """The targets a file declares, `default` first, each URL overridden from the environment."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidTargets(f"{source} is not valid TOML: {exc}") from exc
    unknown = set(document) - {"targets"}
    if unknown:
        raise InvalidTargets(f"{source}: unknown top-level key(s) {sorted(unknown)}; declare [targets.NAME]")
    declared = document.get("targets", {})
    if not isinstance(declared, dict):
        raise InvalidTargets(f"{source}: 'targets' must be a table of [targets.NAME] entries")
    found = {DEFAULT: Target(DEFAULT, None, {})}
    for name, entry in declared.items():
        found[name] = _target(name, entry, environ, source)
    return [found[DEFAULT], *(found[n] for n in sorted(found) if n != DEFAULT)]


def _target(name: str, entry: object, environ: Mapping[str, str], source: str) -> Target:
    where = f"{source}, target '{name}'"
    if not NAME.match(name):
        raise InvalidTargets(f"{where}: a name is lower-case letters, digits and _ (at most 40), "
                             "starting with a letter")
    if not isinstance(entry, dict) or set(entry) - KEYS:
        raise InvalidTargets(f"{where}: only {sorted(KEYS)} may be set")
    labels = entry.get("labels", {})
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and LABEL.match(k) and isinstance(v, str) for k, v in labels.items()):
        raise InvalidTargets(f"{where}: labels are a table of lower-case names to strings")
    url = environ.get(env_override(name)) or entry.get("url")
    if name == DEFAULT:
        if entry.get("url") or environ.get(env_override(name)):
            raise InvalidTargets(f"{where}: the default database comes from the project's settings "
                                 "(DATABASE_URL); only its labels may be set here")
        return Target(name, None, dict(labels))
    if not isinstance(url, str) or not url:
        raise InvalidTargets(f"{where}: no url (set it in the file or in {env_override(name)})")
    if url.split(":", 1)[0] not in {"postgres", "postgresql"}:
        raise InvalidTargets(f"{where}: the url must be postgres://: the engine runs on PostgreSQL only")
    return Target(name, url, dict(labels))


def load(path: str | Path | None, environ: Mapping[str, str]) -> list[Target]:
    """The targets of the file at `path`; only `default` when there is no file."""
    if not path:
        return [Target(DEFAULT, None, {})]
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidTargets(f"cannot read the targets file {path}: {exc.strerror}") from exc
    return parse(text, environ, source=str(path))


def database_settings(target: Target, default: Mapping) -> dict:
    """A Django DATABASES entry for a target: its URL's connection, the default's options."""
    parts = conninfo_to_dict(target.url or "")
    return {
        **default,
        "NAME": parts.get("dbname", ""),
        "USER": parts.get("user", ""),
        "PASSWORD": parts.get("password", ""),
        "HOST": parts.get("host", ""),
        "PORT": parts.get("port", ""),
        "OPTIONS": {**default.get("OPTIONS", {}),
                    **{k: v for k, v in parts.items()
                       if k not in {"dbname", "user", "password", "host", "port"}}},
        "TEST": {"NAME": f"test_{parts.get('dbname', target.name)}"},
    }


def databases(targets: list[Target], default: Mapping) -> dict[str, dict]:
    """DATABASES for a settings module: `default` as given, and one alias per declared target."""
    return {t.name: dict(default) if t.name == DEFAULT else database_settings(t, default)
            for t in targets}


def labels(targets: list[Target]) -> dict[str, dict[str, str]]:
    """Each target's labels, for the engine's settings (MIGRATIONS_WORKER["TARGETS"])."""
    return {t.name: dict(t.labels) for t in targets}
