"""The two releases of the application that run during a rolling deploy, as traffic.

- The *previous* release is the backend at its legacy models: the models of each app's
  migration 0001, rebuilt from the migration state (Django's historical models), so its saves
  send exactly what the old code sent: every field of an Asset including `sector` and
  `industry` (sometimes re-classified), and rows naming whatever asset the user is looking at,
  merged-away duplicates included.
- The *new* release is today's models: it knows no `sector`/`industry`, keys alerts by UUID,
  and finds assets by ids it stored earlier (`Asset.objects.resolve`), old ones included.

Each release records every statement's latency, every error (with its SQLSTATE), and what it
wrote, so a test or the demo can check afterwards that nothing it wrote was lost: every text it
wrote is archived, and every row it wrote is there on the survivor of the asset it named, or
was replaced under the merge rules and archived.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.apps import apps as current_apps
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from psycopg import sql

LEGACY_NODES = [("assets", "0001_initial"), ("portfolios", "0001_initial"),
                ("investments", "0001_initial")]


def legacy_models():
    """The previous release's models: each domain app as its migration 0001 left it."""
    state = MigrationLoader(None, ignore_no_migrations=True).project_state(LEGACY_NODES, at_end=True)
    return state.apps


@dataclass
class Traffic:
    """What one release did: per-operation latencies, errors, and the facts it wrote."""

    release: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[dict] = field(default_factory=list)
    # (asset id, "sector" / "industry", value) of every non-empty text written
    texts: list[tuple[int, str, str]] = field(default_factory=list)
    # (table, row id, asset id named) of every row written that names an asset
    rows: list[tuple[str, str, int]] = field(default_factory=list)
    # (portfolio id, asset id named, quantity) of every holding added
    holdings: list[tuple[str, int, str]] = field(default_factory=list)
    # (article id, asset id named) of every news link added
    links: list[tuple[int, int]] = field(default_factory=list)
    resolved: int = 0  # old ids the new release looked up and found
    # When it served (epoch seconds, the wall clock the database's now() reads too): the start
    # of its first operation and the end of its last, so a test can tell what else ran meanwhile.
    served_from: float | None = None
    served_until: float | None = None

    @property
    def statements(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def percentile(self, p: float) -> float:
        values = sorted(x for v in self.latencies.values() for x in v)
        return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else 0.0

    def summary(self) -> dict:
        every = [x for v in self.latencies.values() for x in v]
        return {
            "release": self.release, "statements": self.statements, "errors": len(self.errors),
            "first_errors": self.errors[:5],
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "max_ms": round(max(every, default=0.0) * 1000, 2),
            "operations": {op: len(v) for op, v in sorted(self.latencies.items())},
            "slowest_operation": max(self.latencies, key=lambda op: max(self.latencies[op]),
                                     default=""),
            "texts_written": len(self.texts), "rows_written": len(self.rows) + len(self.links),
            "old_ids_resolved": self.resolved,
            "served_from": self.served_from, "served_until": self.served_until,
        }

    def as_dict(self) -> dict:
        return {**self.summary(), "texts": self.texts, "rows": self.rows,
                "holdings": self.holdings, "links": self.links}


class Release:
    """One release's traffic on this process's database connection. `step()` runs one random
    operation of the release; a database error is recorded, never raised."""

    name = ""

    def __init__(self, seed: int = 1):
        self.random = random.Random(seed)  # noqa: S311 - load shape, not secrets
        self.tag = secrets.token_hex(3)  # new tickers of this process: a rerun makes others
        self.traffic = Traffic(self.name)
        self.counter = 0
        self.operations = [getattr(self, op) for op in self.mix]
        self.pick_targets()

    mix: tuple[str, ...] = ()

    def pick_targets(self) -> None:
        """The ids this release's users have on screen, fixed at start: they go on naming them
        after a merge removed some (the duplicates are among them on purpose)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM assets_asset ORDER BY id")
            self.assets = [r[0] for r in cursor.fetchall()]
            cursor.execute("SELECT a.id FROM assets_asset a WHERE EXISTS (SELECT 1 FROM assets_asset b "
                           "WHERE b.ticker = a.ticker AND b.exchange_id = a.exchange_id AND b.id <> a.id)")
            self.duplicates = [r[0] for r in cursor.fetchall()] or self.assets
            cursor.execute("SELECT id FROM auth_user ORDER BY id LIMIT 500")
            self.users = [r[0] for r in cursor.fetchall()]
            cursor.execute("SELECT id FROM portfolios_portfolio ORDER BY id LIMIT 500")
            self.portfolios = [r[0] for r in cursor.fetchall()]
            cursor.execute("SELECT id FROM investments_newsarticle ORDER BY id LIMIT 500")
            self.articles = [r[0] for r in cursor.fetchall()]
            cursor.execute("SELECT name FROM assets_sector ORDER BY id")
            self.sectors = [r[0] for r in cursor.fetchall()]
            cursor.execute("SELECT id, exchange_id, currency_id FROM assets_asset ORDER BY id LIMIT 1")
            self.listing = cursor.fetchone()

    def asset(self) -> int:
        """Half the time a duplicate (merged away sooner or later), else any asset."""
        return self.random.choice(self.duplicates if self.random.random() < 0.5 else self.assets)

    def unique(self) -> int:
        self.counter += 1
        return self.counter

    def step(self) -> None:
        operation = self.random.choice(self.operations)
        if self.traffic.served_from is None:
            self.traffic.served_from = time.time()
        started = time.monotonic()
        try:
            operation()
        except ObjectDoesNotExist as exc:
            self.traffic.errors.append({"operation": operation.__name__, "sqlstate": "",
                                        "error": f"not found: {exc}"})
        except DatabaseError as exc:
            cause = exc.__cause__ or exc
            self.traffic.errors.append({
                "operation": operation.__name__, "sqlstate": getattr(cause, "sqlstate", None) or "",
                "error": f"{type(exc).__name__}: {exc}".strip()[:300],
            })
        self.traffic.latencies[operation.__name__].append(time.monotonic() - started)
        self.traffic.served_until = time.time()

    def run(self, seconds: float | None = None, pause: float = 0.005,
            stop=lambda: False, serving=lambda: None) -> Traffic:
        """Operations until `stop()` or `seconds`; `serving()` is called once the first is done."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not stop() and (deadline is None or time.monotonic() < deadline):
            self.step()
            if self.traffic.statements == 1:
                serving()
            time.sleep(pause)
        return self.traffic

    # -- what both releases write ---------------------------------------------------------------

    def wrote(self, table: str, row_id, asset_id: int) -> None:
        self.traffic.rows.append((table, str(row_id), asset_id))

    def add_holding(self) -> None:
        asset = self.asset()
        quantity = Decimal(self.random.randint(1, 10_000)) / 100
        holding = self.models.get_model("portfolios", "Holding").objects.create(
            portfolio_id=self.random.choice(self.portfolios), asset_id=asset, quantity=quantity,
            average_cost=Decimal(self.random.randint(100, 100_000)) / 100)
        self.wrote("portfolios_holding", holding.pk, asset)
        self.traffic.holdings.append((str(holding.portfolio_id), asset, str(quantity)))

    def watch(self) -> None:
        asset = self.asset()
        entry = self.models.get_model("investments", "Watchlist").objects.create(
            user_id=self.random.choice(self.users), asset_id=asset, notes=f"{self.name} release")
        self.wrote("investments_watchlist", entry.pk, asset)

    def add_price(self) -> None:
        asset = self.asset()
        price = Decimal(self.random.randint(100, 100_000)) / 100
        row = self.models.get_model("assets", "AssetPricesHistoric").objects.create(
            asset_id=asset, timestamp=timezone.now() + timedelta(microseconds=self.unique()),
            open=price, high=price, low=price, close=price, volume=1)
        self.wrote("assets_assetpriceshistoric", row.pk, asset)

    def link_news(self) -> None:
        """`article.assets.add(asset)`, as the code does: a link row is inserted unless there."""
        asset = self.asset()
        article = self.models.get_model("investments", "NewsArticle")._base_manager.get(
            pk=self.random.choice(self.articles))
        article.assets.add(asset)
        self.traffic.links.append((article.pk, asset))

    def add_benchmark(self) -> None:
        asset = self.asset()
        row = self.models.get_model("portfolios", "Benchmark").objects.create(
            name=f"{self.name} benchmark {self.unique()}", asset_id=asset)
        self.wrote("portfolios_benchmark", row.pk, asset)

    def read_portfolio(self) -> None:
        holdings = self.models.get_model("portfolios", "Holding").objects
        list(holdings.filter(portfolio_id=self.random.choice(self.portfolios))
             .select_related("asset")[:50])



class PreviousRelease(Release):
    """The legacy models: every Asset save carries `sector` and `industry`."""

    name = "previous"
    mix = ("save_asset", "save_asset", "reclassify_asset", "add_asset", "add_holding", "watch",
           "add_alert", "add_price", "link_news", "add_benchmark", "read_portfolio")

    def __init__(self, seed: int = 1):
        self.models = legacy_models()
        super().__init__(seed)

    def save_asset(self, reclassify: bool = False) -> None:
        """Load and save an asset as the old code does (Django: every field, `sector` and
        `industry` included; an update that finds no row inserts it again)."""
        asset = self.models.get_model("assets", "Asset").objects.filter(pk=self.asset()).first()
        if asset is None:
            return  # merged away: the old code's page would say "not found"
        if reclassify:
            asset.sector = self.text()
            asset.industry = self.text() if self.random.random() < 0.5 else asset.industry
        asset.save()
        for name in ("sector", "industry"):
            value = getattr(asset, name)
            if value and value.strip():
                self.traffic.texts.append((asset.pk, name, value))

    def reclassify_asset(self) -> None:
        self.save_asset(reclassify=True)

    def text(self) -> str:
        """A sector name as people type it (case, spaces), or words that match none."""
        if self.sectors and self.random.random() < 0.6:
            name = self.random.choice(self.sectors)
            return self.random.choice([name, name.upper(), f"  {name.lower()} "])
        return f"Reclassified {self.random.randint(1, 40)}"

    def add_asset(self) -> None:
        _, exchange, currency = self.listing
        asset = self.models.get_model("assets", "Asset").objects.create(
            ticker=f"P{self.tag}X{self.unique()}", name="previous release",
            exchange_id=exchange, currency_id=currency, sector=self.text(), industry="")
        self.traffic.texts.append((asset.pk, "sector", asset.sector))

    def add_alert(self) -> None:
        asset = self.asset()
        alert = self.models.get_model("investments", "Alert").objects.create(
            user_id=self.random.choice(self.users), asset_id=asset, condition="above",
            threshold=Decimal(self.random.randint(1, 500)))
        self.wrote("investments_alert", alert.pk, asset)


class NewRelease(Release):
    """Today's models: no legacy text, alerts keyed by UUID, old ids resolved on read."""

    name = "new"
    mix = ("resolve_asset", "save_asset", "add_holding", "watch", "add_alert", "add_price",
           "link_news", "add_benchmark", "read_portfolio")

    def __init__(self, seed: int = 2):
        self.models = current_apps
        super().__init__(seed)

    def resolve_asset(self) -> None:
        self.models.get_model("assets", "Asset").all_objects.resolve(self.asset())
        self.traffic.resolved += 1

    def save_asset(self) -> None:
        asset = self.models.get_model("assets", "Asset").all_objects.filter(pk=self.asset()).first()
        if asset is not None:
            asset.name = f"{asset.name[:180]}"
            asset.save()

    def add_alert(self) -> None:
        asset = self.asset()
        alert = self.models.get_model("investments", "Alert").objects.create(
            user_id=self.random.choice(self.users), asset_id=asset, condition="above",
            threshold=Decimal(self.random.randint(1, 500)))
        self.wrote("investments_alert", alert.legacy_id, asset)


# -- what a deploy must not have lost ------------------------------------------------------------

RESOLVE = "SELECT coalesce((SELECT survivor_id FROM assets_assetalias WHERE asset_id = %s), %s)"
# The tables a release's written rows are looked up in (alerts by their integer id, column "id").
WRITTEN_TABLES = ("portfolios_holding", "investments_watchlist", "assets_assetpriceshistoric",
                  "investments_alert", "portfolios_benchmark")
ROW_ASSET = "SELECT asset_id FROM {} WHERE id = %s"
ARCHIVED_AS_REMOVED = (
    "SELECT (before ->> 'asset_id')::bigint FROM assets_assetmergearchive "
    "WHERE table_name = %s AND row_key = %s AND action = 'removed' ORDER BY id DESC LIMIT 1"
)
TEXT_ARCHIVED = (
    "SELECT EXISTS (SELECT 1 FROM assets_assetlegacytext WHERE asset_id = %s AND field = %s "
    "AND value = %s)"
)
LINK_PRESENT = (
    "SELECT EXISTS (SELECT 1 FROM investments_newsarticle_assets WHERE newsarticle_id = %s "
    "AND asset_id = %s)"
)
POSITIONS = """
SELECT h.portfolio_id::text, a.ticker, a.exchange_id, sum(h.quantity)
FROM portfolios_holding h JOIN assets_asset a ON a.id = h.asset_id
WHERE NOT h.is_deleted GROUP BY 1, 2, 3
"""


def positions(cursor) -> dict[tuple, Decimal]:
    """Live quantity held of each instrument (ticker, exchange) by each portfolio: what a merge
    must keep, whichever duplicate a holding named."""
    cursor.execute(POSITIONS)
    return {(p, t, e): q for p, t, e, q in cursor.fetchall()}


def instruments(cursor) -> dict[int, tuple[str, int]]:
    cursor.execute("SELECT id, ticker, exchange_id FROM assets_asset")
    return {i: (t, e) for i, t, e in cursor.fetchall()}


def superseded(texts: list[list]) -> set[tuple]:
    """The (asset, field, value) texts the release itself replaced: a later write of it put
    another value in the same asset's field."""
    later: dict[tuple, set[str]] = {}
    replaced = set()
    for asset, name, value in reversed(texts):
        if any(other != value for other in later.get((asset, name), ())):
            replaced.add((asset, name, value))
        later.setdefault((asset, name), set()).add(value)
    return replaced


def verify_writes(cursor, traffic: dict) -> dict:
    """How many of a release's writes are still there: every text it wrote archived, every row
    it wrote present on the survivor of the asset it named (or replaced under the merge rules,
    with its before-image archived), every news link present. Missing ones are listed.

    A text the release itself replaced on the same asset and field need not be archived
    (`texts_superseded`): before `assets.0008`'s capture trigger exists nothing archives a
    replaced text, and the job archives what an asset holds, not its history. In a fleet the
    later waves serve the previous release longest before their stage starts, so show it most."""
    missing: list[str] = []
    counts = {"texts_archived": 0, "texts_superseded": 0, "rows_present": 0,
              "rows_replaced_and_archived": 0, "links_present": 0}
    replaced = superseded(traffic["texts"])

    def resolve(asset: int) -> int:
        cursor.execute(RESOLVE, [asset, asset])
        return cursor.fetchone()[0]

    for asset, name, value in traffic["texts"]:
        cursor.execute(TEXT_ARCHIVED, [asset, name, value])
        if cursor.fetchone()[0]:
            counts["texts_archived"] += 1
        elif (asset, name, value) in replaced:
            counts["texts_superseded"] += 1
        else:
            missing.append(f"text {name}={value!r} of asset {asset} not archived")
    for table, row_id, named in traffic["rows"]:
        survivor = resolve(named)
        if table not in WRITTEN_TABLES:
            raise ValueError(f"a written row in an unknown table: {table!r}")
        cursor.execute(sql.SQL(ROW_ASSET).format(sql.Identifier(table)), [int(row_id)])
        row = cursor.fetchone()
        if row is not None and row[0] == survivor:
            counts["rows_present"] += 1
            continue
        cursor.execute(ARCHIVED_AS_REMOVED, [table, row_id])
        archived = cursor.fetchone()
        if row is None and archived is not None and resolve(archived[0]) == survivor:
            counts["rows_replaced_and_archived"] += 1
        else:
            missing.append(f"{table} #{row_id} naming asset {named}: "
                           + (f"on asset {row[0]}, not {survivor}" if row else "gone, not archived"))
    for article, named in traffic["links"]:
        cursor.execute(LINK_PRESENT, [article, resolve(named)])
        if cursor.fetchone()[0]:
            counts["links_present"] += 1
        else:
            missing.append(f"news link {article} -> asset {named} missing")
    return {**counts, "missing": missing}
