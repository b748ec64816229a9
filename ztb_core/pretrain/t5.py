"""T5 encoder backbone, from local files only.

Weights come from a local folder (`save_pretrained` layout) or the local Hugging Face cache;
nothing is ever downloaded (`local_files_only=True`, and `HF_HUB_OFFLINE=1` is set as well).
Asking for pretrained weights that are not there is an error, never a silent random start.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from .config import T5Options

#: the file names `from_pretrained` reads weights from (single file or sharded index)
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _has_local_file(path: str, name: str) -> bool:
    """`name` in the folder `path`, or in the local HF cache when `path` is a model id."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        return (folder / name).is_file()
    # huggingface_hub on first use: it reads HF_HUB_OFFLINE once, at import, so only after _offline()
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(path, name)
    except ValueError:  # not a valid model id (e.g. a folder path that does not exist)
        return False
    return isinstance(hit, str)


def check_t5_source(opts: T5Options) -> None:
    """The files `build_t5_encoder` will need are there: a cheap check (no model is loaded), so
    `ztb pretrain` can refuse before it creates a run folder."""
    _offline()  # before huggingface_hub is first imported: it reads the flag once
    if opts.init == "pretrained":
        if not opts.path:
            raise ConfigError(
                "model.t5.init=pretrained needs model.t5.path: a local folder with config.json and "
                "model.safetensors (or a model id already in the local Hugging Face cache); "
                "or set model.t5.init=random"
            )
        folder = Path(opts.path).expanduser()
        need = [] if _has_local_file(opts.path, "config.json") else ["config.json"]
        if not any(_has_local_file(opts.path, n) for n in WEIGHT_FILES):
            need.append("model.safetensors or pytorch_model.bin")
        if need:
            where = (
                f"folder {folder} has no {' and no '.join(need)}"
                if folder.is_dir()
                else f"no folder {folder}, and no model {opts.path!r} in the local Hugging Face cache"
            )
            raise ConfigError(
                f"model.t5.path={opts.path!r}: pretrained T5 weights not found locally ({where}; ztb never "
                f"downloads). Put config.json + model.safetensors there, or set model.t5.init=random."
            )
    elif opts.path and not _has_local_file(opts.path, "config.json"):
        raise ConfigError(
            f"model.t5.path={opts.path!r}: no T5 config.json found locally (looked in that folder and the "
            f"local Hugging Face cache); drop model.t5.path to use the inline size settings"
        )


def build_t5_encoder(opts: T5Options):
    """A `T5EncoderModel` per the options (see the module docstring)."""
    _offline()
    check_t5_source(opts)
    # transformers only after _offline(): huggingface_hub reads HF_HUB_OFFLINE once, at import
    from transformers import T5Config, T5EncoderModel

    if opts.init == "pretrained":
        try:
            return T5EncoderModel.from_pretrained(opts.path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"model.t5.path={opts.path!r}: pretrained T5 weights not found locally (looked in that folder and the "
                f"local Hugging Face cache; ztb never downloads). Put config.json + model.safetensors there, or set "
                f"model.t5.init=random. ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})"
            ) from None
    if opts.path:
        try:
            config = T5Config.from_pretrained(opts.path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"model.t5.path={opts.path!r}: no T5 config.json found locally "
                f"({exc.__class__.__name__}); drop model.t5.path to use the inline size settings"
            ) from None
    else:
        config = T5Config(
            vocab_size=8,
            d_model=opts.d_model,
            d_kv=opts.d_kv,
            d_ff=opts.d_ff,
            num_layers=opts.num_layers,
            num_heads=opts.num_heads,
            dropout_rate=0.1,
        )
    return T5EncoderModel(config)
