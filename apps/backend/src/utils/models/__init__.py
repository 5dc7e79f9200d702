from .base import SoftDeleteModel, SoftDeleteQuerySet, TimeStampedModel, UUIDModel

__all__ = ["SoftDeleteModel", "SoftDeleteQuerySet", "TimeStampedModel", "UUIDModel"]
