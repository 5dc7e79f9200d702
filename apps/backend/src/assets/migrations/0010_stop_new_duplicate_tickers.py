"""Stop new duplicate (ticker, exchange) assets before merging the old ones.

A trigger takes a transaction-scoped advisory lock on the (ticker, exchange) being written, so
concurrent inserts of one pair run one after the other, then refuses the row if the pair exists
(soft-deleted rows included, like the UNIQUE constraint to come). It raises `unique_violation`,
which Django reports as IntegrityError. Updates that keep the pair (every ORM `save()` rewrites
the columns) pass untouched, so legacy duplicates stay editable until they are merged.
"""

from django.db import migrations

from migrations_worker.operations import SafeSQL, Stage

# Whether an id is one a merge removed; nothing is merged yet (0012 gives it the alias table).
MERGED_AWAY = """
CREATE OR REPLACE FUNCTION assets_asset_merged_away(p_id bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT false $$
"""

FUNCTION = """
CREATE OR REPLACE FUNCTION assets_asset_refuse_duplicate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.ticker = OLD.ticker AND NEW.exchange_id = OLD.exchange_id THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' AND assets_asset_merged_away(NEW.id) THEN
        RETURN NEW;  -- a merged-away asset saved again: merged away again at once (0012)
    END IF;
    PERFORM pg_advisory_xact_lock(
        hashtextextended('assets_asset:' || NEW.exchange_id || ':' || NEW.ticker, 0));
    IF EXISTS (SELECT 1 FROM assets_asset
               WHERE ticker = NEW.ticker AND exchange_id = NEW.exchange_id AND id <> NEW.id) THEN
        RAISE EXCEPTION 'an asset with ticker % on exchange % already exists',
            NEW.ticker, NEW.exchange_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'assets_asset_ticker_exchange_unique';
    END IF;
    RETURN NEW;
END
$$
"""


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("assets", "0009_asset_ticker_exchange_lookup_index")]
    operations = [
        SafeSQL(
            steps=[
                [MERGED_AWAY],
                [FUNCTION],
                [
                    "DROP TRIGGER IF EXISTS assets_asset_refuse_duplicate ON assets_asset",
                    "CREATE TRIGGER assets_asset_refuse_duplicate "
                    "BEFORE INSERT OR UPDATE OF ticker, exchange_id ON assets_asset "
                    "FOR EACH ROW EXECUTE FUNCTION assets_asset_refuse_duplicate()",
                ],
            ],
            reverse_steps=[
                ["DROP TRIGGER IF EXISTS assets_asset_refuse_duplicate ON assets_asset"],
                ["DROP FUNCTION IF EXISTS assets_asset_refuse_duplicate()"],
                ["DROP FUNCTION IF EXISTS assets_asset_merged_away(bigint)"],
            ],
            description="Refuse new duplicate (ticker, exchange) assets",
        ),
    ]
