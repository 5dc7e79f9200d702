"""A test-only table for exercising the engine, and knobs a test turns to slow or break it."""

from django.db import models


class Widget(models.Model):
    # Incremented (not set) by every batch that covers the row, so a row done twice shows 2.
    touches = models.IntegerField(default=0)
    value = models.IntegerField(default=0)


class Knob(models.Model):
    """Read by the test job inside each batch: tests steer running workers through the database."""

    name = models.CharField(max_length=50, primary_key=True)
    value = models.FloatField()
