"""Every migration operation the engine offers, from one import surface:

    from migrations_worker.operations import EnqueueJob, RequireJob, SafeSQL

Lock-safe DDL (`SafeSQL`, `CreateIndexConcurrently`, `Safely`) runs each step under
lock_timeout and retries when the lock is not granted; `EnqueueJob` and `RequireJob` are the
seam to the data jobs.
"""

from .ddl import CreateIndexConcurrently, Safely, SafeSQL
from .jobs import EnqueueJob, RequireJob

__all__ = ["CreateIndexConcurrently", "EnqueueJob", "RequireJob", "SafeSQL", "Safely"]
