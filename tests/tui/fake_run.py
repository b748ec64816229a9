"""A small process that behaves like a ztb run for console tests: it writes metrics and a
heartbeat through RunWriter and either honours the kill-file (checkpoint, status `stopped`,
exit 0) or, with --stubborn, ignores the kill-file and SIGTERM so the console must escalate.
With --linger, it writes its final status and then keeps its process for a while before it
exits, as a real run does while it closes env workers and flushes logs.

usage: python fake_run.py ARTIFACTS RUN_ID [--stubborn] [--linger]
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from ztb_core.manifest import Manifest, sha256_file
from ztb_core.runs import RunWriter
from ztb_core.runtime.killfile import KillSwitch


def main() -> int:
    artifacts, run_id = Path(sys.argv[1]), sys.argv[2]
    stubborn = "--stubborn" in sys.argv
    linger_s = 60.0 if "--linger" in sys.argv else 0.0
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    writer = RunWriter.create("train", {"fake": True}, run_id=run_id, artifacts=artifacts, total_steps=1_000_000)
    kill = KillSwitch(writer.dir, interval_s=0.05)
    writer.set_status("running", step=0)
    step = 0
    while True:
        step += 100
        writer.metric(step, "train", {"value_loss": 1.0 / (1 + step / 1000), "ep_rew_mean": step / 1e4}, flush=True)
        writer.heartbeat(step, min_interval_s=0.2)
        if kill.requested() and not stubborn:
            name = f"step-{step:09d}.zip"
            (writer.checkpoints_dir / name).write_bytes(b"weights" * 100)
            Manifest(writer.checkpoints_dir).add(
                {
                    "file": name,
                    "step": step,
                    "sha256": sha256_file(writer.checkpoints_dir / name),
                    "size": 700,
                    "created_at": "2026-01-01T00:00:00+00:00",
                }
            )
            writer.event("checkpoint_saved", step=step, file=name)
            writer.set_status(step=step)
            writer.close("stopped", message=kill.reason)
            time.sleep(linger_s)
            return 0
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
