"""What the engine's log records are about, as fields; and one JSON object per line on request.

Each record the engine writes about a run names it in its message, for a person reading text
(`run=12 job=alerts_uuid database=far batch=(100,200] rows=100 ...`), and again as fields on
the record (`extra=about(...)`): `run`, `job`, `target` (the database's name), `batch` (the
batch's id) and, where they apply, `start_key`, `end_key`, `rows`, `duration_ms`, `attempt`,
`status`. A log pipeline reads the fields; nobody has to parse the message.

`JsonFormatter` writes a record as one JSON object on one line: `time` (UTC, ISO 8601),
`level`, `logger`, `message`, every field the record was given, and `exc` for a traceback. The
project's LOGGING chooses it (`MW_LOG_FORMAT=json` in this project's settings); the workers and
beat log through the same LOGGING (`celery.py`), so one setting covers every process. It is the
standard library's Formatter with a few lines on top, so the engine needs no logging package.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# What every LogRecord has: anything else on a record came from `extra=`.
STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def about(*, run: int | None = None, job: str | None = None, target: str | None = None,
          batch: int | None = None, **more: Any) -> dict[str, Any]:
    """The fields of a record about a run (`log.info(..., extra=about(run=..., ...))`); a field
    not known at the call is left out rather than written as null."""
    fields = {"run": run, "job": job, "target": target, "batch": batch, **more}
    return {name: value for name, value in fields.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One record, one line of JSON: what a log pipeline indexes without a parsing rule."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update((name, value) for name, value in vars(record).items()
                   if name not in STANDARD and not name.startswith("_"))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # A field that is no JSON value (a request object, say) is written as its text.
        return json.dumps(out, default=str, ensure_ascii=False)
