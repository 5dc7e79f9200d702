"""`legacy_columns_undo` (assets/jobs/legacy_columns_undo.py) and `backfill undo legacy_columns`,
rule by rule, on the data set of `test_legacy_columns`: the links the job made are recorded and
taken back where they still stand; links it did not make, or that changed since, stay."""

from __future__ import annotations

import pytest

from tests.jobs.conftest import JobDatabase
from tests.jobs.test_legacy_columns import ASSETS, CAPTURE, links, retired  # noqa: F401

JOB = "legacy_columns"
UNDO = "legacy_columns_undo"
# What the job links (asset: sector, industry), the rest as the assets had it.
LINKED = {1: (1, 11), 4: (5, 14), 8: (1, None)}
BEFORE = {a[0]: (a[3], a[4]) for a in ASSETS}


@pytest.fixture
def db(retired) -> JobDatabase:  # noqa: F811
    """test_legacy_columns' assets, and the job run through the engine (it joins the run 0008
    enqueued, so no run of it is under way when the undo is asked for)."""
    copy = retired.copy("legacy_undo")
    copy.execute(f"ALTER TABLE assets_asset DISABLE TRIGGER {CAPTURE}")
    copy.insert("assets_asset", "id, sector, industry, sector_ref_id, industry_ref_id, is_deleted, "
                "ticker, name, exchange_id, currency_id, created_at, updated_at",
                [(*a, f"T{a[0]}", "x", 1, 1, "now", "now") for a in ASSETS])
    copy.execute(f"ALTER TABLE assets_asset ENABLE TRIGGER {CAPTURE}")
    copy.run(JOB)
    yield copy
    copy.drop()


def undo(db: JobDatabase, *args: str, check: bool = True):
    return db.manage("backfill", "undo", JOB, "--inline", *args, check=check)


def recorded(db: JobDatabase) -> set[tuple]:
    return set(db.rows("SELECT asset_id, field, linked_id FROM assets_assetlegacytext "
                       "WHERE linked_id IS NOT NULL"))


def test_each_link_the_job_makes_is_recorded_on_the_value_it_came_from(db):
    assert links(db) == {**BEFORE, **LINKED}
    assert recorded(db) == {(1, "sector", 1), (1, "industry", 11), (4, "sector", 5),
                            (4, "industry", 14), (8, "sector", 1)}  # not 6's: linked before


def test_undo_takes_back_exactly_the_links_the_job_made(db):
    out = undo(db).stdout
    assert links(db) == BEFORE  # asset 6 keeps the link it had before the job
    assert recorded(db) == set()
    run = db.latest_run(UNDO)
    assert (run["status"], run["report"]) == (
        "finished", {"links_taken_back": 5, "links_changed_since_kept": 0})
    assert "legacy_columns: 5 to put back by legacy_columns_undo" in out
    assert db.scalar("SELECT count(*) FROM assets_assetlegacytext") == 11  # the text stays


def test_a_link_changed_since_the_job_is_reported_left_as_it_is_and_keeps_its_record(db):
    db.execute("UPDATE assets_asset SET sector_ref_id = 1 WHERE id = 4")  # re-classified
    out = undo(db).stdout
    assert links(db) == {**BEFORE, 4: (1, None)}  # its industry link went back, not its sector
    assert recorded(db) == {(4, "sector", 5)}
    assert db.latest_run(UNDO)["report"] == {"links_taken_back": 4, "links_changed_since_kept": 1}
    assert "asset 4: the sector link 5 (from 'HEALTH') was changed since to 1: left as it is" in out


def test_a_link_the_capture_trigger_made_for_a_write_of_the_previous_release_is_not_taken_back(db):
    db.execute("UPDATE assets_asset SET sector = 'Technology' WHERE id = 7")  # was 'Tech'
    assert links(db)[7] == (1, None)
    undo(db)
    assert links(db) == {**BEFORE, 7: (1, None)}


def test_an_asset_that_is_not_there_keeps_its_record_for_a_later_undo(db):
    db.execute("DELETE FROM assets_asset WHERE id = 8")
    out = undo(db).stdout
    assert db.latest_run(UNDO)["status"] == "finished"
    assert recorded(db) == {(8, "sector", 1)}
    assert "asset 8 is not there (merged away?): its sector link 1 (from 'Technology')" in out


def test_undoing_twice_changes_nothing_the_second_time(db):
    undo(db)
    first = links(db), db.rows("SELECT * FROM assets_assetlegacytext ORDER BY id")
    again = db.batch(UNDO, 0, 10_000)
    assert again.rows == 0
    assert "nothing to undo" in undo(db).stdout
    assert (links(db), db.rows("SELECT * FROM assets_assetlegacytext ORDER BY id")) == first


def test_the_job_links_again_after_an_undo_and_records_its_links_again(db):
    before = recorded(db)
    undo(db)
    db.manage("backfill", "run", JOB)  # a new run: the undo came after the finished one
    assert links(db) == {**BEFORE, **LINKED}
    assert recorded(db) == before  # on the archive rows the first run wrote


def test_after_an_undo_the_jobs_gate_stays_open_for_its_values_are_still_archived(db):
    undo(db)
    db.migrate("assets", "0012_enqueue_ticker_dedup")  # RequireJob("legacy_columns")
    assert links(db) == BEFORE  # not linked again by the gate
    assert [r[0] for r in db.rows("SELECT job_name FROM migrations_worker_jobrun "
                                  "WHERE job_name = %s", [JOB])] == [JOB]


def test_legacy_columns_has_no_groups(db):
    result = undo(db, "--group", "ALPHA:XNYS", check=False)
    assert result.returncode == 2, result
    assert "legacy_columns has no groups" in result.stderr
    assert links(db) == {**BEFORE, **LINKED}
