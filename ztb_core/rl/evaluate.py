"""Periodic evaluation during training: the current policy, with the current (frozen) VecNormalize
statistics, trades the validation split through the same decision loop as `LoadedAgent`; the
evaluation module scores it next to buy-and-hold and an SMA crossover on the same bars and
costs."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from .agent import LoadedAgent
from .checkpoints import vecnormalize_state
from .config import TrainConfig
from .market import MarketSlice
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


def agent_score(flat: dict[str, float]) -> float | None:
    """The number 'best checkpoint' is chosen by: the agent's Sharpe ratio."""
    for key in ("agent_sharpe", "sharpe", "agent_sharpe_ratio", "sharpe_ratio"):
        value = flat.get(key)
        if value is not None and math.isfinite(value):
            return value
    return None


class PeriodicEvaluator:
    def __init__(self, cfg: TrainConfig, market: MarketSlice, reports_dir: Path):
        self.cfg = cfg
        n = min(len(market), cfg.eval.max_bars)
        self.market = market.slice(0, n)  # keeps the encoder windows (fine-tune mode) aligned
        self.features = self.market.features
        self.open, self.close = self.market.open, self.market.close
        self.reports_dir = Path(reports_dir)

    def __call__(self, model: Any, vecnorm: Any, step: int) -> tuple[dict[str, float], float | None]:
        from ..evaluation import quick_evaluation

        t0 = time.perf_counter()
        agent = LoadedAgent(
            policy=model.policy,
            normalizer=ObsNormalizer.from_state(vecnormalize_state(vecnorm)),
            train_config=self.cfg,
            checkpoint_path=Path("<live policy>"),
            step=step,
            n_features=self.features.shape[1],
            entry={},
            raw_shapes=self.market.windows.shapes if self.market.windows is not None else None,
        )
        positions = agent.positions(self.market, deterministic=self.cfg.eval.deterministic)
        result = quick_evaluation(
            positions, self.open, self.close, self.cfg.env.costs, self.market.timeframe, self.market.market
        )
        flat = flatten_scores(result)
        flat["eval_seconds"] = time.perf_counter() - t0
        flat["bars"] = float(len(positions))
        report = {
            "step": step,
            "split": self.cfg.eval.split,
            "bars": len(positions),
            "start": str(self.market.index[0]),
            "end": str(self.market.index[len(positions) - 1]),
            "costs": self.cfg.env.costs.model_dump(),
            "result": result,
        }
        atomic_write_json(self.reports_dir / "eval-latest.json", report)
        return flat, agent_score(flat)
