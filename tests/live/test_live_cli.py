"""`ztb live` guards: real trading needs keys and an explicit confirmation; disabling the risk
limits is loud; bad config is a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ztb_core.cli import main
from ztb_core.live.execution.journal import JournalError, JournalLock
from ztb_core.runs import list_runs

from .conftest import TEST_KEY, TEST_SECRET
from .test_runner import live_args


def hold_journal(path) -> subprocess.Popen:
    """Another process that takes the journal's lock and keeps it (until killed)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom ztb_core.live.execution.journal import JournalLock\n"
            "JournalLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


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
    path = tmp_path / "journal.sqlite"
    holder = hold_journal(path)
    try:
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
    from ztb_core.live.loop.runner import LiveRunner

    def boom(self, max_bars=None):
        raise exc

    monkeypatch.setattr(LiveRunner, "run", boom)


def test_error_path_keeps_the_exception_and_redacts_what_it_writes(fast_emulator, monkeypatch):
    import json

    from ztb_core.live.venue.errors import OrderOutcomeUnknown

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

    from ztb_core.live.execution.journal import Journal
    from ztb_core.live.execution.orders import UNKNOWN, Order
    from ztb_core.live.execution.reconcile import AMBIGUOUS_KEY, FOREIGN_KEY

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


# ---- issue 25 defect 7: the journal lock holds through a symlink ---------------------------------
def test_a_second_process_through_a_symlink_to_the_journal_is_refused(fast_emulator, tmp_path, capsys):
    """One process holds the journal by its real path; `ztb live` given a symlink to the same file
    (and to its folder) must be refused before a run directory exists, not open it a second time."""
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    path = real_dir / "journal.sqlite"
    link = tmp_path / "link.sqlite"
    link.symlink_to(path)  # dangling until the journal is created: the lock must still follow it
    (tmp_path / "linkdir").symlink_to(real_dir)
    holder = hold_journal(path)
    try:
        for alias in (link, tmp_path / "linkdir" / "journal.sqlite"):
            rc = main(live_args(fast_emulator, "--dry-run", "--set", f"journal_path={alias}", "--max-bars", "1"))
            assert rc == 2, alias
            err = capsys.readouterr().err
            assert f"pid {holder.pid}" in err and "in use" in err
        assert not list_runs()
    finally:
        holder.kill()
        holder.wait()


def test_a_hard_link_to_a_held_journal_is_refused(tmp_path):
    """A hard link is the same file under a name no path resolution reveals: the second lock must
    still be refused (the journal file itself is locked); a different journal is not."""
    path = tmp_path / "real" / "journal.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"")
    alias = tmp_path / "elsewhere" / "alias.sqlite"
    alias.parent.mkdir()
    os.link(path, alias)
    holder = hold_journal(path)
    try:
        with pytest.raises(JournalError, match="hard link"):
            JournalLock(alias).acquire()
        other = JournalLock(tmp_path / "other.sqlite").acquire()  # control: another journal locks fine
        other.release()
    finally:
        holder.kill()
        holder.wait()
    again = JournalLock(alias).acquire()  # the holder is gone: the kernel dropped its locks
    again.release()


# ---- issue 25 defect 5: --dry-run wins, contradictory modes are refused --------------------------
@pytest.mark.parametrize(
    "env,flags,needle",
    [
        ({"DRY_RUN": "1"}, ("--dry-run", "--minimal"), "--dry-run and DRY_RUN=1"),
        ({"LIVE_MINIMAL": "1"}, ("--dry-run",), "LIVE_MINIMAL=1"),
        ({}, ("--dry-run", "--minimal"), "--minimal"),
        ({}, ("--dry-run", "--confirm-live", "--set", "mode=live"), "--confirm-live"),
        ({"DRY_RUN": "1"}, ("--confirm-live", "--set", "mode=live"), "DRY_RUN=1"),
        ({"DRY_RUN": "0"}, ("--dry-run",), "DRY_RUN=0"),
        ({"LIVE_MINIMAL": "0"}, ("--minimal",), "LIVE_MINIMAL=0"),
        ({"DRY_RUN": "maybe"}, ("--dry-run",), "DRY_RUN='maybe'"),
    ],
)
def test_contradictory_modes_are_refused_before_any_call(fast_emulator, monkeypatch, capsys, env, flags, needle):
    """Keys are in the environment, so a real order COULD be placed: the refusal must come first
    (one line, exit 2), with no request of any kind to the exchange and no run directory."""
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    monkeypatch.delenv("DRY_RUN", raising=False)
    monkeypatch.delenv("LIVE_MINIMAL", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(live_args(fast_emulator, *flags, "--max-bars", "1")) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not fast_emulator.requests, dict(fast_emulator.requests)
    assert not fast_emulator.state.orders and not list_runs()


def test_a_dry_run_never_calls_a_private_endpoint_whatever_the_config_says(fast_emulator, monkeypatch, capsys):
    """Keys in the environment, `mode: live` and `confirm_live: true` in the config: --dry-run
    still paper trades; the emulator counts zero private requests and holds no order."""
    from ztb_core.live.emulator.config import ENDPOINTS

    private = set(ENDPOINTS) - {"ticker", "order_books", "trades", "exchange_status"}
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    monkeypatch.delenv("LIVE_MINIMAL", raising=False)
    monkeypatch.setenv("DRY_RUN", "1")
    args = live_args(fast_emulator, "--dry-run", "--set", "mode=live", "--set", "confirm_live=true", "--max-bars", "2")
    assert main(args) == 0
    assert "DRY_RUN" in capsys.readouterr().err  # the banner says which mode ran
    assert fast_emulator.requests and not (set(fast_emulator.requests) & private), dict(fast_emulator.requests)
    assert not fast_emulator.state.orders
    (run,) = list_runs()
    assert json.loads((run.dir / "reports" / "live_report.json").read_text())["mode"] == "dry_run"
