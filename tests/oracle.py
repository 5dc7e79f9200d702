"""An independent oracle for the data jobs: what the seeded rows must look like after the whole
online migration, computed in plain Python from a snapshot of the legacy data, by the rules the
design states (docs/design.md, the jobs' docstrings), with none of the jobs' code or SQL.

A bug in a job would show in a chaos run and in the undisturbed run of the same code alike; it
cannot hide from this. Compared by natural keys, on the seeded rows only (rows the application
writes during the deploy are checked by the invariants instead):

- the text archive: every non-empty `sector`/`industry` value of every asset, its outcome
  (matched / unmatched / ambiguous against the live reference rows, ignoring case and
  surrounding spaces) and the matched row;
- assets: the survivors of each (ticker, exchange) (lowest live id, else lowest id), nothing
  else removed, and their links (kept if set, else the unambiguous match);
- holdings: each portfolio's live position in each instrument (quantity summed, cost weighted,
  8 places) on the survivor, and the row kept (the survivor's, else the lowest id); soft-deleted
  holdings moved as they are;
- watchlist entries (one per user and instrument: live first, the survivor's, the lowest id),
  prices (one per instrument and time: the survivor's, the lowest id), news links (one per
  article and instrument), alerts and benchmarks: which row is kept, on which asset.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

PLACES = Decimal("0.00000001")


@dataclass
class Legacy:
    """The seeded data the jobs work on, read before the deploy."""

    # id -> (ticker, exchange, deleted, sector, industry, sector_ref, industry_ref)
    assets: dict[int, tuple] = field(default_factory=dict)
    sectors: dict[int, tuple] = field(default_factory=dict)  # id -> (name, deleted)
    industries: dict[int, tuple] = field(default_factory=dict)
    # id -> (portfolio, asset, quantity, cost, deleted)
    holdings: dict[int, tuple] = field(default_factory=dict)
    watchlist: dict[int, tuple] = field(default_factory=dict)  # id -> (user, asset, deleted)
    prices: dict[int, tuple] = field(default_factory=dict)  # id -> (asset, timestamp)
    news_links: dict[int, tuple] = field(default_factory=dict)  # id -> (article, asset)
    alerts: dict[int, int] = field(default_factory=dict)  # id -> asset
    benchmarks: dict[int, int] = field(default_factory=dict)  # id -> asset


DELETED = "coalesce((to_jsonb(r) ->> 'is_deleted')::boolean, false)"


def snapshot(cursor) -> Legacy:
    def rows(query: str) -> dict:
        cursor.execute(query)
        return {r[0]: (r[1:] if len(r) > 2 else r[1]) for r in cursor.fetchall()}

    return Legacy(
        assets=rows("SELECT id, ticker, exchange_id, is_deleted, sector, industry, sector_ref_id, "
                    "industry_ref_id FROM assets_asset"),
        # At the legacy schema the reference tables have no soft delete yet: every row is live.
        sectors=rows(f"SELECT id, name, {DELETED} FROM assets_sector r"),
        industries=rows(f"SELECT id, name, {DELETED} FROM assets_industry r"),
        holdings=rows("SELECT id, portfolio_id::text, asset_id, quantity, average_cost, is_deleted "
                      "FROM portfolios_holding"),
        watchlist=rows("SELECT id, user_id, asset_id, is_deleted FROM investments_watchlist"),
        prices=rows("SELECT id, asset_id, timestamp FROM assets_assetpriceshistoric"),
        news_links=rows("SELECT id, newsarticle_id, asset_id FROM investments_newsarticle_assets"),
        alerts=rows("SELECT id, asset_id FROM investments_alert"),
        benchmarks=rows("SELECT id, asset_id FROM portfolios_benchmark"),
    )


def normal(text: str) -> str:
    return text.strip().lower()


def survivors(legacy: Legacy) -> dict[int, int]:
    """Asset id -> the id it is merged into (itself when not a duplicate)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for asset, (ticker, exchange, *_rest) in legacy.assets.items():
        groups[(ticker, exchange)].append(asset)
    merged = {}
    for members in groups.values():
        live = [m for m in members if not legacy.assets[m][2]]
        survivor = min(live or members)
        merged.update(dict.fromkeys(members, survivor))
    return merged


def expected(legacy: Legacy) -> dict[str, dict]:
    into = survivors(legacy)
    references = {"sector": legacy.sectors, "industry": legacy.industries}
    texts, links = {}, {}
    for asset, (_t, _e, _d, sector, industry, sector_ref, industry_ref) in legacy.assets.items():
        link = {"sector": sector_ref, "industry": industry_ref}
        for name, value in (("sector", sector), ("industry", industry)):
            if value is None or not value.strip():
                continue
            matches = sorted(r for r, (ref, deleted) in references[name].items()
                             if not deleted and normal(ref) == normal(value))
            outcome = {0: "unmatched", 1: "matched"}.get(len(matches), "ambiguous")
            texts[(asset, name, value)] = (outcome, matches[0] if len(matches) == 1 else None)
            if link[name] is None and len(matches) == 1:
                link[name] = matches[0]
        if into[asset] == asset:
            links[asset] = (link["sector"], link["industry"])

    def keep_one(rows: dict[int, tuple], key, asset_at: int, live_first: bool = False) -> dict:
        """Natural key -> the id kept: live first (if asked), the survivor's, the lowest id."""
        by_key: dict = defaultdict(list)
        for row_id, row in rows.items():
            by_key[key(row)].append(row_id)
        return {natural: min(ids, key=lambda i: (live_first and bool(rows[i][-1]),
                                                 rows[i][asset_at] != into[rows[i][asset_at]], i))
                for natural, ids in by_key.items()}

    positions: dict[tuple, list[int]] = defaultdict(list)
    moved = {}
    for holding, (portfolio, asset, _q, _c, deleted) in legacy.holdings.items():
        if deleted:
            moved[holding] = into[asset]
        else:
            positions[(portfolio, into[asset])].append(holding)
    holdings = {}
    for (portfolio, asset), ids in positions.items():
        quantity = sum((legacy.holdings[i][2] for i in ids), Decimal(0))
        keeper = min(ids, key=lambda i: (legacy.holdings[i][1] != asset, i))
        cost = (sum((legacy.holdings[i][2] * legacy.holdings[i][3] for i in ids), Decimal(0))
                / quantity).quantize(PLACES) if quantity else legacy.holdings[keeper][3]
        holdings[(portfolio, asset)] = (keeper, quantity, cost)
    return {
        "text archive": texts,
        "surviving assets and their links": links,
        "live positions": holdings,
        "soft-deleted holdings moved": moved,
        "watchlist": keep_one(legacy.watchlist, lambda r: (r[0], into[r[1]]), 1, live_first=True),
        "prices": keep_one(legacy.prices, lambda r: (into[r[0]], r[1]), 0),
        "news links": keep_one(legacy.news_links, lambda r: (r[0], into[r[1]]), 1),
        "alerts": {i: into[a] for i, a in legacy.alerts.items()},
        "benchmarks": {i: into[a] for i, a in legacy.benchmarks.items()},
    }


def actual(cursor, legacy: Legacy) -> dict[str, dict]:
    """The same figures, read from the migrated database, for the seeded rows."""

    def rows(query: str, params=None) -> list[tuple]:
        cursor.execute(query, params)
        return cursor.fetchall()

    seeded = {name: list(getattr(legacy, name)) for name in
              ("assets", "holdings", "watchlist", "prices", "news_links", "alerts", "benchmarks")}
    texts = {(a, f, v): (o, m) for a, f, v, o, m in rows(
        "SELECT asset_id, field, value, outcome, matched_id FROM assets_assetlegacytext "
        "WHERE asset_id = ANY(%s)", [seeded["assets"]])}
    holdings = rows("SELECT id, portfolio_id::text, asset_id, quantity, average_cost, is_deleted "
                    "FROM portfolios_holding WHERE id = ANY(%s)", [seeded["holdings"]])
    return {
        "text archive": texts,
        "surviving assets and their links": {i: (s, n) for i, s, n in rows(
            "SELECT id, sector_ref_id, industry_ref_id FROM assets_asset WHERE id = ANY(%s)",
            [seeded["assets"]])},
        "live positions": {(p, a): (i, q, c) for i, p, a, q, c, d in holdings if not d},
        "soft-deleted holdings moved": {i: a for i, _p, a, _q, _c, d in holdings if d},
        "watchlist": {(u, a): i for i, u, a in rows(
            "SELECT id, user_id, asset_id FROM investments_watchlist WHERE id = ANY(%s)",
            [seeded["watchlist"]])},
        "prices": {(a, t): i for i, a, t in rows(
            "SELECT id, asset_id, timestamp FROM assets_assetpriceshistoric WHERE id = ANY(%s)",
            [seeded["prices"]])},
        "news links": {(n, a): i for i, n, a in rows(
            "SELECT id, newsarticle_id, asset_id FROM investments_newsarticle_assets WHERE id = ANY(%s)",
            [seeded["news_links"]])},
        "alerts": dict(rows("SELECT id, asset_id FROM investments_alert WHERE id = ANY(%s)",
                            [seeded["alerts"]])),
        "benchmarks": dict(rows("SELECT id, asset_id FROM portfolios_benchmark WHERE id = ANY(%s)",
                                [seeded["benchmarks"]])),
    }


def differences(want: dict[str, dict], got: dict[str, dict], limit: int = 3) -> list[str]:
    """What differs, per figure: keys missing or extra, values unequal (a few of each)."""
    found = []
    for name, expected_rows in want.items():
        actual_rows = got[name]
        missing = [k for k in expected_rows if k not in actual_rows][:limit]
        extra = [k for k in actual_rows if k not in expected_rows][:limit]
        unequal = [(k, expected_rows[k], actual_rows[k]) for k in expected_rows
                   if k in actual_rows and actual_rows[k] != expected_rows[k]][:limit]
        if missing or extra or unequal:
            found.append(f"{name}: missing {missing}, extra {extra}, unequal (key, want, got) {unequal}")
    return found


def rows_compared(want: dict[str, dict]) -> int:
    return sum(len(rows) for rows in want.values())
