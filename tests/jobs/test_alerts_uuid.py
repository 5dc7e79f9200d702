"""`alerts_uuid` (investments/jobs/alerts_uuid.py), rule by rule, on the schema of investments
0005: alerts from before it have no UUID and their trigger rows no `alert_uuid`; alerts since
then got one from the column default."""

from __future__ import annotations

import threading
import uuid

import pytest

from migrations_worker.job import get_job
from tests.jobs.conftest import JobDatabase
from tests.workers import wait_until

JOB = "alerts_uuid"
LEGACY_ALERTS = [1, 2, 3, 5, 8]  # from before 0005: no UUID
NEW_ALERTS = {4: uuid.UUID(int=4), 6: uuid.UUID(int=6)}  # since 0005: a UUID of their own
# (trigger id, alert id): triggers of legacy and of new alerts, several on one alert.
TRIGGERS = [(11, 1), (12, 1), (13, 2), (14, 4), (15, 5), (16, 6), (17, 8), (18, 8)]

# What code from before the key change sends: it knows nothing of the UUID columns.
OLD_INSERT_TRIGGER = (
    "INSERT INTO investments_alerttrigger (alert_id, triggered_at, price, notified) "
    "VALUES (%s, now(), 1, false) RETURNING id"
)


@pytest.fixture(scope="module")
def expanded(legacy_template) -> JobDatabase:
    """investments at 0005 (the expand step that enqueues the job), a user and an asset."""
    db = legacy_template.copy("alerts_tpl")
    db.migrate("investments", "0005_alert_uuid_expand")
    db.execute("INSERT INTO auth_user (id, password, is_superuser, username, first_name, "
               "last_name, email, is_staff, is_active, date_joined) "
               "VALUES (1, '!', false, 'alerts', '', '', '', false, true, now())")
    db.insert("assets_country", "id, created_at, updated_at, iso_code, name",
              [(1, "now", "now", "US", "United States")])
    db.insert("assets_currency", "id, created_at, updated_at, code, name",
              [(1, "now", "now", "USD", "US dollar")])
    db.insert("assets_exchange", "id, created_at, updated_at, mic, name, country_id, currency_id",
              [(1, "now", "now", "XNYS", "New York Stock Exchange", 1, 1)])
    db.insert("assets_asset", "id, created_at, updated_at, ticker, name, exchange_id, currency_id",
              [(1, "now", "now", "ACME", "Acme", 1, 1)])
    yield db
    db.drop()


@pytest.fixture
def db(expanded) -> JobDatabase:
    """A copy of the expanded schema with the legacy and new alerts, and their trigger rows."""
    copy = expanded.copy("alerts")
    alerts = [(i, None) for i in LEGACY_ALERTS] + list(NEW_ALERTS.items())
    copy.insert("investments_alert", "id, uuid, user_id, asset_id, condition, threshold, "
                "is_active, created_at, is_deleted",
                [(i, u, 1, 1, "above", 10, True, "now", i == 5) for i, u in sorted(alerts)])
    copy.insert("investments_alerttrigger", "id, alert_id, triggered_at, price, notified",
                [(t, a, "now", 1, False) for t, a in TRIGGERS])
    yield copy
    copy.drop()


def uuids(db: JobDatabase) -> dict[int, uuid.UUID | None]:
    return dict(db.rows("SELECT id, uuid FROM investments_alert"))


def references(db: JobDatabase) -> dict[int, uuid.UUID | None]:
    return dict(db.rows("SELECT id, alert_uuid FROM investments_alerttrigger"))


def test_the_legacy_data_is_what_the_job_is_for(db):
    assert {i for i, u in uuids(db).items() if u is None} == set(LEGACY_ALERTS)
    refs = references(db)
    assert {t for t, _ in TRIGGERS if refs[t] is None} == {11, 12, 13, 15, 17, 18}


def test_every_alert_without_a_uuid_gets_a_distinct_new_one(db):
    result = db.batch(JOB, 0, 8)
    after = uuids(db)
    assert None not in after.values()
    assert len(set(after.values())) == len(after)
    assert result.counts["alerts_backfilled"] == len(LEGACY_ALERTS) == result.rows


def test_an_alert_that_already_has_a_uuid_keeps_it(db):
    db.batch(JOB, 0, 8)
    after = uuids(db)
    assert {i: after[i] for i in NEW_ALERTS} == NEW_ALERTS


def test_every_trigger_row_gets_the_uuid_of_the_alert_its_alert_id_names(db):
    result = db.batch(JOB, 0, 8)
    alert_uuids, refs = uuids(db), references(db)
    assert {t: refs[t] for t, _ in TRIGGERS} == {t: alert_uuids[a] for t, a in TRIGGERS}
    assert result.counts["references_backfilled"] == 6  # the legacy alerts' trigger rows


def test_a_batch_touches_only_the_alerts_in_its_key_range_and_their_trigger_rows(db):
    db.batch(JOB, 1, 3)  # the half-open range (1, 3]: alerts 2 and 3
    after, refs = uuids(db), references(db)
    assert {i for i, u in after.items() if u is None} == {1, 5, 8}
    assert refs[13] == after[2]
    assert [refs[t] for t in (11, 12, 15, 17, 18)] == [None] * 5


def test_a_batch_done_twice_changes_nothing_the_second_time(db):
    db.batch(JOB, 0, 8)
    first = (uuids(db), references(db))
    again = db.batch(JOB, 0, 8)
    assert again.counts == {"alerts_backfilled": 0, "references_backfilled": 0}
    assert again.rows == 0
    assert (uuids(db), references(db)) == first


def test_a_trigger_row_written_while_a_batch_backfills_its_alert_waits_and_gets_the_uuid(db):
    """The sync trigger of 0005 reads the alert FOR SHARE: it waits for the batch's commit."""
    batch = db.connect()
    batch.autocommit = False
    with batch.cursor() as cursor:
        get_job(JOB).process_batch(cursor, 0, 8)  # uncommitted: alert 1's new UUID is not visible
    written: list[int] = []
    writer = threading.Thread(target=lambda: written.append(
        db.scalar(OLD_INSERT_TRIGGER, [1])))
    writer.start()
    wait_until(lambda: db.sessions_waiting_for_a_lock() == 1, 10, 0.02,
               "the trigger row's insert to wait for the batch")
    batch.commit()
    batch.close()
    writer.join(timeout=10)
    assert uuids(db)[1] is not None
    assert references(db)[written[0]] == uuids(db)[1]


def test_a_batch_that_starts_while_a_trigger_row_is_being_written_waits_and_fills_it(db):
    """A trigger row's open insert holds its alert FOR SHARE: the batch waits for it, then copies
    the UUID into it too."""
    writer = db.connect()
    writer.autocommit = False
    trigger_id = writer.execute(OLD_INSERT_TRIGGER, [1]).fetchone()[0]  # alert 1 has no UUID yet
    done = threading.Event()
    worker = threading.Thread(target=lambda: (db.batch(JOB, 0, 8), done.set()))
    worker.start()
    wait_until(lambda: db.sessions_waiting_for_a_lock() == 1, 10, 0.02,
               "the batch to wait for the trigger row's insert")
    assert not done.is_set()
    writer.commit()
    writer.close()
    worker.join(timeout=10)
    assert done.is_set()
    assert uuids(db)[1] is not None
    assert references(db)[trigger_id] == uuids(db)[1]


def test_done_when_no_alert_lacks_a_uuid_and_every_trigger_row_carries_its_alerts(db):
    assert db.remaining(JOB) == 5  # the alerts without a UUID
    db.batch(JOB, 0, 3)
    assert db.remaining(JOB) == 2  # alerts 5 and 8
    db.batch(JOB, 3, 8)
    assert db.remaining(JOB) == 0

    db.execute("UPDATE investments_alert SET uuid = NULL WHERE id = 4")
    assert db.remaining(JOB) == 2  # alert 4, and its trigger row 14 that now disagrees with it


def test_a_trigger_row_that_disagrees_with_its_alert_is_not_done(db):
    db.batch(JOB, 0, 8)
    # Only a writer bypassing the sync trigger could do this; the verification must still see it.
    db.execute("ALTER TABLE investments_alerttrigger DISABLE TRIGGER investments_alerttrigger_sync_alert")
    db.execute("UPDATE investments_alerttrigger SET alert_uuid = %s WHERE id = 11", [NEW_ALERTS[4]])
    assert db.remaining(JOB) == 1


def test_the_engine_runs_the_job_to_finished_and_verified(db):
    run = db.run(JOB)
    assert run["status"] == "finished", run
    assert run["report"] == {"alerts_backfilled": 5, "references_backfilled": 6}
    assert db.remaining(JOB) == 0
