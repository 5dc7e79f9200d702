"""Reproducible builds: the image and `make venv` install the lock files (requirements/*.lock,
with hashes) and nothing else, and the locks agree with the pyproject.toml ranges they were
compiled from. The check itself (tests/deploy/locks.py) is shown catching each kind of drift on
a tampered copy, since a check that passes on the real files proves nothing by itself."""

import copy
import re
import tomllib

import pytest

from tests.deploy.locks import LOCK_EXTRAS, ROOT, disagreements, problems, project_files, read_lock

LOCKS = ROOT / "requirements"


def lock_text(name: str = "dev.lock") -> str:
    return (LOCKS / name).read_text()


def pin_line(text: str, package: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"{package}=="))


def entry(text: str, package: str) -> str:
    """One entry of a lock as written: its pin line, hash lines and `# via` lines."""
    match = re.search(rf"^{re.escape(package)}==.*?(?=^\S)", text, re.M | re.S)
    assert match, package
    return match.group(0)


# --- the real files -----------------------------------------------------------------------------


@pytest.mark.parametrize("lock", sorted(LOCK_EXTRAS))
def test_each_lock_pins_every_declared_requirement_within_its_range_with_hashes(lock):
    assert problems(lock_text(lock), project_files(), LOCK_EXTRAS[lock]) == []


def test_the_locks_pin_the_packages_they_share_at_the_same_version():
    assert disagreements({lock: lock_text(lock) for lock in LOCK_EXTRAS}) == []


def test_every_optional_dependency_group_is_covered_by_a_lock():
    groups = {extra for pyproject in project_files().values()
              for extra in pyproject["project"].get("optional-dependencies", {})}
    assert groups == set().union(*LOCK_EXTRAS.values())


def test_make_lock_compiles_each_lock_with_the_extras_the_check_expects():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lock:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no `lock` target in the Makefile"
    compiled = {}
    for line in recipe.group(1).splitlines():
        output = re.search(r"-o requirements/(\S+)", line)
        if output:
            compiled[output.group(1)] = frozenset(re.findall(r"--extra (\S+)", line))
    assert compiled == LOCK_EXTRAS
    # The command itself: both pyprojects, hashes, every platform and supported Python.
    command = re.search(r"^LOCK := ((?:.*\\\n)*.*)", makefile, re.M).group(1)
    for option in ("pyproject.toml", "engine/pyproject.toml", "--generate-hashes", "--universal"):
        assert option in command


def test_the_dev_lock_holds_the_runtime_lock_and_the_bench_lock_the_dev_lock():
    runtime, dev, bench = ({pin.name for pin in read_lock(lock_text(name))}
                           for name in ("runtime.lock", "dev.lock", "bench.lock"))
    assert runtime < dev < bench


# --- the check, on tampered copies --------------------------------------------------------------


def tampered_pyprojects(edit) -> dict:
    pyprojects = copy.deepcopy(project_files())
    edit(pyprojects["pyproject.toml"]["project"])
    return pyprojects


def replace_dependency(project: dict, prefix: str, new: str | None) -> None:
    deps = project["dependencies"]
    index = next(i for i, dep in enumerate(deps) if dep.startswith(prefix))
    if new is None:
        deps.pop(index)
    else:
        deps[index] = new


def test_the_check_catches_a_range_that_excludes_the_locked_version():
    pyprojects = tampered_pyprojects(lambda p: replace_dependency(p, "Django", "Django>=5.3,<5.4"))
    found = problems(lock_text("runtime.lock"), pyprojects, ())
    assert len(found) == 2
    for message, python in zip(found, ("3.11.0", "3.12.0"), strict=True):
        assert re.fullmatch(rf"django: locked at 5\.2\.\d+ for Python {re.escape(python)}, outside "
                            r"pyproject\.toml's range <5\.4,>=5\.3", message)


def test_the_check_catches_a_declared_dependency_that_no_lock_installs():
    pyprojects = tampered_pyprojects(lambda p: p["dependencies"].append("requests>=2"))
    found = problems(lock_text("runtime.lock"), pyprojects, ())
    assert found == [
        "requests: declared in pyproject.toml (requests>=2) but not locked for Python 3.11.0",
        "requests: declared in pyproject.toml (requests>=2) but not locked for Python 3.12.0",
    ]


def test_the_check_catches_a_package_still_locked_after_the_project_dropped_it():
    pyprojects = tampered_pyprojects(lambda p: replace_dependency(p, "whitenoise", None))
    assert problems(lock_text("runtime.lock"), pyprojects, ()) == [
        "whitenoise: locked as a dependency of pyproject.toml, which does not declare it"]


def test_the_check_catches_an_extra_the_lock_was_not_compiled_with():
    # The runtime lock read as if it covered `dev`: pytest and the rest are missing.
    found = problems(lock_text("runtime.lock"), project_files(), {"dev"})
    assert "pytest: declared in pyproject.toml (pytest<10,>=8) but not locked for Python 3.11.0" in found


def test_the_check_catches_an_entry_without_hashes():
    text = lock_text("runtime.lock")
    celery = entry(text, "celery")
    unhashed = re.sub(r" \\\n    --hash=sha256:[0-9a-f]{64}", "", celery)
    assert problems(text.replace(celery, unhashed), project_files(), ()) == [
        "celery: no --hash (pip --require-hashes refuses the whole lock)"]


def test_the_check_catches_an_entry_that_is_a_range_not_a_pin():
    text = lock_text("runtime.lock")
    line = pin_line(text, "kombu")
    ranged = line.replace("==", ">=")
    requirement = ranged.removesuffix(" \\")
    found = problems(text.replace(line, ranged), project_files(), ())
    assert found == [f"kombu: not pinned to one version with == ({requirement})"]


def test_the_check_catches_a_package_locked_twice():
    text = lock_text("runtime.lock")
    rich = entry(text, "rich")
    older = rich.replace(pin_line(text, "rich"), "rich==13.9.4 \\", 1)
    # 13.9.4 is within the range too: being there twice is the whole problem.
    assert problems(text.replace(rich, rich + older), project_files(), ()) == [
        "rich: locked 2 times for Python 3.11.0", "rich: locked 2 times for Python 3.12.0"]


def test_the_check_catches_a_package_wanted_by_something_not_in_the_lock():
    text = lock_text("runtime.lock")
    amqp = entry(text, "amqp")
    orphan = amqp.replace("# via kombu", "# via no-such-package")
    assert problems(text.replace(amqp, orphan), project_files(), ()) == [
        "amqp: wanted by no-such-package, which is not in the lock"]


def test_the_check_catches_two_locks_that_disagree_on_a_version():
    runtime = lock_text("runtime.lock")
    dev = lock_text("dev.lock")
    line = pin_line(dev, "vine")
    bumped = dev.replace(line, re.sub(r"==[^ ]+", "==0.0.1", line))
    found = disagreements({"runtime.lock": runtime, "dev.lock": bumped})
    assert len(found) == 1
    assert found[0].startswith("vine: {'runtime.lock': '") and "'dev.lock': '0.0.1'" in found[0]


# --- what installs from them --------------------------------------------------------------------


def test_the_image_installs_the_runtime_lock_with_hashes_before_the_projects_without_dependencies():
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    runs = [line.strip() for line in text.splitlines() if line.strip().startswith("RUN ")]
    installs = [run for run in runs if "pip install" in run]
    assert "--require-hashes -r requirements/runtime.lock" in installs[0]
    assert all("--no-deps" in run for run in installs[1:]), installs
    assert any(re.search(r"--no-deps \./engine \.(\s|$)", run) for run in installs[1:])


def test_make_venv_installs_the_dev_lock_with_hashes_and_again_when_it_changes():
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(VENV\)/\.installed: (.*)\n((?:\t.*\n)+)", makefile, re.M)
    prerequisites, recipe = rule.group(1).split(), rule.group(2)
    assert "requirements/dev.lock" in prerequisites
    assert "--require-hashes -r requirements/dev.lock" in recipe
    project_install = next(line for line in recipe.splitlines() if "-e ./engine" in line)
    assert "--no-deps" in project_install


def test_both_projects_declare_how_they_are_built():
    for path in ("pyproject.toml", "engine/pyproject.toml"):
        build = tomllib.loads((ROOT / path).read_text())["build-system"]
        assert build["build-backend"] == "setuptools.build_meta", path
        assert any(req.startswith("setuptools") for req in build["requires"]), path
