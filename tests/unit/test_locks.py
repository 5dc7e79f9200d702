"""What each kind of statement locks, on which table, for how long (`migrations_worker.locks`), and
how the plan groups statements into steps (`plan._steps`): from SQL text, no database."""

import pytest

from migrations_worker.deploy import costs, locks, plan
from migrations_worker.deploy.locks import Hold, Mode

AE, SUE, SRE = Mode.ACCESS_EXCLUSIVE, Mode.SHARE_UPDATE_EXCLUSIVE, Mode.SHARE_ROW_EXCLUSIVE

# (statement, strongest mode, longest hold, {table: mode})
CASES = [
    ('CREATE INDEX CONCURRENTLY "i" ON "t" ("a");', SUE, Hold.BUILD, {"t": SUE}),
    ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (a);", SUE, Hold.BUILD, {"t": SUE}),
    ('CREATE INDEX "i" ON "t" ("a");', Mode.SHARE, Hold.BUILD, {"t": Mode.SHARE}),
    ("DROP INDEX CONCURRENTLY IF EXISTS i;", SUE, Hold.BRIEF, {"i": SUE}),
    ("DROP INDEX i;", AE, Hold.BRIEF, {"i": AE}),
    ('ALTER TABLE "t" ADD COLUMN "c" boolean DEFAULT false NOT NULL;', AE, Hold.BRIEF, {"t": AE}),
    ("ALTER TABLE t ADD COLUMN IF NOT EXISTS uuid uuid;", AE, Hold.BRIEF, {"t": AE}),
    ("ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();", AE, Hold.REWRITE, {"t": AE}),
    ("ALTER TABLE t ADD COLUMN s int GENERATED ALWAYS AS (a + 1) STORED;", AE, Hold.REWRITE,
     {"t": AE}),
    ('ALTER TABLE "t" ADD COLUMN "r" bigint NULL CONSTRAINT "fk" REFERENCES "u"("id") '
     "DEFERRABLE INITIALLY DEFERRED;", AE, Hold.SCAN, {"t": AE, "u": SRE}),
    ("ALTER TABLE t ADD CONSTRAINT c CHECK (x IS NOT NULL) NOT VALID;", AE, Hold.BRIEF, {"t": AE}),
    ("ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0);", AE, Hold.SCAN, {"t": AE}),
    ("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID;", SRE,
     Hold.BRIEF, {"t": SRE, "u": SRE}),
    ("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id);", SRE, Hold.SCAN,
     {"t": SRE, "u": SRE}),
    ("ALTER TABLE t ADD CONSTRAINT k UNIQUE USING INDEX i;", AE, Hold.BRIEF, {"t": AE}),
    ("ALTER TABLE t ADD CONSTRAINT k UNIQUE (a, b);", AE, Hold.BUILD, {"t": AE}),
    ("ALTER TABLE t ADD PRIMARY KEY (a);", AE, Hold.BUILD, {"t": AE}),
    ("ALTER TABLE t VALIDATE CONSTRAINT c;", SUE, Hold.SCAN, {"t": SUE}),
    ("ALTER TABLE t ALTER COLUMN c SET NOT NULL;", AE, Hold.SCAN, {"t": AE}),
    ("ALTER TABLE t ALTER COLUMN c TYPE bigint;", AE, Hold.REWRITE, {"t": AE}),
    ("ALTER TABLE t ALTER COLUMN c SET DATA TYPE text;", AE, Hold.REWRITE, {"t": AE}),
    ("ALTER TABLE t ALTER COLUMN c SET DEFAULT gen_random_uuid();", AE, Hold.BRIEF, {"t": AE}),
    ("ALTER TABLE t DROP COLUMN IF EXISTS a, DROP COLUMN IF EXISTS b;", AE, Hold.BRIEF, {"t": AE}),
    ("ALTER TABLE t RENAME COLUMN a TO b;", AE, Hold.BRIEF, {"t": AE}),
    ("ALTER TABLE t SET (fillfactor = 90);", SUE, Hold.BRIEF, {"t": SUE}),
    ("ALTER TABLE t DISABLE TRIGGER tr;", SRE, Hold.BRIEF, {"t": SRE}),
    ("CREATE TRIGGER tr BEFORE INSERT OR UPDATE OF a, b ON t FOR EACH ROW EXECUTE FUNCTION f();",
     SRE, Hold.BRIEF, {"t": SRE}),
    ("CREATE OR REPLACE TRIGGER tr AFTER DELETE ON t FOR EACH ROW EXECUTE FUNCTION f();", SRE,
     Hold.BRIEF, {"t": SRE}),
    ("DROP TRIGGER IF EXISTS tr ON t;", AE, Hold.BRIEF, {"t": AE}),
    ('CREATE TABLE "n" ("id" bigint PRIMARY KEY, "u_id" bigint REFERENCES "u" ("id"));', AE,
     Hold.BRIEF, {"n": AE, "u": SRE}),
    ("DROP TABLE IF EXISTS t;", AE, Hold.BRIEF, {"t": AE}),
    ("TRUNCATE t;", AE, Hold.BRIEF, {"t": AE}),
    ("LOCK TABLE t IN SHARE ROW EXCLUSIVE MODE;", SRE, Hold.BRIEF, {"t": SRE}),
    ("LOCK t;", AE, Hold.BRIEF, {"t": AE}),
    ("INSERT INTO g (a, n) SELECT a, count(*) FROM t GROUP BY a;", Mode.ROW_EXCLUSIVE, Hold.SCAN,
     {"g": Mode.ROW_EXCLUSIVE, "t": Mode.ACCESS_SHARE}),
    ("UPDATE t SET a = 1 WHERE id < 10;", Mode.ROW_EXCLUSIVE, Hold.ROWS, {"t": Mode.ROW_EXCLUSIVE}),
    ("DELETE FROM t WHERE a IS NULL;", Mode.ROW_EXCLUSIVE, Hold.SCAN, {"t": Mode.ROW_EXCLUSIVE}),
]


@pytest.mark.parametrize(("statement", "mode", "hold", "tables"), CASES, ids=[c[0][:50] for c in CASES])
def test_each_kind_of_statement_takes_its_lock_mode_on_its_tables_for_its_time(statement, mode, hold,
                                                                              tables):
    found = locks.locks_of(statement)
    assert (found.mode, found.hold) == (mode, hold), found
    assert {lock.table: lock.mode for lock in found.locks} == tables


def test_a_function_body_is_not_read_as_what_the_migration_does_now():
    found = locks.locks_of("CREATE OR REPLACE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ "
                           "BEGIN UPDATE other SET a = 1; DROP TABLE x; RETURN NEW; END $$;")
    assert found.kinds == ("function",) and found.locks == () and found.mode == Mode.NONE


def test_a_do_block_is_read_dynamic_sql_included_but_not_its_catalog_lookups():
    found = locks.locks_of("DO $$ DECLARE fk name; BEGIN FOR fk IN SELECT conname FROM "
                           "pg_constraint WHERE conrelid = 't'::regclass LOOP EXECUTE "
                           "format('ALTER TABLE t DROP CONSTRAINT %I', fk); END LOOP; END $$;")
    assert [(lock.table, lock.mode) for lock in found.locks] == [("t", AE)]
    assert "read" not in found.kinds  # FROM pg_constraint is the catalog


def test_set_not_null_after_a_validated_check_is_brief_and_without_it_a_scan():
    before = ("ALTER TABLE t ADD CONSTRAINT c CHECK (x IS NOT NULL) NOT VALID;\n"
              "ALTER TABLE t VALIDATE CONSTRAINT c;\n")
    statement = "ALTER TABLE t ALTER COLUMN x SET NOT NULL;"
    assert locks.locks_of(statement, before).hold == Hold.BRIEF
    assert "proven by a validated CHECK" in locks.locks_of(statement, before).kinds[0]
    assert locks.locks_of(statement, "ALTER TABLE t ADD CONSTRAINT c CHECK (x IS NOT NULL) "
                                     "NOT VALID;").hold == Hold.SCAN


def test_a_statement_no_rule_knows_is_unknown_never_safe():
    found = locks.locks_of("CLUSTER t USING i;")
    assert found.kinds == ("unknown",) and found.hold == Hold.UNKNOWN


def test_settings_and_transaction_control_lock_nothing():
    for statement in ("SET lock_timeout = '2s';", "BEGIN;", "COMMIT;", "-- a comment\n;",
                      "SET CONSTRAINTS x IMMEDIATE;"):
        assert locks.is_noise(statement), statement
    assert not locks.is_noise("ALTER TABLE t DROP COLUMN a;")


# -- steps ------------------------------------------------------------------------------------------


class Sizes:
    """The plan's catalog reader, with sizes given instead of read."""

    def __init__(self, **sizes: int):
        self.sizes = sizes
        self.created: set[str] = set()
        self.indexes: dict[str, str] = {}

    def saw(self, code, found) -> None:
        pass

    def cost(self, lock) -> costs.TableCost:
        size = self.sizes.get(lock.table)
        return costs.TableCost(lock.table, lock.mode.sql_name, lock.hold.name.lower(),
                              None if size is None else size // 100, size)


def test_steps_follow_what_commits_together_and_a_lock_is_held_until_its_step_commits(settings):
    settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "PLAN_SCAN_BYTES_PER_SECOND": 1_000}
    sql = "\n".join([
        "SET lock_timeout = '2000ms';", "SET statement_timeout = '60000ms';",
        "ALTER TABLE t ADD COLUMN c int;",  # brief, but held for the scan after it
        "ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0);",  # scans 5,000 bytes: 5 s
        "SET lock_timeout = '60000ms';", "SET statement_timeout = '0';",
        'CREATE INDEX CONCURRENTLY "i" ON "t" ("c");',  # a step of its own, outside a transaction
        "BEGIN;", "CREATE TABLE n (id int);", "COMMIT;",
    ])
    steps = plan._steps(sql, "", Sizes(t=5_000))
    assert [(s.number, s.transaction, len(s.statements)) for s in steps] == [
        (1, True, 2), (2, False, 1), (3, True, 1)]
    add, check = steps[0].statements
    assert (add.seconds, add.held_seconds, add.lock_timeout) == (0.0, 5.0, "2s")
    assert (check.seconds, check.held_seconds) == (5.0, 5.0)
    [index] = steps[1].statements
    assert (index.lock, index.seconds, index.lock_timeout) == ("SHARE UPDATE EXCLUSIVE", 15.0, "60s")
    assert steps[2].statements[0].lock_timeout == "60s"  # set earlier, still in force


def test_a_statement_on_a_table_of_unknown_size_has_an_unknown_duration():
    [step] = plan._steps("SET lock_timeout = '2s';\nALTER TABLE gone VALIDATE CONSTRAINT c;", "",
                         Sizes())
    assert step.statements[0].seconds is None and step.seconds is None
    assert costs.approx(None) == "duration unknown"


@pytest.mark.parametrize(("value", "words"), [("2000ms", "2s"), ("60000ms", "60s"), ("0", "none"),
                                              ("500ms", "500ms"), ("1min", "1min")])
def test_timeouts_read_as_people_say_them(value, words):
    assert costs.timeout_words(value) == words
