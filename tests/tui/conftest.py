from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import NOW, FakeGpu, FakeHost, make_fleet  # noqa: E402


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
