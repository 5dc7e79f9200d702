"""Every migration operation the engine offers, and the deploy stage a migration declares,
from one import surface:

    from migrations_worker.operations import EnqueueJob, RequireJob, SafeSQL, Stage

Lock-safe DDL (`SafeSQL`, `CreateIndexConcurrently`, `Safely`) runs each step under
lock_timeout and retries when the lock is not granted; `EnqueueJob` and `RequireJob` are the
seam to the data jobs. `RefuseReverse` and `RefuseReverseWhile` end a migration whose
reverse would lose data, saying why and what to do instead.
"""

from .ddl import Safely, SafeSQL
from .indexes import CreateIndexConcurrently
from .jobs import EnqueueJob, RequireJob
from .reverse import RefuseReverse, RefuseReverseWhile
from .stage import Stage

__all__ = [
    "CreateIndexConcurrently", "EnqueueJob", "RefuseReverse", "RefuseReverseWhile", "RequireJob",
    "SafeSQL", "Safely", "Stage",
]
