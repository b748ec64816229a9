"""Starting a trained agent: the runner's buffer is backfilled at start from the exchange's history and
the data store, the missing bars are named with where they would come from, the first bar is a
decision; the banner names the policy actually used; an agent trained on another market kind is a
warning in a dry run and refused in real trading unless explicitly allowed."""

from __future__ import annotations

import pandas as pd
import pytest

from ztb_core.cli import main
from ztb_core.data.store import write_bars
from ztb_core.data.synthetic import SyntheticConfig, generate_market
from ztb_core.live.emulator import EmulatorConfig, EmulatorServer, load_synthetic
from ztb_core.live.loop import policy as policy_mod
from ztb_core.live.loop import session as session_mod
from ztb_core.live.loop.policy import NotReady, feature_history
from ztb_core.live.market.backfill import backfill
from ztb_core.runs import list_runs

from .conftest import TEST_KEY, TEST_SECRET
from .test_runner import live_args, read_jsonl

NEED = 2000


def store_history(tape_first_ms: int, n: int, symbol: str = "BTC_JPY", price: float = 1_200_000.0) -> pd.DataFrame:
    """n stored M1 bars ending just before the exchange's own history begins."""
    first = pd.Timestamp(tape_first_ms // 60_000 * 60_000 - n * 60_000, unit="ms", tz="UTC")
    bars = generate_market(SyntheticConfig(seed=9, n_bars=n, market="crypto", base_price=price, start=first))
    write_bars(bars, symbol, "M1")
    return bars


def exchange_first_ms(adapter, now: int) -> int:
    """Open time of the oldest bar the exchange's own history gives (the emulator rebases its clock)."""
    return int(adapter.fetch_ohlcv_or_build("1m", since_ms=now - 86_400_000, now_ms=now).index[0].value // 1_000_000)


def test_backfill_joins_the_store_to_the_exchange_history(exchange_adapter):
    now = exchange_adapter.fetch_ticker().timestamp_ms
    stored = store_history(exchange_first_ms(exchange_adapter, now), 5000)
    bars, report = backfill(exchange_adapter, "1m", 60_000, NEED, now, "BTC/JPY")
    assert report.from_exchange >= 50  # the emulator shows an hour of trades
    assert report.have == NEED and report.missing == 0
    assert report.from_store == NEED - report.from_exchange
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert bars.index[0] in stored.index and report.gap_minutes is not None and report.gap_minutes < 2
    assert report.lines("coincheck", "BTC/JPY", pd.Timestamp(now, unit="ms", tz="UTC"))[1:] == []


def test_missing_bars_are_counted_and_sourced(exchange_adapter):
    now = exchange_adapter.fetch_ticker().timestamp_ms
    bars, report = backfill(exchange_adapter, "1m", 60_000, NEED, now, "BTC/JPY")
    assert report.from_store == 0 and report.missing == NEED - len(bars) > 0
    lines = report.lines("coincheck", "BTC/JPY", pd.Timestamp(now - NEED * 60_000, unit="ms", tz="UTC"))
    assert f"{report.missing:,} bars missing" in lines[-1]
    assert "ztb data fetch --exchange coincheck --symbol BTC/JPY --since" in lines[-1] and "BTC_JPY/M1" in lines[-1]


def test_a_stale_store_is_reported_as_a_gap(exchange_adapter):
    now = exchange_adapter.fetch_ticker().timestamp_ms
    store_history(
        exchange_first_ms(exchange_adapter, now) - 3 * 86_400_000, 5000
    )  # three days older than the exchange's
    _, report = backfill(exchange_adapter, "1m", 60_000, NEED, now, "BTC/JPY")
    assert report.gap_minutes > 3 * 1440 - 5
    assert any(
        "minutes are missing between the stored bars" in line
        for line in report.lines("coincheck", "BTC/JPY", pd.Timestamp(now, unit="ms", tz="UTC"))
    )


class NeedsHistory:
    """A policy with an agent's warm-up: NotReady until it has NEED bars."""

    def __init__(self, market: str = "crypto") -> None:
        self.name, self.market = "agent(stub@1)", market
        self.warmup_bars = self.buffer_bars = NEED
        self.primed = 0

    def prime(self, bars) -> None:
        self.primed = len(bars)

    def decide(self, bars, position: float) -> float:
        if len(bars) < NEED:
            raise NotReady(f"{len(bars)} bars")
        return 0.0


@pytest.fixture
def replay_emulator():
    cfg = EmulatorConfig(
        speed=120, clock="tape", history_s=3600, api_key=TEST_KEY, secret=TEST_SECRET, balances={"jpy": 1e6, "btc": 0.1}
    )
    with EmulatorServer(cfg, tape=load_synthetic(0.5, seed=3)) as emu:
        yield emu


def use_policy(monkeypatch, policy) -> None:
    # the session builder calls it by the name it imported
    monkeypatch.setattr(session_mod, "make_policy", lambda cfg, allow_short=False, checkpoint=None: policy)


def test_agent_decides_from_the_first_bar_and_the_banner_names_it(replay_emulator, artifacts, monkeypatch, capsys):
    store_history(int(replay_emulator.tape.ts_ms[0]), 3000)
    policy = NeedsHistory()
    use_policy(monkeypatch, policy)
    args = live_args(replay_emulator, "--dry-run", "--max-bars", "2", "--checkpoint", "runs/some-agent")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "agent agent(stub@1)" in err and "policy         sma" not in err
    (run,) = list_runs()
    events = read_jsonl(run.dir / "events.jsonl")
    (hist,) = [e for e in events if e["event"] == "history_backfilled"]
    assert hist["missing"] == 0 and hist["have"] >= NEED and hist["from_store"] > 0
    assert policy.primed >= NEED
    assert not [e for e in events if e["event"] == "not_ready"]
    metrics = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "live"]
    assert metrics[0]["decision"] == "skip"  # a decision (flat, at target) on the very first bar
    assert "policy:\n  kind: agent" in (run.dir / "config.yaml").read_text()


def test_without_history_the_runner_says_what_is_missing(replay_emulator, artifacts, monkeypatch):
    use_policy(monkeypatch, NeedsHistory())
    assert main(live_args(replay_emulator, "--dry-run", "--max-bars", "1")) == 0
    (run,) = list_runs()
    events = read_jsonl(run.dir / "events.jsonl")
    (hist,) = [e for e in events if e["event"] == "history_backfilled"]
    assert hist["missing"] > 0 and hist["from_store"] == 0
    assert [e for e in events if e["event"] == "not_ready"]  # positive control: no history, no decision
    log = next((run.dir / "logs").glob("*.log")).read_text()
    assert f"{hist['missing']:,} bars missing" in log and "ztb data fetch" in log


def test_market_mismatch_warns_in_dry_run(replay_emulator, artifacts, monkeypatch, capsys):
    use_policy(monkeypatch, NeedsHistory(market="fx"))
    assert main(live_args(replay_emulator, "--dry-run", "--max-bars", "1")) == 0
    assert "trained on fx" in capsys.readouterr().err
    (run,) = list_runs()
    alerts = [e for e in read_jsonl(run.dir / "events.jsonl") if e["event"] == "alert"]
    assert any("market mismatch" in a["message"] for a in alerts)


def test_market_mismatch_refused_in_real_trading_unless_allowed(replay_emulator, artifacts, monkeypatch, capsys):
    use_policy(monkeypatch, NeedsHistory(market="fx"))
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    real = live_args(replay_emulator, "--set", "mode=live", "--confirm-live", "--max-bars", "1")
    assert main(real) == 2
    assert "Real trading is refused" in capsys.readouterr().err
    assert list_runs() == []  # refused before any run directory exists
    assert main([*real, "--allow-market-mismatch"]) == 0
    assert main([*real, "--set", "allow_market_mismatch=true"]) == 0
    assert len(list_runs()) == 2


def test_same_market_is_not_a_mismatch():
    assert policy_mod.market_mismatch(NeedsHistory("crypto"), "crypto") is None
    assert "trained on fx" in policy_mod.market_mismatch(NeedsHistory("fx"), "crypto")
    assert policy_mod.market_mismatch(policy_mod.SmaPolicy(), "fx") is None


@pytest.mark.slow
def test_trained_agent_decides_from_the_first_bar(replay_emulator, artifacts):
    """The issue's reproduction: `ztb live --dry-run --checkpoint RUN --max-bars 3` against the emulator
    logged not_ready on every bar; with the store backfilled, the real agent decides on each bar."""
    from ztb_core.rl.trainer import run_training

    from ..rl.conftest import tiny_cfg

    cfg = tiny_cfg("data.synthetic.n_bars=6000", "data.synthetic.market=crypto", "data.market=crypto", total=256)
    outcome = run_training(cfg, run_id="agent", progress=False)
    store_history(int(replay_emulator.tape.ts_ms[0]), 7000)  # more than the 4,387 bars the agent reads
    args = live_args(
        replay_emulator,
        "--dry-run",
        "--max-bars",
        "3",
        "--checkpoint",
        str(outcome.run_dir),
    )
    assert main(args) == 0
    (run,) = [r for r in list_runs() if r.kind == "live"]
    events = read_jsonl(run.dir / "events.jsonl")
    assert not [e for e in events if e["event"] == "not_ready"]
    (started,) = [e for e in events if e["event"] == "live_started"]
    # the buffer is what the agent reads (technical-66 + lookback 8 - 1), not a fixed 6,000
    assert started["policy"].startswith("agent(") and started["history_bars"] == feature_history("technical-66") + 7
    metrics = [m for m in read_jsonl(run.dir / "metrics.jsonl") if m["split"] == "live"]
    assert len(metrics) == 3 and all(m["decision"] in ("placed", "skip", "denied") for m in metrics)


def test_history_symbol_names_the_stored_dataset(replay_emulator, artifacts, monkeypatch):
    store_history(int(replay_emulator.tape.ts_ms[0]), 3000, symbol="MY_BTC")
    use_policy(monkeypatch, NeedsHistory())
    assert main(live_args(replay_emulator, "--dry-run", "--max-bars", "1", "--set", "history_symbol=MY_BTC")) == 0
    (run,) = list_runs()
    (hist,) = [e for e in read_jsonl(run.dir / "events.jsonl") if e["event"] == "history_backfilled"]
    assert hist["store_dataset"] == "MY_BTC/M1" and hist["from_store"] > 0 and hist["missing"] == 0
