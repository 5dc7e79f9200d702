"""Squawk over every migration's SQL, its findings mapped back to their migration.

Squawk reads each statement alone, so a finding is dropped where this migration's own context
proves it harmless: a table the migration just created (`SAFE_ON_NEW_TABLES`), or a step of a
recognised safe sequence (`RECOGNISED_SAFE_PATTERNS`). What is left gets this project's advice
(`SQUAWK_HINTS`) in place of squawk's generic help.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..sqltext import RECOGNISED_SAFE_PATTERNS, split_statements, strip_literals
from .catalogue import KNOWN_SQUAWK_RULES, SAFE_ON_NEW_TABLES, SQUAWK_HINTS
from .findings import LintedMigration, Violation


def binary() -> str | None:
    """The squawk of this virtualenv, else the one on PATH; None when there is none."""
    beside_python = Path(sys.executable).with_name("squawk")
    return str(beside_python) if beside_python.exists() else shutil.which("squawk")


def run(linted: list[LintedMigration], config: Path) -> None:
    """One squawk run over every migration's SQL; findings go to their migration."""
    with_sql = [item for item in linted if item.sql.strip()]
    if not with_sql:
        return
    squawk = binary()
    problem = ("squawk is not installed" if squawk is None
               else None if config.is_file() else f"its configuration {config} is missing")
    if problem:
        for item in with_sql:
            item.add("squawk-failed", problem)
        return
    with tempfile.TemporaryDirectory(prefix="lint-migrations-") as tmp:
        files = {}
        for index, item in enumerate(with_sql):
            path = Path(tmp) / f"{index:04d}_{item.migration.app_label}_{item.migration.name}.sql"
            path.write_text(item.sql)
            files[str(path)] = item
        result = subprocess.run(
            [squawk, "--config", str(config), "--reporter", "json", *files],
            capture_output=True, text=True, check=False, timeout=300,
        )
        try:
            findings = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            findings = None
        if result.returncode not in (0, 1) or findings is None:
            detail = (result.stderr or result.stdout).strip()[:500]
            for item in with_sql:
                item.add("squawk-failed", f"exit {result.returncode}: {detail}")
            return
    for finding in findings:
        item = files.get(finding["file"])
        if item is not None:
            add_finding(item, finding)


def knows_rule(rule: str) -> bool:
    """Whether squawk has a rule `rule`: it refuses an unknown one in --exclude."""
    if rule in KNOWN_SQUAWK_RULES:
        return True
    squawk = binary()
    if squawk is None or not re.fullmatch(r"[a-z][a-z0-9-]+", rule):
        return False
    result = subprocess.run([squawk, f"--exclude={rule}", "--help"], capture_output=True,
                            check=False, timeout=30)
    return result.returncode == 0


def _offset(sql: str, line: int, column: int) -> int:
    """Squawk's zero-based (line, column) as an offset into the text."""
    lines = sql.split("\n")
    return sum(len(text) + 1 for text in lines[:line]) + column


def add_finding(item: LintedMigration, finding: dict) -> None:
    """Add one of squawk's JSON findings to `item`, unless the migration's context waives it."""
    rule = finding["rule_name"]
    at = _offset(item.sql, finding["line"], finding["column"])
    statement = next((s for s in split_statements(item.sql) if s.start <= at < s.end), None)
    text = " ".join(strip_literals(statement.text).split()) if statement else ""
    if statement is not None and rule in SAFE_ON_NEW_TABLES:
        targets, referenced = statement.tables()
        scope = targets if SAFE_ON_NEW_TABLES[rule] == "target" else targets | referenced
        if targets and scope <= item.new_tables:
            return  # a table this migration just created: empty, and no running code uses it
    if statement is not None and rule in RECOGNISED_SAFE_PATTERNS:
        before_it = strip_literals(item.sql[:statement.start])
        if RECOGNISED_SAFE_PATTERNS[rule](before_it, strip_literals(statement.text)):
            return
    if any(v.rule == rule and v.source == "django" for v in item.violations):
        return  # said already, with this project's advice (e.g. identifier-too-long)
    instead = SQUAWK_HINTS.get(rule) or finding.get("help") or ""
    violation = Violation(
        item.migration.app_label, item.migration.name, rule, finding["message"], instead,
        source="squawk", sql=text[:200] + ("..." if len(text) > 200 else ""),
    )
    if violation not in item.violations:  # e.g. one finding per column of one DROP COLUMN
        item.violations.append(violation)
