"""The online migration engine: batched, resumable data jobs tracked in PostgreSQL."""
