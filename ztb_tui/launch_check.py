"""Checking a launch before anything starts: the overrides go through the same typed config the
command loads (`load_config` + the job's model); a key the model does not have names the closest
one that exists. Kept apart from `launching` so the console's first paint does not import pydantic
and the config models (the launch dialog imports this when it checks)."""

from __future__ import annotations

import difflib
import importlib
import types
import typing
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from ztb_core.config import ZtbModel, load_config
from ztb_core.errors import ConfigError, ZtbError

from .launching import JOB_KINDS


def config_model(kind: str) -> type[BaseModel]:
    """The typed config model the CLI loads for this job. Imported on demand: the models pull in
    the data stack (scipy, pandas: ~1.5 s), which the console's first paint must not pay."""
    module, _, name = JOB_KINDS[kind].model.partition(":")
    return getattr(importlib.import_module(module), name)


def model_keys(model: type[BaseModel], prefix: str = "") -> tuple[set[str], set[str]]:
    """(every dotted key of the model, the sections that take any sub-key such as dicts)."""
    keys: set[str] = set()
    open_sections: set[str] = set()
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.add(dotted)
        sub = _submodel(info.annotation)
        if sub is not None:
            k, o = model_keys(sub, dotted + ".")
            keys |= k
            open_sections |= o
        elif _is_mapping(info.annotation):
            open_sections.add(dotted)
    return keys, open_sections


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
    return None


def _is_mapping(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(annotation))
    return annotation is dict or typing.get_origin(annotation) is dict


def closest_key(key: str, keys: set[str]) -> str | None:
    """The valid key a person most likely meant: same last part in another section first
    (`ppo.total_timesteps` -> `total_timesteps`), else the closest spelling."""
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = sorted((k for k in keys if k.rsplit(".", 1)[-1] == leaf), key=len)
    if same_leaf:
        return same_leaf[0]
    close = difflib.get_close_matches(key, sorted(keys), n=1, cutoff=0.6)
    return close[0] if close else None


def validate_launch(kind: str, config: Path | None, overrides: list[str], steps: str = "") -> list[str]:
    """Check a launch with the same typed config the command will load (`load_config` + the job's
    model) before anything starts; returns the overrides to pass (the steps field added).
    Raises ConfigError naming the key, with the closest valid key for a misspelt one."""
    job = JOB_KINDS.get(kind)
    if job is None:
        raise ZtbError(f"unknown job kind {kind!r}; choose one of {', '.join(JOB_KINDS)}")
    overrides = list(overrides)
    if steps.strip():
        if job.steps_key is None:
            raise ConfigError(f"steps: {job.label} runs a fixed sequence and takes no step count")
        value = steps.strip().replace("_", "").replace(",", "")
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"steps: expected a whole number >= 1, got {steps.strip()!r}")
        overrides.append(f"{job.steps_key}={int(value)}")
    model = config_model(kind)
    keys, open_sections = model_keys(model)
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key in keys or any(key.startswith(section + ".") for section in open_sections):
            continue
        hint = closest_key(key, keys)
        raise ConfigError(
            f"override {item!r}: {job.run_kind} has no key '{key}'" + (f"; did you mean '{hint}'?" if hint else "")
        )
    load_config(cast("type[ZtbModel]", model), config, overrides)
    return overrides
