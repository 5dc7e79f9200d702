"""Keyset ranges over any table with an integer key: never OFFSET, never a table scan.

Each batch is the half-open key range (start, end]; `end` is the largest of the next `size` keys
after `start`, found with one index range scan, so sparse keys still give full batches.
"""

from psycopg import sql


def key_bounds(cursor, table: str, key: str) -> tuple[int | None, int | None]:
    cursor.execute(
        sql.SQL("SELECT min({k}), max({k}) FROM {t}").format(
            k=sql.Identifier(key), t=sql.Identifier(table)
        )
    )
    low, high = cursor.fetchone()
    return low, high


def max_key(cursor, table: str, key: str) -> int | None:
    cursor.execute(
        sql.SQL("SELECT max({k}) FROM {t}").format(k=sql.Identifier(key), t=sql.Identifier(table))
    )
    return cursor.fetchone()[0]


def next_range_end(cursor, table: str, key: str, after: int, upto: int, size: int) -> int | None:
    """The end of the next batch of at most `size` keys in (after, upto], or None if it is empty."""
    cursor.execute(
        sql.SQL(
            "SELECT max(k) FROM (SELECT {k} AS k FROM {t} WHERE {k} > %s AND {k} <= %s "
            "ORDER BY {k} LIMIT %s) AS keys"
        ).format(k=sql.Identifier(key), t=sql.Identifier(table)),
        [after, upto, size],
    )
    return cursor.fetchone()[0]
