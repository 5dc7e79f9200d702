"""Every migration operation the engine offers, and the deploy stage a migration declares,
from one import surface:

    from migrations_worker.operations import EnqueueJob, RequireJob, SafeSQL, Stage

Lock-safe DDL (`SafeSQL`, `CreateIndexConcurrently`, `Safely`) runs each step under
lock_timeout and retries when the lock is not granted; `EnqueueJob` and `RequireJob` are the
seam to the data jobs.
"""

from .ddl import CreateIndexConcurrently, Safely, SafeSQL
from .jobs import EnqueueJob, RequireJob
from .stage import Stage

__all__ = ["CreateIndexConcurrently", "EnqueueJob", "RequireJob", "SafeSQL", "Safely", "Stage"]
