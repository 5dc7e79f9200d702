"""`manage.py seed_demo`: the legacy demo data set, its hard cases, determinism and refusals.

The seed is for the *legacy* schema, while the test database is migrated to the latest state, which
the fixes move past legacy. So, like test_legacy_schema.py, these tests use a scratch database next
to the test database, migrated forward to the domain apps' `0001_initial` only (nothing is ever
migrated backwards), and registered as a database alias for the module. Each test runs inside a
transaction on it that is rolled back, so every test starts from an empty legacy database.
"""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from seed import dataset
from seed.dataset import USERNAME_PREFIX, summarize
from seed.management.commands.seed_demo import Command as SeedDemo

ALIAS = "seed_legacy"
LEGACY_TARGETS = [(app, "0001_initial") for app in ("assets", "portfolios", "investments")]
SMALL = dataset.SIZES["small"]
# Tables whose ordered contents must be identical for one seed.
FINGERPRINTED = [
    "assets_asset",
    "assets_assetpriceshistoric",
    "portfolios_portfolio",
    "portfolios_holding",
    "portfolios_benchmark",
    "investments_watchlist",
    "investments_newsarticle_assets",
    "investments_alert",
    "investments_alerttrigger",
]
INTEGER_KEYED = [*dataset.LEGACY_TABLES]
INTEGER_KEYED.remove("portfolios_portfolio")


@pytest.fixture(scope="module")
def legacy_database(django_db_setup, django_db_blocker):
    """A scratch database with the legacy schema, reachable as connections[ALIAS]."""
    with django_db_blocker.unblock():
        default = connections[DEFAULT_DB_ALIAS]
        name = f"{default.settings_dict['NAME']}_seed"[:63]

        def on_server(statement: str) -> None:
            with default._nodb_cursor() as cursor:
                cursor.execute(statement)

        on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        on_server(f'CREATE DATABASE "{name}"')
        settings_dict = {**default.settings_dict, "NAME": name}
        connections.settings[ALIAS] = settings_dict
        connections[ALIAS] = default.__class__(settings_dict, alias=ALIAS)
        try:
            executor = MigrationExecutor(connections[ALIAS])
            # auth fully migrated (nullable last_login etc.), as in any real legacy database.
            auth = [node for node in executor.loader.graph.leaf_nodes() if node[0] == "auth"]
            executor.migrate([*auth, *LEGACY_TARGETS])
            yield ALIAS
        finally:
            connections[ALIAS].close()
            del connections[ALIAS]
            del connections.settings[ALIAS]
            on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def legacy_db(legacy_database, django_db_blocker):
    """The empty legacy database, inside a transaction rolled back after the test."""
    with django_db_blocker.unblock(), transaction.atomic(using=ALIAS):
        yield ALIAS
        transaction.set_rollback(True, using=ALIAS)


def seed_demo(*args: str, **options) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, database=ALIAS, stdout=out, **options)
    return out.getvalue()


def query(statement: str, params=None) -> list[tuple]:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def scalar(statement: str, params=None):
    return query(statement, params)[0][0]


def fingerprint() -> dict[str, str]:
    return {
        table: scalar(f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} AS t")
        for table in FINGERPRINTED
    } | {
        "demo users": scalar(
            "SELECT md5(string_agg(u::text, '|' ORDER BY u.id)) FROM auth_user AS u"
            " WHERE username LIKE %s",
            [USERNAME_PREFIX + "%"],
        )
    }


def row_count(table: str) -> int:
    return scalar(f"SELECT count(*) FROM {table}")


@pytest.fixture
def small(legacy_db) -> dict:
    """The small preset seeded with the default seed; its summary."""
    seed_demo()
    return summarize(using=ALIAS)


# --- what is created ------------------------------------------------------------------------


def test_small_preset_creates_the_asked_row_counts_and_reference_data(small):
    counts = small["counts"]
    for name in ("users", "assets", "prices", "portfolios", "alerts", "alert_triggers"):
        assert counts[name] == SMALL[name], name
    for name in ("holdings", "watchlist", "news_links"):
        assert counts[name] == SMALL[name], name
    assert counts["news_articles"] == SMALL["news"]
    assert counts["countries"] >= 5 and counts["currencies"] >= 5
    assert counts["sectors"] == 11
    assert counts["industries"] >= 30
    assert 8 <= counts["exchanges"] <= 12
    assert counts["benchmarks"] >= 10


def test_duplicate_groups_of_every_size_from_two_to_five_hold_about_two_percent_of_assets(small):
    cases = small["hard_cases"]
    for size in (2, 3, 4, 5):
        assert cases[f"dup_groups_size_{size}"] > 0, size
    assert cases["dup_groups_size_over_5"] == 0
    # Only the planted groups: no (ticker, exchange) pair is duplicated by accident.
    assert cases["dup_groups"] == dataset.Plan(dataset.params_for("small")).n_groups
    assert 1.5 <= cases["dup_assets_pct"] <= 2.5
    assert cases["dup_assets"] == sum(n * cases[f"dup_groups_size_{n}"] for n in (2, 3, 4, 5))


def test_some_duplicates_are_soft_deleted_including_the_oldest_of_a_group_and_a_whole_group(small):
    cases = small["hard_cases"]
    assert 0 < cases["dup_assets_soft_deleted"] < cases["dup_assets"]
    assert cases["dup_groups_lowest_id_deleted"] > 0
    assert cases["dup_groups_all_deleted"] > 0


def test_every_duplicate_is_held_watched_alerted_priced_and_linked_to_news(small):
    unreferenced = scalar(
        """
        WITH dup AS (
            SELECT a.id FROM assets_asset a
            JOIN (SELECT ticker, exchange_id FROM assets_asset GROUP BY 1, 2
                  HAVING count(*) > 1) k USING (ticker, exchange_id)
        )
        SELECT count(*) FROM dup
        WHERE NOT EXISTS (SELECT FROM portfolios_holding h WHERE h.asset_id = dup.id)
           OR NOT EXISTS (SELECT FROM investments_watchlist w WHERE w.asset_id = dup.id)
           OR NOT EXISTS (SELECT FROM investments_alert al WHERE al.asset_id = dup.id)
           OR NOT EXISTS (SELECT FROM assets_assetpriceshistoric p WHERE p.asset_id = dup.id)
           OR NOT EXISTS (SELECT FROM investments_newsarticle_assets l
                          WHERE l.asset_id = dup.id)
        """
    )
    assert unreferenced == 0
    assert small["hard_cases"]["benchmarks_on_dup_assets"] > 0
    assert small["hard_cases"]["triggers_on_dup_alerts"] > 0


def test_merging_a_group_would_collide_in_holdings_watchlist_news_links_and_prices(small):
    cases = small["hard_cases"]
    assert cases["portfolios_holding_two_dups"] > 0
    assert cases["users_watching_two_dups"] > 0
    assert cases["articles_linking_two_dups"] > 0
    assert cases["price_timestamps_shared_by_dups"] > 0


def test_no_portfolio_holds_one_asset_twice_before_any_merge(small):
    assert small["hard_cases"]["holdings_repeated_pairs"] == 0
    assert scalar(
        "SELECT count(*) FROM (SELECT user_id, asset_id FROM investments_watchlist"
        " GROUP BY 1, 2 HAVING count(*) > 1) t"
    ) == 0


def test_a_ticker_listed_on_another_exchange_is_not_a_duplicate(small):
    assert small["hard_cases"]["tickers_on_several_exchanges"] > 0


def test_sector_text_matches_exactly_or_by_case_and_spaces_or_not_at_all_or_is_empty_or_null(small):
    cases = small["hard_cases"]
    for kind in ("exact", "case_or_space", "unmatched", "empty", "null"):
        assert cases[f"sector_text_{kind}"] > 0, kind
    assert cases["sector_text_ambiguous"] == 0
    assert sum(
        cases[f"sector_text_{kind}"]
        for kind in ("exact", "case_or_space", "unmatched", "empty", "null")
    ) == small["counts"]["assets"]


def test_industry_text_has_the_same_categories_plus_names_of_two_industries_in_two_sectors(small):
    cases = small["hard_cases"]
    kinds = ("exact", "case_or_space", "ambiguous", "unmatched", "empty", "null")
    for kind in kinds:
        assert cases[f"industry_text_{kind}"] > 0, kind
    assert sum(cases[f"industry_text_{kind}"] for kind in kinds) == small["counts"]["assets"]
    ambiguous_sectors = scalar(
        """
        SELECT min(n) FROM (
            SELECT count(DISTINCT i.sector_id) AS n
            FROM assets_asset a JOIN assets_industry i ON lower(i.name) = lower(btrim(a.industry))
            GROUP BY lower(btrim(a.industry)) HAVING count(*) > count(DISTINCT a.id)
        ) t
        """
    )
    assert ambiguous_sectors == 2


def test_a_few_assets_already_have_sector_and_industry_refs_most_do_not(small):
    cases, assets = small["hard_cases"], small["counts"]["assets"]
    assert 0 < cases["industry_ref_set"] <= cases["sector_ref_set"] < assets * 0.2


def test_alert_triggers_reference_alerts(small):
    assert small["counts"]["alert_triggers"] > 0
    assert small["hard_cases"]["alerts_with_triggers"] > 0
    assert scalar(
        "SELECT count(*) FROM investments_alerttrigger t"
        " JOIN investments_alert a ON a.id = t.alert_id WHERE t.triggered_at > a.created_at"
    ) == small["counts"]["alert_triggers"]


def test_integer_ids_are_dense_from_one_and_new_rows_continue_after_them(small):
    for table in INTEGER_KEYED:
        assert scalar(f"SELECT count(*) = coalesce(max(id), 0) FROM {table}"), table
    new_id = scalar(
        "INSERT INTO investments_alert (condition, threshold, is_active, created_at, asset_id,"
        " user_id) SELECT 'above', 1, true, now(), 1, min(id) FROM auth_user RETURNING id"
    )
    assert new_id == SMALL["alerts"] + 1


def test_demo_users_cannot_log_in_with_a_password(small):
    assert query(
        "SELECT DISTINCT password FROM auth_user WHERE username LIKE %s", [USERNAME_PREFIX + "%"]
    ) == [("!",)]


def test_size_options_override_the_preset(legacy_db):
    seed_demo("--size", "small", "--assets", "3000", "--alerts", "500", "--holdings", "10")
    counts = summarize(using=ALIAS)["counts"]
    assert counts["assets"] == 3000
    assert counts["alerts"] == 500
    # Every duplicate gets a holding even when fewer holdings are asked for.
    assert counts["holdings"] == summarize(using=ALIAS)["hard_cases"]["dup_assets"]
    assert counts["prices"] == SMALL["prices"]


def test_prints_a_summary_and_json_for_scripts(legacy_db):
    text = seed_demo()
    assert "duplicate (ticker, exchange) groups" in text
    assert "alerts" in text
    figures = json.loads(seed_demo("--summary-only", "--json"))
    assert figures["counts"]["alerts"] == SMALL["alerts"]
    assert figures["hard_cases"]["dup_groups"] > 0


def test_the_command_instance_exposes_the_summary(legacy_db):
    command = SeedDemo()
    call_command(command, "--alerts", "1000", database=ALIAS, stdout=io.StringIO())
    assert command.summary["counts"]["alerts"] == 1000
    assert command.summary["params"]["seed"] == 42
    assert command.summary["seconds"] > 0


# --- determinism ----------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_rows_and_another_seed_different_ones(legacy_db):
    seed_demo("--seed", "7")
    first = fingerprint()
    seed_demo("--seed", "7", "--reset")
    assert fingerprint() == first
    seed_demo("--seed", "8", "--reset")
    other = fingerprint()
    assert all(other[table] != first[table] for table in FINGERPRINTED)


def test_rows_are_the_same_when_foreign_key_triggers_cannot_be_skipped(legacy_db, monkeypatch):
    seed_demo()
    fast = fingerprint()
    monkeypatch.setattr(dataset, "_may_skip_fk_triggers", lambda cursor: False)
    seed_demo("--reset")
    assert fingerprint() == fast


def test_an_existing_admin_keeps_its_id_and_demo_users_come_after_it(legacy_db):
    query(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,"
        " is_staff, is_active, date_joined) VALUES ('x', true, 'admin', '', '', '', true, true,"
        " now())"
    )
    admin_id = scalar("SELECT id FROM auth_user WHERE username = 'admin'")
    seed_demo()
    seed_demo("--reset")
    assert scalar("SELECT id FROM auth_user WHERE username = 'admin'") == admin_id
    assert scalar("SELECT min(id) FROM auth_user WHERE username LIKE %s", [USERNAME_PREFIX + "%"])
    assert scalar(
        "SELECT min(id) FROM auth_user WHERE username LIKE %s", [USERNAME_PREFIX + "%"]
    ) == admin_id + 1


# --- refusals -------------------------------------------------------------------------------


def assert_nothing_seeded(*, dropped: str = "") -> None:
    for table in dataset.LEGACY_TABLES:
        if table != dropped:
            assert row_count(table) == 0, table
    assert scalar("SELECT count(*) FROM auth_user WHERE username LIKE %s", [USERNAME_PREFIX + "%"]) == 0


def test_refuses_a_database_with_data_unless_reset_is_given(legacy_db):
    seed_demo("--alerts", "1000")
    before = fingerprint()
    with pytest.raises(CommandError, match=r"already has data.*--reset"):
        seed_demo()
    assert fingerprint() == before
    seed_demo("--reset")
    assert row_count("investments_alert") == SMALL["alerts"]


@pytest.mark.parametrize(
    ("ddl", "reason"),
    [
        ("ALTER TABLE investments_alert ADD COLUMN uuid uuid", "investments_alert has a column 'uuid'"),
        ("ALTER TABLE assets_asset DROP COLUMN sector", "assets_asset has no column 'sector'"),
        (
            "ALTER TABLE investments_alert DROP CONSTRAINT investments_alert_pkey CASCADE;"
            " ALTER TABLE investments_alert ADD COLUMN key uuid PRIMARY KEY",
            "primary key is \\(key uuid\\)",
        ),
        (
            "CREATE UNIQUE INDEX asset_ticker_exchange_uniq ON assets_asset (ticker, exchange_id)",
            "unique index asset_ticker_exchange_uniq",
        ),
        (
            "CREATE FUNCTION seed_test_noop() RETURNS trigger LANGUAGE plpgsql AS"
            " 'BEGIN RETURN NEW; END';"
            " CREATE TRIGGER serialise_ticker BEFORE INSERT ON assets_asset"
            " FOR EACH ROW EXECUTE FUNCTION seed_test_noop()",
            "assets_asset has the trigger serialise_ticker",
        ),
    ],
    ids=["alert-uuid-column", "sector-column-dropped", "alert-uuid-pk", "unique-ticker", "trigger"],
)
def test_refuses_a_schema_past_the_legacy_state_and_changes_nothing(legacy_db, ddl, reason):
    query(ddl)
    with pytest.raises(CommandError, match=rf"past the legacy state(.|\n)*{reason}"):
        seed_demo()
    assert_nothing_seeded()


def test_reset_refuses_a_schema_past_the_legacy_state_and_keeps_the_data(legacy_db):
    seed_demo("--alerts", "1000")
    query("ALTER TABLE investments_alert ADD COLUMN uuid uuid")
    before = fingerprint()
    with pytest.raises(CommandError, match="past the legacy state"):
        seed_demo("--reset")
    assert fingerprint() == before


@pytest.mark.parametrize(
    ("ddl", "reason", "dropped"),
    [
        (
            "DROP TABLE investments_alerttrigger",
            "table investments_alerttrigger does not exist",
            "investments_alerttrigger",
        ),
        (
            "ALTER TABLE auth_user ALTER COLUMN last_login SET NOT NULL",
            "the auth migrations are not all applied",
            "",
        ),
    ],
    ids=["domain-table-missing", "auth-not-migrated"],
)
def test_refuses_a_database_without_the_migrations_applied(legacy_db, ddl, reason, dropped):
    query(ddl)
    with pytest.raises(CommandError, match=rf"not migrated(.|\n)*{reason}(.|\n)*migrate auth"):
        seed_demo()
    assert_nothing_seeded(dropped=dropped)


def test_a_failure_half_way_leaves_nothing_behind(legacy_db, monkeypatch):
    failing = (
        "fails",
        dataset.sql.SQL("SELECT 1 / (SELECT count(*) - count(*) FROM assets_asset)"),
    )
    monkeypatch.setattr(dataset, "_COMPILED_STEPS", [*dataset._COMPILED_STEPS[:-3], failing])
    with pytest.raises(Exception, match="division by zero"):
        seed_demo()
    assert_nothing_seeded()


@pytest.mark.parametrize(
    "args",
    [
        ("--assets", "0"),
        ("--assets", "3", "--holdings", "0", "--watchlist", "0", "--news-links", "0"),
        ("--assets", "100", "--portfolios", "1", "--holdings", "500"),
        ("--seed", "-1"),
        ("--size", "huge"),
        ("--alerts", "0", "--alert-triggers", "5"),
    ],
    ids=[
        "no-assets",
        "too-many-duplicates",
        "more-holdings-than-distinct-assets",
        "negative-seed",
        "unknown-size",
        "triggers-no-alerts",
    ],
)
def test_rejects_sizes_it_cannot_honour_before_touching_the_database(legacy_db, args):
    with pytest.raises(CommandError):
        seed_demo(*args)
    assert_nothing_seeded()
