"""Which typed model reads which bundled `configs/*.yaml`: the one list that `ztb config schema`, the
console's launch dialog and the bundled-config tests share. Entries are import strings so that
listing the configs does not import every job's code."""

from __future__ import annotations

import importlib

from .config import ZtbModel
from .errors import ConfigError

#: config name (the YAML file's stem) -> "module:Model"
CONFIG_MODELS: dict[str, str] = {
    "data": "ztb_core.data.ingest:DataConfig",
    "emulator": "ztb_core.live.emulator.config:EmulatorConfig",
    "eval": "ztb_core.evaluation.config:EvalConfig",
    "exchange": "ztb_core.live.venue.exchange_config:ExchangeConfig",
    "live": "ztb_core.live.loop.live_config:LiveConfig",
    "notify": "ztb_core.runtime.notify:NotifyConfig",
    "ops": "ztb_core.runtime.config:OpsConfig",
    "pretrain": "ztb_core.pretrain.config:PretrainConfig",
    "train": "ztb_core.rl.config:TrainConfig",
    "tune": "ztb_core.rl.tune:TuneConfig",
    "walkforward": "ztb_core.rl.walkforward:WalkForwardConfig",
}


def config_model(name: str) -> type[ZtbModel]:
    """The model class for a config name ("train", or "train.yaml")."""
    key = name.removesuffix(".yaml")
    if key not in CONFIG_MODELS:
        raise ConfigError(f"unknown config {name!r}; known: {', '.join(sorted(CONFIG_MODELS))}")
    module, cls = CONFIG_MODELS[key].split(":")
    model: type[ZtbModel] = getattr(importlib.import_module(module), cls)
    return model
