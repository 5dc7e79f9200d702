"""SAFE: the same kinds of change, written with the project's lock-safe operations; post-deploy,
since the previous release, which never writes `label`, could not survive its NOT NULL."""

from django.db import migrations, models

from migrations_worker.operations import CreateIndexConcurrently, Safely, SafeSQL, Stage


class Migration(migrations.Migration):
    stage = Stage.POST
    atomic = False
    dependencies = [("unsafe_app", "0007_long_identifier")]
    operations = [
        Safely(
            migrations.AddField("gadget", "level", models.IntegerField(db_default=0, default=0)),
            migrations.AddField("gadget", "label", models.CharField(max_length=50, null=True)),
        ),
        CreateIndexConcurrently("unsafe_gadget_level_idx", "unsafe_app_gadget", ["level DESC"]),
        SafeSQL(
            [
                ["ALTER TABLE unsafe_app_gadget ADD CONSTRAINT unsafe_gadget_level_ck "
                 "CHECK (level >= 0) NOT VALID"],
                ["ALTER TABLE unsafe_app_gadget VALIDATE CONSTRAINT unsafe_gadget_level_ck"],
            ],
            reverse_steps=[["ALTER TABLE unsafe_app_gadget DROP CONSTRAINT unsafe_gadget_level_ck"]],
            description="level is never negative",
        ),
        SafeSQL(
            [
                ["ALTER TABLE unsafe_app_gadget ADD CONSTRAINT unsafe_gadget_label_nn "
                 "CHECK (label IS NOT NULL) NOT VALID"],
                ["ALTER TABLE unsafe_app_gadget VALIDATE CONSTRAINT unsafe_gadget_label_nn"],
                ["ALTER TABLE unsafe_app_gadget ALTER COLUMN label SET NOT NULL",
                 "ALTER TABLE unsafe_app_gadget DROP CONSTRAINT unsafe_gadget_label_nn"],
            ],
            description="label NOT NULL without a scan under ACCESS EXCLUSIVE",
        ),
    ]
