"""Which target an operator's page, a status request or a scrape reads.

Every target keeps its own runs in its own database, so whatever shows runs shows one target's
(`?database=NAME`, `default` without it) and says which; `?database=*` asks the status API for
every target at once. A name that is not a declared target is refused with the declared ones
(conf.require_target), never taken for `default`: an operator who mistypes `eu` must not be
shown, or pause, the runs of another database.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from django.db import DEFAULT_DB_ALIAS, connections
from django.http import QueryDict

from .. import conf
from ..targets import Target

PARAM = "database"
EVERY = "*"
# The admin carries a list's filters to the pages it links to in this one parameter.
CHANGELIST_FILTERS = "_changelist_filters"


def chosen(params: Mapping[str, str]) -> str:
    """The target `?database=` names (`default` without one); UnknownTarget for any other name."""
    return conf.require_target(params.get(PARAM) or DEFAULT_DB_ALIAS)


def chosen_in_admin(params: QueryDict) -> str:
    """The target an admin page shows: its own `?database=`, or the one of the list it was
    opened from (the admin passes the list's query on as `_changelist_filters`)."""
    if PARAM not in params and CHANGELIST_FILTERS in params:
        return chosen(QueryDict(params[CHANGELIST_FILTERS]))
    return chosen(params)


def query(name: str, **more: str) -> str:
    """`?database=NAME` (and `more`) for a link that stays on target `name`; `default` needs none."""
    params = {PARAM: name} if name != DEFAULT_DB_ALIAS else {}
    params.update(more)
    return f"?{urlencode(params)}" if params else ""


def server_of(name: str) -> str:
    """The server a target lives on: its `server` label, else its host and port."""
    return Target(name, None, conf.targets().get(name, {})).server(connections[name].settings_dict)


def describe(name: str) -> dict:
    """A target as the API and the admin name it: its name, server and labels."""
    return {"name": name, "server": server_of(name), "labels": dict(conf.targets().get(name, {}))}


def first_line(exc: BaseException) -> str:
    """An error as one line, for an operator (a driver's messages run over several)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".strip()
