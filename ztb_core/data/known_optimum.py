"""Synthetic markets whose optimal trading policy is known exactly (`ztb_core.rl.dp_optimum`).

Each market is a small Markov model in which everything a trader needs is visible in the bars:

* returns: `r_{t+1} = beta_{g_t} . s_t + sigma_{g_{t+1}} * eps_{t+1}`, `eps` standard normal, where
  `r` is the bar's simple return `close / open - 1` (exactly: the prices are built from it, and
  each bar opens at the previous close, so there are no gaps, also over FX weekends);
* signal state `s_t` (one or two components): exponentially weighted averages of the market's own
  past returns, `s_{t+1} = lam_{g_{t+1}} * s_t + (1 - lam_{g_{t+1}}) * r_{t+1}` (componentwise), so
  the expected next return is a linear function of past returns: momentum a trader can compute
  from the bars alone, with no hidden part;
* regime `g_t` (one or two states, Markov with `switch[g, g']` per bar): sets the return
  volatility and the averages' decay. It shows in every bar's high/low: the wicks are a fixed
  `WICK` times the regime's volatility beyond open/close, so the last bar reveals it.

So the state `(g_t, s_t)` is a function of the bars up to t (`observed_state`), the optimum for
positions -1/0/+1 under proportional costs is computed by dynamic programming over that state and
the position held, and a policy that sees only the bars can reach it. Three kinds:

* `known_ar1`: one component, one regime: the signal is an AR(1) (10-bar half-life, 4 % of the
  return variance); the optimum is a no-trade band on the one-bar forecast (the sanity case);
* `known_two_speed`: a fast reversal (half-life 5 bars) and a slow momentum (200 bars); the slow
  one is small per bar but lasts, so the value of a position depends on which component the
  forecast comes from and a band on the one-bar forecast is far below the optimum;
* `known_regime`: a calm regime (slow momentum) and a volatile one (fast, stronger momentum), so
  the optimal band on the forecast is narrower in one regime than in the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import fsolve
from scipy.signal import lfilter

from ..errors import DataError
from .schema import utc_index

KnownKind = Literal["known_ar1", "known_two_speed", "known_regime"]
KNOWN_KINDS: tuple[str, ...] = ("known_ar1", "known_two_speed", "known_regime")

#: each wick is this many times the regime's volatility beyond max/min(open, close): the regime's tell
WICK = 0.5
#: the bars' average volatility, USD/JPY's 1-minute figure (the default market's `bar_vol`)
BAR_VOL = 2.2e-4


@dataclass(frozen=True)
class KnownMarketSpec:
    """The model's parameters (see the module docstring); G regimes, K signal components."""

    kind: str
    lam: np.ndarray  # (G, K): decay of each average in each regime
    beta: np.ndarray  # (G, K): expected next return per unit of each average, by the current regime
    sigma: np.ndarray  # (G,): return volatility in each regime
    switch: np.ndarray  # (G, G): regime transition probabilities per bar (rows sum to 1)

    @property
    def n_regimes(self) -> int:
        return int(self.sigma.size)

    @property
    def n_components(self) -> int:
        return int(self.lam.shape[1])

    def transition(self, g: int, g_next: int) -> tuple[np.ndarray, np.ndarray]:
        """`(A, b)` with `s_{t+1} = A s_t + b eps_{t+1}` given the regimes at t and t+1."""
        lam, beta = self.lam[g_next], self.beta[g]
        a = np.diag(lam) + np.outer(1.0 - lam, beta)
        return a, (1.0 - lam) * self.sigma[g_next]


def _one_speed(half_life: float, fraction: float) -> tuple[float, float]:
    """`(lam, beta)` of a single average whose signal has this half-life and carries this fraction
    of the return variance: persistence rho = lam + (1 - lam) beta, and the signal's share of the
    variance f solves (rho - lam)^2 / (1 - rho^2) = f / (1 - f)."""
    rho = 0.5 ** (1.0 / half_life)
    gap = math.sqrt(fraction / (1.0 - fraction) * (1.0 - rho * rho))
    lam = rho - gap
    return lam, gap / (1.0 - lam)


def _decays_for_half_lives(beta: np.ndarray, half_lives: np.ndarray) -> np.ndarray:
    """Decays lam of two averages with loadings beta such that the state's transition matrix
    diag(lam) + (1 - lam) beta^T has eigenvalues 0.5^(1 / half_life)."""
    target = np.sort(0.5 ** (1.0 / half_lives))

    def gap(lam: np.ndarray) -> np.ndarray:
        a = np.diag(lam) + np.outer(1.0 - lam, beta)
        return np.sort(np.linalg.eigvals(a).real) - target

    lam, _, ok, msg = fsolve(gap, target - 0.01, full_output=True)
    if ok != 1 or np.abs(gap(lam)).max() > 1e-9:
        raise DataError(f"known_two_speed: no decays give half-lives {half_lives.tolist()}: {msg}")
    return np.asarray(lam)


def market_spec(kind: str) -> KnownMarketSpec:
    """The parameters of a known-optimum market kind."""
    if kind == "known_ar1":
        lam, beta = _one_speed(10.0, 0.04)
        return KnownMarketSpec(kind, np.array([[lam]]), np.array([[beta]]), np.array([BAR_VOL]), np.ones((1, 1)))
    if kind == "known_two_speed":
        # a fast reversal (5-bar half-life; loading as for a lone signal with 2 % of the variance,
        # sign flipped: a bounce) and a slow momentum (200 bars, 3 %: per bar weaker, but it lasts
        # 40 times longer). The one-bar forecast is mostly the reversal, which does not pay its
        # costs; the money is in the momentum. (At 0.2 % the optimum's Sharpe was ~7, too weak to
        # score on a test split of 45,000-90,000 bars, where one Sharpe's SE is 2-3.) Both averages feed on the same returns, so their
        # decays are set for the joint dynamics to have exactly the half-lives 5 and 200 (the
        # eigenvalues of the transition matrix)
        _, beta2 = _one_speed(200.0, 0.03)
        beta1 = -_one_speed(5.0, 0.02)[1]
        decays = _decays_for_half_lives(np.array([beta1, beta2]), np.array([5.0, 200.0]))
        return KnownMarketSpec(kind, decays[None, :], np.array([[beta1, beta2]]), np.array([BAR_VOL]), np.ones((1, 1)))
    if kind == "known_regime":
        # calm (3/4 of the time): low volatility, slow weak momentum; volatile: twice the
        # volatility, fast strong momentum. Regimes last ~1,500 and ~500 bars on average
        lam_c, beta_c = _one_speed(40.0, 0.01)
        lam_v, beta_v = _one_speed(4.0, 0.08)
        sigma = np.array([0.8, 1.6]) * BAR_VOL
        p_cv, p_vc = 1.0 / 1500.0, 1.0 / 500.0
        return KnownMarketSpec(
            kind,
            np.array([[lam_c], [lam_v]]),
            np.array([[beta_c], [beta_v]]),
            sigma,
            np.array([[1.0 - p_cv, p_cv], [p_vc, 1.0 - p_vc]]),
        )
    raise DataError(f"unknown known-optimum market kind {kind!r}; expected one of {', '.join(KNOWN_KINDS)}")


@dataclass(frozen=True)
class KnownPath:
    """A simulated path: bar t's return `ret[t]`, regime `regime[t]` and state `state[t]` (after bar t)."""

    ret: np.ndarray
    regime: np.ndarray
    state: np.ndarray  # (n, K)


def simulate(spec: KnownMarketSpec, n: int, seed: int) -> KnownPath:
    """n bars of the model, deterministic per seed (the state starts at zero in the calmest regime
    and the first 1,000 steps are burnt so the path starts near the stationary distribution)."""
    rng = np.random.default_rng([seed, 27])
    burn = 1000
    total = n + burn
    eps = rng.standard_normal(total)
    u = rng.random(total)
    # the regime chain does not depend on the returns: draw it first
    reg = np.zeros(total, dtype=np.int64)
    if spec.n_regimes > 1:
        cum = np.cumsum(spec.switch, axis=1).tolist()
        g = 0
        for t, draw in enumerate(u.tolist()):
            row = cum[g]
            g = next((j for j, c in enumerate(row) if draw < c), len(row) - 1)
            reg[t] = g
    sig = spec.sigma[reg] * eps
    lam, beta = spec.lam.tolist(), spec.beta.tolist()
    k = spec.n_components
    ret = np.empty(total)
    st = np.empty((total, k))
    s = [0.0] * k
    g = 0
    # a Python loop over floats: the recursion couples the components through the return and
    # switches regime, so it is not one linear filter; about 1 s per million bars
    for t, (g_next, noise) in enumerate(zip(reg.tolist(), sig.tolist(), strict=True)):
        r = sum(b * x for b, x in zip(beta[g], s, strict=True)) + noise
        lam_g = lam[g_next]
        s = [lam_g[i] * s[i] + (1.0 - lam_g[i]) * r for i in range(k)]
        ret[t] = r
        st[t] = s
        g = g_next
    return KnownPath(ret[burn:], reg[burn:], st[burn:])


def known_market_bars(
    kind: str, seed: int, times_ns: np.ndarray, base_price: float, with_crypto_columns: bool
) -> pd.DataFrame:
    """M1 bars (canonical schema) of a known-optimum market at the given open times."""
    spec = market_spec(kind)
    n = len(times_ns)
    path = simulate(spec, n, seed)
    close = base_price * np.cumprod(1.0 + path.ret)
    open_ = np.empty(n)
    open_[0] = base_price
    open_[1:] = close[:-1]
    wick = WICK * spec.sigma[path.regime]
    high = np.maximum(open_, close) * (1.0 + wick)
    low = np.minimum(open_, close) * (1.0 - wick)
    data = {"open": open_, "high": high, "low": low, "close": close, "volume": np.zeros(n)}
    if with_crypto_columns:
        data["volume"] = spec.sigma[path.regime] / BAR_VOL
        data["trades"] = np.ones(n)
    return pd.DataFrame(data, index=utc_index(times_ns))


def observed_state(spec: KnownMarketSpec, open_: np.ndarray, high: np.ndarray, close: np.ndarray) -> KnownPath:
    """The model's state after each bar, recomputed from the bars alone: the regime from the wick
    width, the averages from the bars' returns (started at zero at the first bar, so the first few
    hundred bars of a slow average are still warming up)."""
    open_ = np.asarray(open_, dtype=np.float64)
    close = np.asarray(close, dtype=np.float64)
    ret = close / open_ - 1.0
    wick = np.asarray(high, dtype=np.float64) / np.maximum(open_, close) - 1.0
    # nearest regime volatility to the wick's tell
    regime = np.argmin(np.abs(wick[:, None] / WICK - spec.sigma[None, :]), axis=1)
    st = np.empty((len(ret), spec.n_components))
    for i in range(spec.n_components):
        lam = spec.lam[:, i]
        if spec.n_regimes == 1:
            st[:, i] = lfilter([1.0 - lam[0]], [1.0, -lam[0]], ret)
            continue
        lam_t = lam[regime].tolist()
        x, out = 0.0, st[:, i]
        for t, (a, r) in enumerate(zip(lam_t, ret.tolist(), strict=True)):
            x = a * x + (1.0 - a) * r
            out[t] = x
    return KnownPath(ret, regime, st)
