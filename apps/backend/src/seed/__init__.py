"""`manage.py seed_demo`: a deterministic, fast demo data set for the legacy schema.

No models and no migrations: the app only holds the generator (`dataset`), the legacy-schema
guard (`schema`) and the management command.
"""
