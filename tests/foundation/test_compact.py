"""`ztb runs compact`: a finished run's metrics and events move into zstd segments, and every
reader (JsonlTail full and tail-only, rewind on resume) still sees exactly the same records."""

from __future__ import annotations

import os

import pytest

from ztb_core.cli import main
from ztb_core.errors import RunError
from ztb_core.ops.compact import compact_run
from ztb_core.runs import JsonlTail, RunWriter
from ztb_core.segments import compact_jsonl, segment_files


def _finished_run(rows: int = 5000) -> RunWriter:
    w = RunWriter.create("train", run_id="done")
    for step in range(rows):
        w.metric(step, "train", {"loss": 1.0 / (step + 1), "reward": step * 0.01})
    w.event("checkpoint_saved", step=rows - 1)
    w.close("completed")
    return w


def _records(path, **kw):
    return JsonlTail(path, **kw).poll().records


def test_compacted_history_reads_back_identically_and_smaller(artifacts):
    w = _finished_run()
    metrics, events = w.dir / "metrics.jsonl", w.dir / "events.jsonl"
    before_m, before_e = _records(metrics), _records(events)
    done = compact_run(w.dir)
    assert not metrics.exists() and segment_files(metrics)[0].suffix == ".zst"
    assert done.compressed_bytes * 4 < done.raw_bytes
    assert _records(metrics) == before_m and _records(events) == before_e
    tail = _records(metrics, from_end_bytes=4000)  # the console's fast first paint
    assert 0 < len(tail) < len(before_m) and tail == before_m[-len(tail) :]


def test_resumed_run_appends_after_history_and_rewind_reaches_into_segments(artifacts):
    w = _finished_run(1000)
    compact_run(w.dir)
    w2 = RunWriter.open(w.dir)
    removed = w2.rewind_metrics(499)  # the resume checkpoint was at step 499
    w2.metric(500, "train", {"loss": 0.5})
    w2.close("completed")
    steps = [r["step"] for r in _records(w.dir / "metrics.jsonl")]
    assert removed == 500 and steps == [*range(500), 500]


def test_an_attached_reader_is_told_to_reset_and_sees_everything_again(artifacts):
    w = _finished_run(300)
    tail = JsonlTail(w.dir / "metrics.jsonl")
    assert len(tail.poll().records) == 300
    compact_run(w.dir)
    again = tail.poll()
    assert again.reset and len(again.records) == 300


def test_a_kill_between_move_and_compression_loses_and_duplicates_nothing(artifacts):
    w = _finished_run(200)
    path = w.dir / "metrics.jsonl"
    expected = _records(path)
    seg_dir = w.dir / "segments"
    seg_dir.mkdir()
    plain = seg_dir / "metrics.000001.jsonl"
    os.replace(path, plain)  # killed right after the atomic move
    assert _records(path) == expected
    compact_jsonl(path)  # nothing live: a no-op
    # killed after the compressed twin was written but before the plain one was removed
    res = compact_jsonl(plain.parent.parent / "metrics.jsonl")
    assert res.segment is None
    import zstandard

    (seg_dir / "metrics.000001.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    assert _records(path) == expected  # the twin wins, no duplicates


def test_a_live_run_is_refused(artifacts):
    w = RunWriter.create("train", run_id="live")
    w.set_status("running", step=1)
    with pytest.raises(RunError, match="stop it before compacting"):
        compact_run(w.dir)
    w.close("stopped")


def test_cli_compacts_named_runs_and_all_finished(artifacts, capsys):
    _finished_run(500)
    assert main(["runs", "compact", "done"]) == 0
    assert "MB ->" in capsys.readouterr().out
    assert main(["runs", "compact", "--all"]) == 0
    assert "nothing to compact" in capsys.readouterr().out
    assert main(["runs", "--json"]) == 0
    assert '"run_id": "done"' in capsys.readouterr().out
