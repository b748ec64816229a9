from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import NOW, FakeGpu, FakeHost, make_fleet  # noqa: E402


@pytest.fixture(autouse=True)
def console_state_home(tmp_path_factory, monkeypatch) -> Path:
    """Each test's own $XDG_STATE_HOME: the console's remembered sort and marks (ztb_tui.prefs)
    never come from, or go to, the home folder of whoever runs the tests."""
    home = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def fleet(artifacts: Path) -> dict[str, Path]:
    return make_fleet(artifacts)


@pytest.fixture
def make_app(artifacts: Path, tmp_path: Path):
    """Build a console on the test's artifacts with frozen time and a fake host/GPU."""
    from ztb_tui.app import ZtbApp

    def build(**kwargs) -> ZtbApp:
        kwargs.setdefault("now", lambda: NOW)
        kwargs.setdefault("host", FakeHost(FakeGpu(available=False)))
        kwargs.setdefault("refresh_s", 0.1)
        kwargs.setdefault("configs", Path(__file__).resolve().parents[2] / "configs")
        return ZtbApp(artifacts, **kwargs)

    return build


@pytest.fixture
def anyio_backend() -> str:
    # async pilot tests run on anyio's pytest plugin (shipped with anyio, a Textual dependency)
    return "asyncio"


@pytest.fixture(scope="session")
def real_runs(shared_runs) -> Path:
    """An artifacts folder of run folders the real commands wrote (`real_runs.build`): a tiny
    train, its eval, a two-trial tune, a pretrain fast-dev-run and a few-step pretrain, and two
    dry-run live runs against the emulator. Built once per test run and shared by every xdist
    worker (`SharedRuns`: the first worker builds, the others wait and reuse it; about a minute of
    CPU each time it is not built again); tests only read it (a test that changes a run copies it
    first: `copy_run`)."""
    import os

    import real_runs as recipe

    reuse = os.environ.get("ZTB_TEST_REAL_RUNS")  # a folder built earlier by `python tests/tui/real_runs.py DIR`
    if reuse:
        return Path(reuse)

    def build(artifacts: Path) -> Path:
        recipe.build(artifacts)
        return artifacts

    return shared_runs.get("real-runs", tuple(recipe.TRAIN_SETS), build)


@pytest.fixture
def copy_run(artifacts: Path):
    """Copy real run folders into this test's own artifacts folder (to change them safely)."""
    import shutil

    def copy(real_artifacts: Path, *run_ids: str) -> dict[str, Path]:
        out = {}
        for rid in run_ids:
            dst = artifacts / "runs" / rid
            shutil.copytree(real_artifacts / "runs" / rid, dst)
            out[rid] = dst
        return out

    return copy
