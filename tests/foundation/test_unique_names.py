"""One concept, one name: no two public classes or functions defined at module level in the library
share a name (two `Fill`s with disagreeing fields, two `EvalConfig`s with different defaults, three
`render_markdown`s were real sources of confusion). Exempt, by design: each command module's
`register(app)` (the command-group protocol of `ztb_core/cli/`) and `typing.overload` stubs."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("ztb_core", "ztb_tui")


def _is_overload(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any(
        (isinstance(d, ast.Name) and d.id == "overload") or (isinstance(d, ast.Attribute) and d.attr == "overload")
        for d in decorators
    )


def public_definitions(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for node in ast.parse(path.read_text(), filename=rel).body:
                if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if node.name.startswith("_") or _is_overload(node):
                    continue
                if node.name == "register" and rel.startswith("ztb_core/cli/"):
                    continue
                if rel not in found[node.name]:
                    found[node.name].append(rel)
    return found


def duplicates(root: Path) -> dict[str, list[str]]:
    return {name: where for name, where in public_definitions(root).items() if len(where) > 1}


def test_no_two_public_classes_or_functions_share_a_name():
    assert duplicates(REPO) == {}


def test_positive_control_a_second_definition_is_caught(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "ztb_core" / "a.py").write_text("class Fill:\n    pass\n")
    (tmp_path / "ztb_core" / "b.py").write_text("def Fill():\n    pass\n\ndef register(app):\n    pass\n")
    (tmp_path / "ztb_tui" / "c.py").write_text("def register(app):\n    pass\n")
    assert duplicates(tmp_path) == {
        "Fill": ["ztb_core/a.py", "ztb_core/b.py"],
        "register": ["ztb_core/b.py", "ztb_tui/c.py"],
    }
