"""The encoder hand-off to PPO.

`save_encoder(module, dir)` writes `dir/encoder.pt` (weights + everything needed to rebuild the
windows: config, window lengths, train-only statistics, embedding size) atomically.
`load_encoder(path)` accepts that file, its folder, a pretrain run directory or a Lightning
`.ckpt`, and returns an `EncoderBundle`:

* frozen mode (what `configs/train.yaml` `encoder.path` uses): `embed_bars(m1)` computes one
  embedding per M1 bar, once, batched and without gradients; row t uses only bars completed by the
  close of bar t. Rows whose windows are not yet available (warm-up) are zeros; `valid_rows`
  says which.
* fine-tune mode: `WindowBuilder` produces the per-timeframe window tensors for given M1 rows and
  `ztb_core.rl.sb3_extractor.PretrainedEncoderExtractor` runs the encoder inside the policy.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_file
from ..data.resample import last_completed
from ..data.schema import index_ns
from ..errors import CheckpointError
from .bars import TimeframeBars, timeframe_bars
from .config import PretrainConfig
from .model import MultiTimeframeAutoencoder
from .normalization import AuxStats, revin

FORMAT = "ztb-encoder/1"
FILE = "encoder.pt"


def save_encoder(module, out_dir: Path) -> Path:
    """Write `out_dir/encoder.pt` from a `PretrainModule` (temp file + os.replace)."""
    model: MultiTimeframeAutoencoder = module.model
    hp = module.hparams
    payload = {
        "format": FORMAT,
        "config": dict(hp["config"]),
        "lengths": dict(hp["lengths"]),
        "aux_stats": dict(hp["aux_stats"]),
        "market": (hp.get("data_info") or {}).get("market", hp["config"]["data"]["market"]),
        "embedding_dim": model.embedding_dim,
        "t5_config": model.backbone_config.to_dict() if model.is_t5 else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    return save_payload(payload, out_dir)


def save_payload(payload: dict, out_dir: Path) -> Path:
    """Write an encoder payload (the `FORMAT` dict) to `out_dir/encoder.pt` atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = out_dir / FILE
    with atomic_file(path) as fh:
        fh.write(buf.getvalue())
    return path


def _build_model(
    cfg: PretrainConfig, lengths: dict[str, int], t5_config: dict | None, source: str | Path
) -> MultiTimeframeAutoencoder:
    backbone = None
    if cfg.model.backbone == "t5":
        if t5_config is None:
            raise CheckpointError(
                f"{source}: model.backbone is t5 but the encoder stores no t5_config (the T5 architecture to rebuild)"
            )
        # rebuild from the stored architecture: loading an encoder never needs the original T5 folder
        # transformers on first use: huggingface_hub reads HF_HUB_OFFLINE once, at import, after t5._offline() set it
        from transformers import T5Config, T5EncoderModel

        backbone = T5EncoderModel(T5Config.from_dict(t5_config))
    return MultiTimeframeAutoencoder(cfg.window.timeframes, lengths, cfg.model, backbone_module=backbone)


def read_payload(path: Path) -> dict:
    path = Path(path)
    if path.is_dir():
        for cand in (path / FILE, path / "encoder" / FILE):
            if cand.exists():
                path = cand
                break
        else:
            raise CheckpointError(
                f"{path}: no {FILE} here or in {path / 'encoder'}; finish (or evaluate) a pretrain run first"
            )
    if not path.exists():
        raise CheckpointError(f"{path}: encoder file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read the encoder ({exc.__class__.__name__}: {exc})") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return obj
    if isinstance(obj, dict) and "hyper_parameters" in obj and "state_dict" in obj:  # Lightning checkpoint
        hp = obj["hyper_parameters"]
        state = {k[len("model.") :]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
        cfg = PretrainConfig.model_validate(hp["config"])
        t5c = hp.get("t5_config")
        return {
            "format": FORMAT,
            "config": hp["config"],
            "lengths": hp["lengths"],
            "aux_stats": hp["aux_stats"],
            "market": cfg.data.market,
            "t5_config": t5c,
            "state_dict": state,
        }
    raise CheckpointError(f"{path}: not a ztb encoder ({FORMAT}) nor a pretrain Lightning checkpoint")


def embed_tokens(model: MultiTimeframeAutoencoder, xs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, D) embedding: per-timeframe mean of the bottleneck tokens, concatenated (the model's
    `forward` embedding without running the decoders). Frozen and fine-tune mode both use it."""
    parts = model.split_tokens(model.encode(xs))
    return torch.cat([parts[tf].mean(dim=1) for tf in model.timeframes], dim=1)


@dataclass
class EncoderBundle:
    model: MultiTimeframeAutoencoder
    config: PretrainConfig
    lengths: dict[str, int]
    stats: AuxStats
    market: str

    @property
    def embedding_dim(self) -> int:
        return self.model.embedding_dim

    @property
    def timeframes(self) -> list[str]:
        return list(self.config.window.timeframes)

    def window_builder(self, m1_bars: pd.DataFrame, market: str | None = None) -> WindowBuilder:
        return WindowBuilder(m1_bars, self.timeframes, self.lengths, self.stats, market or self.market)

    @torch.inference_mode()
    def embed_bars(
        self,
        m1_bars: pd.DataFrame,
        market: str | None = None,
        batch_size: int = 1024,
        device: str | torch.device | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> np.ndarray:
        """(T, D) float32 embeddings, one per M1 bar (zeros where windows are not yet available).

        `device` None picks CUDA when available. Windows of the next batch are built in a worker
        thread while the model runs on the current one (numpy and torch release the GIL), and
        `progress(done_bars, total_bars, elapsed_s)` is called after every batch."""
        dev = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        wb = self.window_builder(m1_bars, market)
        out = np.zeros((len(m1_bars), self.embedding_dim), np.float32)
        rows = np.flatnonzero(wb.valid)
        model = self.model.to(dev).eval()
        chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(wb.inputs, chunks[0]) if chunks else None
            for k, r in enumerate(chunks):
                assert pending is not None  # submitted for chunk k by the step before (or before the loop)
                xs_np = pending.result()
                pending = pool.submit(wb.inputs, chunks[k + 1]) if k + 1 < len(chunks) else None
                xs = {tf: torch.from_numpy(x).to(dev, non_blocking=True) for tf, x in xs_np.items()}
                out[r] = embed_tokens(model, xs).float().cpu().numpy()
                if progress is not None:
                    progress(min((k + 1) * batch_size, len(rows)), len(rows), time.perf_counter() - t0)
        self.model.to("cpu")
        self.last_valid = wb.valid
        return out

    def valid_rows(self, m1_bars: pd.DataFrame, market: str | None = None) -> np.ndarray:
        return self.window_builder(m1_bars, market).valid


class WindowBuilder:
    """Unmasked encoder inputs for any M1 rows: one window per timeframe ending at the last bar
    completed by that row's close (the same construction as training, with nothing hidden)."""

    def __init__(self, m1: pd.DataFrame, timeframes: list[str], lengths: dict[str, int], stats: AuxStats, market: str):
        self.timeframes, self.lengths = timeframes, lengths
        self.bars: dict[str, TimeframeBars] = {}
        self.ends: dict[str, np.ndarray] = {}
        m1_ns = index_ns(m1.index)
        valid = np.ones(len(m1), bool)
        for tf in timeframes:
            tfb, frame = timeframe_bars(m1, tf, market)
            tfb.aux = stats.apply(tf, tfb.aux)
            self.bars[tf] = tfb
            end = np.arange(len(m1), dtype=np.int64) if tf == "M1" else last_completed(m1_ns, frame, tf)
            first_ok = int(np.argmax(tfb.complete)) if tfb.complete.any() else len(tfb)
            valid &= end - lengths[tf] + 1 >= first_ok
            self.ends[tf] = end
        self.valid = valid

    def inputs(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """tf -> (N, L, 7) float32 for M1 `rows` (all must be valid)."""
        out = {}
        for tf in self.timeframes:
            L = self.lengths[tf]
            r = self.ends[tf][rows][:, None] + np.arange(-L + 1, 1)
            vis = np.ones(r.shape, bool)
            y, _, _ = revin(self.bars[tf].logp[r], vis)
            aux = self.bars[tf].aux[r]
            x = np.concatenate([y, aux, np.ones(r.shape + (1,), np.float32)], axis=2)
            out[tf] = x.astype(np.float32)
        return out


def load_encoder(path: str | Path) -> EncoderBundle:
    """Load an exported encoder (file, folder, pretrain run directory or Lightning checkpoint)."""
    payload = read_payload(Path(path))
    cfg = PretrainConfig.model_validate(payload["config"])
    model = _build_model(cfg, payload["lengths"], payload.get("t5_config"), path)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: encoder weights do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.eval()
    return EncoderBundle(
        model=model,
        config=cfg,
        lengths=dict(payload["lengths"]),
        stats=AuxStats.from_dict(payload["aux_stats"]),
        market=payload["market"],
    )
