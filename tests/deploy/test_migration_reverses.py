"""Every migration's reverse works, losing nothing, or refuses saying why: on a seeded legacy
database, forward, back as far as the refusals allow (each refusal's message asserted, and the
way out it names taken), forward again, and the data compared.

- After the post-deploy stage the assets go back to 0013 (UNIQUE and the guard's retirement
  taken back), no further: 0013 dropped the legacy text. Alerts cannot go back past 0010 (the
  key swap). Forward again, every row is as it was.
- After the pre-deploy stage (investments up to 0009, before the key swap) everything goes back to
  the legacy schema, once the merges and the links are undone and no row is soft-deleted, and
  then holds exactly the legacy data; forward again, the jobs redo what they did.
"""

from __future__ import annotations

import pytest
from psycopg import sql

from tests.jobs.conftest import JobDatabase, legacy_template  # noqa: F401 - a fixture

# The tables of the legacy schema: the domain's data, before and after.
DOMAIN_TABLES = (
    "assets_country", "assets_currency", "assets_sector", "assets_industry", "assets_exchange",
    "assets_asset", "assets_assetpriceshistoric", "portfolios_portfolio", "portfolios_holding",
    "portfolios_benchmark", "investments_watchlist", "investments_newsarticle",
    "investments_newsarticle_assets", "investments_alert", "investments_alerttrigger",
)
# Values the forward migrations make afresh each time: alert UUIDs (random, compared by structure
# below) and the time a merge stamps on the holding that keeps a position.
MADE_AFRESH = {"investments_alert": ("uuid",), "investments_alerttrigger": ("alert_uuid",),
               "portfolios_holding": ("updated_at",)}
GATES_INLINE = {"MW_GATE_INLINE_LIMIT": "1000000"}  # a gate finishes its job inline
SEED = ["--size", "small", "--seed", "3", "--users", "60", "--assets", "600", "--dup-fraction",
        "0.06", "--prices", "3000", "--portfolios", "80", "--holdings", "900", "--watchlist", "600",
        "--news", "150", "--news-links", "400", "--alerts", "2000", "--alert-triggers", "300"]


@pytest.fixture(scope="module")
def seeded_legacy(legacy_template) -> JobDatabase:  # noqa: F811
    db = legacy_template.copy("reverses_tpl")
    db.manage("seed_demo", *SEED)
    yield db
    db.drop()


@pytest.fixture
def db(seeded_legacy) -> JobDatabase:
    copy = seeded_legacy.copy("reverses")
    copy.env.update(GATES_INLINE)
    yield copy
    copy.drop()


def domain(db: JobDatabase, ignore: dict[str, tuple[str, ...]] | None = None) -> dict:
    """Each domain table's rows by id (`id` is the alerts' legacy id after the key swap)."""
    tables = {}
    for table in DOMAIN_TABLES:
        rows = db.rows(sql.SQL("SELECT t.id, to_jsonb(t) FROM {} AS t").format(sql.Identifier(table)))
        drop = (ignore or {}).get(table, ())
        tables[table] = {i: {k: v for k, v in r.items() if k not in drop} for i, r in rows}
    return tables


def refused(db: JobDatabase, *args: str) -> str:
    """`manage.py migrate ARGS` refused by a reverse: exit code 3 and the reason."""
    result = db.manage("migrate", *args, "-v", "0", check=False)
    assert result.returncode == 3, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def applied(db: JobDatabase, app: str) -> str:
    return db.scalar("SELECT max(name) FROM django_migrations WHERE app = %s", [app])


def uuids_are_whole(db: JobDatabase) -> None:
    """The alerts' UUIDs, by structure: every alert has its own, every trigger row its alert's."""
    assert db.rows("SELECT count(*) - count(uuid), count(*) - count(DISTINCT uuid) "
                   "FROM investments_alert") == [(0, 0)]
    assert db.scalar("SELECT count(*) FROM investments_alerttrigger t JOIN investments_alert a "
                     "ON a.id = t.alert_id WHERE t.alert_uuid IS DISTINCT FROM a.uuid") == 0


def test_after_the_post_deploy_stage_the_assets_go_back_to_0013_and_forward_to_identical_data(db):
    db.manage("migrate", "-v", "0")  # everything, the gates finishing their jobs inline
    forward = domain(db)
    assert db.scalar("SELECT count(*) FROM assets_duplicatetickergroup WHERE merged_at IS NULL") == 0

    db.migrate("assets", "0013")  # 0015 and 0014 taken back
    assert db.scalar("SELECT count(*) FROM pg_constraint "
                     "WHERE conname = 'assets_asset_ticker_exchange_unique'") == 0
    assert db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname IN "
                     "('assets_asset_refuse_duplicate', 'assets_asset_merge_again')") == 2
    assert db.scalar("SELECT count(*) FROM pg_class WHERE relname = "
                     "'assets_asset_ticker_exchange_idx'") == 1

    message = refused(db, "assets", "0012")
    assert "migrating assets back refused: assets 0013 dropped assets_asset.sector and .industry" in message
    assert "Restore them from a backup taken before the post-deploy stage" in message
    # portfolios 0003 is a dependency of assets 0012: taking it back meets the same refusal.
    assert "assets 0013 dropped" in refused(db, "portfolios", "0002")
    message = refused(db, "investments", "0009")
    assert "investments 0010 moved investments_alert's primary key onto uuid" in message
    assert (applied(db, "assets"), applied(db, "investments"), applied(db, "portfolios")) == (
        "0013_drop_legacy_text_columns", "0010_alert_uuid_primary_key",
        "0003_holding_portfolio_asset_index")

    db.manage("migrate", "-v", "0")
    assert domain(db) == forward


def test_after_the_pre_deploy_stage_everything_goes_back_to_the_legacy_data_and_forward_again(db):
    legacy = domain(db)
    db.migrate("assets", "0012_enqueue_ticker_dedup")  # portfolios 0003, investments 0004 too
    db.migrate("investments", "0009_alerttrigger_alert_uuid_index")
    db.manage("backfill", "run", "ticker_dedup")  # enqueued by 0012; the post stage would wait
    merged = db.scalar("SELECT count(*) FROM assets_duplicatetickergroup WHERE merged_at IS NOT NULL")
    assert merged > 5
    forward = domain(db, MADE_AFRESH)

    message = refused(db, "assets", "0011")
    assert f"{merged} duplicate group(s) are merged" in message
    assert "python manage.py backfill undo ticker_dedup --inline" in message
    db.manage("backfill", "undo", "ticker_dedup", "--inline")

    message = refused(db, "assets", "0001")
    assert "Sector / Industry link(s) made by legacy_columns still stand" in message
    assert "python manage.py backfill undo legacy_columns --inline" in message
    assert applied(db, "assets") == "0007_legacy_text_archive"  # 0012-0008 went back meanwhile
    db.manage("backfill", "undo", "legacy_columns", "--inline")

    db.execute("UPDATE assets_country SET is_deleted = true WHERE id = (SELECT min(id) FROM "
               "assets_country)")
    message = refused(db, "assets", "0001")
    assert "1 soft-deleted row(s) in assets_country: dropping is_deleted (assets 0002)" in message
    db.execute("UPDATE assets_country SET is_deleted = false")

    db.migrate("assets", "0001_initial")
    db.migrate("investments", "0001_initial")
    db.migrate("portfolios", "0001_initial")
    assert domain(db) == legacy  # every merge, link and column put back: the legacy data exactly

    db.migrate("assets", "0012_enqueue_ticker_dedup")  # the jobs start again: their work is gone
    db.migrate("investments", "0009_alerttrigger_alert_uuid_index")
    db.manage("backfill", "run", "ticker_dedup")
    assert domain(db, MADE_AFRESH) == forward
    uuids_are_whole(db)


def test_a_migration_whose_job_has_a_run_under_way_is_not_taken_back_until_it_is_cancelled(
    legacy_template,  # noqa: F811
):
    db = legacy_template.copy("reverses_running")
    try:
        db.migrate("assets", "0012_enqueue_ticker_dedup")  # no broker: ticker_dedup stays pending
        message = refused(db, "assets", "0011")
        assert "data job ticker_dedup has run #" in message and "(pending)" in message
        assert "python manage.py backfill cancel ticker_dedup" in message
        assert applied(db, "assets") == "0012_enqueue_ticker_dedup"  # nothing taken back
        db.manage("backfill", "cancel", "ticker_dedup")
        db.migrate("assets", "0011_merge_archive_tables")
        assert applied(db, "assets") == "0011_merge_archive_tables"
    finally:
        db.drop()
