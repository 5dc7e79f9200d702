"""Which targets a rollout takes, and in which waves.

`--select region=eu --select tier=gold` keeps the targets whose labels match every pair;
`--waves 1,25%,100%` cuts them, in the order the targets file declares them, into waves whose
sizes are cumulative: the first wave is the canary (here one database), the second takes the
fleet to a quarter of it, the third to all of it. A count or a percentage that adds no target (25%
of four databases is one, which the canary already is) makes no empty wave; a spec that ends short
of the whole fleet gets one more wave with the rest, so no selected target is ever left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ..exceptions import InvalidInput

DEFAULT_WAVES = "1,25%,100%"
_ITEM = re.compile(r"^(?P<number>\d+)(?P<percent>%?)$")
_PAIR = re.compile(r"^(?P<key>[a-z][a-z0-9_.-]{0,62})=(?P<value>.+)$")


def parse_select(pairs: list[str] | None) -> dict[str, str]:
    """`label=value` pairs, each required of a target; a malformed one is refused."""
    selected: dict[str, str] = {}
    for pair in pairs or []:
        match = _PAIR.match(pair.strip())
        if not match:
            raise InvalidInput(f"--select {pair!r}: give label=value (e.g. region=eu)")
        selected[match["key"]] = match["value"]
    return selected


def selected(targets: Mapping[str, Mapping[str, str]], select: Mapping[str, str]) -> list[str]:
    """The targets whose labels carry every selected pair, in declaration order (`default`
    first: it is the project's own database). A selection matching nothing is refused: a
    rollout of no database would end 'done' having done nothing."""
    names = [name for name, labels in targets.items()
             if all(labels.get(key) == value for key, value in select.items())]
    if not names:
        wanted = ", ".join(f"{k}={v}" for k, v in select.items())
        raise InvalidInput(f"no target has the labels {wanted}: see MW_TARGETS_FILE for the "
                           f"declared targets ({', '.join(targets)})")
    return names


def sizes(spec: str, total: int) -> list[int]:
    """The size of each wave for `total` targets: `spec`'s cumulative counts, as differences."""
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or not all(items):
        raise InvalidInput(f"--waves {spec!r}: give cumulative sizes, e.g. 1,25%,100%")
    reached, found = 0, []
    for item in items:
        match = _ITEM.match(item)
        if not match:
            raise InvalidInput(f"--waves {spec!r}: {item!r} is neither a count (3) nor a "
                               "percentage (25%)")
        number = int(match["number"])
        if match["percent"]:
            if not 0 < number <= 100:
                raise InvalidInput(f"--waves {spec!r}: a percentage is above 0 and at most 100")
            cumulative = math.ceil(total * number / 100)
        else:
            if number < 1:
                raise InvalidInput(f"--waves {spec!r}: a wave has at least one target")
            cumulative = number
        if cumulative < reached and not match["percent"]:
            raise InvalidInput(f"--waves {spec!r}: sizes are cumulative, so they never shrink")
        cumulative = min(cumulative, total)
        if cumulative > reached:
            found.append(cumulative - reached)
            reached = cumulative
    if reached < total:
        found.append(total - reached)
    return found


def cut(names: list[str], spec: str) -> list[list[str]]:
    """`names` in waves, the first being the canary."""
    waves, start = [], 0
    for size in sizes(spec, len(names)):
        waves.append(names[start:start + size])
        start += size
    return waves
