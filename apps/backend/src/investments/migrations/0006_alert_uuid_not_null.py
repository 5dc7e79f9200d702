"""Alert becomes a UUIDModel, step 2: NOT NULL on both UUID columns, once the
`alerts_uuid` job has filled them (gated: `RequireJob`).

`SET NOT NULL` alone would scan the whole table under ACCESS EXCLUSIVE. Instead, per table:
`CHECK (... IS NOT NULL) NOT VALID` (catalog-only, brief lock), then `VALIDATE` in its own
transaction (a scan under SHARE UPDATE EXCLUSIVE: reads and writes carry on), then
`SET NOT NULL`, which PostgreSQL proves from the valid check without a scan, and the check is
dropped. Every step is guarded by the catalog, so a re-run after a crash picks up where it
stopped, and a step already done is a no-op.
"""

from django.db import migrations

from migrations_worker.operations import RequireJob, SafeSQL, Stage

# (table, column, check constraint)
COLUMNS = (
    ("investments_alert", "uuid", "investments_alert_uuid_not_null"),
    ("investments_alerttrigger", "alert_uuid", "investments_alerttrigger_alert_uuid_not_null"),
)

ADD_CHECK = """
DO $$
BEGIN
    IF NOT (SELECT attnotnull FROM pg_attribute
            WHERE attrelid = '{table}'::regclass AND attname = '{column}')
       AND NOT EXISTS (SELECT 1 FROM pg_constraint
                       WHERE conrelid = '{table}'::regclass AND conname = '{check}') THEN
        ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID;
    END IF;
END
$$
"""

VALIDATE_CHECK = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = '{table}'::regclass AND conname = '{check}'
                 AND NOT convalidated) THEN
        ALTER TABLE {table} VALIDATE CONSTRAINT {check};
    END IF;
END
$$
"""


def not_null(table: str, column: str, check: str) -> list:
    # Static names from COLUMNS above, never input.
    names = {"table": table, "column": column, "check": check}
    return [
        SafeSQL(
            steps=[[ADD_CHECK.format(**names)]],
            reverse_steps=[[f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}"]],
            description=f"{table}.{column}: CHECK NOT NULL, NOT VALID",
        ),
        SafeSQL(
            steps=[[VALIDATE_CHECK.format(**names)]],
            reverse_steps=[],
            long_running=True,
            description=f"{table}.{column}: validate the NOT NULL check",
        ),
        SafeSQL(
            # Two statements: in one ALTER TABLE the check would be gone before SET NOT NULL
            # verifies the column, and it would scan the table.
            steps=[
                [
                    f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
                    f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}",
                ]
            ],
            reverse_steps=[[f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL"]],
            description=f"{table}.{column}: SET NOT NULL",
        ),
    ]


LINT_EXCEPTIONS = {
    "contract-operation-in-pre-deploy":
    "the previous release never writes uuid or alert_uuid: a new alert gets its UUID from the "
    "column default and a new trigger row its alert_uuid from the sync trigger (0005), so it "
    "cannot violate NOT NULL",
}


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("investments", "0005_alert_uuid_expand")]
    operations = [
        RequireJob("alerts_uuid"),
        *not_null(*COLUMNS[0]),
        *not_null(*COLUMNS[1]),
    ]
