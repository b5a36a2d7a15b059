"""Imports follow the dependency direction of STYLE.md section 5.

    keel/core  <-  keel/log, keel/snapshots, keel/views  <-  keel/sequencer, keel/audit
               <-  keel/node  <-  keel/gateway, keel/cli, keel/console

A package imports only from packages to its left (and itself); nothing imports the edges;
only tests and benchmarks import keel/testing, which may import anything. Beside the
diagram: keel/bench (benchmarks) and keel/demo (the scripted demo) may import everything
left of the edges plus keel/testing, and keel/cli, the outermost shell, may also import
keel/testing, keel/bench and keel/demo, whose commands it runs. This test reads every
module under keel/ with `ast` (imports anywhere in a module, relative ones resolved) and
names the file and line of each import that breaks these rules. A new package must be
given its place in LAYERS before it can pass.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KEEL = Path(__file__).resolve().parents[1] / "keel"

# The diagram, left to right: a package may import any package in an earlier layer.
DIAGRAM = (
    ("core",),
    ("log", "snapshots", "views"),
    ("sequencer", "audit"),
    ("node",),
    ("gateway", "cli", "console"),
)
NOT_EDGES = {package for layer in DIAGRAM[:-1] for package in layer}


def _left_of(package: str) -> set[str]:
    for index, layer in enumerate(DIAGRAM):
        if package in layer:
            return {left for earlier in DIAGRAM[:index] for left in earlier}
    raise KeyError(package)


ALL = {package for layer in DIAGRAM for package in layer} | {"testing", "bench", "demo"}
# package -> the other keel packages it may import
LAYERS: dict[str, set[str]] = {package: _left_of(package) for layer in DIAGRAM for package in layer}
LAYERS["testing"] = ALL - {"testing"}
LAYERS["bench"] = NOT_EDGES | {"testing"}
LAYERS["demo"] = NOT_EDGES | {"testing"}
LAYERS["cli"] = LAYERS["cli"] | {"testing", "bench", "demo"}
LAYERS["keel"] = set()  # keel/__init__.py


def package_of(path: Path, root: Path = KEEL) -> str:
    """Return the keel package a module belongs to: keel/log/sqlite.py -> "log"."""
    parts = path.relative_to(root).parts
    if len(parts) == 1:
        return "keel" if parts[0] == "__init__.py" else Path(parts[0]).stem
    return parts[0]


def _module_name(path: Path, root: Path) -> list[str]:
    """Return the dotted name of a module as parts: keel/log/sqlite.py -> [keel, log, sqlite]."""
    parts = ["keel", *path.relative_to(root).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_packages(source: str, path: Path, root: Path = KEEL) -> list[tuple[int, str]]:
    """Return (line, keel package) for every import of keel code in a module's source."""
    tree = ast.parse(source, filename=str(path))
    module = _module_name(path, root)
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        names: list[list[str]] = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # from . import x: relative to the module's package (its own name if __init__)
                base = module if is_package else module[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if target == ["keel"]:  # from keel import core, testing
                names = [["keel", alias.name] for alias in node.names]
            else:
                names = [target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value.split(".")]
        for name in names:
            if len(name) >= 2 and name[0] == "keel":
                found.append((node.lineno, name[1]))
    return found


def layer_violations(root: Path = KEEL) -> list[str]:
    """Return one line per import that breaks LAYERS: "path:line: what"."""
    findings: list[str] = []
    for path in sorted(root.rglob("*.py")):
        package = package_of(path, root)
        where = path.relative_to(root.parent)
        if package not in LAYERS:
            findings.append(f"{where}:1: keel/{package} has no place in STYLE.md section 5; add it to LAYERS")
            continue
        for line, imported in imported_packages(path.read_text(), path, root):
            if imported == package or imported in LAYERS[package]:
                continue
            allowed = ", ".join(f"keel.{name}" for name in sorted(LAYERS[package])) or "nothing else of keel"
            findings.append(f"{where}:{line}: keel.{package} imports keel.{imported}; it may import only {allowed}")
    return findings


def test_the_packages_are_found() -> None:
    packages = {package_of(path) for path in KEEL.rglob("*.py")}
    assert {"core", "testing"} <= packages


def test_imports_follow_the_layering() -> None:
    findings = layer_violations()
    assert findings == [], "imports against STYLE.md section 5:\n" + "\n".join(findings)


def test_core_imports_nothing_of_keel_outside_core() -> None:
    """In particular not keel.testing, keel.cli or keel.bench (stated again, apart from LAYERS)."""
    findings = [
        f"{path.relative_to(KEEL.parent)}:{line}: keel.core imports keel.{imported}"
        for path in sorted((KEEL / "core").rglob("*.py"))
        for line, imported in imported_packages(path.read_text(), path)
        if imported != "core"
    ]
    assert findings == [], "\n".join(findings)


# ---- the checker itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative_path", "source", "expected"),
    [
        ("core/matching.py", "from keel.testing.harness import Harness", [(1, "testing")]),
        ("core/matching.py", "import keel.cli.main", [(1, "cli")]),
        ("core/matching.py", "from keel import bench", [(1, "bench")]),
        ("core/matching.py", "from .. import testing", [(1, "testing")]),
        ("core/matching.py", "from ..node.node import Node", [(1, "node")]),
        ("core/matching.py", "from . import money\nfrom .book import Book", [(1, "core"), (2, "core")]),
        ("core/__init__.py", "from .engine import Engine", [(1, "core")]),
        ("core/matching.py", "def f():\n    from keel.log import record", [(2, "log")]),
        ("core/matching.py", "import importlib\nm = importlib.import_module('keel.node.node')", [(2, "node")]),
        ("core/matching.py", "import msgspec\nimport keel", []),
    ],
)
def test_imports_are_resolved(relative_path: str, source: str, expected: list[tuple[int, str]]) -> None:
    assert imported_packages(source, KEEL / relative_path) == expected


def test_a_violation_names_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "keel"
    (root / "core").mkdir(parents=True)
    (root / "core" / "book.py").write_text("import msgspec\n\nfrom keel.testing.harness import Harness\n")
    (root / "testing").mkdir()
    (root / "testing" / "harness.py").write_text("from keel.cli.main import app\n")  # testing may import anything
    (root / "log").mkdir()
    (root / "log" / "sqlite.py").write_text("from keel.node.node import Node\n")
    (root / "reports").mkdir()
    (root / "reports" / "daily.py").write_text("")
    assert layer_violations(root) == [
        "keel/core/book.py:3: keel.core imports keel.testing; it may import only nothing else of keel",
        "keel/log/sqlite.py:1: keel.log imports keel.node; it may import only keel.core",
        "keel/reports/daily.py:1: keel/reports has no place in STYLE.md section 5; add it to LAYERS",
    ]
