"""Post-deploy: drop the deprecated text columns and the trigger that captured the previous
release's writes to them, once `legacy_columns` has verified every value archived.

Only the new release runs now (it never had the fields: they left the model state in 0008), so
nothing writes the columns any more; the capture trigger of 0008 archived every value the
previous release wrote until the end of the rollout. Dropping a column is catalog-only; each
brief ACCESS EXCLUSIVE runs under lock_timeout.

Not reversible (`RefuseReverse` says why): the archive holds every value, not the one each asset
held last.
"""

from django.db import migrations

from migrations_worker.operations import RefuseReverse, RequireJob, SafeSQL, Stage

LINT_EXCEPTIONS = {
    "ban-drop-column": "post-deploy: the previous release, the only code that read or wrote the "
    "columns, no longer runs; every value it wrote was captured by the trigger of 0008 and "
    "RequireJob above verifies every value archived before the drop",
    "ban-drop-function": "the functions served only the capture trigger, dropped in the step "
    "before; the archive they filled stays",
}


class Migration(migrations.Migration):
    stage = Stage.POST
    atomic = False
    dependencies = [("assets", "0012_enqueue_ticker_dedup")]
    operations = [
        RequireJob("legacy_columns"),
        SafeSQL(
            steps=[
                ["DROP TRIGGER IF EXISTS assets_asset_capture_legacy_text ON assets_asset"],
                ["DROP FUNCTION IF EXISTS assets_asset_capture_legacy_text()"],
                ["DROP FUNCTION IF EXISTS assets_legacy_text_archive(bigint, text, text)"],
                ["DROP FUNCTION IF EXISTS assets_legacy_text_matches(text, text)"],
                [
                    "ALTER TABLE assets_asset DROP COLUMN IF EXISTS sector, "
                    "DROP COLUMN IF EXISTS industry"
                ],
            ],
            reverse_steps=[],  # refused below, before anything is undone
            description="Drop the capture trigger, then assets_asset.sector and .industry",
        ),
        RefuseReverse(
            "assets 0013 dropped assets_asset.sector and .industry. assets_assetlegacytext holds "
            "every value they had, but not which one each asset held last (a value the previous "
            "release wrote, replaced and wrote again is archived once), so the columns cannot be "
            "rebuilt exactly. Restore them from a backup taken before the post-deploy stage, or "
            "re-add them in a new forward migration. `migrate assets 0013` (taking back 0014 "
            "and 0015) works."
        ),
    ]
