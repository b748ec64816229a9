"""The Stage-1 encoder hand-off to PPO, end to end on a real (tiny) `ztb pretrain` export:
frozen embeddings appended to the features, and fine-tuning the encoder inside the policy."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import yaml

from ztb_core.errors import ConfigError, DataError
from ztb_core.pretrain.export import load_encoder
from ztb_core.rl.agent import load_agent, resolve_checkpoint
from ztb_core.rl.checkpoints import restore_vecnormalize
from ztb_core.rl.env import EncoderTradingEnv, TradingEnv
from ztb_core.rl.market import prepare_market, prepare_splits
from ztb_core.rl.trainer import run_training

from ..conftest import FAST_EVAL
from .conftest import events, metrics, tiny_cfg

N_TECH = 66  # technical-66
#: a 2-timeframe, 32-bar, 1-layer 32-wide encoder trained for 8 steps: seconds, and a real export
TINY_PRETRAIN = {
    "seed": 0,
    "data": {"market": "crypto", "synthetic": {"n_bars": 6000, "seed": 1}},
    "window": {"timeframes": ["M1", "M5"], "seq_len": 32, "seq_len_per_tf": {}},
    "mask": {"val_samples": 64},
    "model": {"d_model": 32, "n_heads": 4, "n_layers": 1, "d_ff": 64, "bottleneck": 8},
    "trainer": {
        "max_steps": 8,
        "batch_size": 32,
        "epoch_steps": 4,
        "val_batches": 1,
        "log_every": 4,
        "accelerator": "cpu",
    },
}


def _env(mp, root):
    mp.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
    mp.setenv("ZTB_DATA", str(root / "data"))
    mp.setenv("ZTB_KILL", str(root / "global.stop"))
    mp.delenv("ZTB_FAULT_CRASH_AT_STEP", raising=False)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """`ztb pretrain` (the real command) -> its exported encoder folder."""
    from ztb_core.cli import main

    root = tmp_path_factory.mktemp("pretrain")
    cfg_path = root / "pretrain.yaml"
    cfg_path.write_text(yaml.safe_dump({**TINY_PRETRAIN, "cache_dir": str(root / "cache")}))
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root)
        assert main(["pretrain", "--headless", "--config", str(cfg_path)]) == 0
    (run,) = (root / "artifacts" / "runs").glob("pretrain-*")
    assert (run / "encoder" / "encoder.pt").exists()
    return run / "encoder"


@pytest.fixture(scope="module")
def long_window_encoder(tmp_path_factory):
    """A tiny export whose window reaches 80 hours back (M1 + H4): a warm-up longer than
    technical-66's (about two days), so an encoder arm's valid rows start later than the plain arm's."""
    from ztb_core.cli import main

    root = tmp_path_factory.mktemp("pretrain-h1")
    cfg = {
        **TINY_PRETRAIN,
        "data": {"market": "crypto", "synthetic": {"n_bars": 30000, "seed": 1}},
        "window": {"timeframes": ["M1", "H4"], "seq_len": 32, "seq_len_per_tf": {"H4": 20}},
        "splits": {"train": 0.25, "val": 0.35, "test": 0.4},  # trained on bars before the PPO validation period
    }
    (root / "pretrain.yaml").write_text(yaml.safe_dump({**cfg, "cache_dir": str(root / "cache")}))
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root)
        assert main(["pretrain", "--headless", "--config", str(root / "pretrain.yaml")]) == 0
    (run,) = (root / "artifacts" / "runs").glob("pretrain-*")
    return run / "encoder"


@pytest.fixture(scope="module")
def frozen(encoder_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("frozen")
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root)
        cfg = tiny_cfg(f"encoder.path={encoder_dir}", total=384)
        outcome = run_training(cfg, run_id="frozen", progress=False)
        yield outcome, cfg, root


@pytest.fixture(scope="module")
def finetuned(encoder_dir, tmp_path_factory):
    """256 steps, then `resume` to 512: fine-tune mode through an interruption."""
    root = tmp_path_factory.mktemp("finetune")
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root)
        extra = (
            f"encoder.path={encoder_dir}",
            "encoder.mode=finetune",
            "forecast.kind=none",  # the policy on the features and the encoder: a 512-step policy on the
            # forecast alone may never trade, and `ztb eval` below refuses a Sharpe of no returns
            "encoder.lr_scale=0.1",
            "ppo.lr_schedule=constant",  # the lr ratio below is checked at a learning rate that is not 0
            "eval.every_steps=256",
            "eval.max_bars=500",
        )
        first = run_training(tiny_cfg(*extra, total=256), run_id="ft", progress=False)
        assert first.state == "completed" and first.step == 256
        _, _, state256 = resolve_checkpoint(first.checkpoint)
        cfg = tiny_cfg(*extra, total=512)
        outcome = run_training(cfg, resume_dir=first.run_dir, progress=False)
        yield outcome, cfg, root, state256


def _bar_rows(cfg, market):
    """Positions of a market slice's bars among all loaded bars (the encoder embeds all bars)."""
    from ztb_core.data.source import load_bars

    bars = load_bars(cfg.data)
    return bars, bars.index.get_indexer(market.bars.index)


def _scrambled_after(bars, cut: int):
    """The same timestamps, but the bars after bar `cut` in reverse order: valid OHLC, a different future."""
    changed = bars.copy()
    changed.iloc[cut + 1 :] = bars.iloc[cut + 1 :].to_numpy()[::-1]
    return changed


# ---- frozen ----------------------------------------------------------------------------------
def test_frozen_observation_is_features_plus_exact_embeddings(frozen, encoder_dir):
    outcome, cfg, _ = frozen
    assert outcome.state == "completed" and outcome.step == 384
    bundle = load_encoder(encoder_dir)
    d = bundle.embedding_dim
    m = prepare_market(cfg, "train")
    assert m.features.shape[1] == N_TECH + d and m.feature_names[-d:] == [f"enc_{i}" for i in range(d)]
    env = TradingEnv(m.features, m.open, m.close, cfg.env)
    assert env.observation_space.shape == (cfg.env.lookback * (N_TECH + d) + 1,)
    ready = [e for e in events(outcome.run_dir) if e["event"] == "data_ready"]
    assert ready[0]["n_features"] == N_TECH + d
    bars, rows = _bar_rows(cfg, m)
    full = bundle.embed_bars(bars, cfg.data.market)
    assert bundle.last_valid[rows].all()  # no warm-up row (zeros) reaches the agent
    np.testing.assert_array_equal(m.features[:, N_TECH:], full[rows])


def test_frozen_embeddings_do_not_look_ahead(frozen, monkeypatch):
    from ztb_core.data import source

    _, cfg, root = frozen
    monkeypatch.setenv("ZTB_DATA", str(root / "data"))
    m = prepare_market(cfg, "train")
    bars, rows = _bar_rows(cfg, m)
    cut = int(rows[len(rows) // 2])
    monkeypatch.setattr(source, "load_bars", lambda _cfg: _scrambled_after(bars, cut))
    m2 = prepare_splits(cfg, ("train",))["train"]
    before = rows <= cut  # decisions after the close of bar `cut` and earlier
    np.testing.assert_array_equal(m2.features[before], m.features[before])
    assert not np.allclose(m2.features[~before][:, N_TECH:], m.features[~before][:, N_TECH:])


def test_frozen_agent_reproduces_positions_and_evaluates(frozen, monkeypatch, capsys):
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from ztb_core.cli import main

    outcome, cfg, root = frozen
    monkeypatch.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
    agent = load_agent(outcome.run_dir)
    assert agent.encoder is not None and not agent.finetune
    m = prepare_market(agent.train_config, "val").slice(0, 400)
    pos = agent.positions(m)
    np.testing.assert_array_equal(pos, agent.positions(m.features))
    # independently: SB3's own VecNormalize (checkpoint statistics) and policy.predict on the real env
    _, _, state = resolve_checkpoint(outcome.run_dir)
    assert state["encoder_sha256"]
    env = TradingEnv(agent.inputs(m.features), m.open, m.close, cfg.env)
    vn = VecNormalize(DummyVecEnv([lambda: env]), training=False, norm_reward=False)
    restore_vecnormalize(vn, state["vecnormalize"])
    obs, _ = env.reset(options={"start": cfg.env.lookback - 1})
    for t in range(cfg.env.lookback - 1, len(m) - 1):
        a, _ = agent.policy.predict(vn.normalize_obs(obs[None]), deterministic=True)
        assert cfg.env.positions[int(a[0])] == pos[t], f"decision {t}"
        obs, *_ = env.step(int(a[0]))
    from ztb_core.live.loop.policy import AgentPolicy  # the live loop computes the embeddings online

    bars, rows = _bar_rows(cfg, m)
    t = 200
    assert AgentPolicy(outcome.run_dir).decide(bars.iloc[: rows[t] + 1], pos[t - 1]) == pos[t]
    code = main(
        [
            "eval",
            "--model",
            str(outcome.run_dir),
            "--split",
            "test",
            "--episodes",
            "2",
            "--run-id",
            "ev-frozen",
            *[x for s in FAST_EVAL for x in ("--set", s)],
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    report = json.loads((root / "artifacts" / "runs" / "ev-frozen" / "reports" / "eval_ev-frozen.json").read_text())
    assert report["meta"]["split"] == "test"


def test_the_ablation_scores_every_arm_on_the_same_bars_with_a_random_encoder_per_seed(
    long_window_encoder, art, tmp_path
):
    """The Stage-1 ablation on the real export: the encoder's longer warm-up moves the split
    boundaries (the control below), yet every arm and baseline is scored on the same test and
    validation bars, each seed's control has its own random weights, and the paired differences
    from technical-66 come with an interval."""
    from ztb_core.rl.stage1_ablation import ARMS, run_ablation

    base = tiny_cfg(total=128)
    plain_test = prepare_splits(base)["test"].index
    coded_test = prepare_splits(tiny_cfg(f"encoder.path={long_window_encoder}", total=128))["test"].index
    assert not plain_test.equals(coded_test)  # control: left alone, the arms' test bars differ

    res = run_ablation(base, long_window_encoder, seeds=[0, 1], work_dir=tmp_path / "ablation", label="abl")
    first, last, count = res["bars"]["test"]
    assert count < len(plain_test) and str(coded_test[-1]) == last
    assert {a.test["bars"] for a in res["arms"]} == {count}
    assert {b["bars"] for b in res["baselines"]["test"].values()} == {count}
    assert {a.val["bars"] for a in res["arms"]} == {res["bars"]["val"][2]}
    assert sorted((a.arm, a.seed) for a in res["arms"]) == sorted((arm, s) for arm in ARMS for s in (0, 1))
    weights = [
        torch.load(tmp_path / "ablation" / f"random-encoder-s{s}" / "encoder.pt", weights_only=False)["state_dict"]
        for s in (0, 1)
    ]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    for arm in ARMS[1:]:
        d = res["differences"][arm]
        pair = [
            next(a.test["sharpe"] for a in res["arms"] if a.arm == x and a.seed == s)
            for s in (0, 1)
            for x in (arm, ARMS[0])
        ]
        assert d["n"] == 2 and d["mean"] == pytest.approx((pair[0] - pair[1] + pair[2] - pair[3]) / 2, abs=0.011)
        assert d["ci95"][0] <= d["mean"] <= d["ci95"][1]


def test_bad_encoder_path_is_a_clear_error_before_any_run_folder(art, tmp_path):
    from ztb_core.paths import runs_dir

    missing = tmp_path / "nowhere" / "encoder.pt"
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"this is not a torch file")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    for path, why in (
        (missing, "no such file"),
        (bogus, "cannot read"),
        (other, "not a ztb encoder"),
        (tmp_path, "no encoder.pt"),
    ):
        with pytest.raises(ConfigError, match=re.escape(str(path))) as err:
            run_training(tiny_cfg(f"encoder.path={path}", total=128), run_id="bad", progress=False)
        assert why in str(err.value) and "encoder.path" in str(err.value)
    assert not (runs_dir() / "bad").exists()


# ---- fine-tune -------------------------------------------------------------------------------
def test_finetune_env_feeds_the_encoder_the_frozen_inputs(encoder_dir, art, monkeypatch):
    from gymnasium.utils.env_checker import check_env

    from ztb_core.data import source
    from ztb_core.rl.sb3_extractor import PretrainedEncoderExtractor

    cfg = tiny_cfg(f"encoder.path={encoder_dir}", "encoder.mode=finetune")
    bundle = load_encoder(encoder_dir)
    m = prepare_market(cfg, "train")
    assert m.features.shape[1] == N_TECH and len(m.windows) == len(m)
    env = EncoderTradingEnv(m.features, m.open, m.close, cfg.env, m.windows)
    check_env(env, skip_render_check=True)
    assert set(env.observation_space.spaces) == {"features", "position", "x:M1", "x:M5"}
    assert env.observation_space["x:M5"].shape == (bundle.lengths["M5"], 7)
    obs, _ = env.reset(options={"start": 50, "position": 1.0})
    lb = cfg.env.lookback
    np.testing.assert_array_equal(obs["features"], m.features[50 - lb + 1 : 51].reshape(-1))
    assert obs["position"][0] == 1.0
    # the extractor's embedding of the env's windows equals the frozen embedding of the same bars
    ext = PretrainedEncoderExtractor(env.observation_space, str(encoder_dir))
    bars, rows = _bar_rows(cfg, m)
    full = bundle.embed_bars(bars, cfg.data.market)
    pick = np.arange(0, len(m), 37)
    with torch.no_grad():
        emb = ext.embed({k: torch.as_tensor(v) for k, v in m.windows.batch(pick).items()}).numpy()
    np.testing.assert_allclose(emb, full[rows[pick]], rtol=1e-5, atol=1e-5)
    one = {k: torch.as_tensor(v[None]) for k, v in obs.items()}
    with torch.no_grad():
        out = ext(one)
    assert out.shape == (1, lb * N_TECH + 1 + bundle.embedding_dim)
    np.testing.assert_allclose(out[0, -bundle.embedding_dim :].numpy(), full[rows[50]], rtol=1e-5, atol=1e-5)
    # no look-ahead: a different future leaves every window up to the cut unchanged
    cut = int(rows[len(rows) // 2])
    monkeypatch.setattr(source, "load_bars", lambda _cfg: _scrambled_after(bars, cut))
    m2 = prepare_splits(cfg, ("train",))["train"]
    before = np.flatnonzero(rows <= cut)[-300:]
    after = np.flatnonzero(rows > cut)[:300]
    for k, v in m.windows.batch(before).items():
        np.testing.assert_array_equal(m2.windows.batch(before)[k], v)
    assert not np.allclose(m2.windows.batch(after)["x:M1"], m.windows.batch(after)["x:M1"])


def test_finetune_trains_the_encoder_and_resumes(finetuned, encoder_dir):
    outcome, cfg, _, state256 = finetuned
    assert outcome.state == "completed" and outcome.step == 512
    assert any(e["event"] == "resumed" and e["step"] == 256 for e in events(outcome.run_dir))
    val = metrics(outcome.run_dir, "val")  # periodic evaluation runs the fine-tuned policy on its windows
    assert [r["step"] for r in val] == [256, 512] and all(np.isfinite(r["bars"]) for r in val)
    _, _, state = resolve_checkpoint(outcome.run_dir)
    assert state["num_timesteps"] == 512
    exported = load_encoder(encoder_dir).model.state_dict()
    pol = state["policy"]
    prefix = "features_extractor.encoder."
    enc = {k[len(prefix) :]: v for k, v in pol.items() if k.startswith(prefix)}
    assert enc and not any(k.startswith("decoders.") for k in enc)
    assert set(enc) == {k for k in exported if not k.startswith("decoders.")}
    moved = {k for k in enc if not torch.equal(enc[k], exported[k])}
    assert moved and "bottleneck.weight" in moved  # PPO's gradients reached the encoder
    # training continued after the resume, from the 256-step weights
    assert any(not torch.equal(pol[k], state256["policy"][k]) for k in pol if k.startswith(prefix))
    lrs = {g["lr_scale"]: g["lr"] for g in state["optimizer"]["param_groups"]}
    assert lrs[0.1] == pytest.approx(0.1 * lrs[1.0]) and lrs[1.0] == pytest.approx(cfg.ppo.learning_rate)
    assert set(state["vecnormalize"]["obs_mean"]) == {"features", "position"}  # raw windows never normalised


def test_finetune_agent_reproduces_positions_acts_and_evaluates(finetuned, monkeypatch, capsys):
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from ztb_core.cli import main
    from ztb_core.rl.encoder import NORM_KEYS

    outcome, cfg, root, _ = finetuned
    monkeypatch.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
    agent = load_agent(outcome.run_dir)
    assert agent.finetune and agent.step == 512 and agent.n_features == N_TECH
    m = prepare_market(agent.train_config, "val").slice(0, 300)
    pos = agent.positions(m)
    with pytest.raises(DataError, match="MarketSlice"):
        agent.positions(m.features)
    _, _, state = resolve_checkpoint(outcome.run_dir)
    env = EncoderTradingEnv(agent.inputs(m.features), m.open, m.close, cfg.env, m.windows)
    vn = VecNormalize(DummyVecEnv([lambda: env]), training=False, norm_reward=False, norm_obs_keys=list(NORM_KEYS))
    restore_vecnormalize(vn, state["vecnormalize"])
    obs, _ = env.reset(options={"start": cfg.env.lookback - 1})
    for t in range(cfg.env.lookback - 1, len(m) - 1):
        a, _ = agent.policy.predict(vn.normalize_obs({k: v[None] for k, v in obs.items()}), deterministic=True)
        assert cfg.env.positions[int(a[0])] == pos[t], f"decision {t}"
        obs, *_ = env.step(int(a[0]))
    # one live-style decision from the bars themselves
    bars, rows = _bar_rows(cfg, m)
    t, lb = 200, cfg.env.lookback
    assert agent.act(m.features[t - lb + 1 : t + 1], pos[t - 1], bars=bars.iloc[: rows[t] + 1]) == pos[t]
    with pytest.raises(DataError, match="bars"):
        agent.act(m.features[t - lb + 1 : t + 1], pos[t - 1])
    from ztb_core.rl.encoder import EncoderWarmupError  # the live loop turns it into "not ready yet"

    with pytest.raises(EncoderWarmupError, match="warm-up"):
        agent.act(m.features[t - lb + 1 : t + 1], pos[t - 1], bars=bars.iloc[:100])
    from ztb_core.live.loop.policy import AgentPolicy  # the live loop decides from the bars alone

    assert AgentPolicy(outcome.run_dir).decide(bars.iloc[: rows[t] + 1], pos[t - 1]) == pos[t]
    code = main(
        [
            "eval",
            "--model",
            str(outcome.run_dir),
            "--split",
            "test",
            "--episodes",
            "2",
            "--run-id",
            "ev-ft",
            *[x for s in FAST_EVAL for x in ("--set", s)],
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
