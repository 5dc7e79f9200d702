"""SQL built only from literals, psycopg's `sql` objects and parameters, checked on the AST.

The rule, for the SQL argument of every `.execute()` / `.executemany()` call and of every
`sql.SQL()`: it is a string literal (or a concatenation of them); a module-level constant, or a
local variable, assigned one; a psycopg composition (`sql.SQL(<safe>)`, `sql.Identifier`,
`sql.Literal`, `.format()` / `.join()` of those, whose arguments psycopg quotes); the result of a
function in the same module that returns only such things; or a parameter that every caller in
the module passes such a thing (or that is annotated as a psycopg Composable). An f-string,
`%`-formatting or `str.format()` is *unsafe*; anything the checker cannot follow is *unknown*.
Both are findings, unless listed with a reason by the test.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

SQL_METHODS = {"execute", "executemany"}
COMPOSABLE = {"SQL", "Identifier", "Literal", "Composed", "Placeholder"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    function: str
    verdict: str  # "unsafe: ..." or "unknown: ..."

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function or '<module>'}: {self.verdict}"


class ModuleCheck:
    def __init__(self, path: str, source: str):
        self.path = path
        self.tree = ast.parse(source)
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        self.constants: dict[str, ast.expr] = {}
        self.functions: dict[str, ast.FunctionDef] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.constants[target.id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
                self.constants[node.target.id] = node.value
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions.setdefault(node.name, node)

    def enclosing(self, node: ast.AST) -> ast.FunctionDef | None:
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return None

    # -- verdicts: "safe", "unsafe: why", "unknown: why" -----------------------------------

    def verdict(self, expr: ast.expr, seen: frozenset = frozenset()) -> str:
        if isinstance(expr, ast.Constant):
            return "safe" if isinstance(expr.value, (str, bytes)) else "unknown: not a string"
        if isinstance(expr, ast.JoinedStr):
            return "unsafe: an f-string"
        if isinstance(expr, ast.BinOp):
            if isinstance(expr.op, ast.Mod):
                return "unsafe: %-formatting"
            if isinstance(expr.op, ast.Add):
                return self.combine([expr.left, expr.right], seen)
            return "unknown: an operator"
        if isinstance(expr, ast.IfExp):
            return self.combine([expr.body, expr.orelse], seen)
        if isinstance(expr, ast.Call):
            return self.call_verdict(expr, seen)
        if isinstance(expr, ast.Name):
            return self.name_verdict(expr, seen)
        return f"unknown: {type(expr).__name__}"

    def combine(self, exprs: list[ast.expr], seen: frozenset) -> str:
        verdicts = [self.verdict(e, seen) for e in exprs]
        for prefix in ("unsafe", "unknown"):
            for v in verdicts:
                if v.startswith(prefix):
                    return v
        return "safe"

    def is_sql_module_call(self, func: ast.expr) -> str | None:
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id == "sql" and func.attr in COMPOSABLE):
            return func.attr
        return None

    def call_verdict(self, call: ast.Call, seen: frozenset) -> str:
        func = call.func
        kind = self.is_sql_module_call(func)
        if kind == "SQL":
            return self.verdict(call.args[0], seen) if call.args else "unknown: sql.SQL()"
        if kind is not None:
            return "safe"  # Identifier / Literal / Placeholder quote; Composed of those
        if isinstance(func, ast.Attribute):
            if func.attr == "format":
                base = self.verdict(func.value, seen)
                if self.is_composable(func.value):
                    return base
                return "unsafe: str.format()" if base == "safe" else base
            if func.attr in ("join", "as_string"):
                return self.verdict(func.value, seen) if self.is_composable(func.value) else (
                    "unknown: join/as_string of something not built with psycopg.sql")
        if isinstance(func, ast.Name) and func.id in self.functions and func.id not in seen:
            returns = [n.value for n in ast.walk(self.functions[func.id])
                       if isinstance(n, ast.Return) and n.value is not None]
            if returns:
                return self.combine(returns, seen | {func.id})
        return "unknown: the result of a call"

    def is_composable(self, expr: ast.expr) -> bool:
        if isinstance(expr, ast.Call):
            if self.is_sql_module_call(expr.func):
                return True
            if isinstance(expr.func, ast.Attribute) and expr.func.attr in ("format", "join"):
                return self.is_composable(expr.func.value)
            if isinstance(expr.func, ast.Name) and expr.func.id in self.functions:
                returns = [n.value for n in ast.walk(self.functions[expr.func.id])
                           if isinstance(n, ast.Return) and n.value is not None]
                return bool(returns) and all(self.is_composable(r) for r in returns)
        if isinstance(expr, ast.Name):
            value = self.constants.get(expr.id)
            if value is not None and value is not expr:
                return self.is_composable(value)
            function = self.enclosing(expr)
            if function is not None:
                annotation = self.param_annotation(function, expr.id)
                if annotation and any(k in annotation for k in ("Composable", "Composed", "sql.SQL")):
                    return True
                return any(self.is_composable(v) for v in self.local_values(function, expr.id))
        return False

    @staticmethod
    def param_annotation(function: ast.FunctionDef, name: str) -> str | None:
        args = function.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.arg == name:
                return ast.unparse(arg.annotation) if arg.annotation is not None else ""
        return None

    @staticmethod
    def local_values(function: ast.FunctionDef, name: str) -> list[ast.expr]:
        values = []
        for node in ast.walk(function):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                values.append(node.value)
        return values

    def name_verdict(self, name: ast.Name, seen: frozenset) -> str:
        key = f"name:{name.id}:{id(self.enclosing(name))}"
        if key in seen:
            return "safe"  # a cycle adds nothing new
        seen = seen | {key}
        function = self.enclosing(name)
        if function is not None:
            values = self.local_values(function, name.id)
            if values:
                return self.combine(values, seen)
            for node in ast.walk(function):
                if isinstance(node, (ast.For, ast.comprehension)) and isinstance(
                        node.target, ast.Name) and node.target.id == name.id:
                    return self.element_verdict(node.iter, seen)
            annotation = self.param_annotation(function, name.id)
            if annotation is not None:
                if any(k in annotation for k in ("Composable", "Composed", "sql.SQL")):
                    return "safe"
                return self.call_sites_verdict(function, name.id, seen)
        if name.id in self.constants:
            return self.verdict(self.constants[name.id], seen)
        return f"unknown: where {name.id} comes from"

    def element_verdict(self, iterable: ast.expr, seen: frozenset) -> str:
        if isinstance(iterable, (ast.List, ast.Tuple)):
            return self.combine(list(iterable.elts), seen)
        if isinstance(iterable, ast.Name) and iterable.id in self.constants:
            return self.element_verdict(self.constants[iterable.id], seen)
        return f"unknown: the items of {ast.unparse(iterable)}"

    def call_sites_verdict(self, function: ast.FunctionDef, param: str, seen: frozenset) -> str:
        """A pass-through parameter is as safe as what every caller in the module passes."""
        args = function.args
        positional = [a.arg for a in [*args.posonlyargs, *args.args]]
        index = positional.index(param) if param in positional else None
        method = index is not None and positional and positional[0] in ("self", "cls")
        sites = []
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            called = (f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute)
                      else None)
            if called != function.name:
                continue
            given = next((k.value for k in node.keywords if k.arg == param), None)
            if given is None and index is not None:
                at = index - 1 if method and isinstance(f, ast.Attribute) else index
                if at < len(node.args):
                    given = node.args[at]
            if given is not None:
                sites.append(given)
        if not sites:
            return f"unknown: parameter {param} of {function.name}, passed from elsewhere"
        return self.combine(sites, seen)

    # -- the findings ---------------------------------------------------------------------

    def findings(self) -> list[Finding]:
        found = []
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call):
                continue
            target = None
            if isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS:
                target = node.args[0] if node.args else next(
                    (k.value for k in node.keywords if k.arg in ("query", "sql")), None)
            elif self.is_sql_module_call(node.func) == "SQL" and node.args:
                target = node.args[0]
            if target is None:
                continue
            verdict = self.verdict(target)
            if verdict != "safe":
                function = self.enclosing(node)
                found.append(Finding(self.path, node.lineno, function.name if function else "",
                                     verdict))
        return found
