"""Alert becomes a UUIDModel, step 1 (expand): the UUID columns, kept filled for new rows.

- `investments_alert.uuid`: added nullable with no default (catalog-only), then given the
  default `gen_random_uuid()` in a separate step: a volatile default in `ADD COLUMN` would
  rewrite the whole table under ACCESS EXCLUSIVE. From here on every new alert has its UUID;
  older ones get theirs from the `alerts_uuid` job enqueued at the end.
- `investments_alerttrigger.alert_uuid`: the UUID reference next to the integer `alert_id`.
  A BEFORE INSERT OR UPDATE trigger keeps the two in step for whichever one a writer sets: code
  from before the key change writes only `alert_id`, code from after it only `alert_uuid`.
  It reads the alert `FOR SHARE`, which waits for a job batch that is giving that alert its UUID,
  so a reference written during the backfill is never left without it.

Each step is its own short transaction under lock_timeout, one table at a time; every step is
idempotent (`IF NOT EXISTS`, `CREATE OR REPLACE`), so the migration can be re-run after a crash.
The model state does not change here: the running code knows nothing of the new columns.
"""

from django.db import migrations

from migrations_worker.operations import EnqueueJob, SafeSQL, Stage

SYNC_FUNCTION = """
CREATE OR REPLACE FUNCTION investments_alerttrigger_sync_alert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    found_uuid uuid;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.alert_id IS NOT DISTINCT FROM OLD.alert_id
           AND NEW.alert_uuid IS NOT DISTINCT FROM OLD.alert_uuid
           AND NEW.alert_uuid IS NOT NULL THEN
            RETURN NEW;  -- a save that kept the alert (every ORM save rewrites both columns)
        ELSIF NEW.alert_id IS DISTINCT FROM OLD.alert_id
              AND NEW.alert_uuid IS NOT DISTINCT FROM OLD.alert_uuid THEN
            NEW.alert_uuid := NULL;  -- moved by code that knows only alert_id: follow it
        ELSIF NEW.alert_uuid IS DISTINCT FROM OLD.alert_uuid
              AND NEW.alert_id IS NOT DISTINCT FROM OLD.alert_id
              AND OLD.alert_uuid IS NOT NULL THEN
            NEW.alert_id := NULL;  -- moved by code that knows only alert_uuid: follow it
        END IF;
    END IF;
    IF NEW.alert_id IS NOT NULL THEN
        SELECT a.uuid INTO found_uuid FROM investments_alert a WHERE a.id = NEW.alert_id FOR SHARE;
        IF NEW.alert_uuid IS NULL THEN
            NEW.alert_uuid := found_uuid;
        ELSIF NEW.alert_uuid IS DISTINCT FROM found_uuid THEN
            RAISE EXCEPTION 'alert_id % and alert_uuid % name different alerts',
                NEW.alert_id, NEW.alert_uuid
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSIF NEW.alert_uuid IS NOT NULL THEN
        SELECT a.id INTO NEW.alert_id FROM investments_alert a
        WHERE a.uuid = NEW.alert_uuid FOR SHARE;
    END IF;
    RETURN NEW;
END
$$
"""

SYNC_TRIGGER = (
    "CREATE OR REPLACE TRIGGER investments_alerttrigger_sync_alert "
    "BEFORE INSERT OR UPDATE OF alert_id, alert_uuid ON investments_alerttrigger "
    "FOR EACH ROW EXECUTE FUNCTION investments_alerttrigger_sync_alert()"
)


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [
        ("investments", "0004_watchlist_user_asset_index"),
        ("migrations_worker", "0001_initial"),
    ]
    operations = [
        SafeSQL(
            steps=[
                ["ALTER TABLE investments_alert ADD COLUMN IF NOT EXISTS uuid uuid"],
                ["ALTER TABLE investments_alert ALTER COLUMN uuid SET DEFAULT gen_random_uuid()"],
                ["ALTER TABLE investments_alerttrigger ADD COLUMN IF NOT EXISTS alert_uuid uuid"],
                [SYNC_FUNCTION],
                [SYNC_TRIGGER],
            ],
            reverse_steps=[
                [
                    "DROP TRIGGER IF EXISTS investments_alerttrigger_sync_alert "
                    "ON investments_alerttrigger"
                ],
                ["DROP FUNCTION IF EXISTS investments_alerttrigger_sync_alert()"],
                ["ALTER TABLE investments_alerttrigger DROP COLUMN IF EXISTS alert_uuid"],
                ["ALTER TABLE investments_alert DROP COLUMN IF EXISTS uuid"],
            ],
            description="Add the alert UUID columns and keep new references in step",
        ),
        EnqueueJob("alerts_uuid"),
    ]
