"""The project's detect-secrets plugins: what detect-secrets' own plugins miss (tests/ops/secrets_scan.py
says how the scan uses them; the baseline lists them, so `detect-secrets scan` runs them too).

detect-secrets loads this file by its path, outside any package: it imports nothing of the project.
"""

import re
from typing import Any

from detect_secrets.plugins import basic_auth
from detect_secrets.plugins.base import BasePlugin

# What the baseline calls their findings.
URL_KIND = "URL password (project check)"
DEFAULT_KIND = "Literal secret default (project check)"
SETTING_KIND = "Project secret setting (project check)"

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
PROJECT_SETTING = re.compile(
    r"(?i)(?<![${\\])\b\w*(?:_TOKEN|BASIC_AUTH)\b['\"]?\s*[:=]\s*"
    r"(?P<value>['\"][^'\"\n]*['\"]|[^\s,;)\]}'\"]+)")
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


class ProjectSettingDetector(BasePlugin):
    """A value for MW_STATUS_TOKEN (any `*_TOKEN`) or FLOWER_BASIC_AUTH. In Python only a quoted
    value is a literal; elsewhere (environment files, shell, YAML) an unquoted one is too."""

    secret_type = SETTING_KIND

    def analyze_line(self, filename: str, line: str, line_number: int = 0, context=None,
                     **kwargs: Any):
        return super().analyze_line(filename, line, line_number, context,
                                    python=filename.endswith(".py"), **kwargs)

    def analyze_string(self, string: str, python: bool = False, **kwargs: Any):
        for match in PROJECT_SETTING.finditer(string):
            value = match.group("value")
            quoted = len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]
            if python and not quoted:
                continue  # an expression (a call, a name), not a literal
            if not is_reference(value[1:-1] if quoted else value):
                yield value[1:-1] if quoted else value
