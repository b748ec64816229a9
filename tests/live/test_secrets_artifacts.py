"""No artifact of a live run — run directory, logs, reports, journal — contains the API key or
secret, including after exchange errors whose messages echo request details."""

from __future__ import annotations

import os
from pathlib import Path

from ztb_core.cli import main
from ztb_core.live.emulator import FaultRule

from .conftest import TEST_KEY, TEST_SECRET
from .test_runner import live_args


def every_file(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]


def test_no_artifact_contains_the_keys(fast_emulator, artifacts, monkeypatch, capsys):
    monkeypatch.setenv("COINCHECK_API_KEY", TEST_KEY)
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET)
    fast_emulator.add_fault(FaultRule(kind="http_5xx", endpoint="balance", times=2))
    fast_emulator.add_fault(FaultRule(kind="malformed_json", endpoint="open_orders", times=1))
    assert main(live_args(fast_emulator, "--set", "mode=live", "--confirm-live", "--max-bars", "4")) == 0
    assert main(["live", "--minimal", *live_args(fast_emulator)[1:]]) == 0
    # a failing run too: wrong secret makes every private call fail with an auth error
    monkeypatch.setenv("COINCHECK_API_SECRET", TEST_SECRET + "x")
    main(["live", "--minimal", *live_args(fast_emulator)[1:]])
    files = every_file(artifacts)
    assert any(f.suffix == ".sqlite" for f in files) and any(f.name == "run.log" for f in files)
    assert len([f for f in files if f.name == "run.json"]) == 3
    for f in files:
        blob = f.read_bytes()
        for secret in (TEST_KEY, TEST_SECRET):
            assert secret.encode() not in blob, f"{secret[:3]}... found in {f}"
    out = capsys.readouterr()
    assert TEST_KEY not in out.out + out.err and TEST_SECRET not in out.out + out.err
