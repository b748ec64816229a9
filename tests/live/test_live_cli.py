"""`ztb live` guards: real trading needs keys and an explicit confirmation; disabling the risk
limits is loud; bad config is a clear error."""

from __future__ import annotations

import json

import pytest

from ztb_core.cli import main
from ztb_core.runs import list_runs

from .conftest import TEST_KEY, TEST_SECRET
from .test_runner import live_args


def test_live_without_confirmation_refuses(fast_emulator, monkeypatch, capsys):
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    assert main(live_args(fast_emulator, "--set", "mode=live", "--max-bars", "1")) == 2
    assert "--confirm-live" in capsys.readouterr().err
    assert not fast_emulator.requests and not list_runs()


def test_live_without_keys_refuses(fast_emulator, monkeypatch, capsys):
    monkeypatch.delenv("COINCHECK_API_KEY", raising=False)
    monkeypatch.delenv("COINCHECK_API_SECRET", raising=False)
    assert main(live_args(fast_emulator, "--set", "mode=live", "--confirm-live", "--max-bars", "1")) == 2
    err = capsys.readouterr().err
    assert "COINCHECK_API_KEY" in err and "COINCHECK_API_SECRET" in err


def test_dry_run_env_var_and_risk_disabled_warning(fast_emulator, monkeypatch, capsys):
    monkeypatch.setenv("DRY_RUN", "1")
    assert main(live_args(fast_emulator, "--set", "mode=live", "--disable-risk-limits", "--max-bars", "1")) == 0
    err = capsys.readouterr().err
    assert "RISK LIMITS ARE DISABLED" in err and "DRY_RUN" in err
    (run,) = list_runs()
    assert "risk limits disabled" in (run.dir / "events.jsonl").read_text()
    assert "enabled: false" in (run.dir / "config.yaml").read_text()
    # run.json says which flag set what: DRY_RUN beat --set mode=live, the flag turned risk off
    sources = json.loads((run.dir / "run.json").read_text())["config_sources"]
    assert sources["mode"] == "env DRY_RUN" and sources["risk.enabled"] == "--disable-risk-limits"
    assert sources["exchange.api_url"] == "--set" and "exchange.symbol" not in sources  # bundled default


@pytest.mark.parametrize(
    "override,needle",
    [
        ("risk.daily_loss_limit=-5", "risk.daily_loss_limit"),
        ("policy.sma_fast=50", "sma_fast"),
        ("bar_timeframe=M1", "bar_timeframe"),
    ],
)
def test_bad_config_is_a_clear_error(override, needle, capsys):
    assert main(["live", "--dry-run", "--set", override]) == 2
    assert needle in capsys.readouterr().err


def test_agent_policy_needs_a_checkpoint(fast_emulator, capsys):
    assert main(live_args(fast_emulator, "--dry-run", "--policy", "agent", "--max-bars", "1")) == 2
    assert "checkpoint" in capsys.readouterr().err


# ---- issue 11 defects 6, 7, 8 -------------------------------------------------------------------
def test_zaif_is_refused_for_real_money_with_the_reason(monkeypatch, capsys):
    monkeypatch.setenv("ZAIF_API_KEY", TEST_KEY)
    monkeypatch.setenv("ZAIF_API_SECRET", TEST_SECRET)
    base = ["live", "--set", "exchange.exchange=zaif", "--set", "exchange.api_url=http://127.0.0.1:9/api"]
    assert main([*base, "--set", "mode=live", "--confirm-live", "--max-bars", "1"]) == 2
    assert "fetchMyTrades" in capsys.readouterr().err
    assert main([*base, "--minimal"]) == 2
    assert "privatePostTradeHistory" in capsys.readouterr().err
    assert not list_runs()


def test_a_second_process_on_the_same_journal_is_told_who_holds_it(fast_emulator, tmp_path, capsys):
    import subprocess
    import sys

    path = tmp_path / "journal.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom ztb_core.live.journal import JournalLock\n"
            "JournalLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main(live_args(fast_emulator, "--dry-run", "--set", f"journal_path={path}", "--max-bars", "1"))
        assert rc == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "in use" in err
        assert not list_runs()  # refused before a run directory exists
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the killed holder's lock: the journal is usable again
    assert main(live_args(fast_emulator, "--dry-run", "--set", f"journal_path={path}", "--max-bars", "1")) == 0


def _raise_in_session(monkeypatch, exc: BaseException) -> None:
    from ztb_core.live.runner import LiveRunner

    def boom(self, max_bars=None):
        raise exc

    monkeypatch.setattr(LiveRunner, "run", boom)


def test_error_path_keeps_the_exception_and_redacts_what_it_writes(fast_emulator, monkeypatch):
    import json

    from ztb_core.live.exchange import OrderOutcomeUnknown

    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    # exceptions whose constructors take required arguments: type(exc)(message) would raise TypeError
    for exc in (
        OrderOutcomeUnknown(f"lost ({TEST_SECRET})", "c-1", "buy", 1, 1, 0),
        json.JSONDecodeError(f"bad body {TEST_KEY}", "doc", 0),
    ):
        _raise_in_session(monkeypatch, exc)
        args = live_args(fast_emulator, "--set", "mode=live", "--confirm-live", "--max-bars", "1")
        if isinstance(exc, OrderOutcomeUnknown):
            assert main(args) == exc.exit_code  # reported as the ZtbError it is, not a TypeError
        else:
            with pytest.raises(json.JSONDecodeError) as caught:
                main(args)
            assert caught.value is exc and caught.value.__traceback__ is not None
        run = max(list_runs(), key=lambda r: r.dir.stat().st_mtime)
        written = (run.dir / "events.jsonl").read_text() + (run.dir / "status.json").read_text()
        assert type(exc).__name__ in written
        assert TEST_SECRET not in written and TEST_KEY not in written


def test_reconcile_command_lists_and_resolves_an_ambiguous_placement(tmp_path, capsys):
    from decimal import Decimal

    from ztb_core.live.journal import Journal
    from ztb_core.live.orders import UNKNOWN, Order
    from ztb_core.live.reconcile import AMBIGUOUS_KEY, FOREIGN_KEY

    path = tmp_path / "j.sqlite"
    with Journal(path, "live", "coincheck", "BTC/JPY") as j:
        o = j.record_submission(Order.create("BTC/JPY", "buy", Decimal("0.01"), Decimal("1000000")))
        o = j.transition(o, UNKNOWN)
        j.set_state(AMBIGUOUS_KEY, {o.client_id: ["7", "8"]})
    base = ["live", "reconcile", "--set", f"journal_path={path}"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert o.client_id in out and "7, 8" in out
    assert main([*base, "--resolve", "8"]) == 2  # --as is required with --resolve
    assert main([*base, "--resolve", "9", "--as", "ours"]) == 2  # not a candidate
    assert "not a candidate" in capsys.readouterr().err
    assert main([*base, "--resolve", "7", "--as", "not-ours"]) == 0
    assert main([*base, "--resolve", "8", "--as", "ours"]) == 0
    with Journal(path, "live", "coincheck", "BTC/JPY") as j:
        got = j.get(o.client_id)
        assert got.state == "open" and got.exchange_id == "8"
        assert j.get_state(FOREIGN_KEY) == ["7"] and j.get_state(AMBIGUOUS_KEY) == {}
