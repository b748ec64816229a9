from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ztb_core.runs import JsonlTail, RunReader, RunWriter, find_run, list_runs, liveness
from ztb_core.runtime.run_writer import create_run

WRITER_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ztb_core.runs import RunWriter
    run = RunWriter.open(Path(sys.argv[1]))
    run.set_status("running", step=0, total_steps=10**9)
    n = int(sys.argv[2])
    for i in range(n if n > 0 else 10**9):
        run.metric(i, "train", {"loss": 1.0 / (i + 1), "pad": "x" * (i % 50)})
        run.heartbeat(i, min_interval_s=0.0 if n < 0 else 1.0)
    run.close("completed")
""")


def spawn_writer(run_dir, n, **kw):
    return subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(run_dir), str(n)], **kw)


def test_create_writes_protocol_files(artifacts):
    # the jobs' writer: the protocol plus this host's GPU facts and the notification hook
    with create_run("train", {"a": 1}, seeds={"seed": 7}, total_steps=100) as run:
        run.set_status("running", step=5)
        run.metric(5, "train", {"loss": 0.5, "bad": float("nan")})
        run.event("checkpoint_saved", step=5)
    d = run.dir
    info = json.loads((d / "run.json").read_text())
    assert info["kind"] == "train" and info["seeds"] == {"seed": 7} and len(info["config_hash"]) == 16
    assert "python" in info and "packages" in info and "gpu" in info
    assert (d / "config.yaml").read_text().strip() == "a: 1"
    status = json.loads((d / "status.json").read_text())
    assert status["pid"] == os.getpid() and status["total_steps"] == 100 and status["step"] == 5
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"time": rows[0]["time"], "step": 5, "split": "train", "loss": 0.5, "bad": None}]
    events = [e["event"] for e in RunReader(d).events()]
    assert events[:2] == ["created", "checkpoint_saved"]
    assert [d.name] == [r.run_id for r in list_runs()]
    assert find_run(d.name[:12]) == d


def test_exception_marks_failed_with_traceback_digest(artifacts):
    with pytest.raises(ZeroDivisionError):
        with RunWriter.create("train", {}) as run:
            _ = 1 / 0
    status = RunReader(run.dir).status()
    assert status["state"] == "failed" and "ZeroDivisionError" in status["message"]
    err = [e for e in RunReader(run.dir).events() if e["event"] == "error"][0]
    assert len(err["traceback_sha1"]) == 12 and "ZeroDivisionError" in err["traceback_tail"][-1]


def test_duplicate_run_id_refused(artifacts):
    RunWriter.create("train", {}, run_id="same").close("completed")
    with pytest.raises(Exception, match="already exists"):
        RunWriter.create("train", {}, run_id="same")


def test_reader_tails_while_other_process_appends(artifacts):
    run = RunWriter.create("train", {})
    run.close()
    tail = RunReader(run.dir).metrics_tail()
    proc = spawn_writer(run.dir, 20000)
    seen = []
    deadline = time.time() + 60
    while time.time() < deadline:
        seen.extend(r["step"] for r in tail.poll().records)
        if proc.poll() is not None and len(seen) >= 20000:
            break
        time.sleep(0.01)
    seen.extend(r["step"] for r in tail.poll().records)
    assert proc.wait() == 0
    assert seen == list(range(20000)), "every record exactly once, in order"
    assert tail.bad_lines == 0


BIG_LINE_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ztb_core.runs import RunWriter
    run = RunWriter.open(Path(sys.argv[1]))
    pad = "x" * (8 << 20)  # 8 MB lines: the kernel copies them page by page, so SIGKILL can cut one
    print("ready", flush=True)
    i = 0
    while True:
        run.metric(i, "train", {"pad": pad}, flush=True)
        run.heartbeat(i, min_interval_s=0.0)
        i += 1
""")


def test_sigkill_mid_write_tears_a_line_and_reopen_repairs_it(artifacts):
    """SIGKILL a writer until one kill provably cut a line (the file does not end in a newline;
    ~60% of kills do), check that everything before it parses, then that reopening repairs it."""
    run = RunWriter.create("train", {})
    run.close()
    metrics = run.dir / "metrics.jsonl"
    torn_at = None
    for attempt in range(15):
        proc = subprocess.Popen([sys.executable, "-c", BIG_LINE_WRITER, str(run.dir)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.02 + 0.01 * (attempt % 6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        json.loads((run.dir / "status.json").read_text())  # never torn (atomic replace)
        data = metrics.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines():
            json.loads(line)
        if not data.endswith(b"\n"):
            torn_at = attempt
            with pytest.raises(json.JSONDecodeError):
                json.loads(data[len(complete) :])  # the tail really is a cut line
            break
        metrics.write_bytes(b"")  # keep the file small between attempts
    assert torn_at is not None, "15 SIGKILLs never cut a line: the test proved nothing"
    again = RunWriter.open(run.dir)
    again.metric(10**9, "train", {"loss": 0.0}, flush=True)
    again.close()
    lines = metrics.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)
    assert json.loads(lines[-1])["step"] == 10**9


def test_tail_handles_partial_line_truncation_and_rotation(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2')
    tail = JsonlTail(path)
    assert [r["step"] for r in tail.poll().records] == [1]
    with open(path, "ab") as fh:
        fh.write(b'}\n{"step": 3}\n')
    assert [r["step"] for r in tail.poll().records] == [2, 3]
    t0 = time.perf_counter()
    assert tail.poll().records == []
    assert time.perf_counter() - t0 < 0.01
    path.write_bytes(b'{"step": 9}\n')  # truncated and rewritten (smaller)
    res = tail.poll()
    assert res.reset and [r["step"] for r in res.records] == [9]
    rotated = tmp_path / "new.jsonl"
    rotated.write_bytes(b'{"step": 10}\n{"step": 11}\n{"step": 12}\n')
    os.replace(rotated, path)  # rotation: new inode
    res = tail.poll()
    assert res.reset and [r["step"] for r in res.records] == [10, 11, 12]


def test_tail_from_end_reads_only_the_tail(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"step": i}) + "\n" for i in range(10000)))
    res = JsonlTail(path, from_end_bytes=200).poll()
    steps = [r["step"] for r in res.records]
    assert steps[-1] == 9999 and 5 <= len(steps) <= 20 and steps == sorted(steps)


def test_rewind_metrics_keeps_steps_monotonic(artifacts):
    run = RunWriter.create("train", {})
    for s in range(0, 100, 10):
        run.metric(s, "train", {"loss": s})
    assert run.rewind_metrics(50) == 4
    run.metric(60, "train", {"loss": -1})
    run.close()
    steps = [json.loads(line)["step"] for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 10, 20, 30, 40, 50, 60]


def test_stale_and_dead_detection(artifacts):
    now = time.time()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    base = {"state": "running", "host": os.uname().nodename}
    assert liveness({**base, "pid": os.getpid(), "updated_at": now})[0] == "running"
    assert liveness({**base, "pid": os.getpid(), "updated_at": now - 100})[0] == "stale"
    assert liveness({**base, "pid": proc.pid, "updated_at": now - 100})[0] == "dead"
    assert liveness({**base, "pid": proc.pid, "updated_at": now})[0] == "dead"
    # a reused pid (different create time) is not our process
    assert liveness({**base, "pid": os.getpid(), "pid_create_time": 1.0, "updated_at": now - 100})[0] == "dead"
    assert liveness({**base, "state": "completed", "pid": proc.pid, "updated_at": 0})[0] == "completed"
