"""The Stage-1 encoder as training sees it (`encoder.path` / `encoder.mode` in `configs/train.yaml`).

* frozen: `prepare_splits` appends `EncoderBundle.embed_bars` of the bars to the features, once;
  the environment and the policy are the plain ones.
* finetune: the environment adds, to each observation, the encoder's raw input windows for the
  decision bar (`x:{tf}`, shape (L_tf, 7), one per timeframe) and the policy runs the encoder in
  its features extractor. `RawWindows` serves those windows: the encoder's `WindowBuilder` holds
  per-timeframe arrays computed once, and a window is an index gather into them (no pandas per
  step, no window materialised before it is asked for).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError
from ..pretrain.dataset import IN_CHANNELS
from ..pretrain.export import FILE, EncoderBundle, WindowBuilder, load_encoder

#: observation keys of fine-tune mode besides the raw windows
FEATURES_KEY, POSITION_KEY = "features", "position"
#: VecNormalize normalises these keys only; raw windows are normalised per window by the encoder's input pipeline
NORM_KEYS = [FEATURES_KEY, POSITION_KEY]


class EncoderWarmupError(DataError):
    """A decision bar still in the encoder's warm-up: its longest window needs more history."""


def raw_key(tf: str) -> str:
    return f"x:{tf}"


def load_encoder_checked(path: str | Path) -> EncoderBundle:
    """`load_encoder` with the error a training config deserves: it names `encoder.path` and the file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(
            f"encoder.path {str(path)!r}: no such file or folder (point it at a pretrain run's "
            f"encoder/encoder.pt, that folder, or the run folder)"
        )
    try:
        return load_encoder(p)
    except CheckpointError as exc:
        raise ConfigError(f"encoder.path {str(path)!r} is not a usable Stage-1 encoder: {exc}") from None


def encoder_fingerprint(path: str | Path) -> str:
    """sha256 of the encoder file a config points at (a folder resolves like `load_encoder`)."""
    p = Path(path)
    if p.is_dir():
        p = next((c for c in (p / FILE, p / "encoder" / FILE) if c.exists()), p / FILE)
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encoder_state(encoder_path: str | None) -> dict:
    """What a checkpoint records about the Stage-1 encoder: the sha256 of its file, so an agent
    is never paired with a different encoder than the one it was trained with."""
    return {"encoder_sha256": encoder_fingerprint(encoder_path)} if encoder_path else {}


def check_encoder_fingerprint(encoder_path: str | None, state: dict, where: str) -> None:
    """Refuse an encoder file that is not the one the checkpoint `state` was trained with."""
    want = state.get("encoder_sha256")
    if not encoder_path or not want:
        return
    have = encoder_fingerprint(encoder_path)
    if have != want:
        raise ConfigError(
            f"{where}: encoder.path {encoder_path} is not the encoder this agent was trained with "
            f"(sha256 {have[:12]}..., trained with {want[:12]}...); it was re-exported or replaced"
        )


@dataclass(frozen=True)
class RawWindows:
    """Encoder input windows for the rows of one market slice.

    `rows[i]` is the M1 bar (index into the bars the builder was made from) of slice row i.
    Slicing (`windows[a:b]`) keeps the builder and narrows the rows, so a slice of a market and
    its windows stay aligned.
    """

    builder: WindowBuilder
    rows: np.ndarray  # int64 (T,)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: slice) -> RawWindows:
        if not isinstance(item, slice):
            raise TypeError("RawWindows supports slices only; use at(i) or batch(idx) for windows")
        return RawWindows(self.builder, self.rows[item])

    @property
    def timeframes(self) -> list[str]:
        return list(self.builder.timeframes)

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        return {tf: (int(self.builder.lengths[tf]), IN_CHANNELS) for tf in self.builder.timeframes}

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """{`x:{tf}`: (N, L_tf, 7) float32} for slice rows `idx`."""
        got = self.builder.inputs(self.rows[np.asarray(idx, dtype=np.int64)])
        return {raw_key(tf): x for tf, x in got.items()}

    def at(self, i: int) -> dict[str, np.ndarray]:
        """{`x:{tf}`: (L_tf, 7)} for slice row i (the environment's per-step call)."""
        return {k: v[0] for k, v in self.batch(np.array([i])).items()}


def raw_windows_for_bars(bundle: EncoderBundle, bars: Any, market: str, rows: np.ndarray) -> RawWindows:
    """Windows for the given rows of `bars` (EncoderWarmupError when a row is still in the encoder's warm-up)."""
    wb = bundle.window_builder(bars, market)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and not wb.valid[rows].all():
        bad = int(rows[~wb.valid[rows]][0])
        raise EncoderWarmupError(
            f"encoder windows: bar {bad} ({bars.index[bad]}) is in the encoder's warm-up: its "
            f"windows ({dict(wb.lengths)} bars per timeframe) need more history before it"
        )
    return RawWindows(wb, rows)
