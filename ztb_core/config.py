"""Typed configs loaded from `configs/*.yaml`.

Every job has a pydantic model (subclass of `ZtbModel`, unknown keys forbidden). `resolve_config`
is the one way a config is loaded: the bundled defaults file (with the section files it reads,
e.g. live's `exchange:` from exchange.yaml), then a `--config` file, then `--set a.b=value`
overrides, then the command's own flags, validated once. Any problem becomes a `ConfigError` that
names where the bad value came from (the file, `--set KEY`, or the flag), the dotted key, what was
expected and, for an unknown key, the closest valid one. The resolved model is what a run records,
with the provenance of every key that did not come from the bundled defaults.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError
from .paths import configs_dir

M = TypeVar("M", bound="ZtbModel")


class ZtbModel(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    #: file name under configs/ that documents the defaults (the first layer of every resolve)
    default_file: ClassVar[str | None] = None
    #: sections read from their own file under configs/ (section key -> file name), so settings
    #: shared by two jobs live in one file: live's `exchange:` is configs/exchange.yaml
    section_files: ClassVar[dict[str, str]] = {}


#: a command's flags for `resolve_config`: dotted key -> (flag name, value); None = not given
Flags = Mapping[str, tuple[str, Any]]


class _Null:
    """A flag value that sets its key to null, since a flag's None means "not given"."""

    def __repr__(self) -> str:
        return "NULL"


NULL: Any = _Null()


@dataclass(frozen=True)
class Resolved(Generic[M]):
    """A validated config and where each key came from."""

    config: M
    #: dotted key -> "file <path>", "--set" or the flag name (e.g. "--split"); keys not listed
    #: have the model's default
    sources: dict[str, str]
    #: the sources that are the bundled defaults (left out of what a run records)
    default_sources: frozenset[str] = field(default_factory=frozenset)

    def chosen(self) -> dict[str, str]:
        """The keys set by something other than the bundled defaults: what a run records."""
        return {k: v for k, v in self.sources.items() if v not in self.default_sources}


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


def set_dotted(data: dict, key: str | Sequence[str], value: Any, source: str, keep_existing: bool = False) -> None:
    """Set `a.b.c` in a nested dict, creating missing (or null) sections; the one dotted-key setter.
    `keep_existing` sets only a key that is absent. A parent that is not a section is an error
    naming `source`."""
    parts = key.split(".") if isinstance(key, str) else list(key)
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    if keep_existing:
        node.setdefault(parts[-1], value)
    else:
        node[parts[-1]] = value


def apply_overrides(data: dict, overrides: Iterable[str]) -> tuple[dict, set[str]]:
    """Apply dotted overrides to a nested dict; returns the dict and the set of overridden keys."""
    touched: set[str] = set()
    for text in overrides:
        parts, value = parse_override(text)
        set_dotted(data, parts, value, source=f"--set {text!r}")
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


def model_keys(model_cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of a model: its fields and, inside sections, theirs."""
    out: list[str] = []
    for name in model_cls.model_fields:
        out.append(prefix + name)
        sub = _section_model(model_cls, name)
        if sub is not None:
            out += model_keys(sub, f"{prefix}{name}.")
    return out


def closest_key(key: str, keys: Iterable[str], here: Sequence[str] = ()) -> str | None:
    """The valid key a person most likely meant: the same last part in another section first
    (`ppo.total_timesteps` -> `total_timesteps`), then a close spelling among the keys `here` (the
    misspelt key's own section), then a close spelling anywhere."""
    keys = sorted(keys)
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = sorted((k for k in keys if k.rsplit(".", 1)[-1] == leaf and k != key), key=len)
    if same_leaf:
        return same_leaf[0]
    by_leaf = {k.rsplit(".", 1)[-1]: k for k in here}
    close = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.5)
    if close:
        return by_leaf[close[0]]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    return close[0] if close else None


def _where(dotted: str, sources: Mapping[str, str], fallback: str) -> str:
    """Where the value at `dotted` came from, for an error: the file path, `--set KEY` or the flag.
    A key inside a section that one source set whole is that source's."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:n]))
        if found is not None:
            if found.startswith("file "):
                return found.removeprefix("file ")
            return f"--set {dotted}" if found == "--set" else found
    return fallback


def format_validation_error(
    exc: ValidationError,
    model_cls: type[BaseModel],
    source: str,
    overridden: set[str] | None = None,
    sources: Mapping[str, str] | None = None,
) -> str:
    where_from = dict(sources or {})
    where_from.update({key: "--set" for key in overridden or ()})
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        where = _where(dotted, where_from, source)
        if err["type"] == "extra_forbidden":
            valid = _valid_keys_at(model_cls, loc[:-1])
            meant = closest_key(
                dotted, model_keys(model_cls), here=[".".join(map(str, loc[:-1] + (k,))) for k in valid]
            )
            hint = f"; did you mean '{meant}'?" if meant else ""
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


def _section_model(model_cls: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    """The nested model of `key` when it is a section (one model, maybe optional); None for a leaf,
    including lists and dicts of models, which a later layer replaces whole."""
    if model_cls is None or key not in model_cls.model_fields:
        return None
    annotation = model_cls.model_fields[key].annotation
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    if any(typing.get_origin(a) in (list, dict, tuple) for a in args) or typing.get_origin(annotation) in (
        list,
        dict,
        tuple,
    ):
        return None
    return _model_in(annotation)


def _set_source(sources: dict[str, str], dotted: str, source: str) -> None:
    """`dotted` now comes from `source`; whatever an earlier layer put under it is gone."""
    for key in [k for k in sources if k.startswith(dotted + ".")]:
        del sources[key]
    sources[dotted] = source


def _merge(
    model_cls: type[BaseModel] | None, base: dict, layer: dict, source: str, sources: dict[str, str], prefix: str = ""
) -> None:
    """Lay `layer` over `base`: sections merge key by key, leaves (lists and dicts included) replace."""
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        sub = _section_model(model_cls, str(key))
        if sub is not None and isinstance(value, dict):
            if not isinstance(base.get(key), dict):
                base[key] = {}
            _merge(sub, base[key], value, source, sources, dotted + ".")
        else:
            base[key] = copy.deepcopy(value)
            _set_source(sources, dotted, source)


def resolve_config(
    model_cls: type[M],
    config_path: str | Path | None = None,
    sets: Iterable[str] = (),
    flags: Flags | None = None,
    defaults: bool = True,
    fill: Callable[[dict], dict] | None = None,
) -> Resolved[M]:
    """The one way a config is loaded: the bundled defaults (unless `defaults` is false, as for a
    run's own recorded config), the `--config` file (passed through `fill`, e.g. a recorded config
    given the keys it predates), `--set` overrides, then the command's flags (`{dotted key: (flag
    name, value)}`, applied only when the value is not None), validated once. Errors name the file
    and key, the `--set`, or the flag."""
    data: dict = {}
    sources: dict[str, str] = {}
    default_sources: set[str] = set()
    layers: list[tuple[str, Path]] = []
    if defaults:
        # each section file, then the model's own file; outside a checkout (a plain wheel install)
        # there are none, and the model's defaults are the same values
        bundled = [(section, configs_dir() / name) for section, name in model_cls.section_files.items()]
        own = default_config_path(model_cls)
        bundled += [("", own)] if own is not None else []
        layers = [(section, path) for section, path in bundled if path.exists()]
    for section, path in layers:
        default_sources.add(f"file {path}")
        body = read_yaml(path)
        _merge(model_cls, data, {section: body} if section else body, f"file {path}", sources)
    fallback = str(layers[-1][1]) if layers else "defaults"
    if config_path is not None:
        path = Path(config_path)
        body = read_yaml(path)
        _merge(model_cls, data, fill(body) if fill is not None else body, f"file {path}", sources)
        fallback = str(path)
    for text in sets:
        parts, value = parse_override(text)
        set_dotted(data, parts, value, source=f"--set {text!r}")
        _set_source(sources, ".".join(parts), "--set")
    for dotted, (flag, value) in (flags or {}).items():
        if value is None:
            continue
        set_dotted(data, dotted, None if value is NULL else value, source=flag)
        _set_source(sources, dotted, flag)
    try:
        config = model_cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model_cls, fallback, sources=sources)) from None
    return Resolved(config, sources, frozenset(default_sources))


def load_config(model_cls: type[M], path: str | Path | None = None, overrides: Iterable[str] = ()) -> M:
    """`resolve_config` without flags, for library code that needs the config and not its sources."""
    return resolve_config(model_cls, path, overrides).config


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
