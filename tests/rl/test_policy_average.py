"""`ppo.policy_average`: the agent a run evaluates, saves and hands to `load_agent` is the average
of the weights over PPO's updates, while PPO keeps training its own weights; a resume carries the
average on without counting an update twice."""

from __future__ import annotations

import json

import pytest
import torch

from tests.rl.conftest import tiny_cfg
from ztb_core.manifest import Manifest
from ztb_core.rl.agent import load_agent
from ztb_core.rl.checkpoints import read_checkpoint
from ztb_core.rl.policy_average import AVERAGE_KEY, AVERAGE_STEP_KEY, PolicyAverage, agent_weights
from ztb_core.rl.trainer import run_training


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.register_buffer("count", torch.tensor(0))


def _set(net: _Net, value: float, count: int) -> None:
    with torch.no_grad():
        net.lin.weight.fill_(value)
        net.lin.bias.fill_(value)
    net.count.fill_(count)


def test_the_average_is_exponential_per_update_and_counts_each_update_once():
    net, avg = _Net(), PolicyAverage(0.75)
    _set(net, 4.0, 1)
    assert avg.update(net, 100)
    _set(net, 8.0, 2)
    assert avg.update(net, 200)
    assert not avg.update(net, 200)  # the same boundary again (after a resume): no second fold
    assert avg.weights is not None
    assert torch.allclose(avg.weights["lin.weight"], torch.full((1, 2), 0.75 * 4.0 + 0.25 * 8.0))
    assert int(avg.weights["count"]) == 2  # integer buffers are taken, not averaged
    # applied(): the block sees the average, PPO's own weights come back afterwards
    with avg.applied(net):
        assert float(net.lin.bias.detach()) == pytest.approx(5.0)
    assert float(net.lin.bias.detach()) == pytest.approx(8.0)
    # a checkpoint round trip restores the average and the step of its last update
    again = PolicyAverage(0.75, avg.checkpoint_state())
    assert again.step == 200 and not again.update(net, 200)
    assert torch.equal(again.weights["lin.weight"], avg.weights["lin.weight"])


def test_a_checkpoint_without_an_average_acts_with_its_own_weights():
    own = {"w": torch.ones(1)}
    assert agent_weights({"policy": own}) is own
    assert agent_weights({"policy": own, AVERAGE_KEY: None}) is own
    mean = {"w": torch.zeros(1)}
    assert agent_weights({"policy": own, AVERAGE_KEY: mean}) is mean


def _eval_scores(run_dir) -> list[float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r["sharpe"] for r in rows if r.get("split") == "val"]


def test_a_run_evaluates_saves_and_loads_the_average_and_resumes_it(art):
    extra = ("ppo.policy_average=0.8", "eval.every_steps=256")
    out = run_training(tiny_cfg(*extra, total=768), run_id="avg", progress=False)
    files = [e["file"] for e in Manifest(out.run_dir / "checkpoints").entries()]
    final = read_checkpoint(out.run_dir / "checkpoints" / files[-1])
    assert final[AVERAGE_STEP_KEY] == final["num_timesteps"] == 768
    differs = [k for k, v in final["policy"].items() if not torch.equal(v, final[AVERAGE_KEY][k])]
    assert differs  # the average is not PPO's own weights ...
    agent = load_agent(out.run_dir)
    for k, v in agent.policy.state_dict().items():  # ... and it is what the agent acts with
        assert torch.equal(v, final[AVERAGE_KEY][k])

    # positive control: the same run without averaging saves PPO's weights as the agent
    plain = run_training(tiny_cfg("eval.every_steps=256", total=768), run_id="plain", progress=False)
    state = read_checkpoint(
        plain.run_dir / "checkpoints" / Manifest(plain.run_dir / "checkpoints").entries()[-1]["file"]
    )
    assert AVERAGE_KEY not in state
    for k, v in load_agent(plain.run_dir).policy.state_dict().items():
        assert torch.equal(v, state["policy"][k])
    # the periodic evaluations scored different policies: the average, not PPO's weights
    assert _eval_scores(out.run_dir) != _eval_scores(plain.run_dir)

    # resume: the average continues from the checkpoint's (its step is not folded in twice)
    more = run_training(tiny_cfg(*extra, total=896), resume_dir=out.run_dir, progress=False)
    last = read_checkpoint(more.run_dir / "checkpoints" / Manifest(more.run_dir / "checkpoints").entries()[-1]["file"])
    assert last[AVERAGE_STEP_KEY] == 896
    # one more update at decay 0.8 from the resumed average: avg' = 0.8 avg + 0.2 w
    for k, v in last[AVERAGE_KEY].items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, 0.8 * final[AVERAGE_KEY][k] + 0.2 * last["policy"][k], atol=1e-6), k
