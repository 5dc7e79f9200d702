"""What the engine's migration operations share."""

from __future__ import annotations

from django.db.migrations.operations.base import Operation


class DeclaredOperation(Operation):
    """An operation whose `deconstruct()` is read from its declared arguments: the `required`
    ones always, the `optional` ones only where they differ from their default, as Django
    writes its own (a migration file shows what was chosen, not every default)."""

    required: tuple[str, ...] = ()
    optional: dict[str, object] = {}

    def deconstruct(self):
        kwargs = {name: getattr(self, name) for name in self.required}
        kwargs.update({name: value for name, default in self.optional.items()
                       if (value := getattr(self, name)) != default})
        return (self.__class__.__qualname__, [], kwargs)


class LockSafeOperation(DeclaredOperation):
    """Runs its steps outside a transaction (each its own, under lock_timeout); the model state
    follows from `state_operations`, which run no DDL."""

    reduces_to_sql = True
    reversible = True
    atomic = False
    state_operations: list[Operation]

    def state_forwards(self, app_label, state):
        for operation in self.state_operations:
            operation.state_forwards(app_label, state)
