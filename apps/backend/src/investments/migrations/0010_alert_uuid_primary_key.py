"""Alert becomes a UUIDModel, the last step: the primary key moves onto `uuid`, the references
follow, and the model state catches up with the database.

Never Django's `AlterField` for this: it would rewrite the key and every referencing column
under ACCESS EXCLUSIVE. Instead six operations, each a short transaction under lock_timeout,
retried when the lock is not granted:

a. FOREIGN KEY (alert_uuid) -> investments_alert (uuid), `NOT VALID` (it rests on the unique
   uuid index of 0007); b. validated in a transaction of its own (no write lock). From here the
   UUID reference guards every trigger row: an alert still referred to cannot be deleted.
c. The old FOREIGN KEY (alert_id) -> investments_alert (id) goes: it rests on the old primary
   key's index, which (d) removes. Found in the catalog (its name is Django's hash).
d. One ALTER TABLE on investments_alert only: the old primary key goes, `PRIMARY KEY USING
   INDEX` adopts the uuid index (0007) and `UNIQUE USING INDEX` the id index (0008).
   Catalog-only: the indexes exist and uuid is NOT NULL (0006). The model state changes here
   and only here (`state_operations`, which run no DDL): Alert's `id` is the UUID on column
   `uuid`, the old integer `legacy_id` on column `id`; AlertTrigger's `alert` is on column
   `alert_uuid`, the old reference `legacy_alert_id` on column `alert_id`.
e. FOREIGN KEY (alert_id) -> investments_alert (id) again, now resting on the legacy unique
   constraint, `NOT VALID`; f. validated.

DESIGN EXCEPTION, (c): "at most one table takes ACCESS EXCLUSIVE per transaction" cannot
hold when a foreign key is dropped: PostgreSQL also takes ACCESS EXCLUSIVE on the referenced
table, where the key's triggers live. The step is catalog-only (milliseconds) and under
lock_timeout. It locks investments_alerttrigger first, then investments_alert: the order in
which an insert of a trigger row (sync trigger, then the key check) and Django's cascade
delete take them, so neither can deadlock with it. (A transaction that writes an alert and
then a trigger row still can; PostgreSQL then aborts one side after deadlock_timeout, and if
it is this step, `migrate` stops with 40P01 and is simply run again.)

Every operation is guarded by the catalog, so a re-run after a crash at any point completes.
Not reversible (`RefuseReverse` says why): moving the key back would be a new forward migration.
"""

import uuid

from django.db import migrations, models

from migrations_worker.operations import RefuseReverse, SafeSQL, Stage

ADD_UUID_FK = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'investments_alerttrigger'::regclass
                     AND conname = 'investments_alerttrigger_alert_uuid_fk') THEN
        ALTER TABLE investments_alerttrigger ADD CONSTRAINT investments_alerttrigger_alert_uuid_fk
            FOREIGN KEY (alert_uuid) REFERENCES investments_alert (uuid)
            DEFERRABLE INITIALLY DEFERRED NOT VALID;
    END IF;
END
$$
"""

# The old key's foreign key: on alert_id, resting on the primary key index of investments_alert
# while that is still the one on `id` (after the swap, the primary key is on uuid and no foreign
# key on alert_id rests on it, so a re-run drops nothing).
DROP_OLD_FK = """
DO $$
DECLARE
    old_fk name;
BEGIN
    FOR old_fk IN
        SELECT c.conname
        FROM pg_constraint c
        JOIN pg_index i ON i.indexrelid = c.conindid AND i.indisprimary
        WHERE c.contype = 'f'
          AND c.conrelid = 'investments_alerttrigger'::regclass
          AND c.confrelid = 'investments_alert'::regclass
          AND c.conkey = ARRAY[(SELECT attnum FROM pg_attribute
                                WHERE attrelid = 'investments_alerttrigger'::regclass
                                  AND attname = 'alert_id')]
    LOOP
        EXECUTE format('ALTER TABLE investments_alerttrigger DROP CONSTRAINT %I', old_fk);
    END LOOP;
END
$$
"""

SWAP_PRIMARY_KEY = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                   WHERE i.indrelid = 'investments_alert'::regclass AND i.indisprimary
                     AND a.attname = 'uuid') THEN
        ALTER TABLE investments_alert
            DROP CONSTRAINT investments_alert_pkey,
            ADD CONSTRAINT investments_alert_pkey
                PRIMARY KEY USING INDEX investments_alert_uuid_uniq,
            ADD CONSTRAINT investments_alert_legacy_id_key
                UNIQUE USING INDEX investments_alert_legacy_id_uniq;
    END IF;
END
$$
"""

ADD_LEGACY_FK = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'investments_alerttrigger'::regclass
                     AND conname = 'investments_alerttrigger_alert_id_fk') THEN
        ALTER TABLE investments_alerttrigger ADD CONSTRAINT investments_alerttrigger_alert_id_fk
            FOREIGN KEY (alert_id) REFERENCES investments_alert (id)
            DEFERRABLE INITIALLY DEFERRED NOT VALID;
    END IF;
END
$$
"""

STATE = [
    migrations.AddField(
        model_name="alert",
        name="legacy_id",
        field=models.BigIntegerField(
            db_column="id",
            # Never sent: Django writes DEFAULT and the column's identity numbers the row.
            db_default=models.Func(
                models.Value("investments_alert_id_seq"),
                function="nextval",
                output_field=models.BigIntegerField(),
            ),
            editable=False,
            unique=True,
        ),
    ),
    migrations.AlterField(
        model_name="alert",
        name="id",
        field=models.UUIDField(
            db_column="uuid", default=uuid.uuid4, editable=False,
            primary_key=True, serialize=False,
        ),
    ),
    migrations.AddField(
        model_name="alerttrigger",
        name="legacy_alert_id",
        field=models.BigIntegerField(
            db_column="alert_id", db_default=None, db_index=True, editable=False, null=True
        ),
    ),
    migrations.AlterField(
        model_name="alerttrigger",
        name="alert",
        field=models.ForeignKey(
            db_column="alert_uuid", on_delete=models.deletion.CASCADE, related_name="triggers",
            to="investments.alert",
        ),
    ),
]


LINT_EXCEPTIONS = {
    "contract-operation-in-pre-deploy":
    "the previous release can live with the swap: it still writes and reads alerts by the integer "
    "id (unique, numbered by its sequence) and trigger rows by alert_id, whose foreign key is "
    "re-created on the legacy unique key; the UUID columns it never writes are filled by the "
    "default and the sync trigger of 0005",
}


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("investments", "0009_alerttrigger_alert_uuid_index")]
    operations = [
        SafeSQL(steps=[[ADD_UUID_FK]], reverse_steps=[], description="FK alert_uuid -> alert(uuid), NOT VALID"),
        SafeSQL(
            steps=[
                [
                    "ALTER TABLE investments_alerttrigger "
                    "VALIDATE CONSTRAINT investments_alerttrigger_alert_uuid_fk"
                ]
            ],
            reverse_steps=[],
            long_running=True,
            description="Validate FK alert_uuid -> alert(uuid)",
        ),
        SafeSQL(steps=[[DROP_OLD_FK]], reverse_steps=[],
                description="Drop the FK alert_id -> alert's old key"),
        SafeSQL(
            steps=[[SWAP_PRIMARY_KEY]],
            reverse_steps=[],
            state_operations=STATE,
            description="Move the primary key of investments_alert onto uuid",
        ),
        SafeSQL(steps=[[ADD_LEGACY_FK]], reverse_steps=[], description="FK alert_id -> alert(id), NOT VALID"),
        SafeSQL(
            steps=[
                [
                    "ALTER TABLE investments_alerttrigger "
                    "VALIDATE CONSTRAINT investments_alerttrigger_alert_id_fk"
                ]
            ],
            reverse_steps=[],
            long_running=True,
            description="Validate FK alert_id -> alert(id)",
        ),
        # Every step above declares an empty reverse so that Django lets this refusal speak.
        RefuseReverse(
            "investments 0010 moved investments_alert's primary key onto uuid: the new release "
            "and its clients name alerts by it, and trigger rows refer to it. Moving the key back "
            "(a primary key swap, the foreign keys rebuilt) is a schema change of its own: write "
            "it as a new forward migration, or restore a backup taken before 0010. Nothing before "
            "0010 can be reached by migrating back."
        ),
    ]
