"""The engine's imports go one way, room by room, and it names no domain app or table.

Read from the source (no imports run). The engine is grouped into rooms: the core (models, the job
API, SQL text), `runs/` (a run's life), `operations/` (what migration files import) and the Celery
tasks, `deploy/` and `lint/` (the deploy step and the migration linter), `ops/` (what operators
read), and Django's entry modules (admin, commands, apps). Each module has a layer; a module may
import only modules of its own layer or below, at module level. A function-level import of an
engine module would hide a cycle; the only one allowed is in `AppConfig.ready`.
"""

import ast
import re
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "engine" / "migrations_worker"
# Sub-packages whose modules are layered one by one; any other package (operations, lint,
# management) is one unit.
ROOMS = ("runs", "deploy", "fleet", "ops")

# Lowest first, room by room (STYLE.md, "Imports go one way").
LAYERS: list[tuple[str, ...]] = [
    # the core: what every room stands on
    ("__init__", "exceptions", "logs", "conf", "models", "celery"),
    ("pg", "job", "sqltext", "targets"),
    # runs/: a run's life
    ("runs", "runs.states", "runs.batching", "runs.eta", "runs.prepared"),
    ("runs.progress", "runs.throttle"),
    ("runs.quarantine", "runs.totals", "runs.server_slots"),
    ("runs.claim", "runs.verdict"),
    ("runs.runner",),
    ("runs.control", "runs.undo"),
    ("runs.dispatch", "runs.drive"),
    ("runs.gates", "runs.controls"),
    # what migration files import, and the Celery tasks
    ("operations", "tasks"),
    # deploy/ and lint/: the deploy step and the migration linter
    ("deploy", "lint", "deploy.lock", "deploy.checks", "deploy.locks", "deploy.pending",
     "deploy.roles", "deploy.clock"),
    ("deploy.events", "deploy.costs"),
    ("deploy.executor", "checks"),
    ("deploy.plan",),
    # fleet/: one stage across many databases, in waves
    ("fleet", "fleet.waves"),
    ("fleet.rollouts",),
    ("fleet.step", "fleet.view", "fleet.plan"),
    ("fleet.tasks",),
    # ops/: what operators and machines read
    ("ops", "ops.targeting", "ops.chart", "ops.fleet_metrics", "ops.middleware", "ops.health"),
    ("ops.metrics", "ops.run_json"),
    ("ops.status", "ops.fleet_status", "urls", "ops.target_admin"),
    ("ops.run_admin", "ops.fleet_admin"),
    # Django's entry modules
    ("admin", "management", "apps"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def unit(parts: list[str]) -> str:
    """The layered unit of a dotted path inside the engine: `runs.runner`, `lint`, `job`."""
    if parts[0] in ROOMS and len(parts) > 1 and parts[1] != "__init__":
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def top_module(path: Path) -> str:
    """The unit a file belongs to: `runs/runner.py` -> `runs.runner`, `lint/render.py` -> `lint`."""
    return unit([part.removesuffix(".py") for part in path.relative_to(ENGINE).parts])


def engine_files() -> list[Path]:
    return sorted(p for p in ENGINE.rglob("*.py") if "migrations" not in p.relative_to(ENGINE).parts)


def imported_engine_modules(path: Path, node: ast.AST) -> list[str]:
    """The engine units an import statement names, relative or absolute."""
    if isinstance(node, ast.ImportFrom) and node.level:
        package = list(path.relative_to(ENGINE).parent.parts)
        base = package[: len(package) - (node.level - 1)] + [p for p in (node.module or "").split(".") if p]
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("migrations_worker"):
        base = node.module.split(".")[1:]
    elif isinstance(node, ast.Import):
        return [unit(a.name.split(".")[1:]) for a in node.names if a.name.startswith("migrations_worker.")]
    else:
        return []
    if base and (base[0] not in ROOMS or len(base) > 1):
        return [unit(base)]
    return [unit([*base, alias.name]) for alias in node.names]


def module_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += imported_engine_modules(path, node)
    return found


def nested_imports(path: Path) -> list[tuple[str, int]]:
    """(enclosing function, line) of every import inside a function or class body."""
    tree = ast.parse(path.read_text())
    found = []
    for outer in ast.walk(tree):
        if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(outer):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and imported_engine_modules(path, node):
                    found.append((outer.name, node.lineno))
    return found


@pytest.mark.parametrize("path", engine_files(), ids=lambda p: str(p.relative_to(ENGINE)))
def test_an_engine_module_imports_only_its_own_layer_or_lower(path):
    mine = top_module(path)
    assert mine in RANK, f"{mine} has no layer in this test: give it one"
    higher = [name for name in module_level_imports(path)
              if name != mine and RANK.get(name, -1) > RANK[mine]]
    assert not higher, f"{path.relative_to(ENGINE)} imports higher layer(s) {higher}"


def test_the_module_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for path in engine_files():
        mine = top_module(path)
        graph.setdefault(mine, set()).update(n for n in module_level_imports(path) if n != mine)
    done: set[str] = set()

    def visit(node: str, trail: tuple[str, ...]) -> None:
        assert node not in trail, f"import cycle: {' -> '.join((*trail, node))}"
        if node in done:
            return
        for child in graph.get(node, ()):
            visit(child, (*trail, node))
        done.add(node)

    for module in graph:
        visit(module, ())


def test_no_engine_module_is_imported_inside_a_function_except_in_app_ready():
    nested = [(str(p.relative_to(ENGINE)), where) for p in engine_files()
              for where in nested_imports(p)]
    assert nested, "AppConfig.ready imports the Celery app and the checks"
    assert all(path == "apps.py" and where[0] == "ready" for path, where in nested), nested


def test_the_engine_names_no_domain_app_or_table():
    domain = re.compile(r"\b(assets|investments|portfolios)_\w+|\b(assets|investments|portfolios)\b")
    found = [f"{p.relative_to(ENGINE)}:{n}: {line.strip()}"
             for p in ENGINE.rglob("*.py") if "migrations" not in p.relative_to(ENGINE).parts
             for n, line in enumerate(p.read_text().splitlines(), 1) if domain.search(line)]
    assert found == []


def test_the_layer_check_sees_a_higher_import_and_a_nested_one(tmp_path, monkeypatch):
    """The checks above can fail: a low module importing a high one is caught."""
    fake = ENGINE / "job.py"
    source = (fake.read_text() + "\nfrom .runs.dispatch import start\n"
              + "\ndef f():\n    from .runs import runner\n")
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == fake
                        else Path.open(self).read())
    assert "runs.dispatch" in module_level_imports(fake)
    assert [name for name, _ in nested_imports(fake)] == ["f"]
