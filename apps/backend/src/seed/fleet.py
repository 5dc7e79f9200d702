"""A fleet of seeded legacy databases spread over several PostgreSQL servers, and the targets
file (docs/targets.md) that declares them: what `make demo FLEET=N` and `bench.fleet` roll a
release out across.

Seeding is the slow part (a migrate to the legacy schema, then `seed_demo`), so it is done once
per server, into a template database, and every member of the fleet is a
`CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY` of its server's template: a file copy, a
second or two whatever the size. A template is reused while its marker (a comment on the
database naming the size and a hash of the migrations and the seed) matches, so a second demo
run starts in seconds; members are always fresh copies.

Members alternate between the servers (`<prefix>_01` on the first, `<prefix>_02` on the second,
...) and carry the labels `server = <the server's label>` plus any given (`fleet = "demo"`), so
`fleet rollout --select fleet=demo` takes them and leaves the control database (`default`) out.

    python -m seed.fleet --count 4 --size small --prefix i21demo --targets-file F \\
        --server pg-1=postgres://postgres@127.0.0.1:55432 \\
        --server pg-2=postgres://postgres@127.0.0.1:55434 [--label fleet=demo] [--control NAME]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[4]
SRC = ROOT / "apps" / "backend" / "src"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")  # leaves room for `_template` within a target name
LABEL = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")


def say(message: str) -> None:
    """Progress goes to stderr: stdout is the fleet's listing, read by scripts."""
    print(f"[fleet] {message}", file=sys.stderr, flush=True)


class FleetError(RuntimeError):
    """The fleet could not be made; the message says which database and why."""


@dataclass(frozen=True)
class Server:
    """One PostgreSQL server: the label targets name it by, and its URL without a database."""

    label: str
    url: str

    def database_url(self, database: str) -> str:
        return f"{self.url.rstrip('/')}/{database}"


@dataclass(frozen=True)
class Member:
    name: str  # database name = target name = Django alias
    server: Server
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.database_url(self.name)


def parse_server(text: str) -> Server:
    """`pg-1=postgres://user@host:port` (a URL with a database: the database is dropped)."""
    label, sep, url = text.partition("=")
    if not sep or not LABEL.match(label) or not url.startswith(("postgres://", "postgresql://")):
        raise argparse.ArgumentTypeError(f"give LABEL=postgres://user@host:port, not {text!r}")
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return Server(label, f"{scheme}://{host}")


def admin(server: Server, statement: sql.Composable | str, params=None):
    """A statement on the server's maintenance database (CREATE/DROP DATABASE need autocommit)."""
    with psycopg.connect(server.database_url("postgres"), autocommit=True,
                         application_name="seed.fleet") as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchone() if cursor.description else None


def drop(server: Server, name: str) -> None:
    admin(server, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def copy(server: Server, name: str, template: str) -> None:
    """`name` as a fresh file copy of `template` (which must have no open session)."""
    drop(server, name)
    admin(server, sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
        sql.Identifier(name), sql.Identifier(template)))


def marker(size: str) -> str:
    """Changes whenever what a seeded template holds could change."""
    digest = hashlib.sha256(size.encode())
    files = sorted(SRC.glob("*/migrations/*.py"))
    files += sorted((ROOT / "engine" / "migrations_worker" / "migrations").glob("*.py"))
    files += [SRC / "seed" / name for name in ("dataset.py", "reference.py", "legacy.py")]
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"seed.fleet template {size} {digest.hexdigest()[:16]}"


def marker_of(server: Server, name: str) -> str | None:
    row = admin(server, "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                        "WHERE datname = %s", [name])
    return row[0] if row else None


def manage_env(url: str) -> dict[str, str]:
    """A manage.py process on `url` alone: no targets file (the fleet's own may not exist yet)."""
    env = {key: value for key, value in os.environ.items() if key != "MW_TARGETS_FILE"}
    return {**env, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.dev",
            "DB_APPLICATION_NAME": "seed.fleet"}


def ensure_template(server: Server, name: str, size: str, *, rebuild: bool = False,
                    log: Callable[[str], None] = say) -> bool:
    """The server's seeded legacy template, built unless a complete one of this size is there.
    True when it was built now."""
    wanted = marker(size)
    if not rebuild and marker_of(server, name) == wanted:
        return False
    log(f"seeding template {name} on {server.label} ({size}): legacy schema, then seed_demo")
    drop(server, name)
    admin(server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "demo_prepare", "--size", size], cwd=ROOT,
        env=manage_env(server.database_url(name)), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FleetError(f"seeding {name} on {server.label} failed (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    with psycopg.connect(server.database_url(name), autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")
    admin(server, sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        sql.Identifier(name), sql.Literal(wanted)))
    return True


def members(prefix: str, count: int, servers: list[Server],
            labels: Mapping[str, str] | None = None) -> list[Member]:
    """`count` databases named `<prefix>_01`..., alternating over `servers`."""
    if not NAME.match(prefix):
        raise FleetError(f"prefix {prefix!r}: lower-case letters, digits and _, starting with a "
                         "letter, at most 30 characters (it names databases and targets)")
    if count < 1 or not servers:
        raise FleetError("a fleet has at least one database and one server")
    return [Member(f"{prefix}_{n:02d}", servers[(n - 1) % len(servers)],
                   {"server": servers[(n - 1) % len(servers)].label, **(labels or {})})
            for n in range(1, count + 1)]


def create(fleet: list[Member], size: str, *, template_prefix: str, rebuild: bool = False,
           log: Callable[[str], None] = say) -> dict[str, float]:
    """Seed each server's template (when needed) and copy it into every member. Returns the
    seconds spent seeding and copying."""
    started = time.monotonic()
    servers = list(dict.fromkeys(member.server for member in fleet))
    template = f"{template_prefix}_template"
    for server in servers:
        ensure_template(server, template, size, rebuild=rebuild, log=log)
    seeded = time.monotonic()
    for member in fleet:
        copy(member.server, member.name, template)
    log(f"{len(fleet)} database(s) copied from {template} on {', '.join(s.label for s in servers)}"
        f" in {time.monotonic() - seeded:.1f}s")
    return {"seed": seeded - started, "copy": time.monotonic() - seeded}


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def targets_toml(fleet: Iterable[Member], default_labels: Mapping[str, str] | None = None) -> str:
    """The targets file declaring `fleet` (docs/targets.md)."""
    def inline(labels: Mapping[str, str]) -> str:
        return "{ " + ", ".join(f"{key} = {toml_string(value)}" for key, value in labels.items()) + " }"

    blocks = ["# Written by seed.fleet: the fleet's databases, one target each.\n"]
    if default_labels:
        blocks.append(f"[targets.default]\nlabels = {inline(default_labels)}\n")
    blocks += [f"[targets.{m.name}]\nurl = {toml_string(m.url)}\nlabels = {inline(m.labels)}\n"
               for m in fleet]
    return "\n".join(blocks)


def write_targets(path: Path, fleet: Iterable[Member],
                  default_labels: Mapping[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(targets_toml(fleet, default_labels))
    return path


def drop_all(fleet: Iterable[Member]) -> None:
    for member in fleet:
        drop(member.server, member.name)


def parse_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not LABEL.match(key) or not value:
        raise argparse.ArgumentTypeError(f"give label=value, not {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seed.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, required=True, help="how many databases")
    parser.add_argument("--size", default="small", help="seed_demo's size (default small)")
    parser.add_argument("--prefix", required=True, help="database names: PREFIX_01, PREFIX_02...")
    parser.add_argument("--server", type=parse_server, action="append", required=True,
                        metavar="LABEL=URL", help="a server, in order (repeat for each)")
    parser.add_argument("--label", type=parse_label, action="append", default=[],
                        metavar="KEY=VALUE", help="a label every member carries (repeatable)")
    parser.add_argument("--targets-file", type=Path, required=True)
    parser.add_argument("--control", default=None, metavar="NAME",
                        help="also make this database on the first server, a copy of its "
                             "template: the control database (`default`) of the demo")
    parser.add_argument("--rebuild", action="store_true", help="seed the templates again")
    args = parser.parse_args(argv)
    try:
        fleet = members(args.prefix, args.count, args.server, dict(args.label))
        create(fleet, args.size, template_prefix=args.prefix, rebuild=args.rebuild)
        if args.control:
            copy(args.server[0], args.control, f"{args.prefix}_template")
    except (FleetError, psycopg.Error) as exc:
        print(f"[fleet] {exc}", file=sys.stderr)
        return 1
    write_targets(args.targets_file, fleet, {"server": args.server[0].label})
    for member in fleet:
        print(f"{member.name}\t{member.server.label}\t{member.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
