"""The volatility forecaster travels with the checkpoint: fitted on the train split when training
starts, stored in every checkpoint, loaded with the agent (and by the live policy loader), the same
forecaster `ztb eval` fits on that split; a checkpoint without one says why."""

from __future__ import annotations

import json

import pytest

from ztb_core.errors import CheckpointError
from ztb_core.evaluation.vol_sizing import VolSizing
from ztb_core.manifest import Manifest
from ztb_core.rl.agent import load_agent
from ztb_core.rl.checkpoints import read_checkpoint
from ztb_core.rl.market import prepare_splits
from ztb_core.rl.trainer import run_training
from ztb_core.rl.vol_sizing import load_vol_sizing, times_ns

from .conftest import tiny_cfg

#: a train split longer than a week of M1 bars once the features' warm-up is dropped (as TINY_AGENT)
WEEK = "data.synthetic.n_bars=16000"


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def test_every_checkpoint_carries_the_forecaster_eval_fits_on_the_train_split(tiny_agent):
    from ztb_core.config import load_config
    from ztb_core.live.loop.policy import AgentPolicy
    from ztb_core.rl.config import TrainConfig

    from ..conftest import TINY_AGENT

    agent = load_agent(tiny_agent)
    assert agent.vol_sizing is not None and agent.vol_sizing_absent is None
    cfg = load_config(TrainConfig, None, list(TINY_AGENT))
    train = prepare_splits(cfg, ("train",))["train"]
    # what `ztb eval` fits for its vol_sizing section (rl/agent_eval.py): the same split, the same settings
    fitted = VolSizing.fit(train.close, times_ns(train.index), cfg.vol_sizing.horizon, cfg.vol_sizing.cap)
    assert _jsonable(agent.vol_sizing.sizing.to_dict()) == _jsonable(fitted.to_dict())
    assert agent.vol_sizing.band == cfg.vol_sizing.band
    fitted_on = agent.vol_sizing.fitted_on
    assert fitted_on["bars"] == len(train)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    assert (fitted_on["first"], fitted_on["last"]) == (train.index[0].strftime(iso), train.index[-1].strftime(iso))
    # written into every checkpoint of the run, not only the last
    ckpts = Manifest(tiny_agent / "checkpoints").entries()
    assert len(ckpts) >= 1
    for entry in ckpts:
        state = read_checkpoint(tiny_agent / "checkpoints" / entry["file"])
        assert state["vol_sizing"]["sizing"]["target_rv"] == agent.vol_sizing.sizing.target_rv
    # the live policy loader hands it on
    policy = AgentPolicy(tiny_agent)
    assert policy.vol_sizing is not None and policy.vol_sizing.sizing.target_rv == agent.vol_sizing.sizing.target_rv


def test_an_old_or_damaged_entry_is_said_or_refused():
    trained, why = load_vol_sizing({"policy": {}}, "checkpoint step-1.ckpt.zst")
    assert trained is None and "saved before checkpoints carried one" in why and "step-1" in why
    trained, why = load_vol_sizing({"vol_sizing": {"skipped": "too few bars"}}, "checkpoint x")
    assert trained is None and why.endswith("too few bars")
    with pytest.raises(CheckpointError, match="checkpoint x: its volatility forecaster cannot be read"):
        load_vol_sizing({"vol_sizing": {"sizing": {"target_rv": 1.0}, "band": 0.25}}, "checkpoint x")


def test_a_run_with_vol_sizing_off_stores_why(art):
    out = run_training(tiny_cfg("vol_sizing.enabled=false", total=128), run_id="nosize", progress=False)
    agent = load_agent(out.run_dir)
    assert agent.vol_sizing is None and "vol_sizing.enabled is false" in agent.vol_sizing_absent
    events = [json.loads(x) for x in (out.run_dir / "events.jsonl").read_text().splitlines()]
    (ready,) = [e for e in events if e["event"] == "data_ready"]
    assert ready["vol_sizing"] == {"skipped": "vol_sizing.enabled is false in the training config"}


def test_a_resumed_run_keeps_the_forecaster_its_checkpoint_has(art):
    from ztb_core.rl.vol_sizing import fit_vol_sizing_state

    first = run_training(tiny_cfg(WEEK, total=128), run_id="keep", progress=False)
    assert load_agent(first.run_dir).vol_sizing.sizing.cap == 2.0
    changed = tiny_cfg(WEEK, "vol_sizing.cap=3.0", total=256)  # a soft change: allowed on resume
    out = run_training(changed, resume_dir=first.run_dir, progress=False)
    assert out.step == 256 and load_agent(out.run_dir).vol_sizing.sizing.cap == 2.0
    # positive control: fitted afresh, the changed settings would have given another forecaster
    train = prepare_splits(changed, ("train",))["train"]
    assert fit_vol_sizing_state(changed.vol_sizing, train)["sizing"]["cap"] == 3.0
