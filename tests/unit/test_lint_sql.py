"""Reading rendered SQL: statements split where PostgreSQL would, the tables a statement
alters or references, and the safe NOT NULL sequence that squawk, reading one statement at a
time, cannot see."""

from migrations_worker.sqltext import RECOGNISED_SAFE_PATTERNS, Statement, split_statements

CHECKED = ("ALTER TABLE t ADD CONSTRAINT t_c_nn CHECK (c IS NOT NULL) NOT VALID;\n"
           "ALTER TABLE t VALIDATE CONSTRAINT t_c_nn;\n")


def test_statement_splitter_keeps_function_bodies_and_quoted_semicolons_whole():
    sql = (
        "CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN PERFORM 1; RETURN NEW; END $$ "
        "LANGUAGE plpgsql;\nSELECT ';' AS \"a;b\"; -- x; y\nALTER TABLE t ADD COLUMN c int;"
    )
    texts = [s.text.strip() for s in split_statements(sql)]
    assert len(texts) == 3
    assert texts[0].endswith("LANGUAGE plpgsql;")
    assert Statement(texts[2], 0, 0).tables() == ({"t"}, set())


def test_a_statement_names_the_tables_it_alters_apart_from_those_it_only_references():
    sql = 'ALTER TABLE "Orders" ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES public.customer (id);'
    statement = Statement(sql, 0, len(sql))
    assert statement.tables() == ({"Orders"}, {"customer"})


def test_set_not_null_counts_as_safe_only_after_a_validated_not_null_check_on_that_column():
    set_not_null = "ALTER TABLE t ALTER COLUMN c SET NOT NULL;"
    proven = RECOGNISED_SAFE_PATTERNS["adding-not-nullable-field"]
    assert proven(CHECKED, set_not_null)
    assert not proven(CHECKED.split("\n")[0], set_not_null)  # added, never validated
    assert not proven(CHECKED, "ALTER TABLE t ALTER COLUMN d SET NOT NULL;")  # another column
    assert not proven(CHECKED, 'ALTER TABLE "u" ALTER COLUMN c SET NOT NULL;')  # another table


def test_dropping_the_not_null_check_counts_as_safe_only_once_the_column_is_set_not_null():
    drop = "ALTER TABLE t DROP CONSTRAINT t_c_nn;"
    proven = RECOGNISED_SAFE_PATTERNS["ban-drop-constraint"]
    assert proven(CHECKED + "ALTER TABLE t ALTER COLUMN c SET NOT NULL;\n", drop)
    assert not proven(CHECKED, drop)  # the column may still hold NULLs without the check
