"""Checking a launch before anything starts: the overrides go through the same resolver the
command uses (`resolve_config` + the job's model); a key the model does not have names the closest
one that exists. Kept apart from `launching` so the console's first paint does not import pydantic
and the config models (the launch dialog imports this when it checks)."""

from __future__ import annotations

from pathlib import Path

from ztb_core.config import ZtbModel, resolve_config
from ztb_core.config_models import config_model
from ztb_core.errors import ConfigError, ZtbError

from .launching import JOB_KINDS


def job_config_model(kind: str) -> type[ZtbModel]:
    """The typed config model the CLI loads for this job, from the one registry of config models
    (`ztb_core.config_models`). Imported on demand: the models pull in the data stack (scipy,
    pandas: ~1.5 s), which the console's first paint must not pay."""
    return config_model(JOB_KINDS[kind].config)


def validate_launch(kind: str, config: Path | None, overrides: list[str], steps: str = "") -> list[str]:
    """Check a launch with the same resolver the command will use (`resolve_config` + the job's
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
    # the command's own resolver: an unknown key names the closest valid one, a bad value the type
    resolve_config(job_config_model(kind), config, overrides)
    return overrides
