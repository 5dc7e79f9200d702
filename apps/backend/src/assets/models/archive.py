"""What the online fixes keep of the data they change: the duplicate groups `ticker_dedup` walks,
the before-image of every row a merge touched, and every value of the dropped text columns.

None of them refers to an asset by foreign key: they outlive the assets a merge removed.
"""

from django.db import models


class DuplicateTickerGroup(models.Model):
    """One (ticker, exchange) that had several assets; the `ticker_dedup` job walks these, and
    `ticker_dedup_undo` the ones an operator asked to put back (`backfill undo ticker_dedup`):
    `undo_requested_at` marks them, `undone_at` and `undo_report` say when and what the undo
    restored and which rows it left as they were."""

    ticker = models.CharField(max_length=20)
    exchange_id = models.BigIntegerField()
    member_count = models.PositiveIntegerField()
    survivor_id = models.BigIntegerField(null=True, blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    undo_requested_at = models.DateTimeField(null=True, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undo_report = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["ticker", "exchange_id"], name="assets_duplicategroup_key_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ticker}.{self.exchange_id} x{self.member_count}"


class AssetMergeArchive(models.Model):
    """The before-image of every row a merge removed or changed, to audit or undo it; and every
    write that named a removed asset and was redirected to its survivor, as it was written.
    `undone_at`: when an undo of the group consumed the row (a later merge of the same group
    archives rows of its own)."""

    class Action(models.TextChoices):
        REMOVED = "removed"
        CHANGED = "changed"
        REDIRECTED = "redirected"

    group = models.ForeignKey(DuplicateTickerGroup, on_delete=models.PROTECT, related_name="+")
    survivor_id = models.BigIntegerField()
    table_name = models.CharField(max_length=63)
    row_key = models.CharField(max_length=64)
    action = models.CharField(max_length=10, choices=Action.choices)
    before = models.JSONField()
    archived_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["table_name", "row_key"], name="assets_mergearch_row_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.table_name}#{self.row_key}"


class AssetLegacyText(models.Model):
    """Every non-empty value of the dropped `sector` / `industry` text columns, as it was.

    `asset_id` is a plain number, not a foreign key: the archive outlives merged assets.
    `source` says who archived it: the `legacy_columns` job walking the table, or the capture
    trigger of migration 0008 as the previous release wrote (or replaced, or deleted) it.
    `linked_id`: the Sector / Industry the job linked the asset to from this value, where the
    asset had no link (NULL: it linked nothing, or `legacy_columns_undo` took the link back).
    """

    class Outcome(models.TextChoices):
        MATCHED = "matched"
        UNMATCHED = "unmatched"
        AMBIGUOUS = "ambiguous"

    class Source(models.TextChoices):
        JOB = "job"
        WRITE = "write"

    asset_id = models.BigIntegerField(db_index=True)
    field = models.CharField(max_length=10)
    value = models.TextField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    matched_id = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=5, choices=Source.choices, default=Source.JOB,
                              db_default=Source.JOB)
    linked_id = models.BigIntegerField(null=True, blank=True)
    archived_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["asset_id", "field", "value"], name="assets_legacytext_value_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.asset_id}.{self.field} = {self.value!r}"
