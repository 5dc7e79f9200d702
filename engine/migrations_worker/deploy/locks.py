"""What a migration statement locks, on which tables, and for how long: read from its SQL text.

`migrate_online --plan` shows it for every pending statement. The table below is PostgreSQL's
own (the "Explicit Locking" chapter and each command's page): a statement's kind decides its
lock mode, and whether the lock is held for a moment (a catalog change), for a scan of the table
(a validation), for an index build, for a rewrite of the table, or for as long as the rows it
changes take. A statement that matches several rules (an ALTER TABLE with several actions) takes
the strongest mode and the longest hold among them; a statement that matches none is "unknown",
never silently "safe".

Regular expressions over text, built from `sqltext`'s (the one place SQL text is read):
comments and string literals are blanked out first, and a function's body too (it runs later,
inside triggers); a DO block's body is read, since it runs now, dynamic SQL included.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..sqltext import (
    ALTER_TABLE,
    IDENT,
    QUALIFIED,
    RECOGNISED_SAFE_PATTERNS,
    blank_dollar_bodies,
    blank_literals,
    object_name,
    strip_comments,
)

# SET NOT NULL skips its scan when a validated CHECK (col IS NOT NULL) proves it (PostgreSQL 12+).
_PROVEN_NOT_NULL = RECOGNISED_SAFE_PATTERNS["adding-not-nullable-field"]


class Mode(enum.IntEnum):
    """PostgreSQL's table lock modes, weakest first (each conflicts with more than the last)."""

    NONE = 0
    ACCESS_SHARE = 1
    ROW_SHARE = 2
    ROW_EXCLUSIVE = 3
    SHARE_UPDATE_EXCLUSIVE = 4
    SHARE = 5
    SHARE_ROW_EXCLUSIVE = 6
    EXCLUSIVE = 7
    ACCESS_EXCLUSIVE = 8

    @property
    def sql_name(self) -> str:
        return self.name.replace("_", " ")

    @property
    def blocks(self) -> str:
        """What it does to the application's reads and writes while it is held."""
        return BLOCKS[self]


BLOCKS = {
    Mode.NONE: "blocks nothing",
    Mode.ACCESS_SHARE: "reads and writes go on",
    Mode.ROW_SHARE: "reads and writes go on",
    Mode.ROW_EXCLUSIVE: "reads and writes go on (the rows it changes stay locked until commit)",
    Mode.SHARE_UPDATE_EXCLUSIVE: "reads and writes go on (other DDL and VACUUM wait)",
    Mode.SHARE: "blocks writes",
    Mode.SHARE_ROW_EXCLUSIVE: "blocks writes",
    Mode.EXCLUSIVE: "blocks writes and SELECT ... FOR UPDATE",
    Mode.ACCESS_EXCLUSIVE: "blocks reads and writes",
}


class Hold(enum.IntEnum):
    """How long a statement holds its lock, shortest first; `cost` multiplies the table's size
    read at the plan's scan rate into seconds (a rough estimate)."""

    NONE = 0  # no table lock
    BRIEF = 1  # a catalog change: a moment, once the lock is granted
    ROWS = 2  # as long as the rows it reads and changes take
    SCAN = 3  # reads the whole table (a validation)
    BUILD = 4  # builds an index: scans, sorts and writes it
    REWRITE = 5  # rewrites the table and rebuilds its indexes
    UNKNOWN = 6  # the SQL says too little: read it

    @property
    def cost(self) -> float:
        return COST[self]


# A statement's estimated seconds = COST[its hold] x its table's bytes (pg_total_relation_size)
# / MIGRATIONS_WORKER["PLAN_SCAN_BYTES_PER_SECOND"]: a scan reads the table once, an index build
# reads and sorts it and writes the index, a rewrite copies the table and rebuilds its indexes.
# Calibrate the rate from a measured index build (a deploy logs `ddl create index ...: done in`,
# bench/deploy.py reads them as its steps): 3 x the table's bytes / the build's seconds.
# docs/deploying.md, "Where the plan's figures come from".
COST = {Hold.NONE: 0.0, Hold.BRIEF: 0.0, Hold.ROWS: 1.0, Hold.SCAN: 1.0, Hold.BUILD: 3.0,
        Hold.REWRITE: 5.0, Hold.UNKNOWN: 0.0}

_T = rf"(?P<table>{QUALIFIED})"


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    mode: Mode
    hold: Hold
    unless: re.Pattern[str] | None = None  # the statement's other words that make it not apply
    requires: re.Pattern[str] | None = None  # ... or without which it does not apply
    # Where the table comes from: the pattern's `table` group, the ALTER TABLE it is in, or an
    # index name (looked up in the catalog by the plan).
    table_from: str = "table"


def rule(kind: str, pattern: str, mode: Mode, hold: Hold, *, unless: str | None = None,
         requires: str | None = None, table_from: str = "table") -> Rule:
    def compiled(text: str | None) -> re.Pattern[str] | None:
        return re.compile(text, re.I | re.S) if text else None

    return Rule(kind, re.compile(pattern, re.I | re.S), mode, hold, compiled(unless),
                compiled(requires), table_from)


_NOT_VALID = r"\bNOT\s+VALID\b"
_ADD = rf"\bADD\s+(?:CONSTRAINT\s+{IDENT}\s+)?"
_ADD_COLUMN = (r"\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?!CONSTRAINT\b|CHECK\b|UNIQUE\b|"
               rf"PRIMARY\b|FOREIGN\b|EXCLUDE\b){IDENT}\s+[^,;]*?")

# Order does not matter: every rule that matches counts (strongest mode, longest hold).
RULES: tuple[Rule, ...] = (
    # -- indexes -------------------------------------------------------------------------------
    rule("create index concurrently", rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+"
         rf"(?:IF\s+NOT\s+EXISTS\s+)?(?:{QUALIFIED}\s+)?ON\s+(?:ONLY\s+)?{_T}",
         Mode.SHARE_UPDATE_EXCLUSIVE, Hold.BUILD),
    rule("create index", rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!\s*CONCURRENTLY)"
         rf"(?:IF\s+NOT\s+EXISTS\s+)?(?:{QUALIFIED}\s+)?ON\s+(?:ONLY\s+)?{_T}",
         Mode.SHARE, Hold.BUILD),
    rule("drop index concurrently", rf"\bDROP\s+INDEX\s+CONCURRENTLY\s+(?:IF\s+EXISTS\s+)?{_T}",
         Mode.SHARE_UPDATE_EXCLUSIVE, Hold.BRIEF, table_from="index"),
    rule("drop index", rf"\bDROP\s+INDEX\s+(?!\s*CONCURRENTLY)(?:IF\s+EXISTS\s+)?{_T}",
         Mode.ACCESS_EXCLUSIVE, Hold.BRIEF, table_from="index"),
    # -- ALTER TABLE actions (the table is the ALTER TABLE's) ------------------------------------
    rule("add column", _ADD_COLUMN + r"(?:[,;]|$)", Mode.ACCESS_EXCLUSIVE, Hold.BRIEF,
         table_from="alter"),
    rule("add column with a volatile default", _ADD_COLUMN + r"\bDEFAULT\s+(?:gen_random_uuid|"
         r"uuid_generate_v\d\w*|random|clock_timestamp|nextval|timeofday)\s*\(",
         Mode.ACCESS_EXCLUSIVE, Hold.REWRITE, table_from="alter"),
    rule("add a stored generated column", _ADD_COLUMN + r"\bGENERATED\s+ALWAYS\s+AS\b.*?\bSTORED\b",
         Mode.ACCESS_EXCLUSIVE, Hold.REWRITE, table_from="alter"),
    rule("add column with a foreign key", _ADD_COLUMN + r"\bREFERENCES\b", Mode.ACCESS_EXCLUSIVE,
         Hold.SCAN, unless=_NOT_VALID, table_from="alter"),
    rule("add column with a unique key", _ADD_COLUMN + r"\b(?:UNIQUE|PRIMARY\s+KEY)\b",
         Mode.ACCESS_EXCLUSIVE, Hold.BUILD, table_from="alter"),
    rule("add CHECK, NOT VALID", _ADD + r"CHECK\b", Mode.ACCESS_EXCLUSIVE, Hold.BRIEF,
         requires=_NOT_VALID, table_from="alter"),
    rule("add CHECK", _ADD + r"CHECK\b", Mode.ACCESS_EXCLUSIVE, Hold.SCAN, unless=_NOT_VALID,
         table_from="alter"),
    rule("add foreign key, NOT VALID", _ADD + r"FOREIGN\s+KEY\b", Mode.SHARE_ROW_EXCLUSIVE,
         Hold.BRIEF, requires=_NOT_VALID, table_from="alter"),
    rule("add foreign key", _ADD + r"FOREIGN\s+KEY\b", Mode.SHARE_ROW_EXCLUSIVE, Hold.SCAN,
         unless=_NOT_VALID, table_from="alter"),
    rule("add key using an index", _ADD + r"(?:UNIQUE|PRIMARY\s+KEY)\s+USING\s+INDEX\b",
         Mode.ACCESS_EXCLUSIVE, Hold.BRIEF, table_from="alter"),
    rule("add key building its index", _ADD + r"(?:UNIQUE|PRIMARY\s+KEY|EXCLUDE)\b(?!\s+USING\s+INDEX)",
         Mode.ACCESS_EXCLUSIVE, Hold.BUILD, table_from="alter"),
    rule("validate constraint", r"\bVALIDATE\s+CONSTRAINT\b", Mode.SHARE_UPDATE_EXCLUSIVE,
         Hold.SCAN, table_from="alter"),
    rule("set not null", r"\bSET\s+NOT\s+NULL\b", Mode.ACCESS_EXCLUSIVE, Hold.SCAN,
         table_from="alter"),
    rule("change a column's type", r"\bALTER\s+(?:COLUMN\s+)?" + IDENT +
         r"\s+(?:SET\s+DATA\s+)?TYPE\b", Mode.ACCESS_EXCLUSIVE, Hold.REWRITE, table_from="alter"),
    rule("catalog-only change", r"\b(?:DROP\s+NOT\s+NULL|SET\s+DEFAULT|DROP\s+DEFAULT|DROP\s+"
         r"COLUMN|DROP\s+CONSTRAINT|RENAME)\b", Mode.ACCESS_EXCLUSIVE, Hold.BRIEF,
         table_from="alter"),
    rule("storage setting", r"\bALTER\s+(?:COLUMN\s+)?" + IDENT + r"\s+SET\s+STATISTICS\b|"
         r"\bSET\s*\(|\bRESET\s*\(", Mode.SHARE_UPDATE_EXCLUSIVE, Hold.BRIEF, table_from="alter"),
    rule("enable or disable a trigger", r"\b(?:ENABLE|DISABLE)\s+(?:ALWAYS\s+|REPLICA\s+)?"
         r"TRIGGER\b", Mode.SHARE_ROW_EXCLUSIVE, Hold.BRIEF, table_from="alter"),
    # -- other tables a statement names ----------------------------------------------------------
    rule("references", rf"\bREFERENCES\s+{_T}", Mode.SHARE_ROW_EXCLUSIVE, Hold.BRIEF),
    rule("create trigger", rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+{IDENT}"
         rf"\s+(?:BEFORE|AFTER|INSTEAD\s+OF)\b.*?\bON\s+{_T}", Mode.SHARE_ROW_EXCLUSIVE, Hold.BRIEF),
    rule("drop trigger", rf"\bDROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?{IDENT}\s+ON\s+{_T}",
         Mode.ACCESS_EXCLUSIVE, Hold.BRIEF),
    rule("create table", rf"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_T}",
         Mode.ACCESS_EXCLUSIVE, Hold.BRIEF),
    rule("drop table", rf"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_T}", Mode.ACCESS_EXCLUSIVE,
         Hold.BRIEF),
    rule("truncate", rf"\bTRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?{_T}", Mode.ACCESS_EXCLUSIVE,
         Hold.BRIEF),
    rule("lock table", rf"\bLOCK\s+(?:TABLE\s+)?(?:ONLY\s+)?{_T}", Mode.ACCESS_EXCLUSIVE,
         Hold.BRIEF),
    rule("insert", rf"\bINSERT\s+INTO\s+{_T}", Mode.ROW_EXCLUSIVE, Hold.ROWS),
    rule("update", rf"\bUPDATE\s+(?:ONLY\s+)?{_T}\s+(?:AS\s+\w+\s+|\w+\s+)?SET\b",
         Mode.ROW_EXCLUSIVE, Hold.ROWS),
    rule("delete", rf"\bDELETE\s+FROM\s+(?:ONLY\s+)?{_T}", Mode.ROW_EXCLUSIVE, Hold.ROWS),
    rule("read", rf"\bFROM\s+(?:ONLY\s+)?{_T}(?!\s*\()", Mode.ACCESS_SHARE, Hold.SCAN),
    # -- no table lock ---------------------------------------------------------------------------
    rule("function", r"\b(?:CREATE\s+(?:OR\s+REPLACE\s+)?|DROP\s+)(?:FUNCTION|PROCEDURE)\b",
         Mode.NONE, Hold.NONE),
    rule("sequence, type, extension or schema", r"\b(?:CREATE|ALTER|DROP)\s+(?:SEQUENCE|TYPE|"
         r"EXTENSION|SCHEMA|DOMAIN)\b", Mode.NONE, Hold.NONE),
)
# A LOCK TABLE names its mode; "IN ACCESS EXCLUSIVE MODE" is the default.
_LOCK_MODE = re.compile(r"\bIN\s+(?P<mode>(?:ACCESS|ROW|SHARE|UPDATE|EXCLUSIVE|\s)+?)\s+MODE\b",
                        re.I)
_ALTER_TABLE = re.compile(ALTER_TABLE, re.I)
# Statements that lock nothing: session settings and transaction control.
_NOTHING = re.compile(r"^\s*(?:SET|RESET|BEGIN|COMMIT|START\s+TRANSACTION|SELECT\s+set_config)\b",
                      re.I)
_DO = re.compile(r"^\s*DO\b", re.I)
_SYSTEM = re.compile(r"^(?:pg_|information_schema)", re.I)


@dataclass(frozen=True)
class TableLock:
    table: str
    mode: Mode
    hold: Hold
    by_index: bool = False  # `table` is an index's name: the plan looks its table up


@dataclass(frozen=True)
class StatementLocks:
    kinds: tuple[str, ...]  # the rules it matched, "unknown" if none
    locks: tuple[TableLock, ...]  # one per table, strongest mode and longest hold first

    @property
    def mode(self) -> Mode:
        return max((lock.mode for lock in self.locks), default=Mode.NONE)

    @property
    def hold(self) -> Hold:
        if self.kinds == ("unknown",):
            return Hold.UNKNOWN
        return max((lock.hold for lock in self.locks), default=Hold.NONE)


def code_of(statement: str) -> str:
    """The statement's code as it runs now: comments and string literals blanked, a function's
    (dollar-quoted) body too; a DO block's body kept, literals and all (its dynamic SQL runs)."""
    text = strip_comments(statement)
    if _DO.match(text):
        return text
    return blank_literals(blank_dollar_bodies(text))


def is_noise(statement: str) -> bool:
    """Session settings, transaction control, comments: nothing to lock."""
    code = code_of(statement).strip().rstrip(";").strip()
    return not code or bool(_NOTHING.match(code))


def locks_of(statement: str, before: str = "") -> StatementLocks:
    """The tables `statement` locks, each with its mode and how long it holds it. `before`: the
    SQL that runs earlier (a SET NOT NULL after a validated CHECK proving it does not scan)."""
    code = code_of(statement)
    proven = _PROVEN_NOT_NULL(before, statement) if before else False
    alter = [object_name(m["table"]) for m in _ALTER_TABLE.finditer(code)]
    found: dict[tuple[str, bool], TableLock] = {}
    kinds: list[str] = []
    for r in RULES:
        matches = list(r.pattern.finditer(code))
        if (not matches or (r.unless is not None and r.unless.search(code))
                or (r.requires is not None and not r.requires.search(code))
                or (r.table_from == "alter" and not alter)):
            continue
        hold, kind = r.hold, r.kind
        if r.kind == "set not null" and proven:
            hold, kind = Hold.BRIEF, "set not null, proven by a validated CHECK"
        if r.table_from == "alter":
            tables = alter
        else:
            tables = [object_name(m["table"]) for m in matches] if "table" in r.pattern.groupindex else []
        tables = [table for table in tables if not _SYSTEM.match(table)]
        if r.mode != Mode.NONE and not tables:  # only the catalog (a DO block's own lookups)
            continue
        kinds.append(kind)
        mode = _lock_table_mode(code) if r.kind == "lock table" else r.mode
        for table in tables if r.mode != Mode.NONE else ():
            key = (table, r.table_from == "index")
            old = found.get(key)
            found[key] = TableLock(table, max(mode, old.mode) if old else mode,
                                   max(hold, old.hold) if old else hold, key[1])
    locks = sorted(found.values(), key=lambda lock: (-lock.mode, -lock.hold, lock.table))
    return StatementLocks(tuple(dict.fromkeys(kinds)) or ("unknown",), tuple(locks))


def _lock_table_mode(code: str) -> Mode:
    m = _LOCK_MODE.search(code)
    if m is None:
        return Mode.ACCESS_EXCLUSIVE
    name = "_".join(m["mode"].upper().split())
    return Mode[name] if name in Mode.__members__ else Mode.ACCESS_EXCLUSIVE
