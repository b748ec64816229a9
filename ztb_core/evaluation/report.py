"""`evaluate_positions`: the full honest-evaluation report of one position series, and
`quick_evaluation`, the cheap version training calls every few thousand steps."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..config import config_to_dict
from ..pnl import bar_returns, position_returns
from ..trading_costs import CostConfig
from .backtest import BacktestResult, backtest
from .baselines import buy_and_hold, flat, random_policy, sma_crossover
from .bootstrap import bootstrap_statistics, percentile_interval, point_statistics
from .calendar import bars_for_days, periods_per_year
from .config import EvalConfig
from .costs import cost_sensitivity
from .errors import EvaluationError
from .metrics import drawdown_series, performance_metrics, sharpe_per_period
from .montecarlo import monte_carlo_risk
from .robustness import bar_times, per_period, start_offset_sensitivity, start_offsets
from .sharpe_stats import sharpe_inference
from .validation import check_positions, check_prices, check_returns
from .verdict import strongest_baseline, verdict

SCHEMA_VERSION = 1
#: fewer bars than this make every interval and tail estimate meaningless
MIN_BARS = 30

#: progress hook: (stage description, stages done, stages total)
Progress = Callable[[str, int, int], None]

_STAGES = (
    "backtest",
    "baselines",
    "random policies",
    "bootstrap",
    "Monte Carlo",
    "cost sensitivity",
    "robustness",
    "curves",
)

_BASELINE_KEYS = (
    "total_return",
    "annualised_return",
    "annualised_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "turnover",
    "trades",
    "fees_paid",
)


def _histogram(values: np.ndarray, bins: int, clip_quantile: float = 0.001) -> dict:
    """Histogram with the extreme tails folded into the end bins (so one spike does not
    flatten the picture); says how many values were folded."""
    lo, hi = (
        np.quantile(values, [clip_quantile, 1.0 - clip_quantile]) if values.size > 20 else (values.min(), values.max())
    )
    if hi <= lo:
        lo, hi = lo - 1e-12, hi + 1e-12
    counts, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(int).tolist(),
        "folded": int(np.count_nonzero((values < lo) | (values > hi))),
    }


def _curves(equity: np.ndarray, benchmark: np.ndarray, times, points: int, ridge: np.ndarray | None = None) -> dict:
    """Equity and drawdown downsampled to at most `points` buckets: last equity and the
    deepest drawdown of each bucket (so the worst drawdown survives the downsampling). Beside the
    agent: buy-and-hold and, when the report has it, the ridge baseline (the strongest most often),
    on the same bars and costs."""
    dd = np.concatenate(([0.0], drawdown_series(equity[1:] / equity[:-1] - 1.0)))
    n = equity.size
    edges = np.unique(np.linspace(0, n, min(points, n) + 1).astype(int))
    starts, last = edges[:-1], edges[1:] - 1
    out = {
        "bar": last.tolist(),
        "equity": equity[last].tolist(),
        "drawdown": np.minimum.reduceat(dd, starts).tolist(),
        "benchmark_equity": benchmark[last].tolist(),
        "ridge_equity": None if ridge is None else ridge[last].tolist(),
        "time": None if times is None else [t.isoformat() for t in times[last]],
    }
    return out


def _diff(agent: np.ndarray, other: np.ndarray | float, est: float, confidence: float) -> dict:
    lo, hi = percentile_interval(agent - other, confidence)
    return {"estimate": float(est), "low": lo, "high": hi}


def _summary(values: np.ndarray) -> dict:
    p05, p50, p95 = np.quantile(values, [0.05, 0.5, 0.95])
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)),
        "p05": float(p05),
        "median": float(p50),
        "p95": float(p95),
    }


def evaluate_positions(
    positions: object,
    open: object,  # noqa: A002 - the contract's name; the builtin is not needed here
    close: object,
    index: object | None,
    costs: CostConfig,
    timeframe: str,
    market: str,
    config: EvalConfig | None = None,
    n_trials: int | None = None,
    trial_sharpes: Sequence[float] | None = None,
    episode_positions: Sequence[tuple[int, np.ndarray]] | None = None,
    meta: dict | None = None,
    progress: Progress | None = None,
    extra_baselines: dict[str, tuple[np.ndarray, dict]] | None = None,
    trials_source: str | None = None,
) -> dict:
    """Full evaluation of `positions` (one target per bar, decided after its close) on the bars.

    `n_trials` (default: config) and `trial_sharpes` (per-period Sharpes of every variant tried)
    feed the DSR. `episode_positions` are (start offset, positions for bars[offset:]) from
    re-running the policy at later starts; without them the main decisions are trimmed to each
    offset (measuring start-date sensitivity only). `meta` (model, symbol, split, ...) is copied
    into the report. Returns a JSON-ready dict that validates against the report schema.
    """
    cfg = config or EvalConfig()
    o, c = check_prices(open, close)
    pos = check_positions(positions, o.size)
    if o.size < MIN_BARS:
        raise EvaluationError(
            f"a full evaluation needs at least {MIN_BARS} bars, got {o.size}; "
            "use a longer split (quick_evaluation works on fewer)"
        )
    bars = _Bars(
        o, c, costs, periods_per_year(timeframe, market), bar_times(index, o.size) if index is not None else None
    )
    done = 0

    def step(stage: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(stage, done, len(_STAGES))

    bt = backtest(pos, o, c, costs)
    check_returns(bt.returns, name="agent returns")  # constant returns: a clear error, not NaN
    metrics = _agent_metrics(bt, pos, bars)
    inference = _inference(bt.returns, bars.ppy, cfg, n_trials, trial_sharpes, trials_source)
    step("backtest")

    # further baselines computed by the caller, which holds what they need (ridge: the train split)
    extra = {k: (check_positions(p, o.size), params) for k, (p, params) in (extra_baselines or {}).items()}
    base_bt = _baseline_backtests(bars, cfg, {k: p for k, (p, _) in extra.items()})
    step("baselines")

    rand_sharpe, rand_total, switch = _random_policies(bars, cfg, metrics["position_changes"], bt.returns.size)
    step("random policies")

    boot, block, point = _joint_bootstrap(bt, base_bt, bars.ppy, cfg)
    baselines = _baseline_sections(base_bt, boot, point, bars.ppy, cfg, extra)
    baselines["random"] = _random_section(rand_sharpe, rand_total, switch, boot, point, cfg)
    bootstrap = _bootstrap_section(boot, block, metrics, cfg)
    step("bootstrap")

    mc = _monte_carlo(bt.returns, block, cfg, timeframe, market)
    step("Monte Carlo")

    cs_cfg = cfg.cost_sensitivity
    sensitivity = cost_sensitivity(
        bt, costs, bars.ppy, cs_cfg.fee_bps_grid, cs_cfg.slippage_bps_grid, cs_cfg.curve_points
    )
    step("cost sensitivity")

    robustness = _robustness(bt.returns, pos, bars, cfg, episode_positions)
    step("robustness")

    ridge = base_bt["ridge"].equity if "ridge" in base_bt else None
    curves = _curves(bt.equity, base_bt["buy_and_hold"].equity, bars.times, cfg.report.curve_points, ridge)
    report = {
        "schema_version": SCHEMA_VERSION,
        "kind": "eval_report",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "meta": _meta(meta, bars, cfg, timeframe, market),
        "metrics": metrics,
        "sharpe_inference": inference,
        "bootstrap": bootstrap,
        "monte_carlo": mc,
        "baselines": baselines,
        "cost_sensitivity": sensitivity,
        "robustness": robustness,
        "curves": curves,
        "return_histogram": _histogram(bt.returns, cfg.report.histogram_bins),
    }
    report["verdict"] = verdict(report)
    step("curves")
    return report


@dataclass(frozen=True)
class _Bars:
    """The evaluated bars and what every section scores them with."""

    open: np.ndarray
    close: np.ndarray
    costs: CostConfig
    ppy: float  # bars a year
    times: Any  # bar open times (DatetimeIndex) or None

    @property
    def n(self) -> int:
        return int(self.open.size)


def _agent_metrics(bt: BacktestResult, pos: np.ndarray, bars: _Bars) -> dict:
    metrics = performance_metrics(bt.returns, bars.ppy, positions=pos, costs_paid=bt.costs, trade_returns=bt.trade_pnl)
    if bars.times is not None:
        metrics["max_drawdown_duration_days"] = _dd_duration_days(bt.returns, bars.times)
    return metrics


def _inference(
    returns: np.ndarray,
    ppy: float,
    cfg: EvalConfig,
    n_trials: int | None,
    trial_sharpes: Sequence[float] | None,
    trials_source: str | None,
) -> dict:
    """PSR and DSR of the agent's returns, deflated for the trials tried."""
    var_pp = None if cfg.sharpe.trial_sharpe_variance is None else cfg.sharpe.trial_sharpe_variance / ppy
    inference = sharpe_inference(
        returns,
        n_trials=cfg.sharpe.n_trials if n_trials is None else int(n_trials),
        trial_sharpes=trial_sharpes,
        var_trial_sharpe=var_pp,
        benchmark=cfg.sharpe.psr_benchmark_sharpe / math.sqrt(ppy),
    )
    inference["expected_max_sharpe_annualised"] = inference["expected_max_sharpe_per_period"] * math.sqrt(ppy)
    inference["psr_benchmark_sharpe"] = cfg.sharpe.psr_benchmark_sharpe
    # where the trial count came from: the run's trial registry, --n-trials, or the config
    inference["n_trials_source"] = trials_source or ("argument" if n_trials is not None else "config")
    return inference


def _baseline_backtests(bars: _Bars, cfg: EvalConfig, extra: dict[str, np.ndarray]) -> dict[str, BacktestResult]:
    """The deterministic baselines (and the caller's, e.g. ridge) on the same bars and costs."""
    bl = cfg.baselines
    base_pos = {
        "buy_and_hold": buy_and_hold(bars.n),
        "sma_crossover": sma_crossover(bars.close, bl.sma_fast, bl.sma_slow, bl.sma_allow_short),
        "flat": flat(bars.n),
    }
    base_pos.update(extra)
    return {k: backtest(p, bars.open, bars.close, bars.costs) for k, p in base_pos.items()}


def _random_policies(
    bars: _Bars, cfg: EvalConfig, position_changes: int, n_returns: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """(Sharpe per seed, total return per seed, switch probability) of random policies with the
    agent's turnover: a distribution over seeds."""
    bl = cfg.baselines
    switch = bl.random_switch_prob
    if switch is None:
        # a redraw lands on the level already held 1/L of the time: scale up so the random
        # policies change position as often as the agent does (same turnover, same costs)
        n_levels = len(set(bl.random_levels))
        rate = max(position_changes, 1) / n_returns
        switch = min(1.0, rate * n_levels / max(n_levels - 1, 1))
    rets = bar_returns(bars.open, bars.close)
    rand_seeds = [cfg.seed * 100_003 + s for s in range(bl.random_seeds)]
    rand_sharpe, rand_total = np.empty(len(rand_seeds)), np.empty(len(rand_seeds))
    for i, s in enumerate(rand_seeds):
        rp = random_policy(bars.n, [s], switch_prob=switch, levels=bl.random_levels)[0]
        rr, _ = position_returns(rp, rets, bars.costs.rate)
        st = point_statistics(rr, bars.ppy, ("sharpe", "total_return"))
        rand_sharpe[i], rand_total[i] = st["sharpe"][0], st["total_return"][0]
    return rand_sharpe, rand_total, float(switch)


def _resampled(base_bt: dict[str, BacktestResult]) -> list[str]:
    # the flat baseline earns exactly nothing on every resample: no need to resample it
    return [k for k in base_bt if k != "flat"]


def _joint_bootstrap(
    bt: BacktestResult, base_bt: dict[str, BacktestResult], ppy: float, cfg: EvalConfig
) -> tuple[dict, float, dict]:
    """One joint block bootstrap: agent (column 0) and baselines on the same resampled bars.
    Returns (resampled statistics, block length, point statistics)."""
    matrix = np.column_stack([bt.returns] + [base_bt[k].returns for k in _resampled(base_bt)])
    boot, block = bootstrap_statistics(
        matrix,
        ppy,
        cfg.bootstrap.n_resamples,
        cfg.bootstrap.block_length,
        cfg.bootstrap.method,
        cfg.seed,
        drawdown_columns=[0],
    )
    return boot, block, point_statistics(matrix, ppy, ("sharpe", "total_return"))


def _baseline_sections(
    base_bt: dict[str, BacktestResult],
    boot: dict,
    point: dict,
    ppy: float,
    cfg: EvalConfig,
    extra: dict[str, tuple[np.ndarray, dict]],
) -> dict:
    """Each deterministic baseline's metrics and the agent-minus-baseline intervals (paired)."""
    conf, bl = cfg.bootstrap.confidence, cfg.baselines
    base_metrics = {
        k: performance_metrics(b.returns, ppy, positions=b.positions, costs_paid=b.costs, allow_constant=True)
        for k, b in base_bt.items()
    }
    agent_sharpe = boot["sharpe"][:, 0]
    baselines: dict = {}
    for j, k in enumerate(_resampled(base_bt), start=1):
        baselines[k] = {
            "metrics": {key: base_metrics[k].get(key) for key in _BASELINE_KEYS},
            "difference": {
                "sharpe": _diff(agent_sharpe, boot["sharpe"][:, j], point["sharpe"][0] - point["sharpe"][j], conf),
                "total_return": _diff(
                    boot["total_return"][:, 0],
                    boot["total_return"][:, j],
                    point["total_return"][0] - point["total_return"][j],
                    conf,
                ),
            },
        }
    baselines["flat"] = {
        "metrics": {key: base_metrics["flat"].get(key) for key in _BASELINE_KEYS},
        "difference": {
            "sharpe": _diff(agent_sharpe, np.zeros_like(agent_sharpe), point["sharpe"][0], conf),
            "total_return": _diff(boot["total_return"][:, 0], 0.0, point["total_return"][0], conf),
        },
    }
    baselines["sma_crossover"]["params"] = {"fast": bl.sma_fast, "slow": bl.sma_slow, "allow_short": bl.sma_allow_short}
    for k, (_, params) in extra.items():
        baselines[k]["params"] = params
    return baselines


def _random_section(
    rand_sharpe: np.ndarray, rand_total: np.ndarray, switch: float, boot: dict, point: dict, cfg: EvalConfig
) -> dict:
    """Agent (resampled) minus a random policy (drawn across seeds): estimation noise and luck together."""
    conf, bl = cfg.bootstrap.confidence, cfg.baselines
    agent_sharpe = boot["sharpe"][:, 0]
    rand_draw = rand_sharpe[np.arange(agent_sharpe.size) % rand_sharpe.size]
    rand_tot_draw = rand_total[np.arange(agent_sharpe.size) % rand_total.size]
    return {
        "n_seeds": int(rand_sharpe.size),
        "switch_prob": float(switch),
        "levels": list(bl.random_levels),
        "sharpe": _summary(rand_sharpe),
        "total_return": _summary(rand_total),
        "agent_sharpe_percentile": float(np.mean(rand_sharpe < point["sharpe"][0])),
        "difference": {
            "sharpe": _diff(agent_sharpe, rand_draw, point["sharpe"][0] - float(rand_sharpe.mean()), conf),
            "total_return": _diff(
                boot["total_return"][:, 0], rand_tot_draw, point["total_return"][0] - float(rand_total.mean()), conf
            ),
        },
    }


def _bootstrap_section(boot: dict, block: float, metrics: dict, cfg: EvalConfig) -> dict:
    conf = cfg.bootstrap.confidence
    intervals = {}
    for stat in ("sharpe", "total_return", "max_drawdown"):
        lo, hi = percentile_interval(boot[stat][:, 0], conf)
        est = metrics[stat]
        intervals[stat] = {"estimate": float(est if est is not None else 0.0), "low": lo, "high": hi}
    return {
        "method": cfg.bootstrap.method,
        "block_length": block,
        "block_length_source": "config" if cfg.bootstrap.block_length is not None else "politis_white",
        "n_resamples": cfg.bootstrap.n_resamples,
        "confidence": conf,
        "intervals": intervals,
        "sharpe_histogram": _histogram(boot["sharpe"][:, 0], cfg.report.histogram_bins, clip_quantile=0.0),
    }


def _monte_carlo(returns: np.ndarray, block: float, cfg: EvalConfig, timeframe: str, market: str) -> dict:
    """Monte Carlo risk over the configured horizon."""
    mc_cfg = cfg.monte_carlo
    mc = monte_carlo_risk(
        returns,
        bars_for_days(mc_cfg.horizon_days, timeframe, market),
        mc_cfg.n_paths,
        block,
        cfg.bootstrap.method,
        mc_cfg.levels,
        mc_cfg.drawdown_thresholds,
        seed=cfg.seed + 1,
    )
    mc["horizon_days"] = mc_cfg.horizon_days
    return mc


def _robustness(
    returns: np.ndarray,
    pos: np.ndarray,
    bars: _Bars,
    cfg: EvalConfig,
    episode_positions: Sequence[tuple[int, np.ndarray]] | None,
) -> dict:
    """Calendar periods and episode start."""
    robustness: dict = {"monthly": None, "quarterly": None}
    if bars.times is not None:
        robustness["monthly"] = per_period(returns, bars.times[1:], "M", bars.ppy)
        robustness["quarterly"] = per_period(returns, bars.times[1:], "Q", bars.ppy)
    if episode_positions is None:
        offsets = start_offsets(bars.n, cfg.robustness.episodes, cfg.robustness.max_start_offset_fraction)
        episode_positions = [(k, pos[k:]) for k in offsets]
        robustness["start_offset_source"] = "trimmed"
    else:
        robustness["start_offset_source"] = "rerun"
    robustness["start_offsets"] = start_offset_sensitivity(
        episode_positions, bars.open, bars.close, bars.costs, bars.ppy, bars.times
    )
    return robustness


def _meta(meta: dict | None, bars: _Bars, cfg: EvalConfig, timeframe: str, market: str) -> dict:
    times = bars.times
    return {
        **{k: v for k, v in (meta or {}).items()},
        "timeframe": timeframe,
        "market": market,
        "periods_per_year": bars.ppy,
        "n_bars": bars.n,
        "start": None if times is None else times[0].isoformat(),
        "end": None if times is None else times[-1].isoformat(),
        "costs": {**config_to_dict(bars.costs), "cost_rate_bps": bars.costs.rate * 1e4},
        "seed": cfg.seed,
        "config": config_to_dict(cfg),
    }


def _dd_duration_days(returns: np.ndarray, times) -> float:
    """Calendar days of the longest stretch under water, from the peak to the recovery (or the
    end). Return k is earned over bar k+1, so the equity after it is stamped times[k+1]."""
    n = returns.size
    dd = drawdown_series(returns)
    edges = np.diff(np.concatenate(([0], (dd < 0.0).astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return 0.0
    span = times[np.minimum(ends + 1, n)] - times[starts]  # peak stamped times[s], recovery times[e+1]
    return float(span.max().total_seconds() / 86400.0)


def quick_evaluation(
    positions: object,
    open: object,  # noqa: A002
    close: object,
    costs: CostConfig,
    timeframe: str,
    market: str,
    sma_fast: int = 20,
    sma_slow: int = 100,
    extra_baselines: dict[str, np.ndarray] | None = None,
    prior_trial_sharpes: Sequence[float] = (),
    random_seeds: int = 20,
    seed: int = 0,
) -> dict:
    """Cheap metrics for periodic evaluation during training (no bootstrap, no pictures), as a flat
    dict ready for `RunWriter.metric`:

    * `sharpe`, `total_return`, `max_drawdown`, `turnover`, `exposure` of the agent and the same
      three prefixed `buy_and_hold_`, `sma_crossover_` and each of `extra_baselines` (e.g. `ridge_`);
    * `random_sharpe_mean` / `random_sharpe_p95`: random policies with the agent's turnover;
    * `strongest_baseline` (its name), `strongest_baseline_sharpe`, `excess_sharpe` (agent minus it);
    * `psr` (P[true Sharpe > 0]), `p_value` (1 - psr), and `dsr` deflated for `dsr_trials` trials:
      this evaluation plus `prior_trial_sharpes` (per-period Sharpes of the evaluations already run
      on this split), whose variance is the DSR's trial variance once there are two.

    A Sharpe that is undefined (a policy that never trades) is None rather than an error, so a flat
    early policy does not stop training; its PSR/DSR are None too."""
    o, c = check_prices(open, close)
    pos = check_positions(positions, o.size)
    ppy = periods_per_year(timeframe, market)
    out: dict = {}
    fast, slow = (sma_fast, sma_slow) if sma_slow < o.size else (max(1, o.size // 8), max(2, o.size // 4))
    candidates = {
        "agent": pos,
        "buy_and_hold": buy_and_hold(o.size),
        "sma_crossover": sma_crossover(c, fast, slow),
        **{k: check_positions(v, o.size) for k, v in (extra_baselines or {}).items()},
    }
    agent_returns = np.empty(0)
    changes = 0
    for name, p in candidates.items():
        b = backtest(p, o, c, costs)
        m = performance_metrics(b.returns, ppy, positions=p, allow_constant=True)
        prefix = "" if name == "agent" else f"{name}_"
        out[f"{prefix}sharpe"] = m["sharpe"]
        out[f"{prefix}max_drawdown"] = m["max_drawdown"]
        out[f"{prefix}total_return"] = m["total_return"]
        if name == "agent":
            agent_returns = b.returns
            out["turnover"] = m["turnover"]
            out["exposure"] = m["exposure"]
            changes = m["position_changes"]
    # random policies changing position as often as the agent (see evaluate_positions)
    rets = bar_returns(o, c)
    switch = min(1.0, max(changes, 1) / max(o.size - 1, 1) * 1.5)  # 3 levels: a redraw keeps the level 1/3
    rand = np.empty(random_seeds)
    for i in range(random_seeds):
        rp = random_policy(o.size, [seed * 100_003 + i], switch_prob=switch)[0]
        rr, _ = position_returns(rp, rets, costs.rate)
        rand[i] = point_statistics(rr, ppy, ("sharpe",))["sharpe"][0]
    rand = np.where(np.isfinite(rand), rand, 0.0)
    out["random_sharpe_mean"] = float(rand.mean())
    out["random_sharpe_p95"] = float(np.quantile(rand, 0.95))
    best = strongest_baseline(
        {k: out[f"{k}_sharpe"] for k in candidates if k != "agent"} | {"random": out["random_sharpe_mean"]}
    )
    assert best is not None
    out["strongest_baseline"], out["strongest_baseline_sharpe"] = best
    out["excess_sharpe"] = None if out["sharpe"] is None else out["sharpe"] - best[1]
    out.update(_quick_inference(agent_returns, out["sharpe"] is not None, prior_trial_sharpes))
    return out


def _quick_inference(returns: np.ndarray, defined: bool, prior: Sequence[float]) -> dict:
    trials = [float(x) for x in prior if x is not None and math.isfinite(x)]
    n = len(trials) + 1
    if not defined:
        return {"psr": None, "dsr": None, "dsr_trials": n, "p_value": None, "sharpe_per_period": None}
    sr = sharpe_per_period(returns)
    inf = sharpe_inference(returns, n_trials=n, trial_sharpes=trials + [sr] if n >= 2 else None)
    return {
        "psr": inf["psr"],
        "dsr": inf["dsr"],
        "dsr_trials": inf["n_trials"],
        "p_value": 1.0 - inf["psr"],
        "sharpe_per_period": inf["sharpe_per_period"],
    }
