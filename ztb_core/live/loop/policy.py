"""Decision policies for the live loop: a trained agent, or a moving-average rule for demos.

Both answer one question on each bar close: given the M1 bars so far (oldest first, the last one
just closed) and the position held (as the policy's own signal, a fraction of equity), what target
position now? The answer is a float in -1..1 that `sizing` turns into an order.

The agent computes its features online with exactly the training definitions. `technical-66` is
incremental (`data.features.online.OnlineTechnical`): each new bar of the runner's rolling buffer
updates one row, so a decision costs the same with a 6,000- or a 60,000-bar buffer; the state is
rebuilt from the buffer at start (`prime`) and whenever the buffer does not continue it. Another
feature set, and the frozen Stage-1 encoder's embedding columns, are computed over the whole buffer
(`compute_feature_set`, `embed_bars`) as before. The last `lookback` rows form the observation;
they equal the rows computed offline over the full history (`tests/live/test_policy.py`,
`tests/data/test_online_parity.py`).

How many bars an agent needs is derived from what it was trained with (`history_needed`): the
feature set's longest reach (two completed daily bars and the day being built), the observation's
`lookback` rows, and a Stage-1 encoder's windows; the buffer is that, not a fixed number, so the
start-up backfill pages no more of the exchange's history than the agent reads.

An agent also hands on the volatility forecaster its checkpoint stores (`vol_sizing`, or why there
is none in `vol_sizing_absent`): `sizing.forecast_sizing` sizes positions with it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ...data.features import compute_feature_set
from ...data.features.online import OnlineTechnical
from ...data.features.stage1 import STAGE1_TIMEFRAMES
from ...data.features.technical import HTF_CONTEXT
from ...data.schema import TIMEFRAME_MINUTES
from ...errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from ...pretrain.export import EncoderBundle
    from .live_config import PolicyConfig

log = logging.getLogger("ztb.live.policy")


class NotReady(DataError):
    """Not enough history yet for a decision (warm-up)."""


#: higher timeframes each feature set reads (their last two completed bars: returns, deltas)
_FEATURE_TIMEFRAMES: dict[str, tuple[str, ...]] = {"technical-66": HTF_CONTEXT, "stage1-ohlc": STAGE1_TIMEFRAMES}
#: the longest windowed feature of `technical-66` (ret_240 reads 241 bars)
_WINDOW_BARS = 241
#: recursive averages (EMA, Wilder) restart at the buffer's first bar, training's at the data's; after
#: 17 spans of the slowest one (Wilder 60) the start's weight, e^-17 ~ 4e-8, is below float32 precision
_CONVERGE_BARS = 17 * 60
#: one daily bucket can hold 60 bars more than 1,440: the 25-hour New York day when DST ends (FX day)
_LONG_DAY_SLACK = 60


def feature_history(feature_set: str) -> int:
    """M1 bars a feature set needs, in the worst case, before its newest row is valid and equal to the
    row computed over the whole history: the last two completed bars of its longest timeframe plus the
    one being built (the first bucket of a buffer counts only if its first bar opened it, so a buffer
    of this many bars always holds two whole days before the current one), and at least the windowed
    and recursive features' reach."""
    tfs = _FEATURE_TIMEFRAMES.get(feature_set)
    if tfs is None:
        raise ConfigError(f"unknown feature set {feature_set!r}; known: {', '.join(_FEATURE_TIMEFRAMES)}")
    htf = max(3 * TIMEFRAME_MINUTES[tf] for tf in tfs) + (_LONG_DAY_SLACK if "D" in tfs else 0)
    return max(htf, _WINDOW_BARS, _CONVERGE_BARS)


def encoder_history(enc: EncoderBundle, lookback: int) -> int:
    """M1 bars a Stage-1 encoder's windows reach back for the last `lookback` rows (what `_embed_last`
    slices: each timeframe's window length plus a partial first bucket and the previous close, 10 %
    slack for missing minutes)."""
    reach = max((enc.lengths[tf] + 2) * TIMEFRAME_MINUTES[tf] for tf in enc.timeframes)
    return int(reach * 1.1) + lookback + 10


def history_needed(feature_set: str, lookback: int, encoder: EncoderBundle | None = None) -> int:
    """M1 bars an agent needs before its first decision: `lookback` valid feature rows, and the
    encoder's windows when it has one."""
    need = feature_history(feature_set) + lookback - 1
    if encoder is not None:
        need = max(need, encoder_history(encoder, lookback))
    return need


class Policy(Protocol):
    name: str
    #: M1 bars of history the policy needs before its first decision
    warmup_bars: int
    #: bars kept in the rolling buffer passed to `decide`
    buffer_bars: int

    def decide(self, bars: pd.DataFrame, position: float) -> float: ...


def prime_policy(policy: Policy, bars: pd.DataFrame) -> None:
    """Let a policy with incremental state build it from the history loaded at start (no-op for
    stateless ones)."""
    prime = getattr(policy, "prime", None)
    if prime is not None:
        prime(bars)


class SmaPolicy:
    """Long (1) while the fast SMA of closes is above the slow one, else flat (0) — or short (-1)
    when shorts are allowed. A transparent baseline for dry-run demos and tests."""

    def __init__(self, fast: int = 10, slow: int = 30, allow_short: bool = False) -> None:
        if fast >= slow:
            raise ConfigError(f"policy: sma_fast ({fast}) must be smaller than sma_slow ({slow})")
        self.fast, self.slow, self.allow_short = fast, slow, allow_short
        self.name = f"sma({fast},{slow})"
        self.warmup_bars = slow
        self.buffer_bars = slow + 1

    def decide(self, bars: pd.DataFrame, position: float) -> float:
        close = bars["close"].to_numpy(np.float64)
        if len(close) < self.slow:
            raise NotReady(f"{self.name}: {len(close)} bars, needs {self.slow}")
        fast, slow = close[-self.fast :].mean(), close[-self.slow :].mean()
        if fast > slow:
            return 1.0
        return -1.0 if self.allow_short and fast < slow else 0.0


class OnlineFeatures:
    """The training feature pipeline applied to a rolling buffer of bars."""

    def __init__(self, feature_set: str, market: str, lookback: int, encoder_path: str | None = None) -> None:
        self.feature_set, self.market, self.lookback = feature_set, market, lookback
        self.encoder: EncoderBundle | None = None
        if encoder_path:
            # torch loads only for a model policy: the SMA policy runs without it
            from ...pretrain.export import load_encoder

            self.encoder = load_encoder(encoder_path)
        # technical-66 row by row; other feature sets over the whole buffer
        self.online = OnlineTechnical(market, keep=lookback) if feature_set == "technical-66" else None

    def prime(self, bars: pd.DataFrame) -> None:
        """Build the incremental state from the history at start, so the first decision is not the
        one that pays for it."""
        if self.online is not None and len(bars):
            self.online.rebuild(bars)

    def window(self, bars: pd.DataFrame) -> np.ndarray:
        """The last `lookback` feature rows (float32, oldest first) for the bars given."""
        if self.online is not None:
            self.online.sync(bars)
            values, valid = self.online.window(min(self.lookback, len(bars)))
        else:
            fm = compute_feature_set(self.feature_set, bars, self.market)
            values, valid = fm.values[-self.lookback :], fm.valid[-self.lookback :]
        if self.encoder is not None and len(values) == self.lookback:
            emb, ok = self._embed_last(bars, self.encoder)
            valid = valid & np.isfinite(emb).all(axis=1) & ok  # warm-up rows are zeros
            values = np.concatenate([values, np.nan_to_num(emb, nan=0.0)], axis=1)
        if len(values) < self.lookback or not valid.all():
            have = int(valid[::-1].cumprod().sum()) if len(valid) else 0
            raise NotReady(
                f"features {self.feature_set}: {have} valid rows at the end of {len(bars)} bars, "
                f"the policy needs {self.lookback} (more history / warm-up)"
            )
        return np.ascontiguousarray(values, dtype=np.float32)

    def _embed_last(self, bars: pd.DataFrame, enc: EncoderBundle) -> tuple[np.ndarray, np.ndarray]:
        """The frozen encoder's embeddings of the last `lookback` bars only (`embed_bars` would embed
        the whole buffer at every bar: seconds): the same windows (`window_builder(...).inputs`) and
        the same forward pass (`embed_tokens`); rows still in the encoder's warm-up are zeros."""
        # torch loads only for a model policy: the SMA policy runs without it
        import torch

        from ...pretrain.export import embed_tokens

        # the windows of the last rows reach back `lengths[tf]` bars of each timeframe (+2 for a partial
        # first bucket and the previous close): only those M1 bars are resampled, not the whole buffer
        reach = max((enc.lengths[tf] + 2) * TIMEFRAME_MINUTES[tf] for tf in enc.timeframes)
        bars = bars.iloc[-(int(reach * 1.1) + self.lookback + 10) :]
        wb = enc.window_builder(bars, self.market)
        rows = np.arange(len(bars) - self.lookback, len(bars))
        ok = np.asarray(wb.valid, dtype=bool)[rows]
        out = np.zeros((self.lookback, enc.embedding_dim), np.float32)
        if ok.any():
            with torch.inference_mode():
                xs = {tf: torch.from_numpy(x) for tf, x in wb.inputs(rows[ok]).items()}
                out[ok] = embed_tokens(enc.model.eval(), xs).float().numpy()
        return out, ok


class AgentPolicy:
    """A trained PPO agent (`ztb_core.rl.agent.load_agent`) deciding on online features."""

    def __init__(self, checkpoint: str | Path, buffer_bars: int | None = None, deterministic: bool = True) -> None:
        """`buffer_bars`: bars kept for the features; None = what the agent needs (`history_needed`),
        a larger number keeps more (never fewer than it needs)."""
        # torch and SB3 load only for a model policy: the SMA policy runs without them
        from ...rl.agent import load_agent

        self.agent = load_agent(checkpoint)
        cfg = self.agent.train_config
        # fine-tune mode: the policy embeds the bars itself (decide passes them), no embedding columns
        frozen_encoder = cfg.encoder.path if not self.agent.finetune else None
        self.features = OnlineFeatures(cfg.features, cfg.data.market, self.agent.lookback, frozen_encoder)
        self.deterministic = deterministic
        self.name = f"agent({Path(self.agent.checkpoint_path).name}@{self.agent.step})"
        encoder = self.features.encoder if self.features.encoder is not None else self.agent.encoder
        self.warmup_bars = history_needed(cfg.features, self.agent.lookback, encoder)
        if buffer_bars is not None and buffer_bars < self.warmup_bars:
            log.warning(
                "policy.buffer_bars %d is below what %s needs (%d bars): keeping %d",
                buffer_bars,
                self.name,
                self.warmup_bars,
                self.warmup_bars,
            )
        self.buffer_bars = max(buffer_bars or 0, self.warmup_bars)
        self.market = cfg.data.market
        # the volatility forecaster stored with the checkpoint (sizing.forecast_sizing reads these two)
        self.vol_sizing = self.agent.vol_sizing
        self.vol_sizing_absent = self.agent.vol_sizing_absent

    def prime(self, bars: pd.DataFrame) -> None:
        """Build the online feature state from the history loaded at start."""
        self.features.prime(bars)

    def decide(self, bars: pd.DataFrame, position: float) -> float:
        # torch loads only for a model policy: the SMA policy runs without it
        import torch

        from ...rl.encoder import EncoderWarmupError

        # one bar's forward passes are far too small to share: with several intra-op threads on a busy
        # machine a tiny encoder's pass took ~0.7 s instead of ~0.03 s (threads spinning for cores)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            window = self.features.window(bars)
            return self.agent.act(
                window, position, deterministic=self.deterministic, bars=bars if self.agent.finetune else None
            )
        except EncoderWarmupError as exc:  # more history needed (raise policy.buffer_bars if it persists)
            raise NotReady(str(exc)) from None
        finally:
            torch.set_num_threads(threads)


def make_policy(cfg: PolicyConfig, allow_short: bool = False, checkpoint: str | Path | None = None) -> Policy:
    """The policy a config asks for (`checkpoint` overrides `policy.checkpoint`)."""
    path = checkpoint or cfg.checkpoint
    if cfg.kind == "agent" or checkpoint is not None:
        if path is None:
            raise ConfigError("policy.kind is agent but no checkpoint is given: set policy.checkpoint or --checkpoint")
        return AgentPolicy(path, buffer_bars=cfg.buffer_bars, deterministic=cfg.deterministic)
    return SmaPolicy(cfg.sma_fast, cfg.sma_slow, allow_short=allow_short)


def market_mismatch(policy: Policy, market: str) -> str | None:
    """Why an agent trained on one market kind should not trade another (its features' calendar,
    sessions and volatility were learnt there), or None when the kinds agree or the policy is not
    a trained agent."""
    trained = getattr(policy, "market", None)
    if trained is None or trained == market:
        return None
    data = getattr(getattr(getattr(policy, "agent", None), "train_config", None), "data", None)
    symbol = getattr(data, "symbol", None)
    where = f" ({symbol})" if symbol else ""
    calendar = {"fx": "the FX calendar (Sunday 17:00 - Friday 17:00 New York)", "crypto": "a 24/7 market"}
    return (
        f"{policy.name} was trained on {trained}{where}, {calendar.get(trained, trained)}, "
        f"but this session trades {market}, {calendar.get(market, market)}"
    )
