"""Where things live. Every path can be moved with an environment variable so tests
and users on shared boxes can keep runs and data wherever they like."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def artifacts_dir() -> Path:
    """Run outputs: `$ZTB_ARTIFACTS`, else `./artifacts` under the current directory."""
    env = os.environ.get("ZTB_ARTIFACTS")
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "artifacts").resolve()


def runs_dir(artifacts: Path | None = None) -> Path:
    return (artifacts or artifacts_dir()) / "runs"


def data_dir() -> Path:
    """The canonical market-data store: `$ZTB_DATA`, else `<artifacts>/data`."""
    env = os.environ.get("ZTB_DATA")
    return Path(env).expanduser().resolve() if env else artifacts_dir() / "data"


def global_kill_file(artifacts: Path | None = None) -> Path:
    """The kill-file that stops every run: `$ZTB_KILL`, else `ztb.stop` beside the artifacts folder
    (the project root when ztb runs from there)."""
    env = os.environ.get("ZTB_KILL")
    if env:
        return Path(env).expanduser().resolve()
    return (artifacts or artifacts_dir()).parent / "ztb.stop"


def shared_data_dir() -> Path:
    """Real market data for tests and benchmarks (never bundled): `$ZTB_SHARED_DATA`,
    else `../shared/data` beside the repository."""
    env = os.environ.get("ZTB_SHARED_DATA")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def configs_dir() -> Path:
    """Bundled default configs (`configs/` at the repository root)."""
    env = os.environ.get("ZTB_CONFIGS")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "configs"
