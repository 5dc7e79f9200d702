"""Tests that need no service at all (no PostgreSQL, Redis or Celery): the pure decisions of the
data jobs and the rules of their layout. They run in seconds:

    DATABASE_URL=postgres://nobody@127.0.0.1:1/none pytest tests/unit
"""
