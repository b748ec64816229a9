"""Starting runs from the console: argv for each kind of job, detached in its own session with
its output in `<artifacts>/launches/`, so the run outlives the console and the SSH session."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ztb_core.errors import ZtbError
from ztb_core.paths import configs_dir
from ztb_core.runs import new_run_id
from ztb_core.runtime.procs import launch_detached, ztb_argv


@dataclass(frozen=True)
class JobKind:
    label: str
    run_kind: str  # the `kind` its run.json will carry (run ids start with it)
    args: tuple[str, ...]
    config: str  # default config file under configs/ (its name also picks the typed model: config_models)
    steps_key: str | None  # the key the dialog's steps field sets
    example: str  # an override that is valid for this kind (shown in the dialog; tested)


JOB_KINDS: dict[str, JobKind] = {
    "pretrain": JobKind(
        "pretrain (Stage 1 encoder)",
        "pretrain",
        ("pretrain", "--headless"),
        "pretrain.yaml",
        "trainer.max_steps",
        "optim.lr=0.0005",
    ),
    "train": JobKind(
        "train (PPO)",
        "train",
        ("train", "--headless"),
        "train.yaml",
        "total_timesteps",
        "ppo.learning_rate=0.0001",
    ),
    "live-dry-run": JobKind(
        "live dry-run (paper)",
        "live",
        ("live", "--dry-run"),
        "live.yaml",
        "max_bars",
        "poll_interval_s=10",
    ),
    "live-minimal": JobKind(
        "live minimal (one min order)",
        "live",
        ("live", "--minimal"),
        "live.yaml",
        None,
        "poll_interval_s=10",
    ),
}


@dataclass
class Launched:
    run_id: str
    argv: list[str]
    output: Path
    proc: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.proc.pid


def configs_for(kind: str, root: Path | None = None) -> list[Path]:
    """The config files a job of `kind` can start from: its own default (train.yaml for train;
    emulator.yaml or live.yaml are no train config) and, for training, the presets under
    configs/presets/ (each a train config: `ztb train --config configs/presets/<name>.yaml`)."""
    root = root or configs_dir()
    job = JOB_KINDS[kind]
    own = [root / job.config] if (root / job.config).is_file() else []
    presets = sorted((root / "presets").glob("*.yaml")) if job.run_kind == "train" else []
    return own + presets


def parse_overrides(text: str) -> list[str]:
    """`a.b=1 c="x y"` -> ["a.b=1", "c=x y"]; each must be key=value."""
    try:
        items = shlex.split(text)
    except ValueError as exc:
        raise ZtbError(f"overrides {text!r}: {exc}") from None
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ZtbError(f"override {item!r}: expected key=value (e.g. {JOB_KINDS['train'].example})")
    return items


def launches_dir(artifacts: Path) -> Path:
    return Path(artifacts) / "launches"


def launch_output(artifacts: Path, run_id: str) -> list[Path]:
    """The console output files of launches for this run (first start and resumes)."""
    d = launches_dir(artifacts)
    if not d.is_dir():
        return []
    # the first start and each resume, oldest first (by name a resume would sort first)
    return sorted(
        (p for p in d.glob(f"{run_id}*.out") if p.stem == run_id or p.stem.startswith(run_id + "-")),
        key=lambda p: (p.stat().st_mtime, p.name),
    )


def build_argv(
    kind: str,
    config: Path | None = None,
    overrides: list[str] | None = None,
    run_id: str | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    if kind not in JOB_KINDS:
        raise ZtbError(f"unknown job kind {kind!r}; choose one of {', '.join(JOB_KINDS)}")
    args = list(JOB_KINDS[kind].args)
    if config is not None:
        args += ["--config", str(config)]
    for item in overrides or []:
        args += ["--set", item]
    if run_id:
        args += ["--run-id", run_id]
    args += list(extra or [])
    return ztb_argv(*args)


def launch(
    kind: str,
    artifacts: Path,
    config: Path | None = None,
    overrides: list[str] | None = None,
    run_id: str | None = None,
) -> Launched:
    job = JOB_KINDS.get(kind)
    if job is None:
        raise ZtbError(f"unknown job kind {kind!r}; choose one of {', '.join(JOB_KINDS)}")
    # the console picks the id, so the launch output (named after it) is the run view's to show
    run_id = run_id or new_run_id(job.run_kind)
    argv = build_argv(kind, config, overrides, run_id)
    out = launches_dir(artifacts) / f"{run_id}.out"
    proc = launch_detached(argv, out, env={"ZTB_ARTIFACTS": str(artifacts)})
    return Launched(run_id, argv, out, proc)


def resume(run_kind: str, run_dir: Path, checkpoint: Path, artifacts: Path) -> Launched:
    """Resume a training or pretraining run from this checkpoint, detached
    (`ztb train|pretrain --headless --resume <file>`)."""
    if run_kind in ("train", "pretrain"):
        argv = build_argv(run_kind, extra=["--resume", str(checkpoint)])
    else:
        raise ZtbError(f"run {run_dir.name}: kind {run_kind!r} has no resume (only train and pretrain do)")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = launches_dir(artifacts) / f"{run_dir.name}-resume-{stamp}.out"
    proc = launch_detached(argv, out, env={"ZTB_ARTIFACTS": str(artifacts)})
    return Launched(run_dir.name, argv, out, proc)
