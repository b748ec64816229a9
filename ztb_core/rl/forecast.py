"""A supervised forecast of the next bar's return, the agent's input (`forecast.kind: ridge`, the
default; with `forecast.only: false` appended to its features).

PPO learns which way the market leans only through the advantages of its actions, and with a
signal that is a few percent of the variance of the returns those are almost all noise, while
least squares finds a linear forecast from the same features in closed form. Ridge regression of
the return a position earns after bar t (the `holding_returns` the baselines are fitted to) on bar
t's features, fitted once on the train split, gives the policy that forecast as one more column;
what is left for PPO is when a forecast is worth a trade's cost, given the position held. (Measured
in docs/rl-experiments.md, "A forecast column, and a longer market": beside the features, no better than the features alone.)
With `forecast.only` the policy sees the forecast column instead of the features, and with
training rewards that see a quarter of each trade's cost it learns a band on it ("PPO that learns a band");
on the 600,000-bar default market that is the default ("The forecast band becomes the default").

The fit sees the train split only, never the bars the agent is evaluated or traded on. Its
coefficients go into every checkpoint, so `ztb eval` on any period and `ztb live` compute the very
column the policy was trained on, from the plain features. The column is in units of the
forecast's spread on the train split; the train split's mean return (its drift) is left out,
since a drift over a few months is not a forecast.

The column is clipped to +-`clip`, the `forecast.clip_quantile` quantile of its absolute value on
the train split (stored with the coefficients, so eval and live clip at the same bound). Sunday
opens and news minutes put a few rows at 20-30 spreads; unclipped, a policy of the forecast alone
learned to trade on those outliers. `clipped_fraction` says how often the bound fires on any
bars (the train run records it for train and for each evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import CheckpointError, DataError
from ..evaluation.baselines import fit_ridge, holding_returns
from .config import ForecastConfig
from .market import MarketSlice

#: the name of the appended feature column
COLUMN = "forecast_ridge"


@dataclass(frozen=True)
class Forecast:
    """A fitted forecast: standardise the features, take the ridge combination, divide by its
    spread on the train split."""

    alpha: float
    mean: np.ndarray  # (F,) of the train split's features
    scale: np.ndarray  # (F,)
    coef: np.ndarray  # (F,) on standardised features
    spread: float  # standard deviation of the forecast on the train split
    train_rows: int
    only: bool = False  # the policy sees the forecast column instead of the features, not next to them
    clip: float | None = None  # |column| bound fitted on the train split (None: unclipped, older checkpoints)
    clip_quantile: float | None = None  # the train quantile of |column| the bound is
    train_clipped: float = 0.0  # fraction of train rows beyond the bound

    @property
    def n_inputs(self) -> int:
        """Feature columns the forecast is computed from (the plain features)."""
        return int(self.coef.size)

    def raw(self, features: np.ndarray) -> np.ndarray:
        """(T,) float64 forecast of each row in units of its train-split spread, before the clip."""
        x = np.asarray(features, dtype=np.float64)
        return ((x - self.mean) / self.scale) @ self.coef / self.spread

    def column(self, features: np.ndarray) -> np.ndarray:
        """(T,) float32 forecast of each row, in units of its train-split spread, clipped to +-clip."""
        z = self.raw(features)
        if self.clip is not None:
            z = np.clip(z, -self.clip, self.clip)
        return z.astype(np.float32)

    def clipped_fraction(self, features: np.ndarray) -> float:
        """Fraction of rows whose forecast lies beyond the bound (0 without one, or without rows)."""
        if self.clip is None or len(features) == 0:
            return 0.0
        return float(np.mean(np.abs(self.raw(features)) > self.clip))

    def clip_summary(self) -> dict[str, Any]:
        """The bound, the train quantile it is, and the fraction of train rows beyond it."""
        return {"bound": self.clip, "quantile": self.clip_quantile, "train_clipped": self.train_clipped}

    @property
    def n_outputs(self) -> int:
        """Columns the policy sees per row: the features and the forecast, or the forecast alone."""
        return 1 if self.only else self.n_inputs + 1

    def append(self, features: np.ndarray) -> np.ndarray:
        """The columns the policy sees: the features with the forecast as one more column (T, F + 1),
        or with `only` the forecast alone (T, 1)."""
        f = np.asarray(features, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != self.n_inputs:
            raise DataError(f"forecast: expected features (T, {self.n_inputs}), got {f.shape}")
        col = self.column(f)[:, None]
        return np.ascontiguousarray(col if self.only else np.concatenate([f, col], axis=1))

    def augment(self, market: MarketSlice) -> MarketSlice:
        """The slice the environment trains on: its features replaced by `append`'s columns."""
        names = [COLUMN] if self.only else [*market.feature_names, COLUMN]
        return replace(market, features=self.append(market.features), feature_names=names)

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores (plain lists: a checkpoint loads without pickled numpy)."""
        return {
            "kind": "ridge",
            "alpha": self.alpha,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "spread": self.spread,
            "train_rows": self.train_rows,
            "only": self.only,
            "clip": self.clip,
            "clip_quantile": self.clip_quantile,
            "train_clipped": self.train_clipped,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any] | None) -> Forecast | None:
        if st is None:
            return None
        try:
            f = cls(
                float(st["alpha"]),
                np.asarray(st["mean"], dtype=np.float64),
                np.asarray(st["scale"], dtype=np.float64),
                np.asarray(st["coef"], dtype=np.float64),
                float(st["spread"]),
                int(st["train_rows"]),
                bool(st.get("only", False)),  # absent in checkpoints from before the option
                # absent in checkpoints from before the clip: their policies saw the column unclipped
                None if st.get("clip") is None else float(st["clip"]),
                None if st.get("clip_quantile") is None else float(st["clip_quantile"]),
                float(st.get("train_clipped", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint forecast state is unreadable: {exc!r}") from None
        if not (f.mean.shape == f.scale.shape == f.coef.shape) or f.coef.ndim != 1 or not f.spread > 0:
            raise CheckpointError("checkpoint forecast state is inconsistent (shapes or spread)")
        if f.clip is not None and not f.clip > 0:
            raise CheckpointError(f"checkpoint forecast state: clip bound {f.clip} is not positive")
        return f


def fit_forecast(cfg: ForecastConfig, train: MarketSlice) -> Forecast | None:
    """Fit the configured forecast on the train split (None for `kind: none`)."""
    if cfg.kind == "none":
        return None
    if len(train) <= train.features.shape[1] + 1:
        raise DataError(
            f"forecast.kind ridge: the train split has {len(train)} rows, too few to fit "
            f"{train.features.shape[1]} features (use more data or forecast.kind none)"
        )
    mean, scale, coef, _ = fit_ridge(train.features, holding_returns(train.open, train.close), cfg.alpha)
    raw = ((np.asarray(train.features, dtype=np.float64) - mean) / scale) @ coef
    spread = float(raw.std())
    if not spread > 0:
        raise DataError(
            "forecast.kind ridge: the forecast is constant on the train split (nothing in the features "
            "predicts the returns); use forecast.kind none"
        )
    z = np.abs(raw / spread)
    if cfg.clip_quantile is None:
        return Forecast(cfg.alpha, mean, scale, coef, spread, len(train), cfg.only)
    clip = float(np.quantile(z, cfg.clip_quantile))
    return Forecast(
        cfg.alpha, mean, scale, coef, spread, len(train), cfg.only, clip, cfg.clip_quantile, float(np.mean(z > clip))
    )
