"""The legacy schema the seed writes to, and the catalog checks that refuse any other state.

The seed is written against a snapshot of the tables as `0001_initial` of the domain apps creates
them, not against the current models: the models move on as the fixes land (columns leave the
model state, Alert gets a UUID key), while the seed must keep producing the *legacy* data the fixes
start from. Everything here reads `pg_catalog` only, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

USER_TABLE = "auth_user"

# Domain tables in their legacy shape: table -> its exact column set. Order is parents first.
LEGACY_TABLES: dict[str, frozenset[str]] = {
    "assets_country": frozenset({"id", "created_at", "updated_at", "iso_code", "name"}),
    "assets_currency": frozenset({"id", "created_at", "updated_at", "code", "name"}),
    "assets_sector": frozenset({"id", "created_at", "updated_at", "name"}),
    "assets_industry": frozenset({"id", "created_at", "updated_at", "name", "sector_id"}),
    "assets_exchange": frozenset(
        {"id", "created_at", "updated_at", "mic", "name", "country_id", "currency_id"}
    ),
    "assets_asset": frozenset(
        {
            "id", "created_at", "updated_at", "is_deleted", "deleted_at", "ticker", "name",
            "sector", "industry", "country_id", "currency_id", "exchange_id",
            "industry_ref_id", "sector_ref_id",
        }
    ),
    "assets_assetpriceshistoric": frozenset(
        {"id", "timestamp", "open", "high", "low", "close", "volume", "asset_id"}
    ),
    "portfolios_benchmark": frozenset({"id", "created_at", "updated_at", "name", "asset_id"}),
    "portfolios_portfolio": frozenset(
        {
            "id", "created_at", "updated_at", "is_deleted", "deleted_at", "name",
            "base_currency_id", "benchmark_id", "owner_id",
        }
    ),
    "portfolios_holding": frozenset(
        {
            "id", "created_at", "updated_at", "is_deleted", "deleted_at", "quantity",
            "average_cost", "asset_id", "portfolio_id",
        }
    ),
    "investments_watchlist": frozenset(
        {"id", "created_at", "updated_at", "is_deleted", "deleted_at", "notes", "asset_id",
         "user_id"}
    ),
    "investments_newsarticle": frozenset(
        {"id", "created_at", "updated_at", "title", "url", "source", "published_at"}
    ),
    "investments_newsarticle_assets": frozenset({"id", "newsarticle_id", "asset_id"}),
    "investments_alert": frozenset(
        {"id", "condition", "threshold", "is_active", "created_at", "asset_id", "user_id"}
    ),
    "investments_alerttrigger": frozenset(
        {"id", "triggered_at", "price", "notified", "alert_id"}
    ),
}  # fmt: skip

# auth_user may legitimately carry more (a custom migration, another app); these must exist.
USER_COLUMNS = frozenset(
    {
        "id", "password", "last_login", "is_superuser", "username", "first_name", "last_name",
        "email", "is_staff", "is_active", "date_joined",
    }
)  # fmt: skip

LEGACY_MIGRATE_HINT = (
    "`manage.py migrate auth && manage.py migrate portfolios 0001_initial"
    " && manage.py migrate investments 0001_initial`"
)

# Tables the seed fills whose integer `id` comes from an identity sequence (portfolios: UUIDs).
SEQUENCED_TABLES = (*(t for t in LEGACY_TABLES if t != "portfolios_portfolio"), USER_TABLE)


class SchemaError(Exception):
    """The database is not in the state the seed can fill; the message says what to do."""


def _table_columns(cursor, tables: Iterable[str]) -> dict[str, set[str]]:
    cursor.execute(
        """
        SELECT c.relname, a.attname
        FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p')
          AND c.relname = ANY(%s)
        """,
        [list(tables)],
    )
    found: dict[str, set[str]] = {}
    for table, column in cursor.fetchall():
        found.setdefault(table, set()).add(column)
    return found


def legacy_state_problems(cursor) -> tuple[list[str], list[str]]:
    """Return (not_migrated, past_legacy): what is missing, or why the schema is too new.

    Both empty means the database has exactly the legacy schema.
    """
    wanted = [*LEGACY_TABLES, USER_TABLE]
    columns = _table_columns(cursor, wanted)
    missing = [f"table {table} does not exist" for table in wanted if table not in columns]
    if missing:
        return missing, []
    # auth's own later migrations (0005 made last_login nullable) belong to the legacy state too.
    cursor.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s",
        [sql.Identifier(USER_TABLE).as_string(), "last_login"],
    )
    row = cursor.fetchone()
    if row and row[0]:
        return [f"{USER_TABLE}.last_login is NOT NULL: the auth migrations are not all applied"], []

    past: list[str] = []
    for table, expected in LEGACY_TABLES.items():
        actual = columns[table]
        for column in sorted(expected - actual):
            past.append(f"{table} has no column {column!r}")
        for column in sorted(actual - expected):
            past.append(f"{table} has a column {column!r} the legacy schema does not have")
    for column in sorted(USER_COLUMNS - columns[USER_TABLE]):
        past.append(f"{USER_TABLE} has no column {column!r}")

    # investments_alert must still sit on its integer `id` primary key.
    cursor.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
        """,
        [sql.Identifier("investments_alert").as_string()],
    )
    key = cursor.fetchall()
    if key != [("id", "bigint")] and key != [("id", "integer")]:
        shown = ", ".join(f"{name} {kind}" for name, kind in key) or "missing"
        past.append(f"investments_alert's primary key is ({shown}), not the legacy integer id")

    # No unique index (valid or not, partial or not) over assets_asset (ticker, exchange_id).
    cursor.execute(
        """
        SELECT ic.relname
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = to_regclass(%s) AND i.indisunique
          AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
               FROM pg_attribute a
               WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey))
              = ARRAY['exchange_id', 'ticker']
        """,
        [sql.Identifier("assets_asset").as_string()],
    )
    for (index,) in cursor.fetchall():
        past.append(f"assets_asset has the unique index {index} on (ticker, exchange_id)")

    # The fixes add triggers (duplicate prevention, uuid sync); the legacy tables have none.
    cursor.execute(
        """
        SELECT c.relname, t.tgname
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal
          AND c.relnamespace = current_schema()::regnamespace
          AND c.relname = ANY(%s)
        ORDER BY 1, 2
        """,
        [list(LEGACY_TABLES)],
    )
    for table, trigger in cursor.fetchall():
        past.append(f"{table} has the trigger {trigger}")
    return [], past


def check_legacy_schema(cursor) -> None:
    """Raise SchemaError unless the database has exactly the legacy schema."""
    missing, past = legacy_state_problems(cursor)
    if missing:
        raise SchemaError(
            "The database is not migrated to the legacy state:\n  - "
            + "\n  - ".join(missing)
            + f"\nApply the migrations first: {LEGACY_MIGRATE_HINT}."
        )
    if past:
        raise SchemaError(
            "The database is past the legacy state the demo data is made for:\n  - "
            + "\n  - ".join(past)
            + "\nThe demo data must be seeded before the fixes are migrated: use a fresh "
            f"database migrated to the legacy state only: {LEGACY_MIGRATE_HINT}."
        )
