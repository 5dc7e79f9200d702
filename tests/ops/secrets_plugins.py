"""The project's detect-secrets plugins: what detect-secrets' own plugins miss (tests/ops/secrets_scan.py
says how the scan uses them; the baseline lists them, so `detect-secrets scan` runs them too).

detect-secrets loads this file by its path, outside any package: it imports nothing of the project.
"""

import re
from typing import Any

from detect_secrets.plugins import basic_auth
from detect_secrets.plugins.base import BasePlugin
from detect_secrets.plugins.keyword import REGEX_BY_FILETYPE
from detect_secrets.util.filetype import FileType, determine_file_type

# What the baseline calls their findings.
URL_KIND = "URL password (project check)"
DEFAULT_KIND = "Literal secret default (project check)"
ASSIGNMENT_KIND = "Secret assignment (project check)"

# What a URL's userinfo may hold as a password; detect-secrets' pattern leaves out sub-delimiters.
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://([^\s:/?#\[\]@'\"`]*):([^\s/?#\[\]@'\"`]+)@")
LITERAL_DEFAULTS = (
    # SECRET_KEY = <an expression> or <a quoted literal>
    re.compile(r"\b\w*SECRET_KEY\b\s*[:=].*?\bor\s+(['\"])(?P<value>[^'\"]+)\1"),
    # os.environ.get(<a secret's name>, <a quoted literal>), getenv(...), env.str(..., default=...)
    re.compile(r"\b(?:get|getenv|env|str)\(\s*(['\"])\w*(?:SECRET|PASSWORD|TOKEN)\w*\1\s*,\s*"
               r"(?:default\s*=\s*)?(['\"])(?P<value>[^'\"]+)\2"),
    # ${POSTGRES_PASSWORD:-<a literal>} in a shell script or a compose file
    re.compile(r"\$\{\w*(?:SECRET|PASSWORD|PASSWD|_TOKEN|BASIC_AUTH|API_KEY)\w*:?-(?P<value>[^}]+)\}"),
)
# A secret-named variable or key given a value, quoted or not.
ASSIGNMENT = re.compile(
    r"(?i)(?<![${\\])\b(?P<name>\w*(?:SECRET|PASSWORD|PASSWD|_TOKEN|BASIC_AUTH|API_?KEY|PRIVATE_?KEY)\w*)"
    r"\b['\"]?\s*[:=]\s*(?P<value>['\"][^'\"\n]*['\"]|[^\s,;)\]}'\"\\]+)")
# The project's secret settings detect-secrets has no keyword for.
PROJECT_SETTING = re.compile(r"(?i)_TOKEN$|BASIC_AUTH$")
# Where a value is code, not text: an unquoted one is an expression.
CODE = {FileType.PYTHON, FileType.JAVASCRIPT, FileType.GO, FileType.JAVA, FileType.SWIFT,
        FileType.C, FileType.C_PLUS_PLUS, FileType.C_SHARP, FileType.OBJECTIVE_C, FileType.CLS,
        FileType.TERRAFORM, FileType.PHP}
REFERENCE = re.compile(
    r"^(?:\$\{[^}]*\}?|\$\(.*|\$\w+|\{[^}]*\}|<[^>]*>|\*+|\.+|%\w|%\(\w+\)\w"
    r"|(?:os\.)?environ\b.*|getenv\b.*|settings\..*|None|null|true|false|)$"
    r"|^(?:user|username):(?:password|pass|secret)\.?$")  # the shape a message asks for


def is_reference(value: str) -> bool:
    return bool(REFERENCE.match(value.strip()))


# -- the project's plugins --------------------------------------------------------------------------


class UrlPasswordDetector(BasePlugin):
    """A URL password detect-secrets' BasicAuthDetector cannot match: holding a sub-delimiter,
    or after an empty user name."""

    secret_type = URL_KIND

    def analyze_string(self, string: str, **kwargs: Any):
        for match in URL_PASSWORD.finditer(string):
            password = match.group(2)
            if is_reference(password) or "{" in password:  # ${...}, an f-string field
                continue
            if any(pattern.search(match.group(0)) for pattern in basic_auth.BasicAuthDetector.denylist):
                continue  # BasicAuthDetector reports this one
            yield password


class LiteralDefaultDetector(BasePlugin):
    """A literal fallback or default for a secret."""

    secret_type = DEFAULT_KIND

    def analyze_string(self, string: str, **kwargs: Any):
        for pattern in LITERAL_DEFAULTS:
            for match in pattern.finditer(string):
                if not is_reference(match.group("value")):
                    yield match.group("value")


class AssignmentDetector(BasePlugin):
    """A secret-named setting given a value where detect-secrets' KeywordDetector does not look:

    - unquoted, in a file it reads as neither code nor configuration (a shell script, a
      Dockerfile, a Makefile, an environment file, Markdown): there it requires quotes, unless
      the whole file happens to parse as a configuration file, so `SECRET_KEY=...` or
      `export DJANGO_SECRET_KEY=...` under a `set -euo pipefail` went unseen;
    - one of this project's secret settings, which no keyword of it covers: `*_TOKEN`
      (MW_STATUS_TOKEN) and `FLOWER_BASIC_AUTH`, quoted or (outside code) not.
    """

    secret_type = ASSIGNMENT_KIND

    def analyze_line(self, filename: str, line: str, line_number: int = 0, context=None,
                     **kwargs: Any):
        return super().analyze_line(filename, line, line_number, context,
                                    filetype=determine_file_type(filename), **kwargs)

    def analyze_string(self, string: str, filetype: FileType = FileType.OTHER, **kwargs: Any):
        keywords_need_quotes = filetype not in REGEX_BY_FILETYPE or filetype in CODE
        for match in ASSIGNMENT.finditer(string):
            value = match.group("value")
            quoted = len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]
            if quoted:
                value = value[1:-1]
            elif filetype in CODE:
                continue  # an expression (a call, a name), not a literal
            project_setting = bool(PROJECT_SETTING.search(match.group("name")))
            if not (project_setting or (keywords_need_quotes and not quoted)):
                continue  # detect-secrets' KeywordDetector reports this one
            if not is_reference(value):
                yield value
