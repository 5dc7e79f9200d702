"""One module per data job, pinning every rule its docstring states, against real PostgreSQL.

A job runs on the schema of the deploy step that enqueues it (the legacy columns still there,
the alert key still an integer), which the test database, migrated to the end, no longer has. So
each module builds that state in a scratch database of its own with `manage.py migrate`, as a
deploy does, and copies it for each test.
"""
