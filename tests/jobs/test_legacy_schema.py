"""The five schema defects are really there in the legacy schema, read from PostgreSQL's catalog.

Later migrations repair these defects, so the test database (migrated to the latest state) is
the wrong place to look. Instead a scratch database is created next to it and migrated with
Django's MigrationExecutor to the domain apps' `0001_initial` only (plus whatever those depend
on). Nothing is migrated backwards, so the tests do not depend on later migrations being
reversible, and the test database is left exactly as found. The scratch database is dropped at
the end.
"""

from dataclasses import dataclass

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

DOMAIN_APPS = ("assets", "portfolios", "investments")
LEGACY_TARGETS = [(app, "0001_initial") for app in DOMAIN_APPS]
ALIAS = "legacy_schema"

TABLES_WITHOUT_SOFT_DELETE = [
    "assets_country",
    "assets_sector",
    "assets_industry",
    "assets_currency",
    "portfolios_benchmark",
    "investments_newsarticle",
    "investments_alert",
]
TABLES_WITH_SOFT_DELETE = [
    "assets_asset",
    "portfolios_portfolio",
    "portfolios_holding",
    "investments_watchlist",
]
MISSING_INDEXES = [
    ("idx_portfolios_holding_portfolio_asset", "portfolios_holding", ("portfolio_id", "asset_id")),
    (
        "idx_assets_priceshistoric_asset_timestamp",
        "assets_assetpriceshistoric",
        ("asset_id", "timestamp"),
    ),
    ("idx_investments_watchlist_user_asset", "investments_watchlist", ("user_id", "asset_id")),
]
INTEGER_TYPES = {"smallint", "integer", "bigint"}


@pytest.fixture(scope="module")
def legacy(django_db_setup, django_db_blocker):
    """A connection to a scratch database holding the legacy schema."""
    with django_db_blocker.unblock():
        default = connections[DEFAULT_DB_ALIAS]
        name = f"{default.settings_dict['NAME']}_legacy"[:63]

        def on_server(sql: str) -> None:
            with default._nodb_cursor() as cursor:
                cursor.execute(sql)

        on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        on_server(f'CREATE DATABASE "{name}"')
        settings_dict = {**default.settings_dict, "NAME": name}
        connection = default.__class__(settings_dict, alias=ALIAS)
        # Registered while migrating: the migration recorder (and any RunPython) reaches the
        # database through the ORM, by alias.
        connections.settings[ALIAS] = settings_dict
        connections[ALIAS] = connection
        try:
            MigrationExecutor(connection).migrate(LEGACY_TARGETS)
        except BaseException:
            connection.close()
            on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            raise
        finally:
            del connections[ALIAS]
            del connections.settings[ALIAS]
        try:
            yield connection
        finally:
            connection.close()
            on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def catalog(legacy, django_db_blocker):
    with django_db_blocker.unblock():
        yield Catalog(legacy)


@dataclass(frozen=True)
class Index:
    name: str
    unique: bool
    primary: bool
    columns: tuple[str, ...]  # key columns, in order; expressions left out


class Catalog:
    def __init__(self, connection) -> None:
        self.connection = connection

    def rows(self, sql: str, params=()) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def columns(self, table: str) -> dict[str, str]:
        return dict(
            self.rows(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s",
                [table],
            )
        )

    def indexes(self, table: str) -> list[Index]:
        rows = self.rows(
            """
            SELECT i.relname, ix.indisunique, ix.indisprimary,
                   ARRAY(SELECT a.attname
                           FROM unnest((ix.indkey::int2[])[0:ix.indnkeyatts - 1])
                                WITH ORDINALITY AS k(attnum, ord)
                           JOIN pg_attribute a
                             ON a.attrelid = ix.indrelid AND a.attnum = k.attnum
                          ORDER BY k.ord)
              FROM pg_index ix
              JOIN pg_class i ON i.oid = ix.indexrelid
             WHERE ix.indrelid = to_regclass(%s)
            """,
            [table],
        )
        return [Index(name, unique, primary, tuple(cols)) for name, unique, primary, cols in rows]

    def relation_exists(self, name: str) -> bool:
        return self.rows("SELECT to_regclass(%s) IS NOT NULL", [name])[0][0]


def test_legacy_database_has_exactly_the_initial_migrations_of_the_domain_apps(catalog):
    applied = catalog.rows(
        f"SELECT app, name FROM {MigrationRecorder.Migration._meta.db_table}"
        " WHERE app = ANY(%s)",
        [list(DOMAIN_APPS)],
    )
    assert set(applied) == set(LEGACY_TARGETS)


def test_catalog_reader_sees_the_indexes_that_do_exist(catalog):
    # Without this, every "no such index" below could pass on a broken query.
    holding = catalog.indexes("portfolios_holding")
    assert {index.columns for index in holding} >= {("id",), ("portfolio_id",), ("asset_id",)}
    assert any(index.primary and index.columns == ("id",) for index in holding)
    exchange = catalog.indexes("assets_exchange")
    assert any(index.unique and index.columns == ("mic",) for index in exchange)
    assert catalog.relation_exists("portfolios_holding")


# 1. Deprecated text columns ---------------------------------------------------------------------


def test_asset_has_the_deprecated_sector_and_industry_text_columns(catalog):
    columns = catalog.columns("assets_asset")
    assert columns["sector"] == "character varying"
    assert columns["industry"] == "character varying"


# 2. No UNIQUE (ticker, exchange_id) -------------------------------------------------------------


def test_no_unique_constraint_or_index_covers_ticker_and_exchange(catalog):
    pair = {"ticker", "exchange_id"}
    assert pair <= set(catalog.columns("assets_asset"))
    enforcing = [
        index
        for index in catalog.indexes("assets_asset")
        if index.unique and index.columns and set(index.columns) <= pair
    ]
    assert enforcing == []
    constraints = catalog.rows(
        """
        SELECT c.conname FROM pg_constraint c
         WHERE c.conrelid = 'assets_asset'::regclass AND c.contype IN ('u', 'x')
        """
    )
    assert constraints == []


def test_two_assets_with_the_same_ticker_and_exchange_can_be_stored(catalog):
    statements = [
        "BEGIN",
        "INSERT INTO assets_country (created_at, updated_at, iso_code, name)"
        " VALUES (now(), now(), 'US', 'United States')",
        "INSERT INTO assets_currency (created_at, updated_at, code, name)"
        " VALUES (now(), now(), 'USD', 'US Dollar')",
        "INSERT INTO assets_exchange (created_at, updated_at, mic, name, country_id, currency_id)"
        " SELECT now(), now(), 'XNAS', 'Nasdaq', c.id, cu.id"
        " FROM assets_country c, assets_currency cu",
        "INSERT INTO assets_asset (created_at, updated_at, ticker, name, exchange_id, currency_id)"
        " SELECT now(), now(), 'AAPL', 'Apple ' || n, e.id, e.currency_id"
        " FROM assets_exchange e, generate_series(1, 2) AS n",
    ]
    with catalog.connection.cursor() as cursor:
        try:
            for statement in statements:
                cursor.execute(statement)
            cursor.execute("SELECT count(*) FROM assets_asset WHERE ticker = 'AAPL'")
            assert cursor.fetchone()[0] == 2
        finally:
            cursor.execute("ROLLBACK")


# 3. Soft delete only on some tables -------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES_WITHOUT_SOFT_DELETE)
def test_table_lacks_soft_delete_columns(catalog, table):
    columns = catalog.columns(table)
    assert columns, f"{table} does not exist"
    assert "is_deleted" not in columns
    assert "deleted_at" not in columns


@pytest.mark.parametrize("table", TABLES_WITH_SOFT_DELETE)
def test_table_already_has_soft_delete_columns(catalog, table):
    columns = catalog.columns(table)
    assert columns["is_deleted"] == "boolean"
    assert columns["deleted_at"] == "timestamp with time zone"


# 4. Missing indexes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "table", "pair"), MISSING_INDEXES, ids=[m[0] for m in MISSING_INDEXES]
)
def test_designed_index_does_not_exist(catalog, name, table, pair):
    assert set(pair) <= set(catalog.columns(table))
    assert not catalog.relation_exists(name)
    covering = [index for index in catalog.indexes(table) if set(index.columns[:2]) == set(pair)]
    assert covering == []


# 5. Alert on an integer key ---------------------------------------------------------------------


def test_alert_primary_key_is_a_single_integer_column(catalog):
    key = catalog.rows(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
          FROM pg_index ix
          JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = ANY(ix.indkey)
         WHERE ix.indrelid = 'investments_alert'::regclass AND ix.indisprimary
        """
    )
    assert len(key) == 1
    column, column_type = key[0]
    assert column == "id"
    assert column_type in INTEGER_TYPES
    assert "uuid" not in catalog.columns("investments_alert")


def test_alert_trigger_references_the_integer_alert_key(catalog):
    references = catalog.rows(
        """
        SELECT src.attname, format_type(src.atttypid, src.atttypmod),
               c.confrelid::regclass::text, dst.attname
          FROM pg_constraint c
          JOIN pg_attribute src ON src.attrelid = c.conrelid AND src.attnum = c.conkey[1]
          JOIN pg_attribute dst ON dst.attrelid = c.confrelid AND dst.attnum = c.confkey[1]
         WHERE c.contype = 'f' AND c.conrelid = 'investments_alerttrigger'::regclass
           AND cardinality(c.conkey) = 1
        """
    )
    to_alert = [row for row in references if row[2] == "investments_alert"]
    assert len(to_alert) == 1
    column, column_type, _, referenced = to_alert[0]
    assert (column, referenced) == ("alert_id", "id")
    assert column_type in INTEGER_TYPES
