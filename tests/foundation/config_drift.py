"""Finds config drift: keys of a config model that its bundled YAML does not show with a comment,
and keys that no code reads. Used by test_config_drift.py (and its positive controls)."""

from __future__ import annotations

import ast
import re
import typing
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from ztb_core.config import _model_in


def model_keys(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Dotted leaf keys of a model -> the field name code reads it by. A field holding one nested
    model is a section (its keys count, not it); lists/dicts of models are leaves."""
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        nested = _model_in(info.annotation)
        origin = typing.get_origin(info.annotation)
        is_container = origin in (list, dict, tuple) or (
            origin is not None and any(typing.get_origin(a) in (list, dict) for a in typing.get_args(info.annotation))
        )
        if nested is not None and not is_container:
            out.update(model_keys(nested, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = name
    return out


_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?:- )?(?P<key>[A-Za-z_][\w\-]*):(?P<rest>.*)$")


def yaml_key_lines(text: str) -> dict[str, bool]:
    """Dotted key -> whether it is documented: a comment on its line, or a comment line above it in
    its paragraph (the lines since the last blank one), so one comment may explain a group such as
    `# sma: fast and slow windows` over `sma_fast` and `sma_slow`. Indentation gives the nesting."""
    out: dict[str, bool] = {}
    stack: list[tuple[int, str]] = []
    paragraph_comment = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            paragraph_comment = False
            continue
        if stripped.startswith("#"):
            paragraph_comment = True
            continue
        m = _KEY_LINE.match(line)
        if m is None or stripped.startswith("- "):
            continue
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [m.group("key")])
        out[dotted] = "#" in m.group("rest") or paragraph_comment
        stack.append((indent, m.group("key")))
    return out


def undocumented(model: type[BaseModel], yaml_text: str) -> tuple[list[str], list[str]]:
    """(keys missing from the YAML, keys present without a comment). A section the model reads from
    its own file (`section_files`, e.g. live's exchange.yaml) is that file's to document."""
    lines = yaml_key_lines(yaml_text)
    elsewhere = tuple(f"{section}." for section in getattr(model, "section_files", {}))
    keys = {k: v for k, v in model_keys(model).items() if not (elsewhere and k.startswith(elsewhere))}
    missing = sorted(k for k in keys if k not in lines)
    uncommented = sorted(k for k in keys if k in lines and not lines[k])
    return missing, uncommented


def names_read(paths: Iterable[Path], skip_classes: set[str]) -> set[str]:
    """Attribute names and string constants used anywhere in the code (outside the bodies of the
    config model classes themselves, where fields are declared, not read)."""
    names: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        skip_nodes: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in skip_classes:
                for stmt in node.body:
                    if isinstance(stmt, ast.AnnAssign):
                        skip_nodes.update(id(n) for n in ast.walk(stmt))
        for node in ast.walk(tree):
            if id(node) in skip_nodes:
                continue
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                names.add(node.value)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
    return names


def unread(models: Iterable[type[BaseModel]], code_paths: Iterable[Path]) -> list[str]:
    """`Model.dotted.key` for every key whose field name is never read in the code."""
    models = list(models)
    classes = {m.__name__ for m in models}
    for m in models:
        classes.update(_all_nested(m))
    read = names_read(code_paths, classes)
    out = []
    for m in models:
        for dotted, name in model_keys(m).items():
            if name not in read:
                out.append(f"{m.__name__}.{dotted}")
    return sorted(out)


def _all_nested(model: type[BaseModel]) -> set[str]:
    out: set[str] = set()
    for info in model.model_fields.values():
        nested = _model_in(info.annotation)
        if nested is not None and nested.__name__ not in out:
            out.add(nested.__name__)
            out |= _all_nested(nested)
    return out
