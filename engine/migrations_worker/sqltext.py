"""The one place SQL text is read, shared by the migration linter (`lint/`) and the deploy
planner (`deploy/locks.py`, `deploy/plan.py`): statements, identifiers and the names they
stand for, comments, literals and function bodies blanked out, the tables a statement touches,
and the safe sequences squawk cannot see because it reads each statement alone.

Regular expressions over text, not a parser: enough for the SQL Django and SafeSQL write, and
every search runs on the text with comments and string literals blanked out first. A module
that needs another pattern over SQL builds it from `IDENT`, `QUALIFIED` and `ALTER_TABLE` here
rather than writing its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# An identifier, quoted or not, and one optionally qualified by its schema.
IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
QUALIFIED = rf"{IDENT}(?:\s*\.\s*{IDENT})?"
# The head of an ALTER TABLE, its table in the group `table`.
_ALTER_HEAD = r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?"
ALTER_TABLE = rf"{_ALTER_HEAD}(?P<table>{QUALIFIED})"
LINE_COMMENT = re.compile(r"--[^\n]*")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_LITERAL = re.compile(r"'(?:[^']|'')*'")
DOLLAR_QUOTE = re.compile(r"\$(?P<tag>[A-Za-z_0-9]*)\$")
_DOLLAR_BODY = re.compile(rf"{DOLLAR_QUOTE.pattern}.*?\$(?P=tag)\$", re.S)
_CREATE_INDEX = re.compile(rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
                           rf"(?P<index>{QUALIFIED})\s+ON\s+(?:ONLY\s+)?(?P<table>{QUALIFIED})", re.I)
_TARGET = re.compile(
    rf"{_ALTER_HEAD}(?P<alter>{QUALIFIED})"
    rf"|\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<create>{QUALIFIED})"
    rf"|\bINDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:{QUALIFIED}\s+)?"
    rf"ON\s+(?:ONLY\s+)?(?P<index>{QUALIFIED})",
    re.I,
)
_REFERENCED = re.compile(rf"\bREFERENCES\s+(?P<ref>{QUALIFIED})", re.I)


def _unquote(identifier: str) -> str:
    return identifier[1:-1].replace('""', '"') if identifier.startswith('"') else identifier


def object_name(identifier: str) -> str:
    """The object's name as PostgreSQL stores it: the last part, unquoted or folded to lower case."""
    last = re.findall(IDENT, identifier)[-1]
    return _unquote(last) if last.startswith('"') else last.lower()


def identifiers(code: str) -> Iterator[str]:
    """Every identifier-shaped word of `code` (keywords too), quoted ones unquoted."""
    for match in re.finditer(IDENT, code):
        yield _unquote(match[0])


@dataclass(frozen=True)
class Statement:
    text: str
    start: int  # offsets into the migration's SQL
    end: int

    def tables(self) -> tuple[set[str], set[str]]:
        """(tables it alters, tables it only references)."""
        code = strip_literals(self.text)
        targets = {object_name(m[k]) for m in _TARGET.finditer(code) for k in ("alter", "create", "index")
                   if m[k]}
        referenced = {object_name(m["ref"]) for m in _REFERENCED.finditer(code)}
        return targets, referenced - targets


def split_statements(sql: str) -> list[Statement]:
    """Split on top-level semicolons, minding quotes, comments and dollar-quoted bodies."""
    statements, start, i, n = [], 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            i = sql.find(c, i + 1)
            while i != -1 and sql[i + 1:i + 2] == c:  # doubled quote
                i = sql.find(c, i + 2)
            i = n if i == -1 else i + 1
        elif sql.startswith("--", i):
            i = sql.find("\n", i)
            i = n if i == -1 else i
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2)
            i = n if i == -1 else i + 2
        elif c == "$" and (m := DOLLAR_QUOTE.match(sql, i)):
            close = sql.find(m[0], i + len(m[0]))
            i = n if close == -1 else close + len(m[0])
        elif c == ";":
            statements.append(Statement(sql[start:i + 1], start, i + 1))
            start = i = i + 1
        else:
            i += 1
    if sql[start:].strip():
        statements.append(Statement(sql[start:], start, n))
    return statements


def strip_literals(sql: str) -> str:
    """SQL with comments and string literals blanked out, so only code is searched."""
    return blank_literals(strip_comments(sql))


def strip_comments(sql: str) -> str:
    return _BLOCK_COMMENT.sub(" ", LINE_COMMENT.sub(" ", sql))


def blank_literals(sql: str) -> str:
    return _LITERAL.sub("''", sql)


def blank_dollar_bodies(sql: str) -> str:
    """SQL with every dollar-quoted body (a function's, a DO block's) blanked out."""
    return _DOLLAR_BODY.sub(" ", sql)


def created_indexes(code: str) -> Iterator[tuple[str, str]]:
    """(index, table) of every index `code` creates."""
    for m in _CREATE_INDEX.finditer(code):
        yield object_name(m["index"]), object_name(m["table"])


# --- recognised safe sequences -------------------------------------------------------------------

# The design's own way to add NOT NULL (docs/design.md, fix 5): CHECK (col IS NOT NULL) NOT VALID,
# VALIDATE, SET NOT NULL (PostgreSQL 12+ then skips the scan), DROP the now redundant check.
# Squawk reads each statement alone and flags the last two; these recognise the sequence.
_ALTER = ALTER_TABLE + r"\s+"
_SET_NOT_NULL = re.compile(_ALTER + rf"ALTER\s+(?:COLUMN\s+)?(?P<column>{IDENT})\s+SET\s+NOT\s+NULL",
                           re.I)
_CHECK_NOT_NULL = re.compile(_ALTER + rf"ADD\s+CONSTRAINT\s+(?P<name>{IDENT})\s+CHECK\s*\(\s*"
                             rf"\(?\s*(?P<column>{IDENT})\s+IS\s+NOT\s+NULL\s*\)?\s*\)", re.I)
_VALIDATE = re.compile(_ALTER + rf"VALIDATE\s+CONSTRAINT\s+(?P<name>{IDENT})", re.I)
_DROP_CONSTRAINT = re.compile(_ALTER + rf"DROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?(?P<name>{IDENT})",
                              re.I)


def _validated_not_null_checks(sql: str, table: str) -> dict[str, str]:
    """{constraint: column} of CHECK (column IS NOT NULL) constraints added and validated."""
    added = {object_name(m["name"]): object_name(m["column"]) for m in _CHECK_NOT_NULL.finditer(sql)
             if object_name(m["table"]) == table}
    validated = {object_name(m["name"]) for m in _VALIDATE.finditer(sql) if object_name(m["table"]) == table}
    return {name: column for name, column in added.items() if name in validated}


def _set_not_null_after_validated_check(before: str, statement: str) -> bool:
    m = _SET_NOT_NULL.search(statement)
    return m is not None and object_name(m["column"]) in _validated_not_null_checks(
        before, object_name(m["table"])
    ).values()


def _drop_check_made_redundant_by_not_null(before: str, statement: str) -> bool:
    m = _DROP_CONSTRAINT.search(statement)
    if m is None:
        return False
    table = object_name(m["table"])
    column = _validated_not_null_checks(before, table).get(object_name(m["name"]))
    return column is not None and any(
        object_name(s["table"]) == table and object_name(s["column"]) == column
        for s in _SET_NOT_NULL.finditer(before)
    )


# {squawk rule: proof(SQL before the statement, the statement) that this finding is the safe way}
RECOGNISED_SAFE_PATTERNS: dict[str, Callable[[str, str], bool]] = {
    "adding-not-nullable-field": _set_not_null_after_validated_check,
    "ban-drop-constraint": _drop_check_made_redundant_by_not_null,
}


# --- contract steps: what the previous release of the code may not survive ----------------------

_CONTRACT_STEPS = {
    "drops a column": re.compile(r"\bDROP\s+COLUMN\b", re.I),
    "drops a table": re.compile(r"\bDROP\s+TABLE\b", re.I),
    "renames a table or column": re.compile(r"\bALTER\s+TABLE\b[^;]*\bRENAME\b", re.I),
    "changes a column's type": re.compile(r"\bALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b", re.I),
    "makes a column NOT NULL": re.compile(r"\bSET\s+NOT\s+NULL\b", re.I),
    "adds a constraint": re.compile(rf"\bADD\s+(?:CONSTRAINT\s+{IDENT}\s+)?"
                                    r"(?:UNIQUE|CHECK|FOREIGN\s+KEY|PRIMARY\s+KEY|EXCLUDE)\b", re.I),
    "builds a unique index": re.compile(r"\bCREATE\s+UNIQUE\s+INDEX\b", re.I),
    "drops a trigger": re.compile(rf"\bDROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?(?P<name>{IDENT})", re.I),
    "drops a function": re.compile(rf"\bDROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?(?P<name>{IDENT})", re.I),
}
_CREATED = re.compile(rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?(?:TRIGGER|FUNCTION)\s+"
                      rf"(?P<name>{IDENT})", re.I)


def contract_steps(sql: str, new_tables: set[str]) -> Iterator[str]:
    """What in a migration's SQL the previous release may not survive: a dropped, renamed or
    retyped column, a constraint it could violate, a removed trigger or function. Not counted:
    statements on tables the migration itself created (no running code knows them), and a
    trigger or function dropped only to be created again (a replacement)."""
    created = {object_name(m["name"]) for m in _CREATED.finditer(strip_literals(sql))}
    for statement in split_statements(sql):
        code = strip_literals(statement.text)
        targets, _referenced = statement.tables()
        if targets and targets <= new_tables:
            continue
        for what, pattern in _CONTRACT_STEPS.items():
            match = pattern.search(code)
            if match is None or ("name" in pattern.groupindex and object_name(match["name"]) in created):
                continue
            yield f"{what}: {' '.join(statement.text.split())[:120]}"
