"""`legacy_columns` (assets/jobs/legacy_columns.py), rule by rule, on the schema of assets 0008:
the `sector` / `industry` text columns have left the model but are still in the table, and a
trigger captures every value the previous release writes to them from then on (the same match
rule as the job's, one database function)."""

from __future__ import annotations

import threading
import time

import pytest

from migrations_worker.job import get_job
from tests.jobs.conftest import JobDatabase

JOB = "legacy_columns"

# (id, name, is_deleted): "energy" names two live sectors; "Utilities" only a deleted one;
# "health" a live and a deleted one.
SECTORS = [(1, "Technology", False), (2, "Energy", False), (3, "ENERGY", False),
           (4, "Utilities", True), (5, "Health", False), (6, "health", True)]
# (id, sector, name, is_deleted): "Oil" is an industry of two sectors.
INDUSTRIES = [(11, 1, "Software", False), (12, 2, "Oil", False), (13, 3, "Oil", False),
              (14, 5, "Pharma", False)]
# (id, sector text, industry text, sector_ref, industry_ref, is_deleted)
ASSETS = [
    (1, "Technology", "  software ", None, None, False),
    (2, "energy", "Oil", None, None, False),
    (3, "Utilities", None, None, None, False),
    (4, "HEALTH", "pharma", None, None, False),
    (5, "   ", "", None, None, False),
    (6, "Technology", "Oil", 2, None, False),  # already linked, to another sector
    (7, "Tech", None, None, None, False),
    (8, "Technology", None, None, None, True),  # a soft-deleted asset
    (9, None, None, None, None, False),
]
# (asset, field, value as it was, outcome, matched id)
ARCHIVE = {
    (1, "sector", "Technology", "matched", 1),
    (1, "industry", "  software ", "matched", 11),
    (2, "sector", "energy", "ambiguous", None),
    (2, "industry", "Oil", "ambiguous", None),
    (3, "sector", "Utilities", "unmatched", None),
    (4, "sector", "HEALTH", "matched", 5),
    (4, "industry", "pharma", "matched", 14),
    (6, "sector", "Technology", "matched", 1),
    (6, "industry", "Oil", "ambiguous", None),
    (7, "sector", "Tech", "unmatched", None),
    (8, "sector", "Technology", "matched", 1),
}
LAST_ASSET = 9


@pytest.fixture(scope="module")
def retired(legacy_template) -> JobDatabase:
    """assets at 0008 (the fields leave the model, the job is enqueued), with reference data."""
    db = legacy_template.copy("legacy_tpl")
    db.migrate("assets", "0008_retire_legacy_text_fields")
    db.insert("assets_country", "id, created_at, updated_at, iso_code, name",
              [(1, "now", "now", "US", "United States")])
    db.insert("assets_currency", "id, created_at, updated_at, code, name",
              [(1, "now", "now", "USD", "US dollar")])
    db.insert("assets_exchange", "id, created_at, updated_at, mic, name, country_id, currency_id",
              [(1, "now", "now", "XNYS", "New York Stock Exchange", 1, 1)])
    db.insert("assets_sector", "id, name, is_deleted, created_at, updated_at",
              [(*s, "now", "now") for s in SECTORS])
    db.insert("assets_industry", "id, sector_id, name, is_deleted, created_at, updated_at",
              [(*i, "now", "now") for i in INDUSTRIES])
    yield db
    db.drop()


CAPTURE = "assets_asset_capture_legacy_text"


@pytest.fixture
def db(retired) -> JobDatabase:
    """The legacy rows, as they were before 0008 started capturing writes (written with its
    trigger off), for the job to archive."""
    copy = retired.copy("legacy")
    copy.execute(f"ALTER TABLE assets_asset DISABLE TRIGGER {CAPTURE}")
    copy.insert("assets_asset", "id, sector, industry, sector_ref_id, industry_ref_id, is_deleted, "
                "ticker, name, exchange_id, currency_id, created_at, updated_at",
                [(*a, f"T{a[0]}", "x", 1, 1, "now", "now") for a in ASSETS])
    copy.execute(f"ALTER TABLE assets_asset ENABLE TRIGGER {CAPTURE}")
    yield copy
    copy.drop()


def archive(db: JobDatabase) -> set[tuple]:
    return set(db.rows("SELECT asset_id, field, value, outcome, matched_id FROM assets_assetlegacytext"))


def links(db: JobDatabase) -> dict[int, tuple[int | None, int | None]]:
    return {i: (s, n) for i, s, n in db.rows("SELECT id, sector_ref_id, industry_ref_id FROM assets_asset")}


def test_every_non_empty_value_is_archived_exactly_as_it_was(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert {row[:3] for row in archive(db)} == {row[:3] for row in ARCHIVE}
    assert (1, "industry", "  software ") in {row[:3] for row in archive(db)}  # not trimmed


def test_values_of_spaces_only_or_empty_or_null_are_not_archived(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert {row[0] for row in archive(db)}.isdisjoint({5, 9})


def test_a_soft_deleted_assets_text_is_archived_and_linked_too(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert (8, "sector", "Technology", "matched", 1) in archive(db)
    assert links(db)[8] == (1, None)


def test_a_value_matches_a_name_ignoring_case_and_surrounding_spaces(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert (1, "industry", "  software ", "matched", 11) in archive(db)
    assert (4, "sector", "HEALTH", "matched", 5) in archive(db)
    assert links(db)[1] == (1, 11)
    assert links(db)[4] == (5, 14)


def test_a_value_that_names_several_live_rows_is_ambiguous_and_links_nothing(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert (2, "sector", "energy", "ambiguous", None) in archive(db)  # two sectors, two cases
    assert (2, "industry", "Oil", "ambiguous", None) in archive(db)  # one name, two sectors
    assert links(db)[2] == (None, None)


def test_soft_deleted_reference_rows_are_not_candidates(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert (3, "sector", "Utilities", "unmatched", None) in archive(db)  # only a deleted row
    assert (4, "sector", "HEALTH", "matched", 5) in archive(db)  # a live and a deleted row
    assert links(db)[3] == (None, None)


def test_a_value_that_matches_nothing_is_archived_as_unmatched_and_links_nothing(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert (7, "sector", "Tech", "unmatched", None) in archive(db)  # no partial matches
    assert links(db)[7] == (None, None)


def test_an_asset_already_linked_keeps_its_link_and_its_text_is_still_archived(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert (6, "sector", "Technology", "matched", 1) in archive(db)
    assert links(db)[6] == (2, None)


def test_each_value_gets_its_outcome(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert archive(db) == ARCHIVE


def test_the_runs_report_counts_each_outcome_and_every_link_made(db):
    run = db.run(JOB)
    assert run["status"] == "finished", run
    assert run["report"] == {"values_archived": 11, "values_matched": 6, "values_unmatched": 2,
                             "values_ambiguous": 3, "assets_linked": 5}  # 3 sectors, 2 industries
    assert archive(db) == ARCHIVE


def test_a_batch_touches_only_the_assets_in_its_key_range(db):
    db.batch(JOB, 1, 3)  # the half-open range (1, 3]: assets 2 and 3
    assert {row[0] for row in archive(db)} == {2, 3}
    assert links(db)[1] == (None, None)


def test_a_batch_done_twice_changes_nothing_the_second_time(db):
    db.batch(JOB, 0, LAST_ASSET)
    first = db.rows("SELECT * FROM assets_assetlegacytext ORDER BY id"), links(db)
    again = db.batch(JOB, 0, LAST_ASSET)
    assert again.rows == 0
    assert set(again.counts.values()) == {0}
    assert (db.rows("SELECT * FROM assets_assetlegacytext ORDER BY id"), links(db)) == first


def test_done_when_every_non_empty_value_is_archived(db):
    assert db.remaining(JOB) == len(ARCHIVE)
    db.batch(JOB, 0, 4)
    assert db.remaining(JOB) == 4  # assets 6, 7 and 8's values
    db.batch(JOB, 4, LAST_ASSET)
    assert db.remaining(JOB) == 0


def test_a_value_written_without_the_capture_is_not_done_until_archived_as_well(db):
    """A writer the trigger does not see (a restore with triggers off, say): the verification
    still counts its value, and a batch over it archives it."""
    db.batch(JOB, 0, LAST_ASSET)
    db.execute(f"ALTER TABLE assets_asset DISABLE TRIGGER {CAPTURE}")
    db.execute("UPDATE assets_asset SET sector = 'Energy' WHERE id = 3")
    db.execute(f"ALTER TABLE assets_asset ENABLE TRIGGER {CAPTURE}")
    assert db.remaining(JOB) == 1
    db.batch(JOB, 2, 3)
    assert db.remaining(JOB) == 0
    assert {r for r in archive(db) if r[0] == 3} == {
        (3, "sector", "Utilities", "unmatched", None), (3, "sector", "Energy", "ambiguous", None)}


# -- the previous release writes on: every value captured as it is written --------------------


def old_code_saves(db: JobDatabase, asset: int, sector, industry="keep", sector_ref="keep") -> None:
    """The previous release's save: every field, the text included (and its possibly stale
    link, as the model loaded it)."""
    sets = ["sector = %s", "updated_at = now()"]
    params = [sector]
    if industry != "keep":
        sets.append("industry = %s")
        params.append(industry)
    if sector_ref != "keep":
        sets.append("sector_ref_id = %s")
        params.append(sector_ref)
    db.execute(f"UPDATE assets_asset SET {', '.join(sets)} WHERE id = %s", [*params, asset])


def test_a_value_the_previous_release_writes_is_archived_at_once_with_the_one_it_replaces(db):
    old_code_saves(db, 7, "  ENERGY")  # asset 7 ("Tech") not archived by the job yet
    assert {r for r in archive(db) if r[0] == 7} == {
        (7, "sector", "Tech", "unmatched", None), (7, "sector", "  ENERGY", "ambiguous", None)}
    assert db.remaining(JOB) == len(ARCHIVE) - 1  # only 7's own values are done


def test_the_trigger_gives_every_value_the_outcome_the_job_gives_it(db):
    for n, (_asset, field, value, outcome, matched) in enumerate(sorted(ARCHIVE), start=100):
        db.execute("INSERT INTO assets_asset (id, sector, industry, is_deleted, ticker, name, "
                   "exchange_id, currency_id, created_at, updated_at) "
                   "VALUES (%s, %s, %s, false, %s, 'x', 1, 1, now(), now())",
                   [n, value if field == "sector" else None, value if field == "industry" else None,
                    f"N{n}"])
        assert (n, field, value, outcome, matched) in archive(db)


def test_the_link_follows_text_the_previous_release_changes(db):
    db.batch(JOB, 0, LAST_ASSET)
    old_code_saves(db, 3, "Health")  # unmatched Utilities -> one live sector
    assert links(db)[3][0] == 5
    old_code_saves(db, 1, "no such sector")  # Technology -> nothing: the link goes
    assert links(db)[1][0] is None


def test_a_save_that_keeps_the_text_cannot_erase_a_link_with_the_stale_null_it_loaded(db):
    db.batch(JOB, 0, LAST_ASSET)
    assert links(db)[1][0] == 1
    old_code_saves(db, 1, "Technology", sector_ref=None)  # model loaded before the job linked it
    assert links(db)[1][0] == 1


def test_an_asset_the_previous_release_creates_is_archived_and_linked(db):
    db.execute("INSERT INTO assets_asset (id, sector, industry, is_deleted, ticker, name, "
               "exchange_id, currency_id, created_at, updated_at) "
               "VALUES (50, 'technology', 'Pharma', false, 'NEW', 'x', 1, 1, now(), now())")
    assert {r for r in archive(db) if r[0] == 50} == {
        (50, "sector", "technology", "matched", 1), (50, "industry", "Pharma", "matched", 14)}
    assert links(db)[50] == (1, 14)


def test_an_asset_deleted_before_the_job_reached_it_leaves_its_text_in_the_archive(db):
    db.execute("DELETE FROM assets_asset WHERE id = 7")
    assert (7, "sector", "Tech", "unmatched", None) in archive(db)


def test_the_job_converges_while_the_previous_release_keeps_rewriting_text(db):
    """The issue's failure: a re-classifying writer made the verification fail for ever."""
    db.batch(JOB, 0, 4)
    old_code_saves(db, 2, "Software")  # behind the job
    old_code_saves(db, 8, "Oil")  # ahead of it
    db.batch(JOB, 4, LAST_ASSET)
    old_code_saves(db, 6, "Energy ")  # after it passed
    assert db.remaining(JOB) == 0


class PausingCursor:
    """The batch's own cursor, paused once before the statement for `field` until `meanwhile`
    has returned: a deterministic interleaving of the batch with a writer."""

    def __init__(self, cursor, field: str, meanwhile):
        self.cursor, self.field, self.meanwhile = cursor, field, meanwhile

    def execute(self, query, params=None):
        if self.meanwhile and (params or {}).get("field") == self.field:
            self.meanwhile, meanwhile = None, self.meanwhile
            meanwhile()
        return self.cursor.execute(query, params)

    def __getattr__(self, name):
        return getattr(self.cursor, name)


def test_a_save_of_the_previous_release_during_a_batch_waits_for_it_and_never_deadlocks(db):
    """The demo's deadlock (40P01 on the previous release's re-classification): the batch had
    archived an asset's sector text but not yet linked its industry when the old code saved the
    asset; the save's capture trigger waited on the batch's archive row while holding the row
    lock the batch's link then needed. The batch locks its assets first: the save waits, then
    both commit."""
    db.execute(f"ALTER TABLE assets_asset DISABLE TRIGGER {CAPTURE}")
    db.execute("INSERT INTO assets_asset (id, sector, industry, is_deleted, ticker, name, "
               "exchange_id, currency_id, created_at, updated_at) "
               "VALUES (20, 'Tech', 'Software', false, 'T20', 'x', 1, 1, now(), now())")
    db.execute(f"ALTER TABLE assets_asset ENABLE TRIGGER {CAPTURE}")
    saved: list[BaseException | None] = []

    def old_code_saves_asset_20():
        try:
            old_code_saves(db, 20, "Energy", industry="Software")
            saved.append(None)
        except BaseException as error:  # reported by the assertion below
            saved.append(error)

    writer = threading.Thread(target=old_code_saves_asset_20)

    def start_the_writer_and_let_it_block():
        writer.start()
        deadline = time.monotonic() + 10
        while db.sessions_waiting_for_a_lock() == 0 and writer.is_alive():
            assert time.monotonic() < deadline, "the save neither blocked nor finished"
            time.sleep(0.02)

    with db.connect() as conn, conn.transaction(), conn.cursor() as cursor:
        get_job(JOB).process_batch(PausingCursor(cursor, "industry", start_the_writer_and_let_it_block),
                                   19, 20)
    writer.join(timeout=30)
    assert saved == [None]
    assert {r for r in archive(db) if r[0] == 20} == {
        (20, "sector", "Tech", "unmatched", None), (20, "sector", "Energy", "ambiguous", None),
        (20, "industry", "Software", "matched", 11)}
    assert links(db)[20] == (None, 11)
