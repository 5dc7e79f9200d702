"""The table a full run of the mutation check leaves in the docs: each entry, the test that must
catch it, the verdict and the seconds, the product's entries apart from the scanners'. Written
by `python -m tests.mutations --all` only, so what the README quotes is a run, not a claim."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Sequence

from tests.mutations import KILLED, ROOT, Outcome
from tests.mutations.catalogue import is_scanner

RECORD = ROOT / "docs" / "mutations.md"

HEADER = """# The mutation check: the latest full run

Written by `python -m tests.mutations --all` (see
[reliability](reliability.md#what-the-tests-prove-the-mutation-check)); do not edit by hand.
*Killed* means the named test failed on an assertion, its control passed in the same run and
the mutant compiled; anything else is an *error* or *survived*.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(outcomes: Sequence[Outcome]) -> list[str]:
    lines = ["| entry | test | verdict | seconds |", "|---|---|---|---:|"]
    lines += [f"| {_cell(o.mutation.name)} | `{_cell(o.mutation.test)}` | {o.result} | "
              f"{o.seconds:.0f} |" for o in outcomes]
    return lines


def summary(outcomes: Sequence[Outcome]) -> str:
    """"product: 40 of 40 killed; scanners: 22 of 22 killed"."""
    parts = []
    for label, scanner in (("product", False), ("scanners", True)):
        group = [o for o in outcomes if is_scanner(o.mutation) == scanner]
        parts.append(f"{label}: {sum(o.result == KILLED for o in group)} of {len(group)} killed")
    return "; ".join(parts)


def render(outcomes: Sequence[Outcome], day: datetime.date, commit: str) -> str:
    product = [o for o in outcomes if not is_scanner(o.mutation)]
    scanners = [o for o in outcomes if is_scanner(o.mutation)]
    body = [HEADER, f"Run of {day.isoformat()}, at commit {commit}: {summary(outcomes)}.", "",
            "## The product's safety paths", "", *_table(product), "",
            "## The scanners (the tests' own instruments: secret scan, SQL check, chaos harness)", "",
            *_table(scanners), ""]
    return "\n".join(body)


def current_commit() -> str:
    """The commit the tree is at, plus "+changes" when it differs from it: read when the run
    copies the tree, since commits made while it runs are not in what it tested."""
    return subprocess.run(["git", "describe", "--always", "--dirty=+changes"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()


def write_record(outcomes: Sequence[Outcome], day: datetime.date, commit: str) -> None:
    RECORD.write_text(render(outcomes, day, commit))
