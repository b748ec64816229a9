"""Typed configs loaded from `configs/*.yaml`.

Every job has a pydantic model (subclass of `ZtbModel`, unknown keys forbidden). `load_config`
reads the YAML, applies `--set a.b=value` overrides and validates; any problem becomes a
`ConfigError` that names the file (or the override), the dotted key, what was expected and,
for an unknown key, the closest valid one. The resolved model is what a run records.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError
from .paths import configs_dir

M = TypeVar("M", bound="ZtbModel")


class ZtbModel(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    #: file name under configs/ used when no --config is given
    default_file: ClassVar[str | None] = None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a","b","c"], parsed value). Values are YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set ppo.n_steps=512")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: the key {key!r} is not a dotted key like ppo.n_steps")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc.__class__.__name__})") from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: Iterable[str]) -> tuple[dict, set[str]]:
    """Apply dotted overrides to a nested dict; returns the dict and the set of overridden keys."""
    touched: set[str] = set()
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else child
                if not isinstance(child, dict):
                    raise ConfigError(f"--set {text!r}: {'.'.join(parts[:-1])} is not a section")
                node[part] = child
            node = child
        node[parts[-1]] = value
        touched.add(".".join(parts))
    return data, touched


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation such as `X`, `X | None`, `list[X]`, `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _valid_keys_at(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    cls: type[BaseModel] | None = model_cls
    for part in loc:
        if cls is None:
            return []
        if isinstance(part, int) or part not in cls.model_fields:
            continue
        cls = _model_in(cls.model_fields[part].annotation)
    return sorted(cls.model_fields) if cls is not None else []


def format_validation_error(
    exc: ValidationError, model_cls: type[BaseModel], source: str, overridden: set[str] | None = None
) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        where = f"--set {dotted}" if overridden and dotted in overridden else source
        if err["type"] == "extra_forbidden":
            valid = _valid_keys_at(model_cls, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{'.'.join(str(p) for p in loc[:-1] + (close[0],))}'?" if close else ""
            lines.append(f"{where}: unknown key '{dotted}'{hint} (valid keys here: {', '.join(valid)})")
        elif err["type"] == "missing":
            lines.append(f"{where}: missing required key '{dotted}'")
        else:
            got = err.get("input")
            got_txt = json.dumps(got, default=str) if not isinstance(got, dict) else "a mapping"
            lines.append(f"{where}: key '{dotted}': expected {err['msg'][0].lower() + err['msg'][1:]}; got {got_txt}")
    return "invalid config\n  " + "\n  ".join(lines)


def read_yaml(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def default_config_path(model_cls: type[ZtbModel]) -> Path | None:
    return configs_dir() / model_cls.default_file if model_cls.default_file else None


def load_config(model_cls: type[M], path: str | Path | None = None, overrides: Iterable[str] = ()) -> M:
    """Load `path` (or the model's bundled default file), apply overrides, validate."""
    if path is None:
        # the bundled file documents the model's defaults; outside a checkout (a plain wheel
        # install) the model's own defaults are the same values
        path = default_config_path(model_cls)
        if path is not None and not path.exists():
            path = None
    else:
        path = Path(path)
    data = read_yaml(path) if path is not None else {}
    data, touched = apply_overrides(data, list(overrides))
    return validate_config(model_cls, data, source=str(path) if path else "defaults", overridden=touched)


def validate_config(model_cls: type[M], data: dict, source: str = "config", overridden: set[str] | None = None) -> M:
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model_cls, source, overridden)) from None


def config_to_dict(model: BaseModel) -> dict:
    return model.model_dump(mode="json")


def config_to_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(config_to_dict(model), sort_keys=False)


def config_hash(model_or_dict: BaseModel | dict) -> str:
    """Stable hash of a resolved config (canonical JSON), 16 hex digits."""
    data = config_to_dict(model_or_dict) if isinstance(model_or_dict, BaseModel) else model_or_dict
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def changed_keys(old: dict, new: dict, only: Iterable[str] | None = None) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (optionally only under prefixes)."""
    a, b = flatten(old), flatten(new)
    keys = sorted(set(a) | set(b))
    diff = [k for k in keys if a.get(k, object()) != b.get(k, object())]
    if only is not None:
        prefixes = tuple(only)
        diff = [k for k in diff if k.startswith(prefixes)]
    return diff
