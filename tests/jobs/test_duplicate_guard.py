"""New duplicate (ticker, exchange) assets are refused from migration 0010 on, before any
UNIQUE constraint exists, even when many sessions insert the same pair at the same moment."""

import threading

import psycopg
import pytest
from django.db import connection

from tests.scratch import ScratchDatabase

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def guarded():
    db = ScratchDatabase(f"{connection.settings_dict['NAME']}_guard").create()
    db.migrate_legacy()
    db.manage("migrate", "assets", "0010_stop_new_duplicate_tickers", "-v", "0")
    with db.connect() as conn:
        conn.execute("INSERT INTO assets_country (created_at, updated_at, iso_code, name) "
                     "VALUES (now(), now(), 'US', 'United States')")
        conn.execute("INSERT INTO assets_currency (created_at, updated_at, code, name) "
                     "VALUES (now(), now(), 'USD', 'US Dollar')")
        conn.execute("INSERT INTO assets_exchange (created_at, updated_at, mic, name, country_id, "
                     "currency_id) SELECT now(), now(), 'XNAS', 'Nasdaq', c.id, u.id "
                     "FROM assets_country c, assets_currency u")
    yield db
    db.drop()


INSERT = (
    "INSERT INTO assets_asset (created_at, updated_at, is_deleted, ticker, name, exchange_id, "
    "currency_id) SELECT now(), now(), false, %s, 'x', e.id, e.currency_id FROM assets_exchange e"
)


def test_concurrent_inserts_of_one_pair_let_exactly_one_through(guarded):
    sessions = 8
    barrier = threading.Barrier(sessions)
    outcomes = []

    def insert() -> None:
        with psycopg.connect(guarded.url) as conn:
            barrier.wait()
            try:
                conn.execute(INSERT, ["NVDA"])
                conn.execute("SELECT pg_sleep(0.2)")  # hold the row uncommitted a while
                conn.commit()
                outcomes.append("inserted")
            except psycopg.errors.UniqueViolation as exc:
                outcomes.append(exc.diag.constraint_name)

    threads = [threading.Thread(target=insert) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("inserted") == 1
    assert outcomes.count("assets_asset_ticker_exchange_unique") == sessions - 1
    assert guarded.scalar("SELECT count(*) FROM assets_asset WHERE ticker = 'NVDA'") == 1


def test_updates_that_keep_the_pair_pass_and_a_rename_into_a_taken_pair_is_refused(guarded):
    with guarded.connect() as conn:
        conn.execute(INSERT, ["AMD"])
        conn.execute(INSERT, ["INTC"])
        conn.execute("UPDATE assets_asset SET name = 'Advanced Micro Devices', ticker = ticker "
                     "WHERE ticker = 'AMD'")  # what every ORM save() sends
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("UPDATE assets_asset SET ticker = 'AMD' WHERE ticker = 'INTC'")
