"""The README's agent dry run, with the real CLI in processes of their own: `ztb train --headless`
(the default agent: technical-66, ridge forecast, lookback 1; a short run), `ztb emulator` with its
default history on loopback, then `ztb live --dry-run --checkpoint RUN --set exchange.api_url=URL`.
The agent decides on the first closed bar: the start-up backfill pages the emulator's public trades
back over the whole 4,380 bars the agent reads.

One departure from the README, about wall time only: the client's rate limit is lifted (at
Coincheck's default pace, one page of 100 trades per 1.5 s, the ~180 pages take about 4.5 minutes).
The emulator runs at its default real-time pace, so the first bar closes within a minute."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ztb_core.live.loop.policy import feature_history

from ..conftest import SharedRuns, copy_run

REPO = Path(__file__).resolve().parents[2]
FAST_CLIENT = [
    "--set",
    "exchange.rate_limit.requests_per_s=1000",
    "--set",
    "exchange.rate_limit.burst=1000",
    "--set",
    "exchange.rate_limit.ccxt_rate_limit=false",
]


def cli(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ztb_core.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("readme")
    return {
        **os.environ,
        "ZTB_ARTIFACTS": str(tmp_path / "artifacts"),
        "ZTB_DATA": str(tmp_path / "data"),
        "ZTB_KILL": str(tmp_path / "global.stop"),
        "COLUMNS": "200",
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture(scope="module")
def emulator_url(env):
    """`ztb emulator` with its defaults (4 days of history, real-time replay) on a free port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ztb_core.cli", "emulator", "--port", "0", "--ws-port", "-1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        deadline = time.time() + 60
        while url is None and time.time() < deadline:
            match = re.search(r"REST URL: (http://127\.0\.0\.1:\d+/api)", proc.stdout.readline())
            url = match.group(1) if match else None
        assert url, "the emulator printed its URL"
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


README_AGENT = (
    "data.synthetic.n_bars=20000",
    "ppo.n_envs=2",
    "ppo.n_steps=64",
    "ppo.batch_size=64",
    "ppo.n_epochs=1",
    "eval.every_steps=0",
    "checkpoint.every_steps=128",
)


@pytest.fixture(scope="module")
def agent(env, shared_runs: SharedRuns) -> Path:
    """A short `ztb train --headless` of the default agent (the default feature set, forecast, lookback
    and market; fewer bars and tiny rollouts so it takes seconds), trained once per test run and
    copied into this module's artifacts, where the live runs go."""

    def train(artifacts: Path) -> Path:
        args = ["train", "--headless", "--no-progress", "--run-id", "agent", "--total-timesteps", "128"]
        for s in README_AGENT:
            args += ["--set", s]
        done = cli(*args, env={**env, "ZTB_ARTIFACTS": str(artifacts), "ZTB_DATA": str(artifacts / "data")})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return artifacts / "runs" / "agent"

    return copy_run(
        shared_runs.get("readme-agent", (*README_AGENT, "--total-timesteps=128"), train), Path(env["ZTB_ARTIFACTS"])
    )


def live_runs(env: dict) -> set[Path]:
    runs = Path(env["ZTB_ARTIFACTS"]) / "runs"
    return {p for p in runs.iterdir() if p.name.startswith("live-")} if runs.exists() else set()


def start_live(agent: Path, emulator_url: str, env: dict) -> subprocess.Popen:
    """`ztb live --dry-run --checkpoint RUN --set exchange.api_url=URL --max-bars 1` (the README's
    command, the client's rate limit lifted), started and not waited for."""
    args = ["live", "--dry-run", "--checkpoint", str(agent), "--set", f"exchange.api_url={emulator_url}"]
    return subprocess.Popen(
        [sys.executable, "-m", "ztb_core.cli", *args, *FAST_CLIENT, "--max-bars", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished_live_run(proc: subprocess.Popen, env: dict) -> Path:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-4000:]
    (run,) = live_runs(env)
    return run


@pytest.fixture(scope="module")
def two_live_runs(env, emulator_url, agent, tmp_path_factory) -> dict[str, Path]:
    """Both README sequences side by side, so their runs wait for the same closed bar (each waits up
    to a minute of real time for it): `cold`, `ztb live` on an empty store (the start-up backfill
    pages every bar from the exchange); `stored`, `ztb data fetch --api-url URL --since ...` (the
    command `ztb live` names) into a store of its own, then `ztb live` on it. Each has its own
    artifacts and data folders."""
    envs = {}
    for name in ("cold", "stored"):
        root = tmp_path_factory.mktemp(name)
        envs[name] = {**env, "ZTB_ARTIFACTS": str(root / "artifacts"), "ZTB_DATA": str(root / "data")}
    cold = start_live(agent, emulator_url, envs["cold"])
    try:
        since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 3.5 * 86400))
        fetched = cli(
            "data",
            "fetch",
            "--exchange",
            "coincheck",
            "--symbol",
            "BTC/JPY",
            "--api-url",
            emulator_url,
            "--since",
            since,
            "--set",
            "rate_limit.requests_per_s=1000",
            "--set",
            "rate_limit.burst=1000",
            "--set",
            "rate_limit.ccxt_rate_limit=false",
            env=envs["stored"],
        )
        assert fetched.returncode == 0, fetched.stdout[-2000:] + fetched.stderr[-2000:]
        assert "stored" in fetched.stdout and "BTC_JPY" in fetched.stdout
        stored = start_live(agent, emulator_url, envs["stored"])
        return {"cold": finished_live_run(cold, envs["cold"]), "stored": finished_live_run(stored, envs["stored"])}
    finally:
        if cold.poll() is None:
            cold.kill()


@pytest.mark.slow
def test_readme_agent_dry_run_decides_on_the_first_closed_bar(two_live_runs):
    run = two_live_runs["cold"]
    events = read_jsonl(run / "events.jsonl")
    (hist,) = [e for e in events if e["event"] == "history_backfilled"]
    assert hist["needed"] == feature_history("technical-66")  # lookback 1: the derived buffer, not 6,000
    assert hist["missing"] == 0 and hist["from_exchange"] == hist["needed"] and hist["from_store"] == 0
    assert not [e for e in events if e["event"] == "not_ready"]
    (metric,) = [m for m in read_jsonl(run / "metrics.jsonl") if m["split"] == "live"]
    assert metric["decision"] in ("placed", "skip", "denied")  # a decision on the first closed bar


@pytest.mark.slow
def test_one_fetch_fills_the_store_and_live_pages_only_what_is_newer(two_live_runs):
    """`ztb data fetch` imports the emulator's market; the next `ztb live` reads it from the store
    and pages the exchange only after it."""
    run = two_live_runs["stored"]
    events = read_jsonl(run / "events.jsonl")
    (hist,) = [e for e in events if e["event"] == "history_backfilled"]
    assert hist["missing"] == 0 and hist["from_store"] > 4000
    assert hist["from_exchange"] < 30  # only the minutes since the fetch
    assert not [e for e in events if e["event"] == "not_ready"]
    (metric,) = [m for m in read_jsonl(run / "metrics.jsonl") if m["split"] == "live"]
    assert metric["decision"] in ("placed", "skip", "denied")
