"""Abstract base models shared by the domain apps."""

import uuid

from django.db import models
from django.utils import timezone


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class UUIDModel(models.Model):
    """A random UUID primary key: ids can be made anywhere and leak nothing about volume."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Meta:
        abstract = True


class SoftDeleteQuerySet(models.QuerySet):
    """`delete()` marks rows instead of removing them, so nothing that refers to them breaks."""

    def delete(self) -> tuple[int, dict[str, int]]:
        # Already-deleted rows keep the time they were first deleted.
        count = self.filter(is_deleted=False).update(is_deleted=True, deleted_at=timezone.now())
        return count, {self.model._meta.label: count}

    delete.alters_data = True

    def hard_delete(self) -> tuple[int, dict[str, int]]:
        return super().delete()

    hard_delete.alters_data = True

    def restore(self) -> int:
        return self.update(is_deleted=False, deleted_at=None)

    restore.alters_data = True

    def alive(self) -> "SoftDeleteQuerySet":
        return self.filter(is_deleted=False)

    def deleted(self) -> "SoftDeleteQuerySet":
        return self.filter(is_deleted=True)


class SoftDeleteManager(models.Manager.from_queryset(SoftDeleteQuerySet)):
    """The default manager: deleted rows are invisible unless asked for via `all_objects`."""

    def get_queryset(self) -> SoftDeleteQuerySet:
        return super().get_queryset().filter(is_deleted=False)


class AllObjectsManager(models.Manager.from_queryset(SoftDeleteQuerySet)):
    pass


class SoftDeleteModel(models.Model):
    # db_default makes the column catalog-only to add and keeps inserts from older code working.
    is_deleted = models.BooleanField(default=False, db_default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = SoftDeleteManager()
    all_objects = AllObjectsManager()

    class Meta:
        abstract = True

    def delete(self, using: str | None = None, keep_parents: bool = False) -> tuple[int, dict]:
        self.is_deleted = True
        self.deleted_at = timezone.now()
        self.save(using=using, update_fields=["is_deleted", "deleted_at"])
        return 1, {self._meta.label: 1}

    def hard_delete(self, using: str | None = None, keep_parents: bool = False) -> tuple[int, dict]:
        return super().delete(using=using, keep_parents=keep_parents)

    def restore(self, using: str | None = None) -> None:
        self.is_deleted = False
        self.deleted_at = None
        self.save(using=using, update_fields=["is_deleted", "deleted_at"])
