"""The seeded legacy databases every contender starts from, built once per scale and copied.

Each contender works on its own `CREATE DATABASE ... TEMPLATE` copy of the same prepared state,
so none of them benefits from another's work (or suffers from its bloat). The templates:

    bench_seed_<scale>     legacy schema, seeded by seed_demo            (the whole migration)
    bench_alerts_<scale>   ... + investments up to 0005_alert_uuid_expand (uuid column, NULL)
    bench_legacy_<scale>   ... + assets up to 0008 (archive table, text fields retired)
    bench_dedup_<scale>    ... + legacy_columns done, assets up to 0012 (duplicate groups listed)

The migrations that enqueue a job (0005, 0008, 0012) run with the broker unreachable, so the
run they create stays pending; it is then cancelled, and nothing backfills a template behind the
benchmark's back. A template is reused while its marker (a comment on the database naming the
scale and a hash of the migrations, the seed and this file) still matches.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from bench.common import (
    APP_PREPARE,
    ROOT,
    SRC,
    UNREACHABLE_BROKER,
    admin_execute,
    admin_scalar,
    connect,
    django_env,
)
from seed.legacy import LEGACY_TARGETS

# Tables whose seeded rows the result fingerprints compare (the live load adds rows after them).
SEEDED_TABLES = (
    "assets_asset", "assets_assetpriceshistoric", "portfolios_holding", "investments_watchlist",
    "investments_newsarticle_assets", "investments_alert", "investments_alerttrigger",
    "portfolios_benchmark",
)  # fmt: skip


class PrepareError(RuntimeError):
    pass


@dataclass(frozen=True)
class Templates:
    scale: str
    seed: str
    alerts: str
    legacy: str
    dedup: str
    # The highest seeded id per table: rows above it were written by the live load.
    max_ids: dict[str, int]
    alerts_total: int


def _marker(scale: str) -> str:
    """Changes whenever what a template contains could change."""
    digest = hashlib.sha256(scale.encode())
    files = sorted(SRC.glob("*/migrations/*.py"))
    files += sorted((ROOT / "engine" / "migrations_worker" / "migrations").glob("*.py"))
    files += [SRC / "seed" / "dataset.py", SRC / "seed" / "reference.py", Path(__file__)]
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"bench template {scale} {digest.hexdigest()[:16]}"


def exists(name: str) -> bool:
    return bool(admin_scalar("SELECT 1 FROM pg_database WHERE datname = %s", [name]))


def marker_of(name: str) -> str | None:
    return admin_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
    )


def drop(name: str) -> None:
    admin_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create(name: str, template: str | None = None) -> None:
    """An empty database, or a file copy of `template` (which must have no open session)."""
    drop(name)
    if template is None:
        admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    else:
        # FILE_COPY: a plain copy of the files, not ~0.5 GB of WAL to replay.
        admin_execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )


def manage(database: str, *args: str, log: Callable[[str], None] | None = None,
           broker: str = UNREACHABLE_BROKER, application: str = APP_PREPARE,
           timeout: float = 3600) -> str:
    """`manage.py ...` against `database`; by default with the broker unreachable, so the jobs
    a migration enqueues stay pending."""
    if log is not None:
        log(f"  manage.py {' '.join(args)}")
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, capture_output=True, text=True,
        env=django_env(database, broker=broker, application=application),
        timeout=timeout, check=False,
    )
    if done.returncode != 0:
        raise PrepareError(f"manage.py {' '.join(args)} on {database} failed:\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def settle(database: str, marker: str) -> None:
    """Freeze and analyse, so every copy starts with hint bits set and fresh statistics (the
    first contender would otherwise pay for them), then mark the template as complete."""
    with connect(database, APP_PREPARE) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")
    admin_execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        sql.Identifier(database), sql.Literal(marker)))


def ensure_templates(scale: str, *, rebuild: bool, log: Callable[[str], None],
                     seed_only: bool = False, alerts_only: bool = False) -> Templates:
    """The templates of `scale`, built where missing or stale. `seed_only`: just the seeded
    legacy database (what the whole deploy starts from; the scale run needs no other).
    `alerts_only`: that and the alerts template (all bench.profile_engine works on: at xlarge
    the other two would cost a backfill of `legacy_columns` over 1M assets for nothing)."""
    marker = _marker(scale)
    names = {kind: f"bench_{kind}_{scale}" for kind in ("seed", "alerts", "legacy", "dedup")}

    def fresh(kind: str) -> bool:
        return not rebuild and exists(names[kind]) and marker_of(names[kind]) == marker

    if not fresh("seed"):
        log(f"seeding {names['seed']} ({scale})")
        create(names["seed"])
        for app, target in LEGACY_TARGETS:
            manage(names["seed"], "migrate", app, *([target] if target else []), "-v", "0", log=log)
        manage(names["seed"], "seed_demo", "--size", scale, "-v", "1", log=log)
        settle(names["seed"], marker)
        rebuild = True  # everything below derives from it
    if not (seed_only or fresh("alerts")):
        log(f"preparing {names['alerts']}: right after investments.0005_alert_uuid_expand")
        create(names["alerts"], names["seed"])
        manage(names["alerts"], "migrate", "investments", "0005_alert_uuid_expand", "-v", "0", log=log)
        manage(names["alerts"], "backfill", "cancel", "alerts_uuid", log=log)
        settle(names["alerts"], marker)
    if not (seed_only or alerts_only or fresh("legacy")):
        log(f"preparing {names['legacy']}: right after assets.0008_retire_legacy_text_fields")
        create(names["legacy"], names["seed"])
        manage(names["legacy"], "migrate", "assets", "0008_retire_legacy_text_fields", "-v", "0",
               log=log)
        manage(names["legacy"], "backfill", "cancel", "legacy_columns", log=log)
        settle(names["legacy"], marker)
        rebuild = True  # the dedup template derives from it
    if not (seed_only or alerts_only or fresh("dedup")):
        log(f"preparing {names['dedup']}: legacy_columns done, then assets up to 0012")
        create(names["dedup"], names["legacy"])
        manage(names["dedup"], "backfill", "run", "legacy_columns", log=log)
        manage(names["dedup"], "migrate", "assets", "0012_enqueue_ticker_dedup", "-v", "0", log=log)
        manage(names["dedup"], "backfill", "cancel", "ticker_dedup", log=log)
        settle(names["dedup"], marker)
    with connect(names["seed"], APP_PREPARE) as conn:
        max_ids = {
            table: conn.execute(
                sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]
            for table in SEEDED_TABLES
        }
        alerts_total = conn.execute("SELECT count(*) FROM investments_alert").fetchone()[0]
    return Templates(scale=scale, max_ids=max_ids, alerts_total=alerts_total, **names)
