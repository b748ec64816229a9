"""The live session builder (`live/loop/session.py`): every refusal before anything is written, and
the one teardown every live run shares (`opened_run`)."""

from __future__ import annotations

import json
import logging

import pytest

from ztb_core.config import load_config
from ztb_core.errors import ZtbError
from ztb_core.live.execution.journal import JournalLock
from ztb_core.live.loop.live_config import LiveConfig
from ztb_core.live.loop.session import SCRUBBED_LOGGERS, opened_run, prepare_session
from ztb_core.live.venue.secrets import SecretsFilter
from ztb_core.runs import list_runs

from .conftest import TEST_KEY, TEST_SECRET


def _scrubbing_filters() -> list[logging.Filter]:
    """The key scrubbers on the loggers themselves (the run log's handlers keep theirs: scrubbing
    longer than needed leaks nothing)."""
    loggers = [logging.getLogger(name) for name in SCRUBBED_LOGGERS]
    return [f for lg in loggers for f in lg.filters if isinstance(f, SecretsFilter)]


def test_a_failure_inside_a_live_run_is_recorded_redacted_and_everything_is_released(tmp_path, test_credentials):
    cfg = load_config(LiveConfig, None, [f"journal_path={tmp_path / 'journal.sqlite'}"])
    boom = RuntimeError(f"venue said no to {TEST_KEY}")
    with pytest.raises(RuntimeError) as caught:
        with opened_run(
            cfg, test_credentials, "live", run_id="s1", total_steps=3, config_sources=None, telemetry=True
        ) as run:
            assert _scrubbing_filters()  # the keys are scrubbed while the run is open
            logging.getLogger("ztb.live").warning("secret %s in a log line", TEST_SECRET)
            raise boom
    assert caught.value is boom  # the exception goes on unchanged
    status = json.loads((run.writer.dir / "status.json").read_text())
    assert status["state"] == "failed" and status["message"].startswith("RuntimeError: venue said no to ")
    written = (run.writer.dir / "events.jsonl").read_text() + json.dumps(status)
    assert "RuntimeError" in written and TEST_KEY not in written
    logged = "".join(p.read_text(errors="replace") for p in (run.writer.dir / "logs").glob("*"))
    assert "in a log line" in logged and TEST_SECRET not in logged
    # released: the journal lock (a second holder gets it), the journal, the log scrubbing
    JournalLock(tmp_path / "journal.sqlite").acquire().release()
    assert _scrubbing_filters() == []


def test_refusals_come_before_any_run_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    cfg = load_config(LiveConfig, None, [f"journal_path={tmp_path / 'journal.sqlite'}", "mode=live"])
    with pytest.raises(ZtbError, match="--confirm-live"):
        prepare_session(cfg, "live", confirmed=False, checkpoint=None)
    plan = prepare_session(cfg, "live", confirmed=True, checkpoint=None)
    assert plan.credentials is not None and plan.credentials.source and plan.policy.name
    assert plan.mismatch is None
    assert not list_runs() and not (tmp_path / "journal.sqlite").exists()
