"""`ztb live` end to end with a volatility forecaster (emulator, real ccxt client, paper fills): each
decision's `vol_scale` is the scale `ztb eval` computes offline on the very bars the runner held; a
policy without a forecaster is said so in `live_started`, or refused under `vol_forecast: required`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ztb_core.cli import main
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.evaluation.vol_sizing import TrainedVolSizing, held_scale
from ztb_core.live.execution.journal import Journal
from ztb_core.runs import list_runs

from .test_backfill import replay_emulator, store_history, use_policy  # noqa: F401  (a fixture among them)
from .test_runner import live_args, read_jsonl


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(index.as_unit("ns").asi8, np.int64)


class ForecastAgent:
    """A stand-in for a trained agent policy: always long, carrying a volatility forecaster (or why it
    has none), recording the buffer it is shown at each decision (the runner sizes on the same one)."""

    def __init__(self, trained: TrainedVolSizing | None, absent: str | None = None) -> None:
        self.name, self.market = "agent(stub@1)", "crypto"
        self.warmup_bars = self.buffer_bars = 100
        self.vol_sizing, self.vol_sizing_absent = trained, absent
        self.seen: list[pd.DataFrame] = []

    def decide(self, bars: pd.DataFrame, position: float) -> float:
        self.seen.append(bars.copy())
        return 1.0


@pytest.fixture(scope="module")
def trained() -> TrainedVolSizing:
    train = generate_market(SyntheticConfig(seed=5, n_bars=3 * 7200, market="crypto", base_price=1_200_000.0))
    return TrainedVolSizing.fit(train["close"].to_numpy(), _ns(train.index), horizon=60, cap=2.0, band=0.25)


def test_each_decision_is_sized_with_the_scale_eval_computes_on_the_same_bars(
    replay_emulator,  # noqa: F811
    artifacts,
    monkeypatch,
    trained,
):
    store_history(int(replay_emulator.tape.ts_ms[0]), 7300)  # a week of bars before the exchange's own
    policy = ForecastAgent(trained)
    use_policy(monkeypatch, policy)
    # limits loose enough that the forecaster's scale, not a cap, sets the size
    roomy = ["--set", "capital=200000", "--set", "risk.max_position=10", "--set", "risk.max_notional=1e8"]
    roomy += ["--set", "sizing.max_leverage=10", "--set", "sizing.expected_sharpe=1000"]
    roomy += ["--set", "sizing.target_vol=0.01"]  # realised-vol sizing would buy about a tenth of it
    assert main(live_args(replay_emulator, "--dry-run", "--max-bars", "3", *roomy)) == 0
    (run,) = list_runs()
    (started,) = [e for e in read_jsonl(run.dir / "events.jsonl") if e["event"] == "live_started"]
    assert started["vol_sizing"].startswith("volatility sizing from the checkpoint: HAR-RV")
    metrics = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "live" and "decision" in m]
    assert len(metrics) == len(policy.seen) == 3
    # offline, on the buffers the runner held: the forecast's scale at each decision bar, then the band
    raw = [trained.sizing.scale(b["close"].to_numpy(), _ns(b.index))[-1] for b in policy.seen]
    offline = held_scale(np.asarray(raw), np.ones(len(raw)), trained.band)
    live = np.array([m["vol_scale"] for m in metrics], np.float64)
    np.testing.assert_allclose(live, offline, rtol=0, atol=1e-9)
    assert np.all(live > 0) and all(len(b) >= 7201 for b in policy.seen)
    # and the first order (from flat) is that scale times the equity, not target_vol / realised vol
    with Journal(artifacts / "live" / "journal-paper-coincheck-BTC_JPY.sqlite", "paper", "coincheck", "BTC/JPY") as j:
        first = j.orders()[0]
    expected = 200_000 * live[0] / metrics[0]["price"]
    assert first.side == "buy" and abs(float(first.amount) - expected) <= 1e-8 + 1e-6 * expected


def test_no_forecaster_is_said_and_required_refuses(replay_emulator, artifacts, monkeypatch, capsys):  # noqa: F811
    why = "checkpoint step-1.ckpt.zst stores no volatility forecaster (it was saved before checkpoints carried one)"
    use_policy(monkeypatch, ForecastAgent(None, why))
    assert main(live_args(replay_emulator, "--dry-run", "--max-bars", "1")) == 0
    (run,) = list_runs()
    (started,) = [e for e in read_jsonl(run.dir / "events.jsonl") if e["event"] == "live_started"]
    assert started["vol_sizing"].startswith("volatility sizing is off: " + why)
    metrics = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "live" and "decision" in m]
    assert metrics and all(m["vol_scale"] is None for m in metrics)  # sized on realised volatility
    # the same session asking for the forecaster is refused, naming why, before a run folder exists
    capsys.readouterr()
    assert (
        main(live_args(replay_emulator, "--dry-run", "--max-bars", "1", "--set", "sizing.vol_forecast=required")) != 0
    )
    out = capsys.readouterr()
    assert "sizing.vol_forecast is required but" in " ".join((out.out + out.err).split())
    assert [r.dir for r in list_runs()] == [run.dir]
