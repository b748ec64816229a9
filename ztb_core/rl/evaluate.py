"""Periodic evaluation during training: the current policy, with the current (frozen) VecNormalize
statistics, trades the validation split through the same decision loop as `LoadedAgent`; the
evaluation module scores it next to buy-and-hold, an SMA crossover, a ridge regression on the
same features (fitted on the train split, band chosen on val) and random policies, on the same
bars and costs. Each evaluation is a trial in the run's registry (`trials.jsonl`), and its DSR
is deflated for every evaluation made so far on that split."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_json
from ..evaluation import quick_evaluation
from ..evaluation.backtest import backtest
from ..evaluation.baselines import RidgeBaseline, buy_and_hold, fit_ridge_baseline, sma_crossover
from ..evaluation.bootstrap import estimate_block_length
from ..evaluation.calendar import periods_per_year
from ..evaluation.comparison import Comparison, compare_returns
from ..evaluation.config import BaselineConfig
from ..evaluation.sharpe_stats import sharpe_estimator_variance
from ..evaluation.trials import TrialRegistry, collect_trials
from .agent import LoadedAgent
from .checkpoints import vecnormalize_state
from .config import TrainConfig
from .forecast import Forecast, fit_forecast
from .market import MarketSlice, prepare_splits
from .policy import ObsNormalizer


def flatten_scores(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested evaluation dict -> flat numeric metrics (`agent_sharpe`, `buy_and_hold_sharpe`, ...)."""
    out: dict[str, float] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_scores(value, name + "_"))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, (int, float)):
            out[name] = float(value)
    return out


def score_flat(result: dict[str, Any], positions: np.ndarray) -> dict[str, Any]:
    """`quick_evaluation`'s result with a policy that never takes a position scored as what it is:
    it earned exactly nothing, so its Sharpe is 0 (and its excess over the strongest baseline is
    minus that baseline's), not undefined. Its returns are constant, so the evaluation leaves the
    Sharpe None, and a None is dropped from metrics rows: `ztb tune` then saw no score at all and
    failed the trial, and walk-forward reported NaN for the fold. PSR/DSR stay None (no variance to
    infer from). Results of a policy that traded are returned unchanged."""
    if result.get("sharpe") is not None or np.any(np.asarray(positions, dtype=np.float64) != 0.0):
        return result
    out = dict(result)
    out.update(sharpe=0.0, sharpe_per_period=0.0, never_traded=True)
    best = result.get("strongest_baseline_sharpe")
    out["excess_sharpe"] = None if best is None else -float(best)
    return out


def quick_baseline_positions(close: np.ndarray, ridge: np.ndarray) -> dict[str, np.ndarray]:
    """The positions `quick_evaluation` scores each baseline with (its default SMA windows, shrunk on
    short splits the same way), with the run's ridge positions."""
    n = len(close)
    fast, slow = (20, 100) if 100 < n else (max(1, n // 8), max(2, n // 4))
    return {"buy_and_hold": buy_and_hold(n), "sma_crossover": sma_crossover(close, fast, slow), "ridge": ridge}


def agent_score(flat: dict[str, float]) -> float | None:
    """The number 'best checkpoint' is chosen by: the agent's Sharpe ratio."""
    for key in ("agent_sharpe", "sharpe", "agent_sharpe_ratio", "sharpe_ratio"):
        value = flat.get(key)
        if value is not None and math.isfinite(value):
            return value
    return None


@dataclass(frozen=True)
class CheckpointDrift:
    """The best periodic evaluation against the newest one, both on the same validation bars."""

    best_step: int
    best_sharpe: float  # annualised, as the manifest records it
    newest_step: int
    newest_sharpe: float
    se: float  # standard error of the best one's annualised Sharpe on `bars` bars

    @property
    def gap_se(self) -> float:
        """How many standard errors the newest checkpoint is below the best."""
        return (self.best_sharpe - self.newest_sharpe) / self.se if self.se > 0 else 0.0


def checkpoint_drift(entries: list[dict], bars: int, periods_per_year: float) -> CheckpointDrift | None:
    """Best-by-validation against the newest checkpoint, from the manifest's `eval_sharpe`s
    (`bars`: the evaluation's length). None when either was never evaluated. Training that has
    drifted away from its best policy shows here; `ztb eval --model RUN` scores the best one."""
    best = next((e for e in entries if e.get("best")), None)
    newest = entries[-1] if entries else None
    if best is None or newest is None or best.get("eval_sharpe") is None or newest.get("eval_sharpe") is None:
        return None
    per_bar = float(best["eval_sharpe"]) / math.sqrt(periods_per_year)
    se = math.sqrt(sharpe_estimator_variance(per_bar, max(int(bars), 2)) * periods_per_year)
    return CheckpointDrift(
        int(best["step"]), float(best["eval_sharpe"]), int(newest["step"]), float(newest["eval_sharpe"]), se
    )


def ridge_for(
    cfg: TrainConfig, train: MarketSlice, val: MarketSlice, baselines: BaselineConfig | None = None
) -> RidgeBaseline:
    """The ridge baseline of a training config: fitted on its train split, alpha and hysteresis
    band chosen by net Sharpe on its validation split, at the run's costs (eval.yaml's grids)."""
    bl = baselines or BaselineConfig()
    return fit_ridge_baseline(
        train.features,
        train.open,
        train.close,
        val.features,
        val.open,
        val.close,
        cfg.env.costs,
        alphas=bl.ridge_alphas,
        bands=bl.ridge_bands,
        allow_short=bl.sma_allow_short,
    )


class PeriodicEvaluator:
    """`train` and `val` are the run's other splits (the ridge baseline's fit and band); the ones
    not passed are prepared from the config, like training did."""

    def __init__(
        self,
        cfg: TrainConfig,
        market: MarketSlice,
        reports_dir: Path,
        train: MarketSlice | None = None,
        val: MarketSlice | None = None,
        forecast: Forecast | None = None,
    ):
        self.cfg = cfg
        n = len(market) if cfg.eval.max_bars is None else min(len(market), cfg.eval.max_bars)
        self.market = market.slice(0, n)  # keeps the encoder windows (fine-tune mode) aligned
        self.features = self.market.features
        self.open, self.close = self.market.open, self.market.close
        self.reports_dir = Path(reports_dir)
        self.run_dir = self.reports_dir.parent
        self.registry = TrialRegistry(self.run_dir)
        if val is None and market.split == "val":
            val = market
        missing = tuple(name for name, s in (("train", train), ("val", val)) if s is None)
        if missing:
            loaded = prepare_splits(cfg, missing)
            train, val = train or loaded.get("train"), val or loaded.get("val")
        assert train is not None and val is not None
        # the agent appends it to the plain features, as `load_agent` does (refitted when not given)
        self.forecast = forecast if forecast is not None else fit_forecast(cfg.forecast, train)
        self.ridge = ridge_for(cfg, train, val)
        self.ridge_positions = self.ridge.positions(self.features)
        # how often the forecast's train-fitted clip fires on these bars (fixed: computed once)
        self.forecast_clipped = None if self.forecast is None else self.forecast.clipped_fraction(self.features)
        self.ppy = periods_per_year(self.market.timeframe, self.market.market)
        # the baselines' net returns on these bars do not change between evaluations: computed once,
        # with quick_evaluation's positions, for the paired comparison with the agent
        self.baseline_returns = {
            name: backtest(p, self.open, self.close, cfg.env.costs).returns
            for name, p in quick_baseline_positions(self.close, self.ridge_positions).items()
        }
        self._block: dict[str, float] = {}

    def compare(self, positions: np.ndarray, result: dict[str, Any]) -> Comparison:
        """The agent against the strongest baseline of `result`: the paired bootstrap interval of the
        Sharpe difference on these bars (against the random policies: the agent's interval minus their
        mean Sharpe)."""
        name, sharpe = result["strongest_baseline"], float(result["strongest_baseline_sharpe"])
        base = self.baseline_returns.get(name)
        block = None
        if base is not None and np.std(base) > 0:
            block = self._block.setdefault(name, estimate_block_length(base))
        agent = backtest(positions, self.open, self.close, self.cfg.env.costs).returns
        return compare_returns(
            agent, base, name, sharpe, self.ppy, self.cfg.eval.compare_resamples, seed=self.cfg.seed, block_length=block
        )

    def __call__(self, model: Any, vecnorm: Any, step: int) -> tuple[dict[str, Any], float | None]:
        t0 = time.perf_counter()
        agent = LoadedAgent(
            policy=model.policy,
            normalizer=ObsNormalizer.from_state(vecnormalize_state(vecnorm)),
            train_config=self.cfg,
            checkpoint_path=Path("<live policy>"),
            step=step,
            n_features=self.features.shape[1],
            entry={},
            forecast=self.forecast,
            raw_shapes=self.market.windows.shapes if self.market.windows is not None else None,
        )
        positions = agent.positions(self.market, deterministic=self.cfg.eval.deterministic)
        split = self.cfg.eval.split
        prior = collect_trials(self.run_dir, split)
        run_id = self.run_dir.name
        result = quick_evaluation(
            positions,
            self.open,
            self.close,
            self.cfg.env.costs,
            self.market.timeframe,
            self.market.market,
            extra_baselines={"ridge": self.ridge_positions},
            prior_trial_sharpes=[
                s for s, rec in zip(prior.sharpes_per_period, prior.records, strict=True) if rec["step"] != step
            ],
            seed=self.cfg.seed,
        )
        result = score_flat(result, positions)
        comparison = self.compare(positions, result)
        result["vs_strongest"] = {**comparison.as_dict(), "sentence": comparison.sentence()}
        flat: dict[str, Any] = flatten_scores(result)  # numbers, and the names/words set below
        flat["vs_strongest"] = comparison.word  # beats | matches | behind: what the interval says
        if self.forecast is not None and self.forecast_clipped is not None:
            flat["forecast_clipped"] = self.forecast_clipped
            result["forecast_clip"] = {**self.forecast.clip_summary(), "eval_clipped": self.forecast_clipped}
        if result.get("never_traded"):
            flat["never_traded"] = 1.0  # the Sharpe 0 is a flat policy's, not a measured one
        flat["strongest_baseline"] = result["strongest_baseline"]  # a name: flatten keeps numbers only
        if split == "test":
            flat["test_split_used"] = 1.0  # stamped on every row: this run peeked at the test split
        self.registry.record(
            run_id=run_id,
            split=split,
            step=step,
            sharpe=result["sharpe"],
            sharpe_per_period=result["sharpe_per_period"],
            n_obs=len(positions) - 1,
            source="periodic_eval",
        )
        flat["eval_seconds"] = time.perf_counter() - t0
        flat["bars"] = float(len(positions))
        report = {
            "step": step,
            "split": self.cfg.eval.split,
            "bars": len(positions),
            "start": str(self.market.index[0]),
            "end": str(self.market.index[len(positions) - 1]),
            "costs": self.cfg.env.costs.model_dump(),
            "ridge": self.ridge.describe(),
            "trials": {"n": result["dsr_trials"], "source": prior.source},
            "test_split_used": split == "test",
            "result": result,
        }
        atomic_write_json(self.reports_dir / "eval-latest.json", report)
        return flat, agent_score(flat)
