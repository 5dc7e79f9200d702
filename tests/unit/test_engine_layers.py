"""The engine's imports go one way, and it names no domain app or table.

Read from the source (no imports run): each module of `migrations_worker` has a layer, and a
module may import only modules of its own layer or below, at module level. A function-level
import of an engine module would hide a cycle; the only one allowed is in `AppConfig.ready`.
"""

import ast
import re
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "migrations_worker"

# Lowest first: models/states/job -> batching/throttle/runner -> control -> dispatch -> tasks ->
# operations/commands/admin (STYLE.md, "Imports go one way").
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "exceptions", "models", "celery", "eta"),
    ("pg", "states", "job", "batching", "progress"),
    ("throttle", "quarantine"),
    ("runner",),
    ("control", "undo"),
    ("dispatch", "drive"),
    ("tasks", "gates"),
    ("operations", "deploy_lock", "deploy_checks"),
    ("executor", "checks", "lint", "views", "urls", "locks", "plan", "metrics"),
    ("admin", "management", "apps"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def top_module(path: Path) -> str:
    """The engine module (or package) a file belongs to: `lint/render.py` -> `lint`."""
    return path.relative_to(ENGINE).parts[0].removesuffix(".py")


def engine_files() -> list[Path]:
    return sorted(p for p in ENGINE.rglob("*.py") if "migrations" not in p.relative_to(ENGINE).parts)


def imported_engine_modules(path: Path, node: ast.AST) -> list[str]:
    """The top-level engine modules an import statement names, relative or absolute."""
    package = path.relative_to(ENGINE).parent.parts
    if isinstance(node, ast.ImportFrom) and node.level:
        parts = list(package[: len(package) - (node.level - 1)]) + (node.module or "").split(".")
        parts = [part for part in parts if part]
        return [parts[0]] if parts else [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("migrations_worker"):
        parts = node.module.split(".")[1:]
        return [parts[0]] if parts else [alias.name for alias in node.names]
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("migrations_worker.")]
    return []


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
    source = fake.read_text() + "\nfrom .dispatch import start\n\ndef f():\n    from . import runner\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == fake
                        else Path.open(self).read())
    assert "dispatch" in module_level_imports(fake)
    assert [name for name, _ in nested_imports(fake)] == ["f"]
