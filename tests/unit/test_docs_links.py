"""The README and docs/ point only at what exists: every relative link names a file of the
repository (and a heading of it, when it names an anchor), and every `manage.py COMMAND` the
pages tell an operator to run is a management command on disk. A page moved or a heading
renamed breaks a link silently otherwise, and a reader follows a dead end."""

from __future__ import annotations

import re
from pathlib import Path

import django
import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\n]|\n(?!\n))*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
MANAGE = re.compile(r"manage\.py\s+([a-z][a-z0-9_]*)")


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def prose(text: str) -> str:
    """The text outside fenced code blocks: a `# comment` in a shell block is not a heading."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (backticks, colons,
    parentheses, `#`, `.`), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    text = CODE_SPAN.sub("", prose(page.read_text()))
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I)]  # http:, https:, mailto:


def broken(page: Path, target: str) -> str:
    """Why `target`, linked from `page`, leads nowhere; '' when it resolves."""
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.is_relative_to(ROOT):
        return f"{target}: points outside the repository"
    if not file.exists():
        return f"{target}: no such file"
    if anchor:
        if file.suffix != ".md":
            return f"{target}: an anchor into a file that is not Markdown"
        if anchor not in anchors(file):
            return f"{target}: no heading with anchor #{anchor} in {file.relative_to(ROOT)}"
    return ""


def management_commands() -> set[str]:
    """The commands on disk: the engine's and the apps' (`*/management/commands/*.py`),
    Django's own (`migrate`'s base, `check`, `makemigrations`, `createsuperuser`, ...) and those
    of the installed packages (django-axes' `axes_reset_username`, ...)."""
    django_root = Path(django.__file__).parent
    roots = [ROOT / "engine", ROOT / "apps", django_root / "core", django_root / "contrib",
             *(Path(config.path) for config in apps.get_app_configs())]
    return {
        path.stem
        for root in roots
        for path in root.rglob("management/commands/*.py")
        if not path.stem.startswith("_")
    }


def test_the_slug_of_a_heading_is_githubs_anchor_for_it():
    assert slug("What a deploy will cost: `migrate_online --plan`") == (
        "what-a-deploy-will-cost-migrate_online---plan")
    assert slug("Undoing a job's work") == "undoing-a-jobs-work"
    assert slug("Bad rows set aside (quarantine)") == "bad-rows-set-aside-quarantine"


def test_the_pages_checked_are_the_readme_and_every_page_of_docs():
    names = {page_id(page) for page in PAGES}
    assert "README.md" in names
    assert {"docs/writing-a-job.md", "docs/job-api.md", "docs/troubleshooting.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_of_a_page_resolves_to_a_file_and_heading_of_the_repository(page):
    problems = [problem for target in relative_links(page) if (problem := broken(page, target))]
    assert not problems, f"{page_id(page)}: " + "; ".join(problems)


def test_the_readme_links_every_page_of_docs():
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in relative_links(ROOT / "README.md")}
    missing = [page_id(page) for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, f"README.md has no link to {', '.join(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_manage_py_command_a_page_names_is_a_management_command_on_disk(page):
    known = management_commands()
    named = sorted(set(MANAGE.findall(page.read_text())))
    unknown = [name for name in named if name not in known]
    assert not unknown, f"{page_id(page)} names manage.py {', '.join(unknown)}, not on disk"
