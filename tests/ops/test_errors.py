"""`ztb errors`: the last errors across runs, one row per traceback digest, filtered by --since."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from ztb_core.cli import main
from ztb_core.errors import ZtbError
from ztb_core.ops.errors import collect, parse_since
from ztb_core.runs import RunWriter
from ztb_core.runtime.stopper import record_event


def fail_with(run_id: str, exc_factory):
    with pytest.raises(Exception):  # noqa: B017 - the run records whatever it raised
        with RunWriter.create("train", {}, run_id=run_id):
            raise exc_factory()


def same_bug():
    return ValueError("bad step size")


def test_same_traceback_in_two_runs_is_one_row(artifacts):
    fail_with("train-a", same_bug)
    fail_with("train-b", same_bug)
    fail_with("train-c", lambda: KeyError("other"))
    w = RunWriter.create("train", {}, run_id="train-d")
    w.event("fatal", crashes=3, last_exit="signal SIGKILL")
    w.close()
    groups = collect()
    by_error = {g.error: g for g in groups}
    assert by_error["ValueError: bad step size"].count == 2
    assert sorted(by_error["ValueError: bad step size"].runs) == ["train-a", "train-b"]
    assert by_error["KeyError: 'other'"].count == 1
    assert any(g.digest.startswith("msg:") and g.runs == ["train-d"] for g in groups)
    assert len(groups) == 3
    assert "raise exc_factory()" in "".join(by_error["ValueError: bad step size"].traceback_tail)


def test_since_filters_and_cli(artifacts, capsys):
    fail_with("train-a", same_bug)
    record_event(artifacts / "runs" / "train-a", "error", error="OSError: old", traceback_sha1="aaaaaaaaaaaa")
    lines = (artifacts / "runs" / "train-a" / "events.jsonl").read_text().splitlines()
    old = json.loads(lines[-1])
    old["time"] = time.time() - 3 * 86400
    (artifacts / "runs" / "train-a" / "events.jsonl").write_text("\n".join(lines[:-1] + [json.dumps(old)]) + "\n")
    assert {g.error for g in collect()} == {"ValueError: bad step size", "OSError: old"}
    assert {g.error for g in collect(since=parse_since("1d"))} == {"ValueError: bad step size"}
    assert main(["errors", "--since", "2d", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["error"] for r in rows] == ["ValueError: bad step size"]
    assert main(["errors"]) == 0
    out = capsys.readouterr().out
    assert "2 distinct" in out and "ValueError" in out and "OSError: old" in out


def test_parse_since():
    now = 1_000_000.0
    assert parse_since("30m", now) == now - 1800 and parse_since("2d", now) == now - 2 * 86400
    assert parse_since("2026-11-30", now) == datetime(2026, 11, 30, tzinfo=UTC).timestamp()
    assert parse_since(None) is None
    with pytest.raises(ZtbError, match="--since 'yesterday'"):
        parse_since("yesterday")
