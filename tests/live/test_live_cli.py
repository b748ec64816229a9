"""`ztb live` guards: real trading needs keys and an explicit confirmation; disabling the risk
limits is loud; bad config is a clear error."""

from __future__ import annotations

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
