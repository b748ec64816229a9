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

`forecast.horizons` adds a column per longer horizon h: the same ridge on the same features, fitted
to the summed return of the next h bars. One forecast of the next bar cannot tell a fast component
of the signal that reverses within a few bars (and does not pay its costs) from a slow one that
lasts hundreds; a horizon column carries the slow one (docs/known-optimum.md, `known_two_speed`).

`forecast.vol_horizons` adds a column per horizon h for the *size* of what comes: the same ridge
fitted to the log realised variance (mean squared bar return) of the next h bars, centred on its
train mean. A return forecast says which way; where the best no-trade band is wider in a volatile
regime than in a calm one, the policy also needs to know which regime it is in
(docs/known-optimum.md, `known_regime`).
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
class HorizonForecast:
    """One more column: the forecast of the summed return of the next `bars` bars, on the same
    standardised features, in units of its own train-split spread, clipped at its own bound."""

    bars: int
    coef: np.ndarray  # (F,) on standardised features
    spread: float
    clip: float | None = None
    target: str = "return"  # return: the summed return of the next `bars` bars | log_var: their log realised variance

    @property
    def name(self) -> str:
        return f"{COLUMN}_h{self.bars}" if self.target == "return" else f"{COLUMN}_logvar_h{self.bars}"

    def state(self) -> dict[str, Any]:
        return {
            "bars": self.bars,
            "coef": self.coef.tolist(),
            "spread": self.spread,
            "clip": self.clip,
            "target": self.target,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> HorizonForecast:
        target = str(st.get("target", "return"))  # absent in checkpoints from before volatility columns
        if target not in ("return", "log_var"):
            raise ValueError(f"unknown horizon target {target!r}")
        return cls(
            int(st["bars"]),
            np.asarray(st["coef"], dtype=np.float64),
            float(st["spread"]),
            None if st.get("clip") is None else float(st["clip"]),
            target,
        )


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
    horizons: tuple[HorizonForecast, ...] = ()  # longer horizons' columns, after the one-bar column

    @property
    def n_inputs(self) -> int:
        """Feature columns the forecast is computed from (the plain features)."""
        return int(self.coef.size)

    def raw(self, features: np.ndarray) -> np.ndarray:
        """(T,) float64 one-bar forecast of each row in units of its train-split spread, before the clip."""
        return self._raw_all(features)[:, 0]

    def _raw_all(self, features: np.ndarray) -> np.ndarray:
        """(T, 1 + len(horizons)) float64: every column before its clip."""
        xs = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        coef = np.stack([self.coef, *(h.coef for h in self.horizons)], axis=1)
        spread = np.array([self.spread, *(h.spread for h in self.horizons)])
        return xs @ coef / spread

    def _bounds(self) -> np.ndarray:
        """(1 + len(horizons),) |column| bounds, inf where a column is unclipped."""
        return np.array([np.inf if c is None else c for c in (self.clip, *(h.clip for h in self.horizons))])

    def column(self, features: np.ndarray) -> np.ndarray:
        """(T,) float32 one-bar forecast of each row, in units of its train-split spread, clipped to +-clip."""
        return self.columns(features)[:, 0]

    def columns(self, features: np.ndarray) -> np.ndarray:
        """(T, 1 + len(horizons)) float32: the one-bar column, then one per longer horizon, each clipped."""
        b = self._bounds()
        return np.clip(self._raw_all(features), -b, b).astype(np.float32)

    @property
    def names(self) -> list[str]:
        """The columns' names: `COLUMN`, then `COLUMN_h<bars>` per longer horizon and
        `COLUMN_logvar_h<bars>` per volatility horizon."""
        return [COLUMN, *(h.name for h in self.horizons)]

    def clipped_fraction(self, features: np.ndarray) -> float:
        """Fraction of forecast values (rows x columns) beyond their bound (0 without bounds or rows)."""
        if self.clip is None or len(features) == 0:
            return 0.0
        return float(np.mean(np.abs(self._raw_all(features)) > self._bounds()))

    def clip_summary(self) -> dict[str, Any]:
        """The bound, the train quantile it is, and the fraction of train rows beyond it."""
        return {"bound": self.clip, "quantile": self.clip_quantile, "train_clipped": self.train_clipped}

    @property
    def n_outputs(self) -> int:
        """Columns the policy sees per row: the features and the forecast columns, or those alone."""
        n = 1 + len(self.horizons)
        return n if self.only else self.n_inputs + n

    def append(self, features: np.ndarray) -> np.ndarray:
        """The columns the policy sees: the features with the forecast columns after them
        (T, F + 1 + len(horizons)), or with `only` the forecast columns alone."""
        f = np.asarray(features, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != self.n_inputs:
            raise DataError(f"forecast: expected features (T, {self.n_inputs}), got {f.shape}")
        cols = self.columns(f)
        return np.ascontiguousarray(cols if self.only else np.concatenate([f, cols], axis=1))

    def augment(self, market: MarketSlice) -> MarketSlice:
        """The slice the environment trains on: its features replaced by `append`'s columns."""
        names = self.names if self.only else [*market.feature_names, *self.names]
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
            "horizons": [h.state() for h in self.horizons],
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
                # absent in checkpoints from before horizon columns: the one-bar column alone
                tuple(HorizonForecast.from_state(h) for h in st.get("horizons") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint forecast state is unreadable: {exc!r}") from None
        if not (f.mean.shape == f.scale.shape == f.coef.shape) or f.coef.ndim != 1 or not f.spread > 0:
            raise CheckpointError("checkpoint forecast state is inconsistent (shapes or spread)")
        if f.clip is not None and not f.clip > 0:
            raise CheckpointError(f"checkpoint forecast state: clip bound {f.clip} is not positive")
        for h in f.horizons:
            if (
                h.coef.shape != f.coef.shape
                or not h.spread > 0
                or h.bars < 2
                or (h.clip is not None and not h.clip > 0)
            ):
                raise CheckpointError(f"checkpoint forecast state: the {h.bars}-bar column is inconsistent")
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
    one_bar = holding_returns(train.open, train.close)
    mean, scale, coef, _ = fit_ridge(train.features, one_bar, cfg.alpha)
    xs = (np.asarray(train.features, dtype=np.float64) - mean) / scale
    spread, clip, train_clipped = _scale_and_bound(xs @ coef, cfg, "the next bar's return")
    horizons = []
    for bars in cfg.horizons:
        # every horizon is fitted on the rows the one-bar fit used (same mean and scale); the
        # last rows' sums run to the end of the split
        _, _, h_coef, _ = fit_ridge(train.features, forward_sum(one_bar, bars), cfg.alpha)
        h_spread, h_clip, _ = _scale_and_bound(xs @ h_coef, cfg, f"the next {bars} bars' return")
        horizons.append(HorizonForecast(bars, h_coef, h_spread, h_clip))
    for bars in cfg.vol_horizons:
        _, _, v_coef, _ = fit_ridge(train.features, forward_log_variance(one_bar, bars), cfg.alpha)
        v_spread, v_clip, _ = _scale_and_bound(xs @ v_coef, cfg, f"the next {bars} bars' log variance")
        horizons.append(HorizonForecast(bars, v_coef, v_spread, v_clip, "log_var"))
    return Forecast(
        cfg.alpha,
        mean,
        scale,
        coef,
        spread,
        len(train),
        cfg.only,
        clip,
        cfg.clip_quantile if clip is not None else None,
        train_clipped,
        tuple(horizons),
    )


def forward_sum(returns: np.ndarray, bars: int) -> np.ndarray:
    """(n,) sum of `returns[t : t + bars]` (fewer at the end), NaN where `returns[t]` is NaN."""
    r = np.asarray(returns, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(np.nan_to_num(r))])
    end = np.minimum(np.arange(r.size) + bars, r.size)
    out = c[end] - c[: r.size]
    out[~np.isfinite(r)] = np.nan
    return out


def forward_log_variance(returns: np.ndarray, bars: int) -> np.ndarray:
    """(n,) log of the mean squared return of `returns[t : t + bars]` (fewer at the end), floored
    at 1e-20 (a run of unchanged prices), NaN where `returns[t]` is NaN."""
    r = np.asarray(returns, dtype=np.float64)
    n = np.minimum(np.arange(r.size) + bars, r.size) - np.arange(r.size)
    return np.log(np.maximum(forward_sum(r * r, bars) / n, 1e-20))


def _scale_and_bound(raw: np.ndarray, cfg: ForecastConfig, what: str) -> tuple[float, float | None, float]:
    """(spread, clip bound in spreads or None, fraction of train rows beyond it) of a fitted column."""
    spread = float(raw.std())
    if not spread > 0:
        raise DataError(
            f"forecast.kind ridge: the forecast of {what} is constant on the train split (nothing in the "
            "features predicts it); use forecast.kind none"
        )
    if cfg.clip_quantile is None:
        return spread, None, 0.0
    z = np.abs(raw / spread)
    clip = float(np.quantile(z, cfg.clip_quantile))
    return spread, clip, float(np.mean(z > clip))
