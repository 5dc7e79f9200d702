"""SQL built only from literals, psycopg's `sql` objects and parameters, checked on the AST.

Where SQL goes in (the sinks): the first argument of `.execute()`, `.executemany()`, `.raw()`
(Django's raw queries), `.copy()` / `.copy_expert()` (psycopg's COPY; not `shutil.copy` or
`copy.copy`), `RawSQL()` and `sql.SQL()`; the `sql` and `reverse_sql` of a migration's `RunSQL`
(a statement, or a list of statements or `(statement, params)` pairs); every statement of the
`steps` and `reverse_steps` of a `SafeSQL` (a list of steps, each a list of statements).
SafeSQL is checked where it is written, in the migration, because `run_step` executes its
statements as items of a parameter the checker cannot follow (the test's one exemption there
says so).

The rule for each: it is a string literal (or a concatenation of them); a module-level constant,
or a local variable, every assignment of which is such a thing (`+=` included: `q += t` is as
safe as `t`); an item of a module-level dict, list or tuple of them; a psycopg composition
(`sql.SQL(<safe>)`, `sql.Identifier`, `sql.Literal`, `.format()` / `.join()` of those, whose
arguments psycopg quotes); the result of a function in the same module that returns only such
things; or a parameter that every caller in the module passes such a thing (or that is annotated
as a psycopg Composable). An f-string, `%`-formatting or `str.format()` is *unsafe*; anything the
checker cannot follow is *unknown*. Both are findings, unless the test lists the call (its file
and the text of its line, which must match exactly one finding) with a reason.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

SQL_METHODS = {"execute", "executemany", "raw"}
COPY_METHODS = {"copy", "copy_expert"}
NOT_CURSORS = {"copy", "shutil"}  # copy.copy(x), shutil.copy(a, b)
COMPOSABLE = {"SQL", "Identifier", "Literal", "Composed", "Placeholder"}
CHANGING_METHODS = {"append", "extend", "insert", "update", "setdefault", "__setitem__", "__iadd__"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    function: str
    verdict: str  # "unsafe: ..." or "unknown: ..."
    code: str  # the text of the line the statement is on: what an exemption names

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function or '<module>'}: {self.verdict}: {self.code}"


def exempt(findings: list[Finding], exemptions: dict[tuple[str, str], str]
           ) -> tuple[list[Finding], dict[tuple[str, str], int]]:
    """The findings no exemption names, and how many findings each exemption matched."""
    matched = dict.fromkeys(exemptions, 0)
    left = []
    for finding in findings:
        key = (finding.path, finding.code)
        if key in matched:
            matched[key] += 1
        else:
            left.append(finding)
    return left, matched


def callee(func: ast.expr) -> str | None:
    """The name a call is made by: `f` for `f(...)`, `m` for `x.y.m(...)`."""
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) \
        else None


class ModuleCheck:
    def __init__(self, path: str, source: str):
        self.path = path
        self.source = source
        self.tree = ast.parse(source)
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        # Module-level names and every value they are given there (`X += y` gives `X + y`).
        self.constants: dict[str, list[ast.expr]] = {}
        for node in walk_scope(self.tree):
            for name, value in bindings(node):
                self.constants.setdefault(name, []).append(value)
        self.functions: dict[str, ast.FunctionDef] = {}
        # Containers changed after they are built (`X[k] = ...`, `X.append(...)`): their items
        # are not what their literal says.
        self.changed: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions.setdefault(node.name, node)
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)) \
                    and isinstance(node.value, ast.Name):
                self.changed.add(node.value.id)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in CHANGING_METHODS and isinstance(node.func.value, ast.Name):
                self.changed.add(node.func.value.id)

    def enclosing(self, node: ast.AST) -> ast.FunctionDef | None:
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return None

    # -- verdicts: "safe", "unsafe: why", "unknown: why" -----------------------------------

    def verdict(self, expr: ast.expr, seen: frozenset = frozenset()) -> str:
        if isinstance(expr, Untracked):
            return f"unknown: {expr.why}"
        if isinstance(expr, Earlier):
            return "safe"
        if isinstance(expr, Items):
            return self.element_verdict(expr.iterable, seen)
        if isinstance(expr, Parameter):
            return self.parameter_verdict(expr.function, expr.name, seen)
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
        if isinstance(expr, ast.Subscript):
            return self.item_verdict(expr, seen)
        return f"unknown: {type(expr).__name__}"

    def item_verdict(self, expr: ast.Subscript, seen: frozenset) -> str:
        """An item of a module-level dict, list or tuple: as safe as its least safe value."""
        if isinstance(expr.value, ast.Name) and expr.value.id in self.constants \
                and self.enclosing_value(expr.value) is None:
            if expr.value.id in self.changed:
                return f"unknown: {expr.value.id} is changed after it is built"
            containers = self.constants[expr.value.id]
            if all(isinstance(c, (ast.Dict, ast.List, ast.Tuple)) for c in containers):
                return self.combine([v for c in containers
                                     for v in (c.values if isinstance(c, ast.Dict) else c.elts)], seen)
        return f"unknown: an item of {ast.unparse(expr.value)}"

    def enclosing_value(self, name: ast.Name) -> list[ast.expr] | None:
        """The local values of `name` where it is used, if a function there assigns it."""
        function = self.enclosing(name)
        return (self.local_values(function, name.id) or None) if function is not None else None

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
            values = self.constants.get(expr.id)
            if values and expr not in values:
                return all(self.is_composable(v) for v in values)
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

    def local_values(self, function: ast.FunctionDef, name: str) -> list[ast.expr]:
        """Every value `name` is given in `function`: assigned, augmented, a loop's items, and
        its value as a parameter (which an assignment may only sometimes replace)."""
        values = [value for node in ast.walk(function) for target, value in bindings(node)
                  if target == name]
        if self.param_annotation(function, name) is not None:
            values.append(Parameter(function, name))
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
        if name.id in self.constants:
            return self.combine(self.constants[name.id], seen)
        return f"unknown: where {name.id} comes from"

    def parameter_verdict(self, function: ast.FunctionDef, name: str, seen: frozenset) -> str:
        annotation = self.param_annotation(function, name) or ""
        if any(k in annotation for k in ("Composable", "Composed", "sql.SQL")):
            return "safe"
        return self.call_sites_verdict(function, name, seen)

    def element_verdict(self, iterable: ast.expr, seen: frozenset) -> str:
        if isinstance(iterable, (ast.List, ast.Tuple)):
            return self.combine(list(iterable.elts), seen)
        if isinstance(iterable, ast.Name) and iterable.id in self.constants \
                and self.enclosing_value(iterable) is None:
            if iterable.id in self.changed:
                return f"unknown: {iterable.id} is changed after it is built"
            verdicts = [self.element_verdict(v, seen) for v in self.constants[iterable.id]]
            return next((v for v in verdicts if v != "safe"), "safe")
        return f"unknown: the items of {ast.unparse(iterable)}"

    def statements(self, expr: ast.expr, depth: int, seen: frozenset = frozenset()
                   ) -> list[tuple[str, ast.expr]]:
        """(verdict, statement) for each statement of SQL given as a list of them, `depth` lists
        deep (RunSQL 1, SafeSQL 2); a statement may be a (statement, params) pair, and None or
        RunSQL.noop is no SQL at all."""
        if isinstance(expr, ast.Constant) and expr.value is None:
            return []
        if isinstance(expr, ast.Attribute) and expr.attr == "noop":
            return []
        if isinstance(expr, ast.Name) and expr.id in self.constants and self.enclosing(expr) is None:
            if expr.id in self.changed:
                return [(f"unknown: {expr.id} is changed after it is built", expr)]
            return [found for value in self.constants[expr.id]
                    for found in self.statements(value, depth, seen)]
        if isinstance(expr, (ast.List, ast.Tuple)):
            if depth == 0:  # a (statement, params) pair
                return [(self.verdict(expr.elts[0], seen), expr.elts[0])] if expr.elts else []
            return [found for item in expr.elts for found in self.statements(item, depth - 1, seen)]
        if depth > 0 and not isinstance(expr, (ast.Constant, ast.JoinedStr, ast.BinOp, ast.Call)):
            return [(f"unknown: the statements of {ast.unparse(expr)}", expr)]
        return [(self.verdict(expr, seen), expr)]

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
            if callee(f) != function.name:
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

    def sinks(self, call: ast.Call) -> list[tuple[ast.expr, int | None]]:
        """The SQL a call takes: (expression, None) for one statement, (expression, depth) for
        a list of statements `depth` deep."""
        func, name = call.func, callee(call.func)

        def given(position: int, *keywords: str) -> ast.expr | None:
            for at, arg in enumerate(call.args[:position + 1]):
                if isinstance(arg, ast.Starred):  # what is unpacked there cannot be followed
                    return Untracked(why=f"SQL unpacked from {ast.unparse(arg)}")
                if at == position:
                    return arg
            named = next((k.value for k in call.keywords if k.arg in keywords), None)
            if named is None and any(k.arg is None for k in call.keywords):
                return Untracked(why="SQL passed in **keywords")
            return named

        found: list[tuple[ast.expr | None, int | None]] = []
        if isinstance(func, ast.Attribute) and name in SQL_METHODS:
            found.append((given(0, "query", "sql", "raw_query"), None))
        elif isinstance(func, ast.Attribute) and name in COPY_METHODS and (call.args or call.keywords):
            if not (isinstance(func.value, ast.Name) and func.value.id in NOT_CURSORS):
                found.append((given(0, "statement", "sql"), None))
        elif name == "RawSQL" or self.is_sql_module_call(func) == "SQL":
            found.append((given(0, "sql"), None))
        elif name == "RunSQL":
            found += [(given(0, "sql"), 1), (given(1, "reverse_sql"), 1)]
        elif name == "SafeSQL":
            found += [(given(0, "steps"), 2), (given(1, "reverse_steps"), 2)]
        return [(expr, depth) for expr, depth in found if expr is not None]

    def findings(self) -> list[Finding]:
        """One finding per statement that is not safe, at the line it is written on."""
        lines = self.source.splitlines()
        found = []
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call):
                continue
            for target, depth in self.sinks(node):
                judged = ([(self.verdict(target), target)] if depth is None or isinstance(target, Untracked)
                          else self.statements(target, depth))
                function = self.enclosing(node)
                for verdict, where in judged:
                    if verdict != "safe":
                        line = getattr(where, "lineno", node.lineno)
                        found.append(Finding(self.path, line, function.name if function else "",
                                             verdict, lines[line - 1].strip()))
        return found


class Untracked(ast.expr):
    """A value the checker does not follow: unpacked, bound by `with` or `except`."""

    _fields = ("why",)


class Earlier(ast.expr):
    """What a name held before `+=`: its other values, judged with this one."""

    _fields = ()


class Items(ast.expr):
    """One item of `iterable`: what a loop variable holds."""

    _fields = ("iterable",)


class Parameter(ast.expr):
    """What the callers of `function` pass as its parameter `name`."""

    _fields = ("function", "name")


def walk_scope(tree: ast.Module):
    """The module's own statements and expressions, not those inside functions or classes."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def bindings(node: ast.AST) -> list[tuple[str, ast.expr]]:
    """(name, value) for each name `node` binds. `x += y` binds `x + y` (and `x %= y` a
    %-formatting), so an augmented name is as safe as every part it was built from; a loop
    variable binds an item of what it loops over; a name unpacked, or bound by `with` or
    `except`, binds something the checker does not follow."""
    if isinstance(node, ast.Assign):
        found = []
        for target in node.targets:
            if isinstance(target, ast.Name):
                found.append((target.id, node.value))
            else:
                found += [(name, Untracked(why=f"{name} unpacked from {ast.unparse(node.value)}"))
                          for name in stored_names(target)]
        return found
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
        return [(node.target.id, node.value)]
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        value = ast.BinOp(left=Earlier(), op=node.op, right=node.value)
        return [(node.target.id, ast.copy_location(value, node))]
    if isinstance(node, ast.NamedExpr):
        return [(node.target.id, node.value)]
    if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        if isinstance(node.target, ast.Name):
            return [(node.target.id, Items(iterable=node.iter))]
        return [(name, Untracked(why=f"{name} unpacked from the items of {ast.unparse(node.iter)}"))
                for name in stored_names(node.target)]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [(name, Untracked(why=f"{name} bound by with {ast.unparse(node.context_expr)}"))
                for name in stored_names(node.optional_vars)]
    if isinstance(node, ast.ExceptHandler) and node.name:
        return [(node.name, Untracked(why=f"{node.name} is an exception"))]
    return []


def stored_names(target: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
