"""docs/architecture.md's "Floors" table is the house a reader learns: it must name every package
and top-level module of the library, nothing that is gone, and in the same order as the layers that
import-linter enforces in `make check` (pyproject.toml)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _floors_table() -> list[list[str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Floors", 1)[1].split("\n## ", 1)[0]
    floors = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("floor", "---") or set(cells[0]) <= {"-"}:
            continue
        rooms = re.findall(r"`([a-z_.]+)`", cells[1])
        # "`ztb_core.runs`, `config`, ..." : bare names are modules of ztb_core
        floors.append([r if r.startswith("ztb_") else f"ztb_core.{r}" for r in rooms])
    return floors


def _tree() -> set[str]:
    rooms = {"ztb_tui"}
    for p in (REPO / "ztb_core").iterdir():
        if p.is_dir() and (p / "__init__.py").exists():
            rooms.add(f"ztb_core.{p.name}")
        elif p.suffix == ".py" and p.name != "__init__.py":
            rooms.add(f"ztb_core.{p.stem}")
    return rooms - {"ztb_core.schemas"}  # data files (JSON schemas), not code


def _layers() -> list[set[str]]:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in cfg["contracts"] if c["type"] == "layers" and c["name"].startswith("floors")]
    return [set(re.split(r"\s*[:|]\s*", layer)) for layer in layers]


def _table_problems(tree: set[str], floors: list[list[str]]) -> list[str]:
    listed = [room for floor in floors for room in floor]
    problems = [f"listed twice: {r}" for r in sorted({r for r in listed if listed.count(r) > 1})]
    problems += [f"missing from docs: {r}" for r in sorted(tree - set(listed))]
    problems += [f"gone from the tree: {r}" for r in sorted(set(listed) - tree)]
    return problems


def test_the_floors_table_names_every_room_of_the_tree_once():
    assert _table_problems(_tree(), _floors_table()) == []


def test_the_floors_are_the_enforced_layers_in_the_same_order():
    floors = [set(f) for f in _floors_table()]
    layers = _layers()
    flat_layers = [room for layer in layers for room in layer]
    assert set(flat_layers) == set().union(*floors)
    # every room sits on the same floor relative to the others: order of first appearance agrees
    position = {room: i for i, layer in enumerate(layers) for room in layer}
    for upper, lower in zip(floors, floors[1:], strict=False):
        assert max(position[r] for r in upper) <= min(position[r] for r in lower), (upper, lower)


def test_positive_control_a_new_or_removed_room_is_caught():
    floors = _floors_table()
    assert _table_problems(_tree() | {"ztb_core.newroom"}, floors) == ["missing from docs: ztb_core.newroom"]
    assert _table_problems(_tree() - {"ztb_core.live"}, floors) == ["gone from the tree: ztb_core.live"]
