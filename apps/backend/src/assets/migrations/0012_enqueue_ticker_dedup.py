"""List the duplicate groups, make writes that name a merged-away asset land on its survivor, and
enqueue the `ticker_dedup` job that merges them, once the deprecated text of every asset is
archived (the merge removes assets).

The listing reads `assets_asset` once (ACCESS SHARE only: writers carry on) and writes one row
per group; the guard of 0010 means no new group can appear after it. Re-runnable: groups
already listed are skipped.

The redirect: both releases (and any client holding an old id: a stored link, a queued task)
keep writing rows that name a duplicate the job has removed. A BEFORE INSERT OR UPDATE OF
asset_id trigger on every table that refers to an asset resolves the id through
`assets_assetalias` (filled by the merge in its own transaction) and applies the job's merge
rules to the row being written:

- holdings: one live position per portfolio: the position already on the survivor is folded
  into the row being written (quantities summed, cost weighted by quantity); a re-save of a
  holding the merge had summed away (Django's save inserts again a row it cannot update) takes
  that holding's archived share out first, so nothing is counted twice;
- watchlist entries (one per user; only a live entry replaces), prices (one per timestamp),
  news links (one per article): the row being written stays, the one it collides with goes;
- alerts and benchmarks: re-pointed.

An asset row of its own: a model of a merged-away asset, loaded before the merge and saved
after it, makes Django insert the row again (its update finds none). The duplicate guard of 0010
lets such an insert through (`assets_asset_merged_away` now reads the aliases) and an AFTER
INSERT trigger merges it away again at once: the save succeeds, its text is captured (0008),
the row is archived as written and goes; its id stays an alias of the survivor. Only an undo of
the merge (`ticker_dedup_undo`) keeps the row it restores, naming it in `assets.restoring_asset`.

Taken back only once no group is merged (`backfill undo ticker_dedup` first): the removed
assets live on only in the archive and the aliases, which the redirect serves.

Every redirected row is archived as written (action `redirected`, with the id it named) and
every row it replaced with its before-image (`removed`), like the merge's own. The asset is
share-locked before its alias is read, as the foreign key check would: a write that races a
merge of its asset waits for the merge, then finds the alias; it never fails on the key.

How long the redirect lives: as long as `assets_assetalias`. The post-deploy stage keeps the
triggers, since clients outside the two releases may still send an old id; the last redirect is
`max(archived_at)` of the `redirected` archive rows, and a later release retires the triggers
once that is old enough.
"""

from django.db import migrations

from migrations_worker.operations import EnqueueJob, RefuseReverseWhile, RequireJob, SafeSQL, Stage

MERGED_AWAY = """
CREATE OR REPLACE FUNCTION assets_asset_merged_away(p_id bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM assets_assetalias WHERE asset_id = p_id)
$$
"""

# An undo of the merge (`ticker_dedup_undo`) restores a removed asset while its alias still
# stands (so the guard of 0010 lets the duplicate in), naming it in the transaction-local
# setting `assets.restoring_asset`; for that row only, the merge is not done again.
MERGE_AGAIN = """
CREATE OR REPLACE FUNCTION assets_asset_merge_again() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('assets.restoring_asset', true) = NEW.id::text THEN
        RETURN NULL;
    END IF;
    INSERT INTO assets_assetmergearchive (group_id, survivor_id, table_name, row_key, action,
                                          before, archived_at)
    SELECT a.group_id, a.survivor_id, TG_TABLE_NAME, NEW.id::text, 'redirected', to_jsonb(NEW), now()
    FROM assets_assetalias a WHERE a.asset_id = NEW.id;
    DELETE FROM assets_asset WHERE id = NEW.id;
    RETURN NULL;
END
$$
"""

RESOLVE = """
CREATE OR REPLACE FUNCTION assets_resolve_asset(p_asset bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    survivor bigint;
BEGIN
    IF p_asset IS NULL THEN
        RETURN NULL;
    END IF;
    -- As the foreign key check would: a merge holding the row makes us wait, then it is gone.
    PERFORM 1 FROM assets_asset WHERE id = p_asset FOR KEY SHARE;
    IF FOUND THEN
        RETURN p_asset;
    END IF;
    SELECT a.survivor_id INTO survivor FROM assets_assetalias a WHERE a.asset_id = p_asset;
    RETURN coalesce(survivor, p_asset);  -- neither: the foreign key reports the bad id
END
$$
"""

# Archives the row being written (as written, naming the removed id) and returns its alias.
ARCHIVE_REDIRECT = """
CREATE OR REPLACE FUNCTION assets_archive_redirect(p_table text, p_row jsonb, p_named bigint,
                                                   p_survivor bigint) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO assets_assetmergearchive (group_id, survivor_id, table_name, row_key, action,
                                          before, archived_at)
    SELECT a.group_id, p_survivor, p_table, p_row ->> 'id', 'redirected',
           jsonb_set(p_row, '{asset_id}', to_jsonb(p_named)), now()
    FROM assets_assetalias a WHERE a.asset_id = p_named
    RETURNING group_id
$$
"""

# TG_ARGV[0]: the column that, with asset_id, has one row (none: re-point only); TG_ARGV[1]
# 'live': only a live row being written replaces the others.
REDIRECT = """
CREATE OR REPLACE FUNCTION assets_redirect_merged_asset() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    named bigint := NEW.asset_id;
    key_column text := TG_ARGV[0];
    v_group bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.asset_id IS NOT DISTINCT FROM OLD.asset_id THEN
        RETURN NEW;
    END IF;
    NEW.asset_id := assets_resolve_asset(named);
    IF NEW.asset_id IS NOT DISTINCT FROM named THEN
        RETURN NEW;
    END IF;
    v_group := assets_archive_redirect(TG_TABLE_NAME, to_jsonb(NEW), named, NEW.asset_id);
    IF key_column IS NULL OR (TG_ARGV[1] = 'live' AND (to_jsonb(NEW) ->> 'is_deleted')::boolean) THEN
        RETURN NEW;
    END IF;
    EXECUTE format(
        'WITH gone AS (DELETE FROM %1$I t WHERE t.asset_id = $1 AND t.%2$I = ($2).%2$I '
        'AND t.id <> ($2).id RETURNING t.*) '
        'INSERT INTO assets_assetmergearchive (group_id, survivor_id, table_name, row_key, '
        'action, before, archived_at) '
        'SELECT $3, $1, %1$L, gone.id::text, ''removed'', to_jsonb(gone), now() FROM gone',
        TG_TABLE_NAME, key_column)
    USING NEW.asset_id, NEW, v_group;
    RETURN NEW;
END
$$
"""

REDIRECT_HOLDING = """
CREATE OR REPLACE FUNCTION assets_redirect_merged_holding() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    named bigint := NEW.asset_id;
    v_group bigint;
    summed_away record;
    other record;
    v_quantity numeric;
    v_cost numeric;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.asset_id IS NOT DISTINCT FROM OLD.asset_id THEN
        RETURN NEW;
    END IF;
    NEW.asset_id := assets_resolve_asset(named);
    IF NEW.asset_id IS NOT DISTINCT FROM named THEN
        RETURN NEW;
    END IF;
    v_group := assets_archive_redirect(TG_TABLE_NAME, to_jsonb(NEW), named, NEW.asset_id);
    IF NEW.is_deleted THEN
        RETURN NEW;  -- a soft-deleted holding moves as it is
    END IF;
    -- A holding the merge summed away, saved again: its archived share leaves the position.
    SELECT (x.before ->> 'quantity')::numeric AS quantity,
           (x.before ->> 'average_cost')::numeric AS average_cost INTO summed_away
    FROM assets_assetmergearchive x
    WHERE x.table_name = 'portfolios_holding' AND x.row_key = NEW.id::text AND x.action = 'removed'
    ORDER BY x.id DESC LIMIT 1;
    FOR other IN
        DELETE FROM portfolios_holding h
        WHERE h.portfolio_id = NEW.portfolio_id AND h.asset_id = NEW.asset_id
          AND NOT h.is_deleted AND h.id <> NEW.id
        RETURNING h.*
    LOOP
        INSERT INTO assets_assetmergearchive (group_id, survivor_id, table_name, row_key, action,
                                              before, archived_at)
        VALUES (v_group, NEW.asset_id, TG_TABLE_NAME, other.id::text, 'removed', to_jsonb(other),
                now());
        v_quantity := other.quantity;
        v_cost := other.quantity * other.average_cost;
        IF summed_away.quantity IS NOT NULL THEN
            v_quantity := v_quantity - summed_away.quantity;
            v_cost := v_cost - summed_away.quantity * summed_away.average_cost;
            summed_away := NULL;
        END IF;
        v_cost := v_cost + NEW.quantity * NEW.average_cost;
        NEW.quantity := NEW.quantity + v_quantity;
        IF NEW.quantity <> 0 THEN
            NEW.average_cost := round(v_cost / NEW.quantity, 8);
        END IF;
    END LOOP;
    RETURN NEW;
END
$$
"""

# (table, trigger function with its arguments)
REDIRECTED_TABLES = (
    ("portfolios_holding", "assets_redirect_merged_holding()"),
    ("investments_watchlist", "assets_redirect_merged_asset('user_id', 'live')"),
    ("assets_assetpriceshistoric", "assets_redirect_merged_asset('timestamp')"),
    ("investments_newsarticle_assets", "assets_redirect_merged_asset('newsarticle_id')"),
    ("investments_alert", "assets_redirect_merged_asset()"),
    ("portfolios_benchmark", "assets_redirect_merged_asset()"),
)


def redirect_trigger(table: str, function: str) -> list[str]:
    # Static names from REDIRECTED_TABLES above, never input.
    return [
        f"DROP TRIGGER IF EXISTS assets_redirect_merged_asset ON {table}",
        f"CREATE TRIGGER assets_redirect_merged_asset BEFORE INSERT OR UPDATE OF asset_id "
        f"ON {table} FOR EACH ROW EXECUTE FUNCTION {function}",
    ]


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [
        ("assets", "0011_merge_archive_tables"),
        ("migrations_worker", "0001_initial"),
        ("portfolios", "0003_holding_portfolio_asset_index"),
        ("investments", "0004_watchlist_user_asset_index"),
    ]
    operations = [
        # Merging removes assets: their deprecated text must be in its archive first.
        RequireJob("legacy_columns"),
        SafeSQL(
            steps=[
                [
                    "INSERT INTO assets_duplicatetickergroup (ticker, exchange_id, member_count) "
                    "SELECT ticker, exchange_id, count(*) FROM assets_asset "
                    "GROUP BY ticker, exchange_id HAVING count(*) > 1 ORDER BY min(id) "
                    "ON CONFLICT (ticker, exchange_id) DO NOTHING"
                ]
            ],
            reverse_steps=[],
            long_running=True,
            description="List duplicate (ticker, exchange) groups",
        ),
        SafeSQL(
            steps=[
                [MERGED_AWAY],
                [MERGE_AGAIN],
                [
                    "DROP TRIGGER IF EXISTS assets_asset_merge_again ON assets_asset",
                    "CREATE TRIGGER assets_asset_merge_again AFTER INSERT ON assets_asset "
                    "FOR EACH ROW WHEN (assets_asset_merged_away(NEW.id)) "
                    "EXECUTE FUNCTION assets_asset_merge_again()",
                ],
                [RESOLVE],
                [ARCHIVE_REDIRECT],
                [REDIRECT],
                [REDIRECT_HOLDING],
                # One table per transaction: each CREATE TRIGGER takes a brief SHARE ROW EXCLUSIVE.
                *(redirect_trigger(table, function) for table, function in REDIRECTED_TABLES),
            ],
            reverse_steps=[
                ["DROP TRIGGER IF EXISTS assets_asset_merge_again ON assets_asset"],
                ["DROP FUNCTION IF EXISTS assets_asset_merge_again()"],
                ["CREATE OR REPLACE FUNCTION assets_asset_merged_away(p_id bigint) RETURNS boolean "
                 "LANGUAGE sql STABLE AS $$ SELECT false $$"],
                *([f"DROP TRIGGER IF EXISTS assets_redirect_merged_asset ON {table}"]
                  for table, _ in REDIRECTED_TABLES),
                ["DROP FUNCTION IF EXISTS assets_redirect_merged_holding()"],
                ["DROP FUNCTION IF EXISTS assets_redirect_merged_asset()"],
                ["DROP FUNCTION IF EXISTS assets_archive_redirect(text, jsonb, bigint, bigint)"],
                ["DROP FUNCTION IF EXISTS assets_resolve_asset(bigint)"],
            ],
            description="Writes naming a merged-away asset land on its survivor",
        ),
        EnqueueJob("ticker_dedup"),
        RefuseReverseWhile(
            "SELECT count(*) FROM assets_duplicatetickergroup WHERE merged_at IS NOT NULL",
            "duplicate group(s) are merged: their removed assets and rows live on only as "
            "before-images and aliases, which taking back assets 0012 (and 0011) would orphan "
            "and drop. Put them back first: python manage.py backfill undo ticker_dedup "
            "--inline, then migrate back again.",
        ),
    ]
