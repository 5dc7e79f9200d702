"""`Asset.sector` / `Asset.industry` leave the model (state only: the columns stay, so the
previous release, which still reads and writes them, keeps working), every value the previous
release writes from now on is captured, and the `legacy_columns` job archives the rest.

- `assets_legacy_text_matches(field, value)`: the one matching rule, used by the job and by
  the trigger alike: the live Sector / Industry rows whose name equals the value ignoring case
  and surrounding whitespace.
- `assets_asset_capture_legacy_text`: BEFORE INSERT OR UPDATE OF sector, industry OR DELETE. An
  insert or update fires it only for writers that name those columns, i.e. the previous release
  (the new model has no such fields). Every non-empty value written goes to the archive, and so
  does the value it replaces or a deleted asset's (`ON CONFLICT DO NOTHING`, the job's own
  idempotence), so the archive holds every value ever written, the last one of each asset
  included, whether or not the job had reached the asset, and `legacy_columns` converges however
  long the previous release keeps writing. When the text changes, the link follows it (the
  unambiguous match, or none); a save that keeps the text cannot erase a link with the stale
  NULL of a model loaded before the job linked it.

The trigger and the functions are dropped, with the columns, by the post-deploy 0013.
"""

from django.db import migrations

from migrations_worker.operations import EnqueueJob, SafeSQL, Stage

MATCHES = """
CREATE OR REPLACE FUNCTION assets_legacy_text_matches(p_field text, p_value text) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT CASE p_field
        WHEN 'sector' THEN ARRAY(SELECT r.id FROM assets_sector r WHERE NOT r.is_deleted
                                 AND lower(btrim(r.name)) = lower(btrim(p_value)) ORDER BY r.id)
        WHEN 'industry' THEN ARRAY(SELECT r.id FROM assets_industry r WHERE NOT r.is_deleted
                                   AND lower(btrim(r.name)) = lower(btrim(p_value)) ORDER BY r.id)
    END
$$
"""

ARCHIVE = """
CREATE OR REPLACE FUNCTION assets_legacy_text_archive(p_asset bigint, p_field text, p_value text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    matches bigint[];
BEGIN
    IF btrim(coalesce(p_value, '')) = '' THEN
        RETURN NULL;
    END IF;
    matches := assets_legacy_text_matches(p_field, p_value);
    INSERT INTO assets_assetlegacytext (asset_id, field, value, outcome, matched_id, source,
                                        archived_at)
    VALUES (p_asset, p_field, p_value,
            CASE cardinality(matches) WHEN 0 THEN 'unmatched' WHEN 1 THEN 'matched'
                 ELSE 'ambiguous' END,
            CASE WHEN cardinality(matches) = 1 THEN matches[1] END, 'write', now())
    ON CONFLICT (asset_id, field, value) DO NOTHING;
    RETURN CASE WHEN cardinality(matches) = 1 THEN matches[1] END;  -- the link, if unambiguous
END
$$
"""

CAPTURE = """
CREATE OR REPLACE FUNCTION assets_asset_capture_legacy_text() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    link bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM assets_legacy_text_archive(OLD.id, 'sector', OLD.sector);
        PERFORM assets_legacy_text_archive(OLD.id, 'industry', OLD.industry);
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT' THEN
        link := assets_legacy_text_archive(NEW.id, 'sector', NEW.sector);
        NEW.sector_ref_id := coalesce(NEW.sector_ref_id, link);
        link := assets_legacy_text_archive(NEW.id, 'industry', NEW.industry);
        NEW.industry_ref_id := coalesce(NEW.industry_ref_id, link);
        RETURN NEW;
    END IF;
    IF NEW.sector IS DISTINCT FROM OLD.sector THEN
        PERFORM assets_legacy_text_archive(OLD.id, 'sector', OLD.sector);
        NEW.sector_ref_id := assets_legacy_text_archive(NEW.id, 'sector', NEW.sector);
    ELSIF NEW.sector_ref_id IS NULL THEN
        NEW.sector_ref_id := OLD.sector_ref_id;
    END IF;
    IF NEW.industry IS DISTINCT FROM OLD.industry THEN
        PERFORM assets_legacy_text_archive(OLD.id, 'industry', OLD.industry);
        NEW.industry_ref_id := assets_legacy_text_archive(NEW.id, 'industry', NEW.industry);
    ELSIF NEW.industry_ref_id IS NULL THEN
        NEW.industry_ref_id := OLD.industry_ref_id;
    END IF;
    RETURN NEW;
END
$$
"""


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("assets", "0007_legacy_text_archive"), ("migrations_worker", "0001_initial")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="asset", name="sector"),
                migrations.RemoveField(model_name="asset", name="industry"),
            ],
        ),
        SafeSQL(
            steps=[
                [MATCHES],
                [ARCHIVE],
                [CAPTURE],
                [
                    "DROP TRIGGER IF EXISTS assets_asset_capture_legacy_text ON assets_asset",
                    "CREATE TRIGGER assets_asset_capture_legacy_text "
                    "BEFORE INSERT OR UPDATE OF sector, industry OR DELETE ON assets_asset "
                    "FOR EACH ROW EXECUTE FUNCTION assets_asset_capture_legacy_text()",
                ],
            ],
            reverse_steps=[
                ["DROP TRIGGER IF EXISTS assets_asset_capture_legacy_text ON assets_asset"],
                ["DROP FUNCTION IF EXISTS assets_asset_capture_legacy_text()"],
                ["DROP FUNCTION IF EXISTS assets_legacy_text_archive(bigint, text, text)"],
                ["DROP FUNCTION IF EXISTS assets_legacy_text_matches(text, text)"],
            ],
            description="Capture every sector/industry value the previous release writes",
        ),
        EnqueueJob("legacy_columns"),
    ]
