"""The secret scan of the tracked files: detect-secrets, with a reviewed baseline and three
plugins of the project's own for what its plugins do not see.

detect-secrets (Yelp's scanner, on the package index) reads every tracked text file with the
plugins and filters `.secrets.baseline` (at the repository root) records. Its plugins find
keyword assignments (`password = "..."`, `POSTGRES_PASSWORD: ...` in YAML, `{"password": "..."}`,
of any length), user:password in URLs, private keys, cloud and service tokens and high-entropy
strings. A finding passes only if the baseline lists it, audited as not a secret
(`"is_secret": false`); tests/ops/test_security.py says why for each file.

What its plugins miss, and the project's plugins add (tests/ops/secrets_plugins.py; each shown
by a sample in test_security.py):

- `AssignmentDetector`: an unquoted value in a file it reads as neither code nor configuration
  (shell scripts, Dockerfiles, Makefiles, environment files, Markdown), where its keyword plugin
  wants quotes (`SECRET_KEY=...`, `export DJANGO_SECRET_KEY=...` under `set -euo pipefail`);
  and this project's secret settings it has no keyword for, `*_TOKEN` (MW_STATUS_TOKEN) and
  `FLOWER_BASIC_AUTH`;
- `UrlPasswordDetector`: a URL password its BasicAuthDetector cannot match, one holding a
  sub-delimiter (`$`, `!`, `&`, ...) or given with an empty user name
  (`redis://:<password>@host`, the usual form for Redis);
- `LiteralDefaultDetector`: a literal fallback or default for a secret
  (`SECRET_KEY = key or "<literal>"`, `os.environ.get("SECRET_KEY", "<literal>")`,
  `${POSTGRES_PASSWORD:-<literal>}`), which detect-secrets takes for a reference or a template.

And one way detect-secrets reads files: a YAML file goes through its YAML parser, which drops the
items of lists (`- SECRET_KEY=...`, the compose list form) as soon as the file holds any other
value; `scan` below reads a YAML file's own lines as well.

The baseline lists them (`"path": "file://tests/ops/secrets_plugins.py"`), so the command line
scans with them too. It also turns one default filter off, `is_indirect_reference`: it drops
every line that contains a call, and so hid `create_user(..., password="...")` and the literal
defaults of environment lookups.

References and placeholders are not values: `${VAR}`, `${VAR:?message}`, `$VAR`, `$(command)`,
`os.environ[...]`, f-string fields, `<placeholder>`, a masked `**`, a printf `%s`.

After a reviewed change: `detect-secrets scan --baseline .secrets.baseline` (from the repository
root), `detect-secrets audit .secrets.baseline` to mark each new finding, and a reason for its
file in test_security.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from detect_secrets.core.scan import _process_line_based_plugins
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import transient_settings
from detect_secrets.util.filetype import FileType, determine_file_type

BASELINE = ".secrets.baseline"
FILE_SCHEME = "file://"

# -- scanning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str
    hashed_secret: str  # as the baseline stores it

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def load_baseline(root: Path) -> dict:
    return json.loads((root / BASELINE).read_text())


def settings_of(baseline: dict, root: Path) -> dict:
    """The baseline's plugins and filters, with the project's plugin file found from `root`."""
    plugins = [
        {**plugin, "path": FILE_SCHEME + str(root / plugin["path"][len(FILE_SCHEME):])}
        if "path" in plugin else plugin
        for plugin in baseline["plugins_used"]
    ]
    return {"plugins_used": plugins, "filters_used": baseline["filters_used"]}


def reviewed(baseline: dict) -> dict[tuple[str, str, str], bool | None]:
    """(file, kind, hashed secret) -> its audit verdict (False: reviewed, not a secret)."""
    return {(path, entry["type"], entry["hashed_secret"]): entry.get("is_secret")
            for path, entries in baseline["results"].items() for entry in entries}


def scan(directory: Path, names: list[str], root: Path) -> list[Finding]:
    """detect-secrets over `names` (relative to `directory`) with the settings of the baseline
    at `root`.

    detect-secrets reads a YAML file through its YAML parser, which keeps the mapping values and
    drops the items of lists: `- SECRET_KEY=...` (a compose environment written as a list) is
    never seen once the file holds any other value. So a YAML file's own lines are scanned too,
    with the same plugins and filters. (`detect-secrets scan` does not do this: a finding only
    this pass sees cannot be kept in the baseline, it must go.)
    """
    collection = SecretsCollection(root=str(directory))
    with transient_settings(settings_of(load_baseline(root), root)):
        for name in names:
            collection.scan_file(name)
            path = os.path.join(str(directory), name)
            if determine_file_type(path) == FileType.YAML:
                lines = list(enumerate(Path(path).read_text().splitlines(), start=1))
                collection[name].update(_process_line_based_plugins(lines, filename=path))
    return sorted(
        (Finding(path, secret.line_number, secret.type, secret.secret_hash)
         for path in collection.files for secret in collection[path]),
        key=lambda f: (f.path, f.line, f.kind),
    )


def tracked_text_files(root: Path) -> list[str]:
    """Every tracked file but binaries and the baseline (hashes of reviewed findings)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    files = []
    for name in filter(None, names):
        path = root / name
        if name == BASELINE or not path.is_file():
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        files.append(name)
    return files


def scan_repository(root: Path) -> tuple[list[str], list[Finding]]:
    files = tracked_text_files(root)
    return files, scan(root, files, root)


def scan_sample(root: Path, directory: Path, filename: str, text: str) -> list[Finding]:
    """The scan of one sample, written as `filename` (its type decides how it is read)."""
    (directory / filename).write_text(text)
    return scan(directory, [filename], root)
