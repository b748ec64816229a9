"""The exact optimal policy of a known-optimum market (`ztb_core.data.known_optimum`) for positions
-1/0/+1 under a proportional cost per unit of position changed, and the simple rules beside it.

The objective is the average net P&L per bar (the product's P&L: a position decided after bar t
earns bar t+1's return and pays `rate * |change|`). The state is (regime g, signal averages s,
position held p); s lives on a grid of `points` per component spanning the stationary
distribution, the return shock is integrated by Gauss-Hermite quadrature and the next state is
read off the grid by multilinear interpolation, so the expectation over next states is one sparse
matrix per regime pair. Relative value iteration on the average-reward Bellman equation

    h(g, s, p) + gain = max_p' [ p' mu(g, s) - rate |p' - p| + E h(g', s', p') ]

converges to the optimal gain (the grid model's, reported as `gain`) and the optimal action of
every state. `dp_positions` plays that policy on bars, from the state the bars show (nothing
hidden: see `observed_state`). `horizon_forecast` is the exact expected cumulative return over the
next h bars, the input of the band rules (h = 1: the one-bar forecast).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.polynomial.hermite_e import hermegauss

from ..data.known_optimum import KnownMarketSpec, simulate
from ..evaluation.errors import EvaluationError

#: the action set: the product's default discrete positions
POSITIONS = np.array([-1.0, 0.0, 1.0])


@dataclass(frozen=True)
class DPSolution:
    """The solved problem: `gain` per bar and the continuation value `w[g, i, a]` of holding
    POSITIONS[a] after a decision in regime g at grid point i (before costs and the next return)."""

    spec: KnownMarketSpec
    rate: float
    grid: tuple[np.ndarray, ...]  # per coordinate, increasing
    basis: np.ndarray  # (K, K): state s = basis @ y, the grid is over y
    w: np.ndarray  # (G, N, 3)
    mu: np.ndarray  # (G, N): expected next return at each grid point
    gain: float  # optimal average net P&L per bar on the grid model
    iterations: int

    def continuation(self, regime: np.ndarray, state: np.ndarray) -> np.ndarray:
        """w at arbitrary states (n,) x (n, K), interpolated: (n, 3)."""
        idx, wts = _interp(self.grid, np.asarray(state) @ np.linalg.inv(self.basis).T)
        out = np.zeros((len(regime), 3))
        for col in range(idx.shape[1]):
            out += wts[:, col : col + 1] * self.w[regime, idx[:, col]]
        return out


def _interp(grid: tuple[np.ndarray, ...], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat grid indices and weights (n, 2^K) of multilinear interpolation, clamped to the grid."""
    n, k = points.shape
    lo_idx, frac = [], []
    for d in range(k):
        g = grid[d]
        x = np.clip(points[:, d], g[0], g[-1])
        j = np.clip(np.searchsorted(g, x, side="right") - 1, 0, len(g) - 2)
        lo_idx.append(j)
        frac.append((x - g[j]) / (g[j + 1] - g[j]))
    sizes = [len(g) for g in grid]
    strides = np.cumprod([1, *sizes[::-1]])[:-1][::-1]  # C order
    idx = np.zeros((n, 2**k), dtype=np.int64)
    wts = np.ones((n, 2**k))
    for c, corner in enumerate(itertools.product((0, 1), repeat=k)):
        for d, bit in enumerate(corner):
            idx[:, c] += (lo_idx[d] + bit) * strides[d]
            wts[:, c] *= frac[d] if bit else 1.0 - frac[d]
    return idx, wts


def state_basis(spec: KnownMarketSpec) -> np.ndarray:
    """Coordinates the grid is laid in: with one regime, the transition matrix's eigenvectors
    (each coordinate then decays on its own, at its own half-life, and the two averages' strong
    correlation does not waste the grid); otherwise the averages themselves."""
    if spec.n_regimes > 1 or spec.n_components == 1:
        return np.eye(spec.n_components)
    vals, vecs = np.linalg.eig(spec.transition(0, 0)[0])
    return np.real(vecs[:, np.argsort(np.real(vals))])  # fast coordinate first


def state_grid(
    spec: KnownMarketSpec, basis: np.ndarray, cells_per_shock: float, seed: int = 12345, n: int = 400_000
) -> tuple[np.ndarray, ...]:
    """Per coordinate, points spanning a long simulated path's range (0.01 % .. 99.99 % quantiles,
    a little widened: the states the market visits), spaced `cells_per_shock` to the smallest
    one-bar shock of that coordinate. Coarser, and interpolating the next state on the grid adds
    spurious diffusion that the value function mistakes for opportunity."""
    coords = simulate(spec, n, seed).state @ np.linalg.inv(basis).T
    inv = np.linalg.inv(basis)
    shock = np.min(
        [np.abs(inv @ spec.transition(g, gn)[1]) for g in range(spec.n_regimes) for gn in range(spec.n_regimes)],
        axis=0,
    )
    out = []
    for d in range(spec.n_components):
        lo, hi = np.quantile(coords[:, d], [1e-4, 1.0 - 1e-4])
        half = 1.1 * max(abs(lo), abs(hi))
        points = (
            int(np.clip(np.ceil(2.0 * half / shock[d] * cells_per_shock), 41, MAX_POINTS)) | 1
        )  # odd: 0 on the grid
        out.append(np.linspace(-half, half, points))
    return tuple(out)


#: grid points per coordinate at most (two coordinates: up to ~MAX_POINTS^2 / 10 states in practice)
MAX_POINTS = 801


def solve(
    spec: KnownMarketSpec,
    rate: float,
    cells_per_shock: float = 2.0,
    quad_nodes: int = 15,
    tol: float = 1e-12,
    max_iter: int = 50_000,
) -> DPSolution:
    """Optimal policy by relative value iteration (see the module docstring); the grid spacing is
    a `cells_per_shock`-th of the one-bar shock of each coordinate (`state_grid`); `tol` is on the span of the value change per sweep,
    in return units (gain is ~1e-5 per bar, so 1e-12 is far below anything reported)."""
    if rate < 0:
        raise EvaluationError(f"dp_optimum: cost rate must be >= 0, got {rate}")
    basis = state_basis(spec)
    inv = np.linalg.inv(basis)
    grid = state_grid(spec, basis, cells_per_shock)
    mesh_y = np.stack([m.ravel() for m in np.meshgrid(*grid, indexing="ij")], axis=1)  # (N, K)
    mesh = mesh_y @ basis.T
    n_states, n_reg = len(mesh), spec.n_regimes
    nodes, weights = hermegauss(quad_nodes)
    weights = weights / weights.sum()
    # expectation operators: E[f(g', s') | g, s] = sum_g' switch[g, g'] (T[g][g'] f[g'])(s)
    ops: list[list[sp.csr_matrix]] = []
    for g in range(n_reg):
        row = []
        for g_next in range(n_reg):
            a, b = spec.transition(g, g_next)
            a_y, b_y = inv @ a @ basis, inv @ b
            nxt = (mesh_y @ a_y.T)[:, None, :] + nodes[None, :, None] * b_y[None, None, :]  # (N, Q, K)
            idx, wts = _interp(grid, nxt.reshape(-1, spec.n_components))
            wts = (wts.reshape(n_states, quad_nodes, -1) * weights[None, :, None]).reshape(n_states, -1)
            idx = idx.reshape(n_states, -1)
            rows = np.repeat(np.arange(n_states), idx.shape[1])
            row.append(sp.csr_matrix((wts.ravel(), (rows, idx.ravel())), shape=(n_states, n_states)))
        ops.append(row)
    mu = np.stack([mesh @ spec.beta[g] for g in range(n_reg)])  # (G, N)
    trade = rate * np.abs(POSITIONS[:, None] - POSITIONS[None, :])  # [held, new]
    h = np.zeros((n_reg, n_states, 3))
    w = np.zeros_like(h)
    gain = 0.0
    for it in range(1, max_iter + 1):
        w = np.stack([sum(spec.switch[g, gn] * (ops[g][gn] @ h[gn]) for gn in range(n_reg)) for g in range(n_reg)])
        # value of each (held, new) pair, then the best new position for each held one
        q = (POSITIONS[None, None, :] * mu[..., None] + w)[:, :, None, :] - trade[None, None]
        new_h = q.max(axis=3)
        diff = new_h - h
        gain = 0.5 * float(diff.max() + diff.min())
        h = (
            new_h - new_h[0, n_states // 2, 1]
        )  # odd grids: the middle point is s = 0  # relative to the flat, zero-signal state
        if float(diff.max() - diff.min()) < tol:
            return DPSolution(spec, rate, grid, basis, w, mu, gain, it)
    raise EvaluationError(f"dp_optimum: value iteration did not converge in {max_iter} sweeps ({spec.kind})")


def dp_positions(sol: DPSolution, regime: np.ndarray, state: np.ndarray, initial_position: float = 0.0) -> np.ndarray:
    """The optimal policy played on a path: the position decided after each bar from the state
    after it (regime (n,), averages (n, K)) and the position held."""
    w = sol.continuation(np.asarray(regime), np.asarray(state))
    mu = np.einsum("nk,nk->n", state, sol.spec.beta[regime])
    gross = POSITIONS[None, :] * mu[:, None] + w  # (n, 3)
    held = int(np.flatnonzero(POSITIONS == initial_position)[0])
    out = np.empty(len(mu))
    cost = sol.rate * np.abs(POSITIONS[:, None] - POSITIONS[None, :])
    # the choice depends on the position held, so the walk is sequential: three candidate values per bar
    for t, row in enumerate(gross.tolist()):
        c = cost[held]
        vals = [row[a] - c[a] for a in range(3)]
        best = max(range(3), key=lambda a: (vals[a], a == held))  # a tie keeps the position
        held = best
        out[t] = POSITIONS[best]
    return out


def horizon_forecast(spec: KnownMarketSpec, regime: np.ndarray, state: np.ndarray, horizon: int) -> np.ndarray:
    """E[r_{t+1} + ... + r_{t+horizon} | regime_t, state_t], exact: the expected state's
    regime-weighted recursion m_{g'}(j+1) = sum_g switch[g, g'] A(g, g') m_g(j)."""
    if horizon < 1:
        raise EvaluationError(f"horizon_forecast: horizon must be >= 1, got {horizon}")
    regime = np.asarray(regime)
    state = np.asarray(state, dtype=np.float64)
    n_reg = spec.n_regimes
    m = np.zeros((n_reg, len(state), spec.n_components))
    for g in range(n_reg):
        m[g, regime == g] = state[regime == g]
    total = np.zeros(len(state))
    for j in range(horizon):
        total += sum(m[g] @ spec.beta[g] for g in range(n_reg))
        if j + 1 < horizon:
            m = np.stack(
                [
                    sum(spec.switch[g, gn] * (m[g] @ spec.transition(g, gn)[0].T) for g in range(n_reg))
                    for gn in range(n_reg)
                ]
            )
    return total
