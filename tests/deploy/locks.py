"""The lock files (requirements/*.lock, written by `make lock`) read against the pyproject.toml
files they were compiled from: the check behind tests/deploy/test_locks.py.

A lock is what the image and `make venv` install (`pip install --require-hashes`), while the
ranges in pyproject.toml are what the code says it supports. They drift apart whenever someone
edits one and not the other: a new dependency that no build installs, a range the locked version
no longer satisfies, a package still locked after its last user dropped it. `# via` comments
(uv's) name, for each locked package, what wanted it: a pyproject (`name (path)`) or another
locked package; that is what tells a top-level package from a transitive one.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = ("pyproject.toml", "engine/pyproject.toml")
# The extras each lock covers, for every pyproject that has them (the Makefile's `lock` target).
LOCK_EXTRAS: dict[str, frozenset[str]] = {
    "runtime.lock": frozenset(),
    "dev.lock": frozenset({"dev", "lint"}),
    "bench.lock": frozenset({"dev", "lint", "bench"}),
}

_PYPROJECT_SOURCE = re.compile(r"^(?P<project>\S+) \((?P<path>[^)]+)\)$")
# `    # via kombu`, or `    # via` followed by one `    #   name` line per package.
_VIA = re.compile(r"^    # via(?: (.+))?$|^    #   (.+)$")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    """One entry of a lock: `name==version ; marker`, its hashes, and what wanted it."""

    name: str
    requirement: Requirement
    hashes: int
    via: tuple[str, ...]

    @property
    def version(self) -> str | None:
        exact = [spec.version for spec in self.requirement.specifier if spec.operator == "=="]
        return exact[0] if len(exact) == 1 and len(self.requirement.specifier) == 1 else None


def read_lock(text: str) -> list[Pin]:
    """The entries of a lock in the order written (duplicates kept: they are a problem)."""
    pins: list[Pin] = []
    entry: list[str] | None = None
    via: list[str] = []

    def close() -> None:
        if entry is not None:
            logical = " ".join(entry)
            spec = _HASH.sub("", logical).strip()
            requirement = Requirement(spec)
            pins.append(Pin(canonicalize_name(requirement.name), requirement,
                            len(_HASH.findall(logical)), tuple(via)))

    continued = False
    for raw in text.splitlines():
        line = raw.strip()
        if continued:
            entry.append(line.rstrip("\\").strip())
            continued = line.endswith("\\")
        elif not line:
            continue
        elif line.startswith("#"):
            wanted_by = _VIA.match(raw)
            if entry is not None and wanted_by:
                via.extend(part.strip() for part in wanted_by.groups() if part)
        else:
            close()
            entry, via = [line.rstrip("\\").strip()], []
            continued = line.endswith("\\")
    close()
    return pins


def declared(pyproject: Mapping, extras: Iterable[str]) -> list[Requirement]:
    """A pyproject's dependencies and those of the given extras it has."""
    project = pyproject["project"]
    lines = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        lines += optional.get(extra, [])
    return [Requirement(line) for line in lines]


def pythons(pyprojects: Mapping[str, Mapping]) -> list[str]:
    """The Python versions (minor) every pyproject's `requires-python` admits."""
    found = []
    for minor in range(8, 20):
        version = f"3.{minor}.0"
        if all(SpecifierSet(p["project"].get("requires-python", "")).contains(version)
               for p in pyprojects.values()):
            found.append(version)
    return found


def problems(lock_text: str, pyprojects: Mapping[str, Mapping], extras: Iterable[str]) -> list[str]:
    """Everything in which a lock and the pyprojects (by path, as `# via` names them) disagree,
    on this platform for each supported Python: a universal lock may pin a package twice, under
    exclusive markers (numpy for 3.11 and for 3.12), but only one entry may apply at a time."""
    extras = frozenset(extras)
    pins = read_lock(lock_text)
    found: list[str] = []
    for pin in pins:
        if pin.version is None:
            found.append(f"{pin.name}: not pinned to one version with == ({pin.requirement})")
        if pin.hashes == 0:
            found.append(f"{pin.name}: no --hash (pip --require-hashes refuses the whole lock)")

    wanted: dict[str, set[str]] = {path: set() for path in pyprojects}
    for python in pythons(pyprojects):
        environment = {"python_version": python.rsplit(".", 1)[0], "python_full_version": python}
        by_name: dict[str, list[Pin]] = {}
        for pin in pins:
            if pin.requirement.marker is None or pin.requirement.marker.evaluate(environment):
                by_name.setdefault(pin.name, []).append(pin)
        for name, entries in by_name.items():
            if len(entries) > 1:
                found.append(f"{name}: locked {len(entries)} times for Python {python}")
        for path, pyproject in pyprojects.items():
            for requirement in declared(pyproject, extras):
                if requirement.marker is not None and not requirement.marker.evaluate(environment):
                    continue
                name = canonicalize_name(requirement.name)
                wanted[path].add(name)
                versions = [pin.version for pin in by_name.get(name, []) if pin.version]
                if not versions:
                    found.append(f"{name}: declared in {path} ({requirement}) but not locked "
                                 f"for Python {python}")
                elif not all(requirement.specifier.contains(v, prereleases=True) for v in versions):
                    found.append(f"{name}: locked at {', '.join(versions)} for Python {python}, "
                                 f"outside {path}'s range {requirement.specifier}")

    locked = {pin.name for pin in pins}
    for pin in pins:
        if not pin.via:
            found.append(f"{pin.name}: nothing wants it (no `# via`)")
        for source in pin.via:
            match = _PYPROJECT_SOURCE.match(source)
            if match and match["path"] in wanted:
                if pin.name not in wanted[match["path"]]:
                    found.append(f"{pin.name}: locked as a dependency of {match['path']}, which "
                                 "does not declare it")
            elif match:
                found.append(f"{pin.name}: wanted by {source}, not a pyproject this lock covers")
            elif canonicalize_name(source) not in locked:
                found.append(f"{pin.name}: wanted by {source}, which is not in the lock")
    return list(dict.fromkeys(found))


def disagreements(locks: Mapping[str, str]) -> list[str]:
    """Packages that two locks pin at different versions: the image and the tests would differ."""
    versions: dict[tuple[str, str], dict[str, str | None]] = {}
    for lock, text in locks.items():
        for pin in read_lock(text):
            versions.setdefault((pin.name, str(pin.requirement.marker or "")), {})[lock] = pin.version
    return [f"{name}{' ; ' + marker if marker else ''}: {seen}"
            for (name, marker), seen in sorted(versions.items()) if len(set(seen.values())) > 1]


def project_files(root: Path = ROOT) -> dict[str, dict]:
    return {path: tomllib.loads((root / path).read_text()) for path in PYPROJECTS}
