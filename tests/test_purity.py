"""The core is pure: no clock, randomness, environment, I/O, floats or set iteration.

DESIGN.md rule 2 and STYLE.md section 1 ban, inside keel/core, everything that can make
two replays of one log differ: clocks, randomness, the environment, files, sockets,
threads and processes, `hash()` and `id()` (they differ per process), floats, and
iteration over sets (its order follows string hashes, so PYTHONHASHSEED). This test
walks every module of keel/core with `ast` and names the file and line of each breach,
as nautilus_trader's commit hook and TigerBeetle's tidy.zig do. Set iteration is found
on a best-effort basis: loops, comprehensions and order-taking calls over a set literal,
a set comprehension, a set()/frozenset() call, or a name or attribute that the core
assigns a set to or annotates as one. The checker is itself tested on small snippets.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "keel" / "core"

# Modules whose import alone is a breach, and why.
BANNED_MODULES = {
    "time": "reads the clock",
    "datetime": "reads the clock",
    "random": "randomness",
    "secrets": "randomness",
    "uuid": "randomness and the host",
    "os": "the environment and files",
    "pathlib": "files",
    "io": "files",
    "tempfile": "files",
    "shutil": "files",
    "socket": "the network",
    "ssl": "the network",
    "http": "the network",
    "urllib": "the network",
    "select": "the network",
    "selectors": "the network",
    "asyncio": "concurrency and I/O",
    "threading": "concurrency",
    "multiprocessing": "processes",
    "concurrent": "concurrency",
    "subprocess": "processes",
    "signal": "processes",
    "sys": "process state (argv, stdin, flags)",
    "platform": "the host",
    "logging": "I/O (the shell logs, the core returns events)",
    "ctypes": "memory addresses",
}
# Third-party libraries the core may use (STYLE.md section 5); the rest of the stdlib is fine.
ALLOWED_THIRD_PARTY = {"msgspec", "sortedcontainers"}
# Builtins whose call is a breach, and why.
BANNED_CALLS = {
    "float": "a float",
    "hash": "hash() differs per process for strings",
    "id": "id() is a memory address",
    "open": "files",
    "input": "I/O",
    "print": "I/O (the core returns events)",
    "breakpoint": "a debugger",
    "eval": "dynamic code",
    "exec": "dynamic code",
    "__import__": "dynamic import",
}
# Calls that consume an iterable in its iteration order.
ORDER_TAKING_CALLS = {"list", "tuple", "enumerate", "iter", "next", "zip", "map", "filter", "reversed"}
SET_TYPE_NAMES = {"set", "frozenset", "Set", "AbstractSet", "MutableSet", "FrozenSet"}


def _is_set_annotation(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    node = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    if isinstance(node, ast.Name):
        return node.id in SET_TYPE_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in SET_TYPE_NAMES
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
        return node.value.split("[")[0].strip() in SET_TYPE_NAMES
    return False


def _target_name(node: ast.expr) -> str | None:
    """Return the name a set may be known by: a variable, or an attribute's name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


class _SetNames(ast.NodeVisitor):
    """Collect the names (variables, attribute names) that hold sets."""

    def __init__(self, known: set[str]) -> None:
        self.known = known

    def is_set(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Set | ast.SetComp):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("set", "frozenset"):
            return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr | ast.BitAnd | ast.Sub | ast.BitXor):
            return self.is_set(node.left) or self.is_set(node.right)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("union", "intersection", "difference", "symmetric_difference", "copy")
        ):
            return self.is_set(node.func.value)
        name = _target_name(node)
        return name is not None and name in self.known

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        name = _target_name(node.target)
        if name and (_is_set_annotation(node.annotation) or (node.value is not None and self.is_set(node.value))):
            self.known.add(name)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for element, value in zip(target.elts, node.value.elts, strict=False):
                    name = _target_name(element)
                    if name and self.is_set(value):
                        self.known.add(name)
            else:
                name = _target_name(target)
                if name and self.is_set(node.value):
                    self.known.add(name)
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        if _is_set_annotation(node.annotation):
            self.known.add(node.arg)


def set_names(trees: list[ast.Module]) -> set[str]:
    """Return every name that holds a set in any of the modules (to a fixed point)."""
    known: set[str] = set()
    while True:
        size = len(known)
        for tree in trees:
            _SetNames(known).visit(tree)
        if len(known) == size:
            return known


def _module_roots(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if node.level or node.module is None:
        return []  # relative: inside the package
    return [node.module.split(".")[0]]


def find_impurities(source: str, path: str, known_sets: set[str] | None = None) -> list[str]:
    """Return one finding per breach in `source`, each as "path:line: what (why)"."""
    tree = ast.parse(source, filename=path)
    sets = _SetNames(set(known_sets or ()) | set_names([tree]))
    findings: list[str] = []

    def flag(node: ast.AST, what: str) -> None:
        findings.append(f"{path}:{getattr(node, 'lineno', '?')}: {what}")

    def check_iteration(node: ast.AST, iterable: ast.expr, how: str) -> None:
        if sets.is_set(iterable):
            flag(node, f"{how} over a set ({ast.unparse(iterable)}): order follows PYTHONHASHSEED; use sorted()")

    called = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for root in _module_roots(node):
                if root in BANNED_MODULES:
                    flag(node, f"imports {root} ({BANNED_MODULES[root]})")
                elif root not in sys.stdlib_module_names and root not in ALLOWED_THIRD_PARTY and root != "keel":
                    flag(node, f"imports {root}, which is neither the standard library nor an allowed pure library")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in BANNED_CALLS:
                flag(node, f"calls {node.func.id}() ({BANNED_CALLS[node.func.id]})")
            elif node.func.id in ORDER_TAKING_CALLS or node.func.id == "join":
                for argument in node.args:
                    check_iteration(node, argument, f"{node.func.id}()")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "join":
                for argument in node.args:
                    check_iteration(node, argument, "str.join()")
            elif node.func.attr == "pop" and not node.args and sets.is_set(node.func.value):
                flag(node, f"pops an arbitrary element of a set ({ast.unparse(node.func.value)})")
        elif isinstance(node, ast.Name) and node.id == "float" and node not in called:
            flag(node, "uses the float type")
        elif isinstance(node, ast.Constant) and isinstance(node.value, float | complex):
            flag(node, f"float literal {node.value!r}")
        elif isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.Div):
            flag(node, "true division / makes a float; use div_floor, div_ceil or div_toward_zero")
        elif isinstance(node, ast.For | ast.AsyncFor):
            check_iteration(node, node.iter, "for loop")
        elif isinstance(node, ast.comprehension):
            check_iteration(node.iter, node.iter, "comprehension")
        elif isinstance(node, ast.Starred):
            check_iteration(node, node.value, "unpacking")
    return sorted(set(findings), key=lambda finding: (finding.split(":")[0], int(finding.split(":")[1] or 0)))


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_the_core_is_found() -> None:
    names = {path.name for path in core_modules()}
    assert {"engine.py", "matching.py", "canonical.py"} <= names


def test_the_core_is_pure() -> None:
    """Every module of keel/core is free of clocks, randomness, I/O, floats, hash(), id() and set iteration."""
    paths = core_modules()
    trees = [ast.parse(path.read_text(), filename=str(path)) for path in paths]
    known_sets = set_names(trees)  # a set attribute set up in one module may be iterated in another
    root = CORE.parents[1]
    findings = [
        finding
        for path in paths
        for finding in find_impurities(path.read_text(), str(path.relative_to(root)), known_sets)
    ]
    assert findings == [], "impure code in keel/core:\n" + "\n".join(findings)


# ---- the checker finds what it must -----------------------------------------------------

CLASS_WITH_A_SET_ATTRIBUTE = """
class Book:
    def __init__(self):
        self.live = set()

    def walk(self):
        for order in self.live:
            pass
"""
IMPURE = [
    ("import time", "imports time"),
    ("import os.path", "imports os"),
    ("from datetime import datetime", "imports datetime"),
    ("from random import randint", "imports random"),
    ("import uuid as u", "imports uuid"),
    ("import socket, asyncio", "imports socket"),
    ("from threading import Lock", "imports threading"),
    ("import secrets", "imports secrets"),
    ("import subprocess", "imports subprocess"),
    ("from pathlib import Path", "imports pathlib"),
    ("from io import BytesIO", "imports io"),
    ("import numpy", "imports numpy"),
    ("def f():\n    import time\n    return time.time_ns()", "imports time"),
    ("x = float(3)", "calls float()"),
    ("x = 0.5", "float literal 0.5"),
    ("x = 1e6", "float literal 1000000.0"),
    ("def f(x: float) -> int: ...", "uses the float type"),
    ("x = 7 / 2", "true division"),
    ("x = 7\nx /= 2", "true division"),
    ("x = hash('a')", "calls hash()"),
    ("x = id(object())", "calls id()"),
    ("for x in {1, 2}: pass", "for loop over a set"),
    ("for x in set(y): pass", "for loop over a set"),
    ("for x in frozenset(y): pass", "for loop over a set"),
    ("for x in {v for v in y}: pass", "for loop over a set"),
    ("z = [x for x in set(y)]", "comprehension over a set"),
    ("z = {x: 1 for x in {1, 2}}", "comprehension over a set"),
    ("s = set()\nfor x in s: pass", "for loop over a set"),
    ("s: set[str] = make()\nz = list(s)", "list() over a set"),
    (CLASS_WITH_A_SET_ATTRIBUTE, "for loop over a set"),
    ("a, b = set(), []\nfor x in a: pass", "for loop over a set"),
    ("def f(names: frozenset[str]):\n    return ','.join(names)", "str.join() over a set"),
    ("s = set()\nx = s.pop()", "pops an arbitrary element"),
    ("s = set()\nt = s | {1}\nfor x in t: pass", "for loop over a set"),
]


@pytest.mark.parametrize(("source", "expected"), IMPURE)
def test_the_checker_finds(source: str, expected: str) -> None:
    findings = find_impurities(source, "snippet.py")
    assert any(expected in finding for finding in findings), findings
    assert all(finding.startswith("snippet.py:") for finding in findings)


PURE = [
    "import hashlib\nimport enum\nfrom collections import deque\nfrom heapq import heappush\nimport msgspec",
    "from keel.core import limits\nfrom . import money",
    "s = set()\nif 3 in s: pass\ns.add(3)\ns.discard(3)",
    "s = set()\nfor x in sorted(s): pass",
    "s = frozenset((1, 2))\nok = 1 in s\nn = len(s)\nm = max(s)",
    "d = {1: 2}\nfor k in d: pass\nfor k, v in d.items(): pass",
    "x = 7 // 2\ny = -(-7 // 2)",
    "def f(order_id: int) -> int:\n    return order_id",
]


@pytest.mark.parametrize("source", PURE)
def test_the_checker_accepts(source: str) -> None:
    assert find_impurities(source, "snippet.py") == []


def test_findings_name_file_and_line() -> None:
    assert find_impurities("x = 1\nimport time\n", "keel/core/clock.py") == [
        "keel/core/clock.py:2: imports time (reads the clock)"
    ]


def test_a_set_attribute_of_one_core_module_is_known_in_another() -> None:
    """book.py keeps sets of heap keys; iterating them from matching.py would be caught."""
    known_sets = set_names([ast.parse(path.read_text()) for path in core_modules()])
    assert {"in_bid_heap", "in_ask_heap"} <= known_sets
    source = "def f(book):\n    for price in book.in_bid_heap:\n        pass\n"
    assert find_impurities(source, "keel/core/other.py", known_sets) == [
        "keel/core/other.py:2: for loop over a set (book.in_bid_heap): order follows PYTHONHASHSEED; use sorted()"
    ]
