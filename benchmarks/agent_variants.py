"""Training variants that are experiments, not product options, scored exactly like
`bench_agent_vs_baselines.py` (docs/rl-experiments.md, "Why PPO trades a forecast worse than a band" and "PPO that learns a band"), a map of what a
forecast-only policy does, and what a forecast is worth at PPO's discount.

The variants were measured and rejected, so they are not config keys; they live here, patched
into the benchmark's own process, so that the figures in the docs can be reproduced:

* `--variant decide-every=K`: the agent decides at every K-th bar and holds its position in
  between, in training (one environment step is K bars, its reward their sum) and in every
  evaluation. Exploration then pays costs on a K-th of the bars.
* `--variant hold-init=B` (with `--set env.actions=change`): the untrained policy's "hold" logit
  starts B higher than "up" and "down" (B = 3: hold with probability 0.91 instead of 1/3), so
  exploration starts cheap instead of flipping at random.

    .venv/bin/python benchmarks/agent_variants.py --variant decide-every=4 --label k4 --seeds 0
    .venv/bin/python benchmarks/agent_variants.py --variant hold-init=3 --label hold3 --seeds 0 \\
        --set env.actions=change
    .venv/bin/python benchmarks/agent_variants.py --policy-map RUN_DIR/checkpoints/step-....ckpt.zst

    .venv/bin/python benchmarks/agent_variants.py --forecast-edge

The forecast-only agent began here as a variant too and is now the default (`forecast.only`,
`env.lookback 1`, `env.reward.turnover_penalty -0.75`); the policy on the features is
`configs/presets/features-policy.yaml`. The variants above were measured on that features policy:
pass its four keys with --set to reproduce them.

Every argument after the variant goes to the benchmark unchanged; `--variant` repeats to combine.
`--policy-map` prints, for a checkpoint trained with `forecast.only` and `env.lookback 1`, the
greedy action and its probability for forecasts from -4 to +4 train SDs and each position held
(F flat, L long, S short). `--forecast-edge` prints, for the default market and the ridge forecast,
what one forecast SD is worth in bps in PPO's discounted objective (the slope of the discounted sum
of the next 300 bars' returns on today's forecast) at several discounts, next to what a trade costs.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stable_baselines3.common.policies import ActorCriticPolicy  # noqa: E402

from ztb_core.evaluation.baselines import holding_returns  # noqa: E402
from ztb_core.rl import agent as agent_module  # noqa: E402
from ztb_core.rl import env as env_module  # noqa: E402
from ztb_core.rl import forecast as forecast_module  # noqa: E402
from ztb_core.rl.actions import HOLD  # noqa: E402
from ztb_core.rl.config import TrainConfig  # noqa: E402
from ztb_core.rl.market import prepare_market  # noqa: E402


def decide_every(k: int) -> None:
    """One environment step is `k` bars at the position chosen; evaluations hold between decisions.
    For `env.actions: discrete` (the default), where repeating an action keeps its target."""
    step = env_module.TradingEnv.step

    def step_k(self: Any, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = step(self, action)
        for _ in range(k - 1):
            if terminated or truncated:
                break
            obs, r, terminated, truncated, info = step(self, action)
            reward += r
        return obs, reward, terminated, truncated, info

    def positions(self: Any, feats: np.ndarray, initial_position: float, windows: Any = None) -> np.ndarray:
        held, next_state = self.actions.states(initial_position)
        n, lb = len(feats), self.lookback
        first = lb - 1
        choice = np.empty((n - first, len(held)), dtype=np.int64)
        for j, p in enumerate(held):
            choice[:, j] = self._actions(agent_module.window_rows(feats, lb, first, n, p), True).reshape(-1)
        out = np.zeros(n)
        j = held.index(float(initial_position))
        for i in range(n - first):
            if i % k == 0:
                j = int(next_state[j][choice[i, j]])
            out[first + i] = held[j]
        return out

    env_module.TradingEnv.step = step_k
    agent_module.LoadedAgent._positions_discrete = positions


def hold_init(bias: float) -> None:
    """The policy's action head starts with `bias` added to the logit of HOLD (change actions only:
    with discrete actions index 0 is the flat position, not "hold")."""
    build = ActorCriticPolicy._build

    def build_biased(self: Any, lr_schedule: Any) -> None:
        build(self, lr_schedule)
        with torch.no_grad():
            self.action_net.bias[HOLD] += bias

    ActorCriticPolicy._build = build_biased


def policy_map(checkpoint: Path) -> None:
    agent = agent_module.load_agent(checkpoint)
    grid = np.linspace(-4, 4, 17, dtype=np.float32)
    print(f"{checkpoint.name}: greedy action (F flat, L long, S short) and its probability")
    print("forecast (train SDs): " + " ".join(f"{g:+5.1f}" for g in grid))
    for held, name in ((0.0, "flat"), (1.0, "long"), (-1.0, "short")):
        obs = np.stack([grid, np.full_like(grid, held)], axis=1)
        with torch.no_grad():
            probs = agent.policy.get_distribution(agent._tensor(obs)).distribution.probs.numpy()
        print(f"held {name:>5}:           " + " ".join(f"{'FLS'[p.argmax()]}{p.max():.2f}" for p in probs))


def forecast_edge() -> None:
    cfg = TrainConfig.model_validate({"forecast": {"kind": "ridge"}})
    train = prepare_market(cfg, "train")
    fc = forecast_module.fit_forecast(cfg.forecast, train)
    assert fc is not None
    per_unit = cfg.env.costs.rate * 1e4
    print(
        f"a trade costs {per_unit:.1f} bps per unit of position changed: entering {per_unit:.1f}, a flip "
        f"{2 * per_unit:.1f} (x{1 + cfg.env.reward.turnover_penalty:g} with the training turnover penalty)"
    )
    horizon = 300
    for split in ("train", "val"):
        m = train if split == "train" else prepare_market(cfg, split)
        f = fc.column(m.features).astype(np.float64)
        r = np.nan_to_num(holding_returns(m.open, m.close)) * 1e4
        n = len(r) - horizon
        for gamma in (0.9, 0.97, 0.99, 1.0):
            discounted = np.zeros(n)
            for k in range(horizon):
                discounted += gamma**k * r[k : k + n]
            slope = np.polyfit(f[:n], discounted, 1)[0]
            print(
                f"{split:>5} gamma {gamma}: {slope:.2f} bps per forecast SD "
                f"(discounted sum's SD {discounted.std():.1f} bps, {len(f)} bars)"
            )


def apply_variant(ap: argparse.ArgumentParser, variant: str, rest: list[str]) -> None:
    name, _, value = variant.partition("=")
    if name == "decide-every" and value.isdigit() and int(value) >= 1:
        decide_every(int(value))
    elif name == "hold-init" and "env.actions=change" not in rest:
        ap.error("--variant hold-init=B needs --set env.actions=change (with discrete actions index 0 is flat)")
    elif name == "hold-init":
        try:
            hold_init(float(value))
        except ValueError:
            ap.error(f"--variant {variant!r}: B must be a number")
    else:
        ap.error(f"--variant {variant!r}: expected decide-every=K (K >= 1) or hold-init=B")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--variant",
        action="append",
        help="decide-every=K | hold-init=B (repeat to combine)",
    )
    group.add_argument("--policy-map", type=Path, help="a forecast.only checkpoint to map")
    group.add_argument("--forecast-edge", action="store_true", help="a forecast SD's worth at several discounts")
    args, rest = ap.parse_known_args()
    if args.policy_map:
        policy_map(args.policy_map)
        return
    if args.forecast_edge:
        forecast_edge()
        return
    for variant in args.variant:
        apply_variant(ap, variant, rest)
    sys.argv = [str(ROOT / "benchmarks" / "bench_agent_vs_baselines.py"), *rest]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
