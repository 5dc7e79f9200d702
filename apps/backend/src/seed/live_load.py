"""The application's typical reads and writes, run against a database while it is migrated.

Written as raw SQL the legacy ORM would send (no column that a migration adds is named), so
the same statements are valid in every phase of the online migration: that is what "old code
keeps working" means. Every statement's latency and error is recorded.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import psycopg


@dataclass
class LoadResult:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    alerts_inserted: list[int] = field(default_factory=list)
    triggers_inserted: int = 0
    assets_inserted: int = 0

    def record(self, op: str, seconds: float) -> None:
        self.latencies.setdefault(op, []).append(seconds)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def max_latency(self) -> float:
        return max((max(v) for v in self.latencies.values() if v), default=0.0)

    def percentile(self, p: float) -> float:
        values = sorted(x for v in self.latencies.values() for x in v)
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(p / 100 * len(values)))]


class LiveLoad(threading.Thread):
    """Runs until stopped: inserts and updates alerts, triggers, holdings, watchlists, assets."""

    def __init__(self, url: str, seed: int = 1, pause: float = 0.005):
        super().__init__(daemon=True)
        self.url = url
        self.pause = pause
        self.random = random.Random(seed)  # noqa: S311 - load shape, not secrets
        self.result = LoadResult()
        self._halt = threading.Event()

    def stop(self) -> LoadResult:
        self._halt.set()
        self.join(timeout=60)
        return self.result

    def _targets(self, conn) -> None:
        # Assets that no merge removes: the load must not race a merge to delete its target.
        rows = conn.execute(
            "SELECT a.id, a.exchange_id, a.currency_id, a.ticker FROM assets_asset a "
            "WHERE NOT EXISTS (SELECT 1 FROM assets_asset b WHERE b.ticker = a.ticker "
            "AND b.exchange_id = a.exchange_id AND b.id <> a.id) ORDER BY a.id LIMIT 500"
        ).fetchall()
        self.assets = rows
        self.users = [r[0] for r in conn.execute("SELECT id FROM auth_user ORDER BY id LIMIT 200")]
        asset_ids = [r[0] for r in rows]
        self.holdings = [r[0] for r in conn.execute(
            "SELECT id FROM portfolios_holding WHERE asset_id = ANY(%s) ORDER BY id LIMIT 500",
            [asset_ids])]
        self.portfolios = [r[0] for r in conn.execute(
            "SELECT DISTINCT portfolio_id FROM portfolios_holding WHERE id = ANY(%s)",
            [self.holdings])]

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            self._targets(conn)
            ops = [self.insert_alert, self.insert_trigger, self.touch_holding,
                   self.insert_watch, self.read_asset, self.read_portfolio, self.insert_asset]
            n = 0
            while not self._halt.is_set():
                op = ops[n % len(ops)]
                n += 1
                started = time.monotonic()
                try:
                    op(conn)
                except psycopg.Error as exc:
                    self.result.errors.append(f"{op.__name__}: {type(exc).__name__}: {exc}")
                self.result.record(op.__name__, time.monotonic() - started)
                time.sleep(self.pause)

    def insert_alert(self, conn) -> None:
        asset = self.random.choice(self.assets)
        row = conn.execute(
            "INSERT INTO investments_alert (user_id, asset_id, condition, threshold, is_active, "
            "created_at) VALUES (%s, %s, 'above', %s, true, now()) RETURNING id",
            [self.random.choice(self.users), asset[0], self.random.randint(1, 500)],
        ).fetchone()
        self.result.alerts_inserted.append(row[0])

    def insert_trigger(self, conn) -> None:
        if not self.result.alerts_inserted:
            return
        conn.execute(
            "INSERT INTO investments_alerttrigger (alert_id, triggered_at, price, notified) "
            "VALUES (%s, now(), 1, false)",
            [self.random.choice(self.result.alerts_inserted)],
        )
        self.result.triggers_inserted += 1

    def touch_holding(self, conn) -> None:
        conn.execute(
            "UPDATE portfolios_holding SET updated_at = now() WHERE id = %s",
            [self.random.choice(self.holdings)],
        )

    def insert_watch(self, conn) -> None:
        conn.execute(
            "INSERT INTO investments_watchlist (created_at, updated_at, is_deleted, user_id, "
            "asset_id, notes) VALUES (now(), now(), false, %s, %s, '')",
            [self.random.choice(self.users), self.random.choice(self.assets)[0]],
        )

    def read_asset(self, conn) -> None:
        _, exchange, _, ticker = self.random.choice(self.assets)
        conn.execute(
            "SELECT id, name FROM assets_asset WHERE ticker = %s AND exchange_id = %s",
            [ticker, exchange],
        ).fetchall()

    def read_portfolio(self, conn) -> None:
        conn.execute(
            "SELECT h.id, h.quantity, a.ticker FROM portfolios_holding h "
            "JOIN assets_asset a ON a.id = h.asset_id WHERE h.portfolio_id = %s",
            [self.random.choice(self.portfolios)],
        ).fetchall()

    def insert_asset(self, conn) -> None:
        _, exchange, currency, _ = self.random.choice(self.assets)
        self.result.assets_inserted += 1
        conn.execute(
            "INSERT INTO assets_asset (created_at, updated_at, is_deleted, ticker, name, "
            "exchange_id, currency_id) VALUES (now(), now(), false, %s, 'load', %s, %s)",
            [f"LD{self.ident % 1000}X{self.result.assets_inserted}", exchange, currency],
        )
