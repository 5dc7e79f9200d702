"""Every Django-level lint rule, broken and kept: the err case is reported, the ok case is not.

Each migration here is built in memory over a project state in which `shop_order` and
`shop_customer` already exist (so may be big and busy), and goes through the same pass as
`manage.py lint_migrations` (`django_rules.check`), minus rendering and squawk: no database.
"""

import pytest
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import models
from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from migrations_worker.lint.catalogue import RULES
from migrations_worker.lint.django_rules import (
    MIGRATION_CHECKS,
    OPERATION_CHECKS,
    SQL_CHECKS,
    check,
    operation_rule,
    sql_rule,
)
from migrations_worker.lint.findings import LintedMigration
from migrations_worker.operations import CreateIndexConcurrently, RequireJob, Safely, SafeSQL, Stage

APP = "shop"


def existing_tables() -> ProjectState:
    """The state earlier migrations left: shop_customer and shop_order are live tables."""
    state = ProjectState()
    for operation in (
        ops.CreateModel("Customer", [("id", models.BigAutoField(primary_key=True))]),
        ops.CreateModel("Order", [
            ("id", models.BigAutoField(primary_key=True)),
            ("code", models.CharField(max_length=20)),
            ("uuid", models.UUIDField(null=True)),
        ]),
    ):
        operation.state_forwards(APP, state)
    return state


def migration(*operations, atomic: bool = True, stage: Stage | None = None,
              name: str = "0002_change") -> Migration:
    result = Migration(name, APP)
    result.operations = list(operations)
    result.atomic = atomic
    if stage is not None:
        result.stage = stage
    return result


def reported(rule: str, linted: Migration, sql: str = "", parents: list[Migration] = (),
             new_tables: set[str] = frozenset()) -> list[str]:
    """Where `rule` is broken in `linted` (with `sql` as its rendered SQL), as the linter says."""
    item = LintedMigration(linted, existing_tables(), exceptions={}, sql=sql,
                           new_tables=set(new_tables), parents=list(parents))
    check(item)
    return [v.message.removesuffix(f": {RULES[rule].summary}") for v in item.violations
            if v.rule == rule]


def new_invoice_table() -> ops.CreateModel:
    return ops.CreateModel("Invoice", [("id", models.BigAutoField(primary_key=True))])


# --- raw-sql -------------------------------------------------------------------------------------


def test_run_sql_is_reported_and_safe_sql_is_not():
    statement = "ALTER TABLE shop_order ADD COLUMN note text"
    assert reported("raw-sql", migration(ops.RunSQL(statement))) == ["RunSQL"]
    assert reported("raw-sql", migration(SafeSQL([[statement]]), atomic=False)) == []


def test_run_sql_inside_separate_database_and_state_is_reported_too():
    hidden = ops.SeparateDatabaseAndState(database_operations=[ops.RunSQL("SELECT 1")])
    assert reported("raw-sql", migration(hidden)) == ["RunSQL"]


# --- concurrent-index-in-atomic-migration --------------------------------------------------------


def test_concurrent_index_in_an_atomic_migration_is_reported_and_in_a_non_atomic_one_is_not():
    build = CreateIndexConcurrently("shop_order_code_idx", "shop_order", ["code"])
    rule = "concurrent-index-in-atomic-migration"
    assert reported(rule, migration(build)) == [
        "Create index shop_order_code_idx on shop_order concurrently"
    ]
    assert reported(rule, migration(build, atomic=False)) == []


def test_safe_sql_with_concurrently_in_an_atomic_migration_is_reported_as_a_concurrent_index():
    build = SafeSQL([["CREATE INDEX CONCURRENTLY shop_order_code_idx ON shop_order (code)"]])
    assert reported("concurrent-index-in-atomic-migration", migration(build)) == ["Lock-safe SQL"]
    assert reported("lock-safe-operation-in-atomic-migration", migration(build)) == []


# --- lock-safe-operation-in-atomic-migration -----------------------------------------------------


@pytest.mark.parametrize("operation", [
    Safely(ops.AddField("order", "note", models.TextField(null=True))),
    SafeSQL([["ALTER TABLE shop_order ADD COLUMN note text"]]),
    RequireJob("order_notes"),
], ids=["Safely", "SafeSQL", "RequireJob"])
def test_lock_safe_step_in_an_atomic_migration_is_reported_and_in_a_non_atomic_one_is_not(operation):
    rule = "lock-safe-operation-in-atomic-migration"
    assert reported(rule, migration(operation)) == [type(operation).__name__]
    assert reported(rule, migration(operation, atomic=False)) == []


# --- alter-primary-key ---------------------------------------------------------------------------


def test_field_becoming_the_primary_key_is_reported_and_a_cosmetic_change_to_the_key_is_not():
    rule = "alter-primary-key"
    new_key = ops.AlterField("order", "uuid", models.UUIDField(primary_key=True, serialize=False))
    assert reported(rule, migration(new_key)) == ["AlterField shop_order.uuid"]
    relabelled = ops.AlterField("order", "id", models.BigAutoField(primary_key=True, verbose_name="ID"))
    assert reported(rule, migration(relabelled)) == []


def test_primary_key_changing_type_is_reported():
    retyped = ops.AlterField("order", "id", models.UUIDField(primary_key=True, serialize=False))
    assert reported("alter-primary-key", migration(retyped)) == ["AlterField shop_order.id"]


# --- not-null-without-db-default -----------------------------------------------------------------


def test_not_null_field_without_db_default_is_reported_and_with_db_default_or_null_is_not():
    rule = "not-null-without-db-default"
    required = ops.AddField("order", "rank", models.IntegerField(default=0))
    assert reported(rule, migration(required)) == ["AddField shop_order.rank"]
    with_db_default = ops.AddField("order", "rank", models.IntegerField(db_default=0))
    nullable = ops.AddField("order", "rank", models.IntegerField(null=True))
    assert reported(rule, migration(with_db_default)) == []
    assert reported(rule, migration(nullable)) == []


def test_not_null_field_on_a_table_created_in_the_same_migration_is_not_reported():
    required = ops.AddField("invoice", "rank", models.IntegerField(default=0))
    assert reported("not-null-without-db-default", migration(new_invoice_table(), required)) == []


# --- index-on-existing-table ---------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "where"), [
    (ops.AddIndex("order", models.Index(fields=["uuid"], name="shop_order_uuid_idx")),
     "AddIndex shop_order_uuid_idx on shop_order"),
    (ops.AddField("order", "customer", models.ForeignKey("shop.customer", models.CASCADE)),
     "AddField shop_order.customer"),
    (ops.AlterField("order", "code", models.CharField(max_length=20, unique=True)),
     "AlterField shop_order.code"),
    (ops.AddConstraint("order", models.UniqueConstraint(fields=["code"], name="shop_order_code_uq")),
     "AddConstraint shop_order_code_uq (unique) on shop_order"),
    (ops.AlterUniqueTogether("order", {("code", "uuid")}), "AlterUniqueTogether on shop_order"),
], ids=["AddIndex", "ForeignKey", "unique field", "UniqueConstraint", "unique_together"])
def test_plain_index_on_an_existing_table_is_reported(operation, where):
    assert reported("index-on-existing-table", migration(operation)) == [where]


@pytest.mark.parametrize("linted", [
    migration(AddIndexConcurrently("order", models.Index(fields=["uuid"], name="shop_order_uuid_idx")),
              atomic=False),
    migration(ops.AddField("order", "customer",
                           models.ForeignKey("shop.customer", models.CASCADE, db_index=False))),
    migration(new_invoice_table(),
              ops.AddIndex("invoice", models.Index(fields=["id"], name="shop_invoice_id_idx"))),
], ids=["concurrently", "ForeignKey without index", "new table"])
def test_concurrent_index_unindexed_foreign_key_or_index_on_a_new_table_is_not_reported(linted):
    assert reported("index-on-existing-table", linted) == []


# --- identifier-too-long -------------------------------------------------------------------------


def test_identifier_over_63_bytes_is_reported_and_one_of_63_bytes_is_not():
    long_name, fitting = "i" * 64, "i" * 63
    assert reported("identifier-too-long", migration(),
                    sql=f"CREATE INDEX {long_name} ON shop_order (code);") == [f"'{long_name}' is 64 bytes"]
    assert reported("identifier-too-long", migration(),
                    sql=f"CREATE INDEX {fitting} ON shop_order (code);") == []


def test_identifier_length_counts_bytes_and_ignores_string_literals():
    accented = "é" * 32  # 32 characters, 64 bytes
    assert reported("identifier-too-long", migration(),
                    sql=f'CREATE INDEX "{accented}" ON shop_order (code);') == [f"'{accented}' is 64 bytes"]
    assert reported("identifier-too-long", migration(),
                    sql=f"COMMENT ON TABLE shop_order IS '{'x' * 80}';") == []


# --- squawk-ignore-without-reason ----------------------------------------------------------------


def test_squawk_ignore_comment_counts_only_with_a_reason():
    sql = (
        "-- squawk-ignore ban-drop-column -- archived by the legacy_columns job first\n"
        "ALTER TABLE t DROP COLUMN a;\n"
        "-- squawk-ignore ban-drop-column\n"
        "ALTER TABLE t DROP COLUMN b;\n"
        "-- squawk-ignore ban-drop-column -- why not\n"
        "ALTER TABLE t DROP COLUMN c;\n"
    )
    assert reported("squawk-ignore-without-reason", migration(), sql=sql) == [
        "-- squawk-ignore ban-drop-column",
        "-- squawk-ignore ban-drop-column -- why not",  # too short to be a reason
    ]


# --- stage-not-declared -------------------------------------------------------------------------


def test_a_migration_without_a_stage_is_reported_and_one_with_a_stage_is_not():
    assert reported("stage-not-declared", migration()) == ["no `stage`"]
    assert reported("stage-not-declared", migration(stage=Stage.PRE)) == []
    assert reported("stage-not-declared", migration(stage=Stage.POST)) == []


# --- contract-operation-in-pre-deploy ------------------------------------------------------------

DROP = "ALTER TABLE shop_order DROP COLUMN code;\n"


@pytest.mark.parametrize(("sql", "what"), [
    (DROP, "drops a column"),
    ("DROP TABLE shop_order;\n", "drops a table"),
    ("ALTER TABLE shop_order RENAME COLUMN code TO ref;\n", "renames a table or column"),
    ("ALTER TABLE shop_order ALTER COLUMN code TYPE text;\n", "changes a column's type"),
    ("ALTER TABLE shop_order ALTER COLUMN code SET NOT NULL;\n", "makes a column NOT NULL"),
    ("ALTER TABLE shop_order ADD CONSTRAINT c CHECK (code <> '') NOT VALID;\n", "adds a constraint"),
    ("ALTER TABLE shop_order ADD CONSTRAINT u UNIQUE USING INDEX i;\n", "adds a constraint"),
    ("CREATE UNIQUE INDEX CONCURRENTLY i ON shop_order (code);\n", "builds a unique index"),
    ("DROP TRIGGER IF EXISTS keep_in_step ON shop_order;\n", "drops a trigger"),
    ("DROP FUNCTION IF EXISTS keep_in_step();\n", "drops a function"),
])
def test_a_contract_step_in_a_pre_deploy_migration_is_reported_and_in_a_post_deploy_one_is_not(
    sql, what
):
    found = reported("contract-operation-in-pre-deploy", migration(stage=Stage.PRE), sql=sql)
    assert [f.split(":")[0] for f in found] == [what]
    assert reported("contract-operation-in-pre-deploy", migration(stage=Stage.POST), sql=sql) == []


def test_expand_steps_a_new_table_and_a_replaced_trigger_are_not_contract_steps():
    expand = ("ALTER TABLE shop_order ADD COLUMN note text;\n"
              "CREATE INDEX CONCURRENTLY i ON shop_order (code);\n"
              "ALTER TABLE shop_invoice ADD CONSTRAINT f FOREIGN KEY (order_id) REFERENCES shop_order (id);\n"
              "DROP TRIGGER IF EXISTS keep_in_step ON shop_order;\n"
              "CREATE TRIGGER keep_in_step BEFORE INSERT ON shop_order FOR EACH ROW EXECUTE FUNCTION f();\n")
    assert reported("contract-operation-in-pre-deploy", migration(stage=Stage.PRE), sql=expand,
                    new_tables={"shop_invoice"}) == []


# --- pre-deploy-depends-on-post-deploy -----------------------------------------------------------


def test_a_pre_deploy_migration_after_a_post_deploy_one_is_reported():
    contract = migration(stage=Stage.POST, name="0002_contract")
    expand = migration(stage=Stage.PRE, name="0001_expand")
    assert reported("pre-deploy-depends-on-post-deploy", migration(stage=Stage.PRE),
                    parents=[contract]) == ["depends on shop.0002_contract"]
    assert reported("pre-deploy-depends-on-post-deploy", migration(stage=Stage.PRE),
                    parents=[expand]) == []
    assert reported("pre-deploy-depends-on-post-deploy", migration(stage=Stage.POST),
                    parents=[contract]) == []


# --- the registry --------------------------------------------------------------------------------

# Rules no check function reports: the layer that meets the problem does.
REPORTED_BY_THEIR_LAYER = {
    "sql-not-renderable",  # render
    "squawk-failed",  # squawk
    "exception-without-reason", "unknown-rule-in-exception", "unused-exception",  # excuses
}


def test_every_catalogue_rule_has_a_check_or_is_reported_by_its_own_layer():
    checked = {*OPERATION_CHECKS, *SQL_CHECKS, *MIGRATION_CHECKS}
    assert checked | REPORTED_BY_THEIR_LAYER == set(RULES)
    assert not checked & REPORTED_BY_THEIR_LAYER


def test_a_check_for_a_rule_without_a_catalogue_entry_is_refused():
    with pytest.raises(KeyError, match="no-such-rule"):
        operation_rule("no-such-rule")


def test_a_second_check_for_one_rule_is_refused():
    with pytest.raises(ValueError, match="raw-sql"):
        sql_rule("raw-sql")
