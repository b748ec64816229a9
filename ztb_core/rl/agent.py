"""A trained agent loaded from a verified checkpoint, for evaluation and live trading.

`load_agent(path)` accepts a checkpoint file or a run directory (newest checkpoint that passes
its sha256). The VecNormalize statistics stored in the checkpoint are applied frozen
(training=False, norm_reward=False), exactly as the policy saw observations while training.

`positions(features)` replays the environment's decision loop over a whole feature matrix:
the position decided after bar t depends on the window ending at t *and* on the position held,
like in `TradingEnv`. For a deterministic discrete policy this is exact and fast: the policy is
evaluated in batch for every window and every possible held position, then the sequence is
threaded through in numpy. Other cases step sequentially.

With a Stage-1 encoder (`encoder.path`) the agent loads it too and checks that it is the very
file the agent was trained with (sha256 recorded in every checkpoint). Frozen mode needs nothing
else: the embeddings are columns of the features. Fine-tune mode needs the encoder's raw windows
of each decision bar: pass the `MarketSlice` from `prepare_market` to `positions` (it carries
them), and the bars to `act`; the encoder runs once per bar, not once per held position.

With a supervised forecast (`forecast.kind`, `ztb_core.rl.forecast`) the checkpoint carries its
fitted coefficients: callers pass the plain features, and the agent appends the forecast column
itself, as the environment did in training.

The checkpoint also carries the volatility forecaster fitted on the train split (`rl.vol_sizing`):
`vol_sizing`, or None with `vol_sizing_absent` saying why (an older checkpoint, sizing switched off,
too little train data); `ztb live` sizes positions with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from ..errors import CheckpointError, DataError, RunError
from ..evaluation.vol_sizing import TrainedVolSizing
from ..pretrain.dataset import IN_CHANNELS
from ..runs import find_run
from .actions import ActionMap
from .checkpoints import load_checkpoint_file, load_latest_valid
from .config import TrainConfig, recorded_train_config
from .encoder import (
    FEATURES_KEY,
    POSITION_KEY,
    check_encoder_fingerprint,
    load_encoder_checked,
    raw_windows_for_bars,
)
from .forecast import Forecast
from .policy import ObsNormalizer, finetune, model_policy, spaces_for, window_rows
from .vol_sizing import load_vol_sizing

log = logging.getLogger("ztb.rl.agent")
_CHUNK = 4096


@dataclass
class LoadedAgent:
    policy: Any  # stable_baselines3 ActorCriticPolicy, eval mode, CPU
    normalizer: ObsNormalizer
    train_config: TrainConfig
    checkpoint_path: Path
    step: int
    n_features: int
    entry: dict
    encoder: Any = None  # EncoderBundle when the run used one (frozen or finetune)
    raw_shapes: dict | None = None  # finetune: {tf: (L, 7)} of the encoder's raw windows
    forecast: Forecast | None = None  # the forecast column the policy saw (appended to the features given)
    vol_sizing: TrainedVolSizing | None = None  # the volatility forecaster live sizes with
    vol_sizing_absent: str | None = None  # why there is none (None when there is one)

    @property
    def finetune(self) -> bool:
        return self.raw_shapes is not None

    @property
    def lookback(self) -> int:
        return self.train_config.env.lookback

    @property
    def actions(self) -> ActionMap:
        """How this agent's actions become positions (the environment's mapping)."""
        return ActionMap(self.train_config.env)

    def _to_positions(self, actions: np.ndarray, held: float) -> np.ndarray:
        """Positions the actions lead to from the position `held`, as `TradingEnv.position_for`."""
        return self.actions.positions(actions, held)

    def _tensor(self, obs: Any) -> Any:
        obs = self.normalizer(obs)
        if isinstance(obs, dict):
            return {k: torch.as_tensor(v, device=self.policy.device) for k, v in obs.items()}
        return torch.as_tensor(obs, device=self.policy.device)

    def _actions(self, obs: Any, deterministic: bool) -> np.ndarray:
        with torch.no_grad():
            actions = self.policy._predict(self._tensor(obs), deterministic=deterministic)
        return actions.cpu().numpy()

    def _dict_obs(self, flat: np.ndarray, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {FEATURES_KEY: flat[:, :-1], POSITION_KEY: flat[:, -1:], **raw}

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """The feature columns the policy sees: the plain features (checked), with the forecast
        column appended when the agent has one, or that column alone (`forecast.only`): the matrix
        its environment was built on."""
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.n_features:
            raise DataError(
                f"agent {self.checkpoint_path.name}: expected features (T, {self.n_features}), got {feats.shape}"
            )
        return self.forecast.append(feats) if self.forecast is not None else feats

    def act(self, window: np.ndarray, position: float, deterministic: bool = True, bars: Any | None = None) -> float:
        """One decision: `window` is the last `lookback` feature rows (oldest first). Fine-tune
        mode also needs `bars`, the M1 bars up to the decision bar (the encoder's windows)."""
        w = self.inputs(window)
        if w.shape[0] != self.lookback:
            raise DataError(f"agent: window has {w.shape[0]} rows, the policy was trained on {self.lookback}")
        obs = np.empty((1, w.size + 1), dtype=np.float32)
        obs[0, :-1] = w.reshape(-1)
        obs[0, -1] = position
        if self.finetune:
            if bars is None:
                raise DataError(
                    f"agent {self.checkpoint_path.name} fine-tunes a Stage-1 encoder: act() needs the "
                    f"M1 bars up to the decision bar (bars=...)"
                )
            raw = raw_windows_for_bars(self.encoder, bars, self.train_config.data.market, np.array([len(bars) - 1]))
            actions = self._actions(self._dict_obs(obs, raw.batch(np.array([0]))), deterministic)
            return float(self._to_positions(actions, position)[0])
        return float(self._to_positions(self._actions(obs, deterministic), position)[0])

    def positions(
        self, features: np.ndarray | Any, deterministic: bool = True, initial_position: float = 0.0
    ) -> np.ndarray:
        """Target position decided after each bar (T,); flat before the first full window.

        `features` is a feature matrix, or a `MarketSlice` (required in fine-tune mode: it
        carries the encoder's raw windows)."""
        windows = getattr(features, "windows", None)
        if hasattr(features, "features"):
            features = features.features
        if self.finetune and windows is None:
            raise DataError(
                f"agent {self.checkpoint_path.name} fine-tunes a Stage-1 encoder: pass the MarketSlice "
                f"from prepare_market (it carries the encoder's windows), not a bare feature matrix"
            )
        feats = self.inputs(features)
        n, lb = len(feats), self.lookback
        out = np.full(n, 0.0)
        if n < lb:
            return out
        if self.actions.finite and deterministic:
            return self._positions_discrete(feats, initial_position, windows if self.finetune else None)
        pos = initial_position
        for t in range(lb - 1, n):
            flat = window_rows(feats, lb, t, t + 1, pos)
            obs: np.ndarray | dict[str, np.ndarray] = flat
            if self.finetune:
                assert windows is not None  # checked above: fine-tune mode refuses a bare feature matrix
                obs = self._dict_obs(flat, windows.batch(np.array([t])))
            pos = float(self._to_positions(self._actions(obs, deterministic), pos)[0])
            out[t] = pos
        return out

    def _greedy_finetune(self, feats: np.ndarray, windows: Any, s: int, e: int, held: list[float]) -> np.ndarray:
        """(e-s, len(held)) greedy actions; the encoder runs once per bar, the heads once per held position."""
        pol = self.policy
        ext = pol.features_extractor
        with torch.no_grad():
            raw = {k: torch.as_tensor(v) for k, v in windows.batch(np.arange(s, e)).items()}
            emb = ext.embed(raw)
            out = np.empty((e - s, len(held)), dtype=np.int64)
            for j, p in enumerate(held):
                obs = self.normalizer(self._dict_obs(window_rows(feats, self.lookback, s, e, p), {}))
                x = ext.combine(*(torch.as_tensor(obs[k]) for k in ext_keys()), emb)
                dist = pol._get_action_dist_from_latent(pol.mlp_extractor.forward_actor(x))
                out[:, j] = dist.get_actions(deterministic=True).cpu().numpy().reshape(-1)
        return out

    def _positions_discrete(self, feats: np.ndarray, initial_position: float, windows: Any = None) -> np.ndarray:
        held, next_state = self.actions.states(initial_position)
        n, lb = len(feats), self.lookback
        first = lb - 1
        # greedy action for every (decision index, held position) pair
        choice = np.empty((n - first, len(held)), dtype=np.int64)
        for s in range(first, n, _CHUNK):
            e = min(n, s + _CHUNK)
            if windows is not None:
                choice[s - first : e - first] = self._greedy_finetune(feats, windows, s, e, held)
                continue
            for j, p in enumerate(held):
                choice[s - first : e - first, j] = self._actions(window_rows(feats, lb, s, e, p), True).reshape(-1)
        out = np.zeros(n)
        j = held.index(float(initial_position))
        ch, nxt = choice.tolist(), next_state.tolist()
        for i in range(n - first):
            j = nxt[j][ch[i][j]]
            out[first + i] = held[j]
        return out


def ext_keys() -> tuple[str, str]:
    return FEATURES_KEY, POSITION_KEY


def _build_policy(cfg: TrainConfig, n_features: int, state: dict, raw_shapes: dict | None = None) -> Any:
    obs_space, act_space = spaces_for(cfg.env, n_features, raw_shapes)
    policy_cls, kwargs = model_policy(cfg)
    if isinstance(policy_cls, str):
        policy_cls = ActorCriticPolicy
    policy = policy_cls(obs_space, act_space, lambda _: 0.0, **kwargs)
    try:
        policy.load_state_dict(state["policy"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint does not match the policy its config describes: {exc}") from None
    policy.set_training_mode(False)
    return policy.to(torch.device("cpu"))


def _n_features(cfg: TrainConfig, state: dict, embedding_dim: int = 0) -> int:
    """Feature columns per row, from the width of the policy MLP's first layer (lookback * F + 1,
    plus the embedding in fine-tune mode, where the encoder computes it inside the policy)."""
    pol = state["policy"]
    key = "mlp_extractor.policy_net.0.weight"
    weight = pol[key] if key in pol else next(v for k, v in pol.items() if k.endswith("weight") and v.ndim == 2)
    n_in = int(weight.shape[1]) - embedding_dim
    n_features, rem = divmod(n_in - 1, cfg.env.lookback)
    if rem or n_features < 1:
        raise CheckpointError(f"checkpoint input width {n_in} does not fit lookback {cfg.env.lookback}")
    return n_features


def resolve_checkpoint(path: str | Path, on_invalid=None) -> tuple[Path, dict, dict]:
    """(file, manifest entry, state) for a checkpoint file, a checkpoints folder, a run folder or a
    run id (or unique prefix) under the artifacts folder."""
    p = Path(path)
    if not p.exists() and len(p.parts) == 1:
        try:
            p = find_run(str(path))
        except RunError:
            raise CheckpointError(
                f"{path}: no such checkpoint file, run directory or run id (see `ztb runs`)"
            ) from None
    if p.is_file():
        entry, state = load_checkpoint_file(p)
        return p, entry, state
    if p.is_dir():
        ckpt_dir = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        hook = on_invalid or (lambda e, why: log.warning("skipping checkpoint %s: %s", e.get("file"), why))
        found = load_latest_valid(ckpt_dir, on_invalid=hook)
        if found is None:
            raise CheckpointError(f"{p}: no valid checkpoint (see {ckpt_dir / 'manifest.json'})")
        entry, state = found
        return ckpt_dir / entry["file"], entry, state
    raise CheckpointError(f"{p}: no such checkpoint file or run directory")


def load_agent(path: str | Path) -> LoadedAgent:
    """Load the agent from a checkpoint file or the newest valid checkpoint of a run directory
    (and its Stage-1 encoder, when the run used one)."""
    file, entry, state = resolve_checkpoint(path)
    cfg = recorded_train_config(state["config"], f"checkpoint {file}")
    forecast = Forecast.from_state(state.get("forecast"))
    if (forecast is None) != (cfg.forecast.kind == "none"):
        raise CheckpointError(
            f"checkpoint {file}: its config says forecast.kind {cfg.forecast.kind} but it "
            f"{'has no' if forecast is None else 'has a'} fitted forecast"
        )
    encoder, raw_shapes = None, None
    embedding_dim = 0  # width of the embedding the policy computes itself (fine-tune mode only)
    if cfg.encoder.path:
        encoder = load_encoder_checked(cfg.encoder.path)
        check_encoder_fingerprint(cfg.encoder.path, state, f"checkpoint {file}")
        if finetune(cfg):
            raw_shapes = {tf: (int(encoder.lengths[tf]), IN_CHANNELS) for tf in encoder.timeframes}
            embedding_dim = encoder.embedding_dim
    vol_sizing, vol_absent = load_vol_sizing(state, f"checkpoint {file.name}")
    n_inputs = _n_features(cfg, state, embedding_dim)  # columns the policy sees per row
    n_features = n_inputs if forecast is None else forecast.n_inputs  # columns callers pass
    if forecast is not None and forecast.n_outputs != n_inputs:
        raise CheckpointError(
            f"checkpoint {file}: its forecast gives the policy {forecast.n_outputs} columns per row, "
            f"its policy reads {n_inputs}"
        )
    return LoadedAgent(
        policy=_build_policy(cfg, n_inputs, state, raw_shapes),
        normalizer=ObsNormalizer.from_state(state.get("vecnormalize")),
        train_config=cfg,
        checkpoint_path=file,
        step=int(state["num_timesteps"]),
        n_features=n_features,
        entry=entry,
        encoder=encoder,
        raw_shapes=raw_shapes,
        forecast=forecast,
        vol_sizing=vol_sizing,
        vol_sizing_absent=vol_absent,
    )
