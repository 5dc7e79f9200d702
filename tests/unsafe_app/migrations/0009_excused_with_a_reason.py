"""Plain AddIndex, excused in writing: the exception mechanism the linter honours."""

from django.db import migrations, models

from migrations_worker.operations import Stage

LINT_EXCEPTIONS = {
    "index-on-existing-table": "gadget is a lookup table capped at a few hundred rows by design",
    "require-concurrent-index-creation": "same: the build takes milliseconds on a capped table",
    "require-lock-timeout": "same: the build takes milliseconds on a capped table",
    "require-statement-timeout": "same: the build takes milliseconds on a capped table",
}


class Migration(migrations.Migration):
    stage = Stage.POST
    dependencies = [("unsafe_app", "0008_the_safe_way")]
    operations = [
        migrations.AddIndex("gadget", models.Index(fields=["label"], name="unsafe_gadget_label_idx")),
    ]
