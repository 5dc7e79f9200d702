"""UNSAFE: says nothing about when it may run in a rolling deploy."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("unsafe_app", "0010_bad_exceptions")]
    operations = []
