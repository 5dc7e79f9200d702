"""Deterministic demo data for the legacy schema, generated set-based inside PostgreSQL.

Every row is a pure function of (seed, row number): pseudo-random choices come from
`hashint8extended(row, seed * 1000 + salt)`, PostgreSQL's seeded 64-bit integer hash (the one
hash partitioning relies on, which must not change across platforms or upgrades). Nothing reads
the clock or `random()`, so the same seed and sizes give identical rows (users' ids also depend
on existing non-demo users, see below). Each table is one
`INSERT ... SELECT FROM generate_series(...)` with explicit, dense, ascending ids; the identity
sequences are moved past them at the end. The whole seeding is one transaction.

The hard cases the schema fixes meet are planted on purpose (`summarize()` counts them):

* duplicate (ticker, exchange) groups of 2..5 assets, about `dup_fraction` of all assets, some
  members soft-deleted (in some groups the oldest one, in one group all of them), every member
  referenced by exactly one "planted" holding, watchlist entry and news link plus alerts, prices
  on the same days as its siblings, and benchmarks; some portfolios hold two or three members of
  one group, some users watch two, some articles link two (these collide once a group is merged);
  the random rows (holdings, watchlist, news links) use non-duplicate assets only and never
  repeat a (parent, asset) pair, so every collision is one of the planted ones;
* the same ticker listed on another exchange (not a duplicate: must survive the merge);
* `Asset.sector` / `Asset.industry` text that matches a row exactly, differs only in case or
  surrounding spaces, matches nothing, is '' or NULL, or (industry) names two industries of
  different sectors; a few assets already have `sector_ref` / `industry_ref` set.

Users get ids after any existing non-demo user (an admin made by the demo script keeps its id);
demo users are recognised by `USERNAME_PREFIX`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

from django.db import connections, transaction
from psycopg import sql

from . import reference as ref
from .schema import LEGACY_TABLES, SEQUENCED_TABLES, USER_TABLE, SchemaError, check_legacy_schema

USERNAME_PREFIX = "demo_user_"
DEFAULT_SEED = 42
MAX_SEED = 2**40  # seed * 1000 + salt must stay far inside bigint
MAX_ASSETS = 26**5  # tickers are 4 letters, then 5

EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
PRICE_EPOCH = dt.datetime(2024, 1, 1, 21, 0, tzinfo=dt.UTC)  # daily closes from here
YEAR = 365 * 24 * 3600.0


class SeedError(Exception):
    """Seeding refused or impossible; nothing was changed. The message says why."""


# --------------------------------------------------------------------------------------------
# Sizes


@dataclass(frozen=True)
class SeedParams:
    """Row counts to create. `holdings`, `watchlist` and `news_links` are at least the number of
    duplicate assets (each gets one planted row); `prices` are spread evenly over the assets."""

    seed: int = DEFAULT_SEED
    users: int = 200
    assets: int = 2_000
    dup_fraction: float = 0.02
    prices: int = 20_000
    portfolios: int = 400
    holdings: int = 4_000
    watchlist: int = 4_000
    news: int = 1_000
    news_links: int = 2_500
    alerts: int = 20_000
    alert_triggers: int = 4_000


SIZES: dict[str, dict[str, int]] = {
    "small": {
        "users": 200, "assets": 2_000, "prices": 20_000, "portfolios": 400, "holdings": 4_000,
        "watchlist": 4_000, "news": 1_000, "news_links": 2_500, "alerts": 20_000,
        "alert_triggers": 4_000,
    },
    "medium": {
        "users": 500, "assets": 100_000, "prices": 2_000_000, "portfolios": 20_000,
        "holdings": 200_000, "watchlist": 100_000, "news": 20_000, "news_links": 50_000,
        "alerts": 1_000_000, "alert_triggers": 200_000,
    },
    "large": {
        "users": 800, "assets": 200_000, "prices": 4_000_000, "portfolios": 40_000,
        "holdings": 400_000, "watchlist": 200_000, "news": 40_000, "news_links": 100_000,
        "alerts": 2_000_000, "alert_triggers": 400_000,
    },
    # 10x medium, for the by-hand scale run of bench/README.md (about 15 GB on disk).
    "xlarge": {
        "users": 5_000, "assets": 1_000_000, "prices": 20_000_000, "portfolios": 200_000,
        "holdings": 2_000_000, "watchlist": 1_000_000, "news": 200_000, "news_links": 500_000,
        "alerts": 10_000_000, "alert_triggers": 2_000_000,
    },
}  # fmt: skip
COUNT_FIELDS = tuple(f.name for f in fields(SeedParams) if f.name not in ("seed", "dup_fraction"))


def params_for(size: str = "small", seed: int = DEFAULT_SEED, **overrides) -> SeedParams:
    """The preset `size` with `overrides` (None values ignored) applied, validated."""
    if size not in SIZES:
        raise SeedError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    values = {**SIZES[size], **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(values) - {f.name for f in fields(SeedParams)}
    if unknown:
        raise SeedError(f"unknown size option(s): {', '.join(sorted(unknown))}")
    params = replace(SeedParams(), seed=seed, **values)
    Plan(params)  # validates
    return params


def _coprime_stride(n: int) -> int:
    """A step coprime with n, near n / golden ratio, so k * step (mod n) visits n distinct slots."""
    if n <= 2:
        return 1
    step = max(1, int(n * 0.6180339887))
    while math.gcd(step, n) != 1:
        step += 1
    return step


@dataclass(frozen=True)
class Plan:
    """Figures derived from SeedParams, and the query parameters of the generator."""

    params: SeedParams

    def __post_init__(self) -> None:
        p = self.params
        if not 0 <= p.seed < MAX_SEED:
            raise SeedError(f"--seed must be between 0 and {MAX_SEED - 1}, got {p.seed}")
        for name in COUNT_FIELDS:
            if getattr(p, name) < 0:
                raise SeedError(f"--{name.replace('_', '-')} must not be negative")
        for name in ("users", "assets", "portfolios"):
            if getattr(p, name) < 1:
                raise SeedError(f"--{name} must be at least 1")
        if p.users > 99_999:
            raise SeedError("--users must be at most 99999 (usernames have 5 digits)")
        if p.assets > MAX_ASSETS:
            raise SeedError(f"--assets must be at most {MAX_ASSETS}")
        if not 0 <= p.dup_fraction <= 0.5:
            raise SeedError("--dup-fraction must be between 0 and 0.5")
        if p.alert_triggers and not p.alerts:
            raise SeedError("--alert-triggers needs --alerts > 0")
        if p.news_links and not p.news:
            raise SeedError("--news-links needs --news > 0")
        if self.n_members * 2 > p.assets:
            raise SeedError(
                f"{self.n_groups} duplicate groups ({self.n_members} assets) need at least "
                f"{self.n_members * 2} assets; raise --assets or lower --dup-fraction"
            )
        for rows, parents, what in (
            (self.random_holdings, p.portfolios, "--holdings (per portfolio)"),
            (self.random_watchlist, p.users, "--watchlist (per user)"),
            (self.random_links, p.news, "--news-links (per article)"),
        ):
            if parents and rows > parents * self.n_plain:
                raise SeedError(
                    f"{what} exceeds the number of distinct non-duplicate assets; "
                    "raise --assets or the parent count"
                )

    # Duplicate groups: group g has 2 + (g - 1) % 4 members, so sizes 2, 3, 4, 5 take turns.
    @property
    def n_groups(self) -> int:
        p = self.params
        if p.dup_fraction <= 0:
            return 0
        return max(1, round(p.assets * p.dup_fraction / 3.5))

    @property
    def n_members(self) -> int:
        return sum(2 + (g - 1) % 4 for g in range(1, self.n_groups + 1))

    @property
    def n_plain(self) -> int:
        return self.params.assets - self.n_members

    @property
    def random_holdings(self) -> int:
        return max(0, self.params.holdings - self.n_members)

    @property
    def random_watchlist(self) -> int:
        return max(0, self.params.watchlist - self.n_members)

    @property
    def random_links(self) -> int:
        return max(0, self.params.news_links - self.n_members) if self.params.news else 0

    def query_params(self, user_base: int) -> dict:
        p = self.params
        return {
            "s": p.seed * 1000,
            "seed": p.seed,
            "epoch": EPOCH,
            "price_epoch": PRICE_EPOCH,
            "user_base": user_base,
            "user_prefix": USERNAME_PREFIX,
            "n_users": p.users,
            "n_assets": p.assets,
            "n_groups": self.n_groups,
            "n_members": self.n_members,
            "n_plain": self.n_plain,
            "n_prices": p.prices,
            "n_portfolios": p.portfolios,
            "n_holdings_random": self.random_holdings,
            "n_watch_random": self.random_watchlist,
            "n_news": p.news,
            "n_links_random": self.random_links,
            "n_alerts": p.alerts,
            "n_triggers": p.alert_triggers,
            "stride_holdings": _coprime_stride(self.n_plain),
            "stride_watch": _coprime_stride(self.n_plain),
            "stride_links": _coprime_stride(self.n_plain),
            "alert_stride": max(1, p.alerts // self.n_members) if self.n_members else 1,
            "asset_step": 4 * YEAR / p.assets,
            "user_step": 3 * YEAR / p.users,
            "portfolio_step": 3 * YEAR / p.portfolios,
            "holding_step": 2 * YEAR / max(1, p.holdings),
            "watch_step": 2 * YEAR / max(1, p.watchlist),
            "news_step": YEAR / max(1, p.news),
            "alert_step": YEAR / max(1, p.alerts),
            "n_countries": len(ref.COUNTRIES),
            "n_currencies": len(ref.CURRENCIES),
            "n_exchanges": len(ref.EXCHANGES),
            "n_industries": sum(len(industries) for _, industries in ref.SECTORS),
            "n_benchmarks": len(ref.BENCHMARKS),
            "country_iso": [iso for iso, _ in ref.COUNTRIES],
            "country_name": [name for _, name in ref.COUNTRIES],
            "currency_code": [code for code, _ in ref.CURRENCIES],
            "currency_name": [name for _, name in ref.CURRENCIES],
            "sector_name": [name for name, _ in ref.SECTORS],
            "industry_name": [i for _, industries in ref.SECTORS for i in industries],
            "industry_sector": [
                n for n, (_, industries) in enumerate(ref.SECTORS, 1) for _ in industries
            ],
            "exchange_mic": [e[0] for e in ref.EXCHANGES],
            "exchange_name": [e[1] for e in ref.EXCHANGES],
            "exchange_country": [
                [c for c, _ in ref.COUNTRIES].index(e[2]) + 1 for e in ref.EXCHANGES
            ],
            "exchange_currency": [
                [c for c, _ in ref.CURRENCIES].index(e[3]) + 1 for e in ref.EXCHANGES
            ],
            "benchmark_name": ref.BENCHMARKS,
            "unmatched_sector": ref.UNMATCHED_SECTOR_TEXT,
            "unmatched_industry": ref.UNMATCHED_INDUSTRY_TEXT,
            "name_suffix": ref.NAME_SUFFIXES,
            "first_name": ref.FIRST_NAMES,
            "last_name": ref.LAST_NAMES,
            "portfolio_name": ref.PORTFOLIO_NAMES,
            "news_source": ref.NEWS_SOURCES,
            "news_topic": ref.NEWS_TOPICS,
            "watch_note": ref.WATCH_NOTES,
        }


# --------------------------------------------------------------------------------------------
# SQL. Templates are static text: `{name}` placeholders are identifiers (sql.Identifier), and
# `%(name)s` are query parameters. Two macros keep the hashing readable; they are expanded once,
# here, over this module's own constant text:
#   H(expr; salt)  a non-negative bigint, uniform, a pure function of (expr, seed, salt)
#   U(expr; salt)  a float8 in [0, 1), idem

_MACRO_START = re.compile(r"\b([HU])\(")


def _expand(template: str) -> str:
    out: list[str] = []
    pos = 0
    while match := _MACRO_START.search(template, pos):
        kind, depth, split, end = match.group(1), 1, None, match.end()
        while depth:  # find the matching parenthesis and the top-level ';'
            char = template[end]
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == ";" and depth == 1:
                split = end
            end += 1
        if split is None:
            raise AssertionError(f"hash macro without '; salt': {template[match.start():end]}")
        expr, salt = template[match.end() : split], int(template[split + 1 : end - 1])
        hashed = _expand(expr)
        hashed = f"hashint8extended(({hashed})::bigint, %(s)s + {salt})"
        if kind == "H":
            out += [template[pos : match.start()], f"({hashed} & 9223372036854775807)"]
        else:
            out += [
                template[pos : match.start()],
                f"(({hashed} & 4503599627370495)::float8 / 4503599627370496.0)",
            ]
        pos = end
    out.append(template[pos:])
    return "".join(out)


# Temp tables, dropped at the end of the seeding (and before, in case of a leftover).
TMP_MEMBER = "seed_dup_member"
TMP_PLAIN = "seed_plain_asset"

STEPS: list[tuple[str, str]] = [
    (
        "countries",
        """
        INSERT INTO {assets_country} (id, created_at, updated_at, iso_code, name)
        SELECT t.ord, %(epoch)s, %(epoch)s, t.iso, t.name
        FROM unnest(%(country_iso)s::text[], %(country_name)s::text[])
             WITH ORDINALITY AS t(iso, name, ord)
        """,
    ),
    (
        "currencies",
        """
        INSERT INTO {assets_currency} (id, created_at, updated_at, code, name)
        SELECT t.ord, %(epoch)s, %(epoch)s, t.code, t.name
        FROM unnest(%(currency_code)s::text[], %(currency_name)s::text[])
             WITH ORDINALITY AS t(code, name, ord)
        """,
    ),
    (
        "sectors",
        """
        INSERT INTO {assets_sector} (id, created_at, updated_at, name)
        SELECT t.ord, %(epoch)s, %(epoch)s, t.name
        FROM unnest(%(sector_name)s::text[]) WITH ORDINALITY AS t(name, ord)
        """,
    ),
    (
        "industries",
        """
        INSERT INTO {assets_industry} (id, created_at, updated_at, name, sector_id)
        SELECT t.ord, %(epoch)s, %(epoch)s, t.name, t.sector_id
        FROM unnest(%(industry_name)s::text[], %(industry_sector)s::bigint[])
             WITH ORDINALITY AS t(name, sector_id, ord)
        """,
    ),
    (
        "exchanges",
        """
        INSERT INTO {assets_exchange} (id, created_at, updated_at, mic, name, country_id,
                                       currency_id)
        SELECT t.ord, %(epoch)s, %(epoch)s, t.mic, t.name, t.country_id, t.currency_id
        FROM unnest(%(exchange_mic)s::text[], %(exchange_name)s::text[],
                    %(exchange_country)s::bigint[], %(exchange_currency)s::bigint[])
             WITH ORDINALITY AS t(mic, name, country_id, currency_id, ord)
        """,
    ),
    (
        "users",
        """
        INSERT INTO {auth_user} (id, password, last_login, is_superuser, username, first_name,
                                 last_name, email, is_staff, is_active, date_joined)
        SELECT %(user_base)s + i, '!', NULL, false,
               %(user_prefix)s || lpad(i::text, 5, '0'),
               (%(first_name)s::text[])[1 + mod(H(i; 1), cardinality(%(first_name)s::text[]))],
               (%(last_name)s::text[])[1 + mod(H(i; 2), cardinality(%(last_name)s::text[]))],
               %(user_prefix)s || lpad(i::text, 5, '0') || '@example.com',
               false, mod(H(i; 3), 50) <> 0,
               %(epoch)s + make_interval(secs => i * %(user_step)s)
        FROM generate_series(1, %(n_users)s::bigint) AS i
        """,
    ),
    # Duplicate groups: the first n_members assets in a seed-dependent shuffle, dealt out to
    # groups of 2, 3, 4, 5, 2, ... members; in a group, member 1 has the lowest id.
    (
        "duplicate groups (temp)",
        """
        CREATE TEMP TABLE {seed_dup_member} AS
        SELECT grp, asset_id, member_rank, primary_id, group_size,
               row_number() OVER (ORDER BY grp, member_rank) - 1 AS member_idx
        FROM (
            SELECT s.grp, r.asset_id,
                   row_number() OVER (PARTITION BY s.grp ORDER BY r.asset_id) AS member_rank,
                   min(r.asset_id) OVER (PARTITION BY s.grp) AS primary_id,
                   count(*) OVER (PARTITION BY s.grp) AS group_size
            FROM (
                SELECT g AS grp, row_number() OVER (ORDER BY g, m) AS rn
                FROM generate_series(1, %(n_groups)s::bigint) AS g
                CROSS JOIN LATERAL generate_series(1, 2 + mod(g - 1, 4)) AS m
            ) AS s
            JOIN (
                SELECT i AS asset_id, row_number() OVER (ORDER BY H(i; 11), i) AS rn
                FROM generate_series(1, %(n_assets)s::bigint) AS i
            ) AS r USING (rn)
        ) AS dealt
        """,
    ),
    ("index duplicate groups (temp)", "ALTER TABLE {seed_dup_member} ADD PRIMARY KEY (asset_id)"),
    (
        "plain assets (temp)",
        """
        CREATE TEMP TABLE {seed_plain_asset} AS
        SELECT row_number() OVER (ORDER BY i) - 1 AS r, i AS asset_id
        FROM generate_series(1, %(n_assets)s::bigint) AS i
        WHERE NOT EXISTS (SELECT FROM {seed_dup_member} AS m WHERE m.asset_id = i)
        """,
    ),
    ("index plain assets (temp)", "ALTER TABLE {seed_plain_asset} ADD PRIMARY KEY (r)"),
    ("analyze temp tables", "ANALYZE {seed_dup_member}; ANALYZE {seed_plain_asset}"),
    # Tickers: tsrc's 4 letters through a bijective scramble (7919 is coprime with 26^4),
    # 5 letters beyond 26^4 assets. Duplicates copy their group's first member's ticker and
    # exchange; 0.5% of the other assets copy the ticker of the asset before them but sit on the
    # next exchange (a cross-listing, not a duplicate).
    (
        "assets",
        """
        INSERT INTO {assets_asset} (id, created_at, updated_at, is_deleted, deleted_at, ticker,
                                    name, sector, industry, country_id, currency_id,
                                    exchange_id, industry_ref_id, sector_ref_id)
        WITH base AS (
            SELECT i, m.grp, m.member_rank,
                   CASE WHEN m.grp IS NOT NULL THEN m.primary_id
                        WHEN i > 1 AND mod(H(i; 15), 200) = 0 THEN i - 1
                        ELSE i END AS tsrc,
                   CASE WHEN m.grp IS NOT NULL
                            THEN 1 + mod(H(m.primary_id; 13), %(n_exchanges)s)
                        WHEN i > 1 AND mod(H(i; 15), 200) = 0
                            THEN 1 + mod(mod(H(i - 1; 13), %(n_exchanges)s) + 1, %(n_exchanges)s)
                        ELSE 1 + mod(H(i; 13), %(n_exchanges)s) END AS exchange_id,
                   1 + mod(H(i; 21), %(n_industries)s) AS industry_id,
                   CASE WHEN m.grp IS NOT NULL THEN
                            (m.member_rank > 1 AND mod(H(i; 51), 100) < 35)
                            OR (m.member_rank = 1 AND mod(m.grp, 7) = 3)
                            OR (m.grp = 1 AND m.member_rank = 2)
                            OR m.grp = 6
                        ELSE mod(H(i; 51), 1000) < 10 END AS is_deleted,
                   mod(H(i; 31), 100) AS sector_bucket,
                   mod(H(i; 35), 100) AS industry_bucket,
                   mod(H(i; 41), 100) AS ref_bucket,
                   %(epoch)s + make_interval(secs => i * %(asset_step)s) AS created_at
            FROM generate_series(1, %(n_assets)s::bigint) AS i
            LEFT JOIN {seed_dup_member} AS m ON m.asset_id = i
        ), named AS (
            SELECT base.*,
                   CASE WHEN tsrc > 456976 THEN chr(65 + mod((tsrc - 1) / 456976, 26)::int)
                        ELSE '' END
                   || chr(65 + mod(x / 17576, 26)::int) || chr(65 + mod(x / 676, 26)::int)
                   || chr(65 + mod(x / 26, 26)::int) || chr(65 + mod(x, 26)::int) AS ticker
            FROM (
                SELECT base.*,
                       CASE WHEN tsrc > 456976 THEN tsrc - 1
                            ELSE mod((tsrc - 1) * 7919 + 123457, 456976) END AS x
                FROM base
            ) AS base
        )
        SELECT a.i, a.created_at,
               a.created_at + make_interval(mins => mod(H(a.i; 16), 100000)::int),
               a.is_deleted,
               CASE WHEN a.is_deleted
                    THEN a.created_at + make_interval(days => 1 + mod(H(a.i; 17), 400)::int)
               END,
               a.ticker,
               CASE WHEN a.member_rank > 1 AND mod(a.member_rank, 3) = 2 THEN n.name || '.'
                    WHEN a.member_rank > 1 AND mod(a.member_rank, 3) = 0 THEN upper(n.name)
                    ELSE n.name END,
               CASE WHEN a.sector_bucket < 45 THEN sec.name
                    WHEN a.sector_bucket < 60 THEN
                        CASE mod(H(a.i; 32), 5)
                            WHEN 0 THEN upper(sec.name) WHEN 1 THEN lower(sec.name)
                            WHEN 2 THEN '  ' || sec.name WHEN 3 THEN sec.name || ' '
                            ELSE ' ' || lower(sec.name) || '  ' END
                    WHEN a.sector_bucket < 68 THEN
                        (%(unmatched_sector)s::text[])[
                            1 + mod(H(a.i; 33), cardinality(%(unmatched_sector)s::text[]))]
                    WHEN a.sector_bucket < 78 THEN ''
               END,
               CASE WHEN a.industry_bucket < 45 THEN ind.name
                    WHEN a.industry_bucket < 60 THEN
                        CASE mod(H(a.i; 36), 5)
                            WHEN 0 THEN upper(ind.name) WHEN 1 THEN lower(ind.name)
                            WHEN 2 THEN '  ' || ind.name WHEN 3 THEN ind.name || ' '
                            ELSE ' ' || lower(ind.name) || '  ' END
                    WHEN a.industry_bucket < 68 THEN
                        (%(unmatched_industry)s::text[])[
                            1 + mod(H(a.i; 37), cardinality(%(unmatched_industry)s::text[]))]
                    WHEN a.industry_bucket < 78 THEN ''
               END,
               CASE WHEN mod(H(a.i; 18), 100) < 5 THEN NULL ELSE ex.country_id END,
               ex.currency_id,
               ex.id,
               CASE WHEN a.ref_bucket < 5 THEN ind.id END,
               CASE WHEN a.ref_bucket < 8 THEN sec.id END
        FROM named AS a
        CROSS JOIN LATERAL (
            SELECT initcap(lower(a.ticker)) || ' '
                   || (%(name_suffix)s::text[])[
                          1 + mod(H(a.tsrc; 19), cardinality(%(name_suffix)s::text[]))] AS name
        ) AS n
        JOIN {assets_exchange} AS ex ON ex.id = a.exchange_id
        JOIN {assets_industry} AS ind ON ind.id = a.industry_id
        JOIN {assets_sector} AS sec ON sec.id = ind.sector_id
        ORDER BY a.i
        """,
    ),
    # Prices: rows spread evenly over the assets, consecutive daily closes per asset. Members of a
    # duplicate group start on their group's day and share its price level, so siblings have
    # rows on the same timestamps. Amounts are computed in integer millionths (exact, and much
    # cheaper than float-to-numeric conversions).
    (
        "prices",
        """
        INSERT INTO {assets_assetpriceshistoric} (id, timestamp, open, high, low, close, volume,
                                                  asset_id)
        SELECT y.p + 1, y.ts,
               y.o * 0.000001,
               greatest(y.o, y.c) * (1000000 + mod(H(y.p; 64), 10001)) / 1000000 * 0.000001,
               least(y.o, y.c) * (1000000 - mod(H(y.p; 65), 10001)) / 1000000 * 0.000001,
               y.c * 0.000001,
               mod(H(y.p; 67), 5000000),
               y.asset_id
        FROM (
            SELECT z.*, z.c * (990000 + mod(H(z.p; 66), 20001)) / 1000000 AS o
            FROM (
                SELECT x.p, x.asset_id,
                       %(price_epoch)s + make_interval(
                           days => (mod(H(coalesce(m.primary_id, x.asset_id); 61), 5)
                                    + x.p - x.first_row)::int) AS ts,
                       (1000000 + mod(H(coalesce(m.primary_id, x.asset_id); 63), 999000000))
                           * (900000 + mod(H(x.p; 62), 200001)) / 1000000 AS c
                FROM (
                    SELECT p, q + 1 AS asset_id,
                           (q * %(n_prices)s + %(n_assets)s - 1) / %(n_assets)s AS first_row
                    FROM generate_series(0, %(n_prices)s::bigint - 1) AS p
                    CROSS JOIN LATERAL (SELECT p * %(n_assets)s / %(n_prices)s AS q) AS qq
                ) AS x
                LEFT JOIN {seed_dup_member} AS m ON m.asset_id = x.asset_id
            ) AS z
        ) AS y
        """,
    ),
    # Benchmarks 1..3 follow the second member of duplicate groups 1..3 (group 1's is deleted).
    (
        "benchmarks",
        """
        INSERT INTO {portfolios_benchmark} (id, created_at, updated_at, name, asset_id)
        SELECT b.ord, %(epoch)s, %(epoch)s, b.name,
               coalesce(m.asset_id, 1 + mod(H(b.ord; 71), %(n_assets)s))
        FROM unnest(%(benchmark_name)s::text[]) WITH ORDINALITY AS b(name, ord)
        LEFT JOIN {seed_dup_member} AS m
               ON b.ord <= 3 AND m.grp = b.ord AND m.member_rank = 2
        ORDER BY b.ord
        """,
    ),
    (
        "portfolios",
        """
        INSERT INTO {portfolios_portfolio} (id, created_at, updated_at, is_deleted, deleted_at,
                                            name, base_currency_id, benchmark_id, owner_id)
        SELECT md5(%(seed)s::bigint::text || ':portfolio:' || i)::uuid,
               c, c + make_interval(hours => mod(H(i; 85), 5000)::int),
               mod(H(i; 86), 100) < 2,
               CASE WHEN mod(H(i; 86), 100) < 2 THEN c + interval '30 days' END,
               (%(portfolio_name)s::text[])[
                   1 + mod(H(i; 87), cardinality(%(portfolio_name)s::text[]))] || ' #' || i,
               1 + mod(H(i; 82), %(n_currencies)s),
               CASE WHEN mod(H(i; 83), 100) < 60 THEN 1 + mod(H(i; 84), %(n_benchmarks)s) END,
               %(user_base)s + 1 + mod(H(i; 81), %(n_users)s)
        FROM generate_series(1, %(n_portfolios)s::bigint) AS i
        CROSS JOIN LATERAL (
            SELECT %(epoch)s + interval '1 year' + make_interval(secs => i * %(portfolio_step)s)
        ) AS t(c)
        ORDER BY i
        """,
    ),
    # Holdings: one planted row per duplicate member (odd groups: members 1 and 2, and 3 in
    # groups 3, 11, ..., in one portfolio: they collide when merged), then random rows over
    # non-duplicate assets, distinct per portfolio.
    (
        "holdings",
        """
        INSERT INTO {portfolios_holding} (id, created_at, updated_at, is_deleted, deleted_at,
                                          quantity, average_cost, asset_id, portfolio_id)
        WITH planted AS (
            SELECT CASE WHEN mod(m.grp, 2) = 1 AND (m.member_rank <= 2
                                                  OR (mod(m.grp, 8) = 3 AND m.member_rank = 3))
                        THEN 1 + mod(H(m.grp; 91), %(n_portfolios)s)
                        ELSE 1 + mod(H(m.asset_id; 92), %(n_portfolios)s) END AS pidx,
                   m.asset_id
            FROM {seed_dup_member} AS m
        ), rnd AS (
            SELECT 1 + mod(q, %(n_portfolios)s) AS pidx, pl.asset_id
            FROM generate_series(0, %(n_holdings_random)s::bigint - 1) AS q
            JOIN {seed_plain_asset} AS pl
              ON pl.r = mod(mod(H(mod(q, %(n_portfolios)s); 93), %(n_plain)s)
                            + (q / %(n_portfolios)s) * %(stride_holdings)s, %(n_plain)s)
        ), numbered AS (
            SELECT row_number() OVER (ORDER BY H(pidx * 1000003 + asset_id; 94), pidx, asset_id)
                       AS n,
                   pidx, asset_id
            FROM (SELECT * FROM planted UNION ALL SELECT * FROM rnd) AS u
        )
        SELECT n, c, c + make_interval(hours => mod(H(n; 95), 5000)::int),
               mod(H(n; 96), 100) < 3,
               CASE WHEN mod(H(n; 96), 100) < 3 THEN c + interval '60 days' END,
               (1 + mod(H(n; 97), 10000000)) * 0.001,
               (100 + mod(H(n; 98), 10000000)) * 0.0001,
               asset_id,
               md5(%(seed)s::bigint::text || ':portfolio:' || pidx)::uuid
        FROM numbered
        CROSS JOIN LATERAL (
            SELECT %(epoch)s + interval '2 years' + make_interval(secs => n * %(holding_step)s)
        ) AS t(c)
        ORDER BY n
        """,
    ),
    # Watchlist: as holdings, per user (groups 1, 4, 7, ...: one user watches members 1 and 2).
    (
        "watchlist",
        """
        INSERT INTO {investments_watchlist} (id, created_at, updated_at, is_deleted, deleted_at,
                                             notes, asset_id, user_id)
        WITH planted AS (
            SELECT CASE WHEN mod(m.grp, 3) = 1 AND m.member_rank <= 2
                        THEN 1 + mod(H(m.grp; 131), %(n_users)s)
                        ELSE 1 + mod(H(m.asset_id; 132), %(n_users)s) END AS uidx,
                   m.asset_id
            FROM {seed_dup_member} AS m
        ), rnd AS (
            SELECT 1 + mod(q, %(n_users)s) AS uidx, pl.asset_id
            FROM generate_series(0, %(n_watch_random)s::bigint - 1) AS q
            JOIN {seed_plain_asset} AS pl
              ON pl.r = mod(mod(H(mod(q, %(n_users)s); 133), %(n_plain)s)
                            + (q / %(n_users)s) * %(stride_watch)s, %(n_plain)s)
        ), numbered AS (
            SELECT row_number() OVER (ORDER BY H(uidx * 1000003 + asset_id; 134), uidx, asset_id)
                       AS n,
                   uidx, asset_id
            FROM (SELECT * FROM planted UNION ALL SELECT * FROM rnd) AS u
        )
        SELECT n, c, c, mod(H(n; 136), 100) < 3,
               CASE WHEN mod(H(n; 136), 100) < 3 THEN c + interval '10 days' END,
               (%(watch_note)s::text[])[1 + mod(H(n; 137), cardinality(%(watch_note)s::text[]))],
               asset_id,
               %(user_base)s + uidx
        FROM numbered
        CROSS JOIN LATERAL (
            SELECT %(epoch)s + interval '2 years' + make_interval(secs => n * %(watch_step)s)
        ) AS t(c)
        ORDER BY n
        """,
    ),
    (
        "news articles",
        """
        INSERT INTO {investments_newsarticle} (id, created_at, updated_at, title, url, source,
                                               published_at)
        SELECT i, pub + interval '5 minutes', pub + interval '5 minutes',
               'Market wrap #' || i || ': '
                   || (%(news_topic)s::text[])[
                          1 + mod(H(i; 121), cardinality(%(news_topic)s::text[]))],
               'https://news.example.com/articles/' || i,
               (%(news_source)s::text[])[1 + mod(H(i; 122), cardinality(%(news_source)s::text[]))],
               pub
        FROM generate_series(1, %(n_news)s::bigint) AS i
        CROSS JOIN LATERAL (
            SELECT %(epoch)s + interval '3 years' + make_interval(secs => i * %(news_step)s)
        ) AS t(pub)
        ORDER BY i
        """,
    ),
    # News links, ids in (article, asset) order (groups 1, 5, 9, ...: one article links members
    # 1 and 2).
    (
        "news links",
        """
        INSERT INTO {investments_newsarticle_assets} (id, newsarticle_id, asset_id)
        WITH planted AS (
            SELECT CASE WHEN mod(m.grp, 4) = 1 AND m.member_rank <= 2
                        THEN 1 + mod(H(m.grp; 141), %(n_news)s)
                        ELSE 1 + mod(H(m.asset_id; 142), %(n_news)s) END AS article_id,
                   m.asset_id
            FROM {seed_dup_member} AS m
            WHERE %(n_news)s > 0
        ), rnd AS (
            SELECT 1 + mod(q, %(n_news)s) AS article_id, pl.asset_id
            FROM generate_series(0, %(n_links_random)s::bigint - 1) AS q
            JOIN {seed_plain_asset} AS pl
              ON pl.r = mod(mod(H(mod(q, %(n_news)s); 143), %(n_plain)s)
                            + (q / %(n_news)s) * %(stride_links)s, %(n_plain)s)
        )
        SELECT row_number() OVER (ORDER BY article_id, asset_id), article_id, asset_id
        FROM (SELECT * FROM planted UNION ALL SELECT * FROM rnd) AS u
        ORDER BY 1
        """,
    ),
    # Alerts: every alert_stride-th alert (while they last) is on the next duplicate member, so
    # every member has one; the rest are on any asset, deleted ones included.
    (
        "alerts",
        """
        INSERT INTO {investments_alert} (id, condition, threshold, is_active, created_at,
                                         asset_id, user_id)
        SELECT j,
               CASE WHEN mod(H(j; 101), 2) = 0 THEN 'above' ELSE 'below' END,
               (100 + mod(H(j; 102), 100000000)) * 0.00001,
               mod(H(j; 103), 100) < 80,
               %(epoch)s + interval '3 years' + make_interval(secs => j * %(alert_step)s),
               coalesce(m.asset_id, 1 + mod(H(j; 104), %(n_assets)s)),
               %(user_base)s + 1 + mod(H(j; 105), %(n_users)s)
        FROM generate_series(1, %(n_alerts)s::bigint) AS j
        LEFT JOIN {seed_dup_member} AS m
               ON mod(j - 1, %(alert_stride)s) = 0
              AND m.member_idx = (j - 1) / %(alert_stride)s
        """,
    ),
    # Alert triggers: after their alert's creation; trigger 1 is on alert 1 (a duplicate's).
    (
        "alert triggers",
        """
        INSERT INTO {investments_alerttrigger} (id, triggered_at, price, notified, alert_id)
        SELECT t,
               %(epoch)s + interval '3 years' + make_interval(secs => a * %(alert_step)s)
                   + make_interval(hours => 1 + mod(H(t; 112), 720)::int),
               (100 + mod(H(t; 113), 100000000)) * 0.00001,
               mod(H(t; 114), 100) < 90,
               a
        FROM generate_series(1, %(n_triggers)s::bigint) AS t
        CROSS JOIN LATERAL (
            SELECT CASE WHEN t = 1 THEN 1 ELSE 1 + mod(H(t; 111), %(n_alerts)s) END
        ) AS x(a)
        """,
    ),
]

_TEMP_TABLES = (TMP_MEMBER, TMP_PLAIN)
SEEDED_TABLES = (*LEGACY_TABLES, USER_TABLE)
_IDENTIFIERS = {name: sql.Identifier(name) for name in (*LEGACY_TABLES, USER_TABLE)}
_IDENTIFIERS.update({name: sql.Identifier(name) for name in _TEMP_TABLES})
_COMPILED_STEPS: list[tuple[str, sql.Composed]] = [
    (label, sql.SQL(_expand(template)).format(**_IDENTIFIERS)) for label, template in STEPS
]


# --------------------------------------------------------------------------------------------
# Running


def _render(cursor, query: sql.Composable) -> str:
    return query.as_string(cursor.connection)


def _execute(cursor, query: sql.Composable, params=None) -> None:
    cursor.execute(_render(cursor, query), params)


def _demo_user_filter() -> sql.Composed:
    return sql.SQL("left(username, {n}) = {prefix}").format(
        n=sql.Literal(len(USERNAME_PREFIX)), prefix=sql.Literal(USERNAME_PREFIX)
    )


def tables_with_data(cursor) -> list[str]:
    """The legacy domain tables that have rows, plus auth_user if it has demo users."""
    probes = [
        sql.SQL("SELECT {name} WHERE EXISTS (SELECT FROM {table})").format(
            name=sql.Literal(table), table=sql.Identifier(table)
        )
        for table in LEGACY_TABLES
    ]
    probes.append(
        sql.SQL("SELECT {name} WHERE EXISTS (SELECT FROM {table} WHERE {demo})").format(
            name=sql.Literal(f"{USER_TABLE} (demo users)"),
            table=sql.Identifier(USER_TABLE),
            demo=_demo_user_filter(),
        )
    )
    _execute(cursor, sql.SQL(" UNION ALL ").join(probes))
    return [name for (name,) in cursor.fetchall()]


def _reset(cursor) -> None:
    """Empty the domain tables and remove the demo users (with their group/permission rows)."""
    _execute(
        cursor,
        sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in LEGACY_TABLES)
        ),
    )
    demo_ids = sql.SQL("SELECT id FROM {user} WHERE {demo}").format(
        user=sql.Identifier(USER_TABLE), demo=_demo_user_filter()
    )
    for table in ("auth_user_groups", "auth_user_user_permissions"):
        _execute(
            cursor,
            sql.SQL("DELETE FROM {t} WHERE user_id IN ({ids})").format(
                t=sql.Identifier(table), ids=demo_ids
            ),
        )
    _execute(
        cursor,
        sql.SQL("DELETE FROM {user} WHERE {demo}").format(
            user=sql.Identifier(USER_TABLE), demo=_demo_user_filter()
        ),
    )


def _user_base(cursor) -> int:
    _execute(
        cursor,
        sql.SQL("SELECT coalesce(max(id), 0) FROM {user} WHERE NOT ({demo})").format(
            user=sql.Identifier(USER_TABLE), demo=_demo_user_filter()
        ),
    )
    return cursor.fetchone()[0]


def _drop_temp_tables(cursor) -> None:
    for name in _TEMP_TABLES:
        _execute(cursor, sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(name)))


def _sync_sequences(cursor) -> None:
    """Move every identity sequence past the explicit ids the seed wrote."""
    for table in SEQUENCED_TABLES:
        _execute(
            cursor,
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 1), "
                "max(id) IS NOT NULL) FROM {table}"
            ).format(table=sql.Identifier(table)),
            [_render(cursor, sql.Identifier(table))],
        )


def _may_skip_fk_triggers(cursor) -> bool:
    """Whether this role may switch off FK triggers for the session (superusers only)."""
    cursor.execute("SELECT current_setting('is_superuser') = 'on'")
    return cursor.fetchone()[0]


def _check_foreign_keys(cursor) -> None:
    """Set-based check of every foreign key of the seeded tables: one anti-join per key.

    Used instead of the row-by-row RI triggers (millions of queued events, most of the seeding
    time) when they were switched off for the bulk insert.
    """
    cursor.execute(
        """
        SELECT c.conname, child.relname, a.attname, parent.relname, pa.attname
        FROM pg_constraint c
        JOIN pg_class child ON child.oid = c.conrelid
        JOIN pg_class parent ON parent.oid = c.confrelid
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
        WHERE c.contype = 'f'
          AND child.relnamespace = current_schema()::regnamespace
          AND child.relname = ANY(%s)
        ORDER BY 1
        """,
        [list(SEEDED_TABLES)],
    )
    broken = []
    for name, child, column, parent, parent_column in cursor.fetchall():
        _execute(
            cursor,
            sql.SQL(
                "SELECT count(*) FROM {child} AS c WHERE c.{column} IS NOT NULL AND NOT EXISTS "
                "(SELECT FROM {parent} AS p WHERE p.{parent_column} = c.{column})"
            ).format(
                child=sql.Identifier(child),
                column=sql.Identifier(column),
                parent=sql.Identifier(parent),
                parent_column=sql.Identifier(parent_column),
            ),
        )
        orphans = cursor.fetchone()[0]
        if orphans:
            broken.append(f"{name}: {orphans} {child}.{column} not in {parent}.{parent_column}")
    if broken:
        raise SeedError("generated rows break foreign keys (a bug in the seed):\n" + "\n".join(broken))


def seed_database(
    params: SeedParams,
    *,
    reset: bool = False,
    using: str = "default",
    progress: Callable[[str, float], None] | None = None,
) -> dict:
    """Fill the legacy database `using` in one transaction; return `summarize()` plus timings.

    Raises SchemaError (not migrated / past the legacy state) or SeedError (data present and no
    `reset`, bad sizes) before changing anything.
    """
    plan = Plan(params)
    connection = connections[using]
    started = time.monotonic()
    timings: dict[str, float] = {}

    def timed(label: str, started_at: float) -> None:
        timings[label] = time.monotonic() - started_at
        if progress:
            progress(label, timings[label])

    with transaction.atomic(using=using), connection.cursor() as cursor:
        check_legacy_schema(cursor)
        present = tables_with_data(cursor)
        if present and not reset:
            raise SeedError(
                "Refusing to seed: the database already has data in "
                + ", ".join(present)
                + ". Pass --reset to empty the domain tables (and remove the demo users) first."
            )
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL statement_timeout = 0")  # an offline bulk load, not a request
        # FK checks still queued by earlier writes of an enclosing transaction would make
        # TRUNCATE fail ("pending trigger events"): run them now.
        connection.check_constraints()
        if reset:
            step_start = time.monotonic()
            _reset(cursor)
            timed("reset", step_start)
        _drop_temp_tables(cursor)
        query_params = plan.query_params(_user_base(cursor))
        # Bulk load without the per-row RI triggers when allowed (as pg_restore
        # --disable-triggers does), then check every key set-based below. The legacy tables
        # have no other triggers (check_legacy_schema refuses any).
        skip_fk_triggers = _may_skip_fk_triggers(cursor)
        if skip_fk_triggers:
            cursor.execute("SET LOCAL session_replication_role = replica")
        for label, query in _COMPILED_STEPS:
            step_start = time.monotonic()
            _execute(cursor, query, query_params)
            timed(label, step_start)
        step_start = time.monotonic()
        _drop_temp_tables(cursor)
        _sync_sequences(cursor)
        if skip_fk_triggers:
            cursor.execute("SET LOCAL session_replication_role = origin")
            _check_foreign_keys(cursor)
        else:
            connection.check_constraints()  # the queued FK checks, here rather than at COMMIT
        timed("foreign key checks", step_start)
        step_start = time.monotonic()
        for table in SEEDED_TABLES:
            _execute(cursor, sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        timed("analyze", step_start)
        summary = summarize(using=using)
    summary["params"] = asdict(params)
    summary["timings"] = {k: round(v, 3) for k, v in timings.items()}
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


# --------------------------------------------------------------------------------------------
# Summary: measured on the database, not taken from the plan, so it also checks the result.

TABLE_LABELS = {
    "countries": "assets_country",
    "currencies": "assets_currency",
    "sectors": "assets_sector",
    "industries": "assets_industry",
    "exchanges": "assets_exchange",
    "assets": "assets_asset",
    "prices": "assets_assetpriceshistoric",
    "benchmarks": "portfolios_benchmark",
    "portfolios": "portfolios_portfolio",
    "holdings": "portfolios_holding",
    "watchlist": "investments_watchlist",
    "news_articles": "investments_newsarticle",
    "news_links": "investments_newsarticle_assets",
    "alerts": "investments_alert",
    "alert_triggers": "investments_alerttrigger",
}

_HARD_CASES_SQL = """
WITH dup_key AS (
    SELECT ticker, exchange_id, count(*) AS size,
           count(*) FILTER (WHERE is_deleted) AS deleted,
           bool_or(is_deleted AND id = lowest) AS lowest_deleted
    FROM (SELECT *, min(id) OVER (PARTITION BY ticker, exchange_id) AS lowest
          FROM {assets_asset}) AS a
    GROUP BY ticker, exchange_id
    HAVING count(*) > 1
), dup AS (
    SELECT a.id, a.is_deleted, dense_rank() OVER (ORDER BY a.ticker, a.exchange_id) AS grp
    FROM {assets_asset} AS a JOIN dup_key USING (ticker, exchange_id)
), sector_names AS (
    SELECT lower(name) AS key, count(*) AS n FROM {assets_sector} GROUP BY 1
), industry_names AS (
    SELECT lower(name) AS key, count(*) AS n FROM {assets_industry} GROUP BY 1
), texts AS (
    SELECT a.sector, a.industry,
           EXISTS (SELECT FROM {assets_sector} s WHERE s.name = a.sector) AS sector_exact,
           sn.n AS sector_ci,
           EXISTS (SELECT FROM {assets_industry} i WHERE i.name = a.industry) AS industry_exact,
           inn.n AS industry_ci,
           a.sector_ref_id, a.industry_ref_id
    FROM {assets_asset} AS a
    LEFT JOIN sector_names AS sn ON sn.key = lower(btrim(a.sector))
    LEFT JOIN industry_names AS inn ON inn.key = lower(btrim(a.industry))
)
SELECT
    (SELECT count(*) FROM dup_key) AS dup_groups,
    (SELECT count(*) FROM dup_key WHERE size = 2) AS dup_groups_size_2,
    (SELECT count(*) FROM dup_key WHERE size = 3) AS dup_groups_size_3,
    (SELECT count(*) FROM dup_key WHERE size = 4) AS dup_groups_size_4,
    (SELECT count(*) FROM dup_key WHERE size = 5) AS dup_groups_size_5,
    (SELECT count(*) FROM dup_key WHERE size > 5) AS dup_groups_size_over_5,
    (SELECT count(*) FROM dup) AS dup_assets,
    (SELECT count(*) FROM dup WHERE is_deleted) AS dup_assets_soft_deleted,
    (SELECT count(*) FROM dup_key WHERE lowest_deleted) AS dup_groups_lowest_id_deleted,
    (SELECT count(*) FROM dup_key WHERE deleted = size) AS dup_groups_all_deleted,
    (SELECT count(*) FROM {assets_asset} WHERE is_deleted) AS assets_soft_deleted,
    (SELECT count(*) FROM (SELECT ticker FROM {assets_asset} GROUP BY ticker
                           HAVING count(DISTINCT exchange_id) > 1) AS t)
        AS tickers_on_several_exchanges,
    (SELECT count(*) FROM {portfolios_holding} h JOIN dup ON dup.id = h.asset_id)
        AS holdings_on_dup_assets,
    (SELECT count(*) FROM (SELECT h.portfolio_id, dup.grp FROM {portfolios_holding} h
                           JOIN dup ON dup.id = h.asset_id GROUP BY 1, 2
                           HAVING count(DISTINCT h.asset_id) > 1) AS t)
        AS portfolios_holding_two_dups,
    (SELECT count(*) FROM (SELECT portfolio_id, asset_id FROM {portfolios_holding}
                           GROUP BY 1, 2 HAVING count(*) > 1) AS t)
        AS holdings_repeated_pairs,
    (SELECT count(*) FROM {investments_watchlist} w JOIN dup ON dup.id = w.asset_id)
        AS watchlist_on_dup_assets,
    (SELECT count(*) FROM (SELECT w.user_id, dup.grp FROM {investments_watchlist} w
                           JOIN dup ON dup.id = w.asset_id GROUP BY 1, 2
                           HAVING count(DISTINCT w.asset_id) > 1) AS t)
        AS users_watching_two_dups,
    (SELECT count(*) FROM {assets_assetpriceshistoric} p JOIN dup ON dup.id = p.asset_id)
        AS prices_on_dup_assets,
    (SELECT count(*) FROM (SELECT p.timestamp, dup.grp FROM {assets_assetpriceshistoric} p
                           JOIN dup ON dup.id = p.asset_id GROUP BY 1, 2
                           HAVING count(DISTINCT p.asset_id) > 1) AS t)
        AS price_timestamps_shared_by_dups,
    (SELECT count(*) FROM {investments_alert} al JOIN dup ON dup.id = al.asset_id)
        AS alerts_on_dup_assets,
    (SELECT count(*) FROM {investments_alerttrigger} tr
     JOIN {investments_alert} al ON al.id = tr.alert_id JOIN dup ON dup.id = al.asset_id)
        AS triggers_on_dup_alerts,
    (SELECT count(DISTINCT alert_id) FROM {investments_alerttrigger}) AS alerts_with_triggers,
    (SELECT count(*) FROM {investments_newsarticle_assets} l JOIN dup ON dup.id = l.asset_id)
        AS news_links_on_dup_assets,
    (SELECT count(*) FROM (SELECT l.newsarticle_id, dup.grp
                           FROM {investments_newsarticle_assets} l
                           JOIN dup ON dup.id = l.asset_id GROUP BY 1, 2
                           HAVING count(*) > 1) AS t)
        AS articles_linking_two_dups,
    (SELECT count(*) FROM {portfolios_benchmark} b JOIN dup ON dup.id = b.asset_id)
        AS benchmarks_on_dup_assets,
    count(*) FILTER (WHERE sector_exact) AS sector_text_exact,
    count(*) FILTER (WHERE NOT sector_exact AND sector_ci = 1) AS sector_text_case_or_space,
    count(*) FILTER (WHERE sector_ci > 1) AS sector_text_ambiguous,
    count(*) FILTER (WHERE sector_ci IS NULL AND btrim(sector) <> '') AS sector_text_unmatched,
    count(*) FILTER (WHERE btrim(sector) = '') AS sector_text_empty,
    count(*) FILTER (WHERE sector IS NULL) AS sector_text_null,
    count(*) FILTER (WHERE industry_exact AND industry_ci = 1) AS industry_text_exact,
    count(*) FILTER (WHERE NOT industry_exact AND industry_ci = 1)
        AS industry_text_case_or_space,
    count(*) FILTER (WHERE industry_ci > 1) AS industry_text_ambiguous,
    count(*) FILTER (WHERE industry_ci IS NULL AND btrim(industry) <> '')
        AS industry_text_unmatched,
    count(*) FILTER (WHERE btrim(industry) = '') AS industry_text_empty,
    count(*) FILTER (WHERE industry IS NULL) AS industry_text_null,
    count(*) FILTER (WHERE sector_ref_id IS NOT NULL) AS sector_ref_set,
    count(*) FILTER (WHERE industry_ref_id IS NOT NULL) AS industry_ref_set
FROM texts
"""
_COMPILED_HARD_CASES = sql.SQL(_HARD_CASES_SQL).format(**_IDENTIFIERS)


def summarize(using: str = "default") -> dict:
    """Counts of every seeded table and of every hard case, measured on the legacy database.

    Returns {"counts": {label: rows}, "hard_cases": {name: number}}; `dup_assets_pct` is the
    share of assets in duplicate groups, in percent.
    """
    with connections[using].cursor() as cursor:
        check_legacy_schema(cursor)
        counts_query = sql.SQL(", ").join(
            sql.SQL("(SELECT count(*) FROM {})").format(sql.Identifier(table))
            for table in TABLE_LABELS.values()
        )
        _execute(cursor, sql.SQL("SELECT ") + counts_query)
        counts = dict(zip(TABLE_LABELS, cursor.fetchone(), strict=True))
        _execute(
            cursor,
            sql.SQL("SELECT count(*) FROM {user} WHERE {demo}").format(
                user=sql.Identifier(USER_TABLE), demo=_demo_user_filter()
            ),
        )
        counts = {"users": cursor.fetchone()[0], **counts}
        _execute(cursor, _COMPILED_HARD_CASES)
        columns = [c.name for c in cursor.description]
        hard_cases = dict(zip(columns, cursor.fetchone(), strict=True))
    assets = counts["assets"]
    hard_cases["dup_assets_pct"] = round(100 * hard_cases["dup_assets"] / assets, 2) if assets else 0
    return {"counts": counts, "hard_cases": hard_cases}


__all__ = [
    "SIZES",
    "SchemaError",
    "SeedError",
    "SeedParams",
    "params_for",
    "seed_database",
    "summarize",
]
