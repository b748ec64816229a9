"""Which checkpoint `ztb eval` scores: by default the best by validation, said out loud.

The newest checkpoint of a run is whatever training happened to end on; the one a person would
deploy is the one with the best periodic-evaluation Sharpe (the manifest flags it `best` and keeps
it whatever `keep_last` says). Choosing it is selection among the run's evaluations, and those
are counted as trials in the run's registry, so the DSR pays for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, RunError
from ..manifest import Manifest
from ..runs import find_run

CHOICES = ("best", "latest")


@dataclass(frozen=True)
class CheckpointChoice:
    target: Path  # a checkpoint file, or the run folder for "newest valid" (load_agent resolves it)
    run_dir: Path | None  # the training run it belongs to (its trial registry), None for a loose file
    description: str


def _run_of(path: Path) -> Path | None:
    """The run folder a checkpoint file or checkpoints folder lives in (it holds run.json)."""
    for p in (path, *path.parents[:2]):
        if (p / "run.json").is_file():
            return p
    return None


def choose_checkpoint(model: str | Path, choice: str = "best") -> CheckpointChoice:
    """Resolve `--model` (checkpoint file, run folder or run id) and `--checkpoint` (best, latest
    or a step number) to the file to load, with a sentence saying which one and why."""
    p = Path(model)
    if not p.exists() and len(p.parts) == 1:
        try:
            p = find_run(str(model))
        except RunError:
            raise CheckpointError(
                f"{model}: no such checkpoint file, run directory or run id (see `ztb runs`)"
            ) from None
    if p.is_file():
        return CheckpointChoice(p, _run_of(p.parent), f"{p.name} (the file given)")
    if not p.is_dir():
        raise CheckpointError(f"{p}: no such checkpoint file or run directory")
    ckpt_dir = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    run_dir = _run_of(ckpt_dir)
    entries = [e for e in Manifest(ckpt_dir).entries() if not e.get("invalid")]
    if choice == "latest":
        return CheckpointChoice(p, run_dir, "the newest valid checkpoint (--checkpoint latest)")
    if choice != "best":
        try:
            step = int(choice)
        except ValueError:
            raise CheckpointError(f"--checkpoint {choice!r}: use best, latest or a step number") from None
        entry = next((e for e in entries if e.get("step") == step), None)
        if entry is None:
            have = ", ".join(str(e.get("step")) for e in entries) or "none"
            raise CheckpointError(f"{ckpt_dir}: no checkpoint at step {step} (steps kept: {have})")
        return CheckpointChoice(ckpt_dir / entry["file"], run_dir, f"step {step} (--checkpoint {step})")
    scored = [e for e in entries if isinstance(e.get("eval_sharpe"), (int, float)) and math.isfinite(e["eval_sharpe"])]
    if not scored:
        return CheckpointChoice(
            p, run_dir, "the newest valid checkpoint: no checkpoint of this run was scored by periodic evaluation"
        )
    flagged = [e for e in scored if e.get("best")]
    best = flagged[-1] if flagged else max(scored, key=lambda e: (e["eval_sharpe"], e["step"]))
    return CheckpointChoice(
        ckpt_dir / best["file"],
        run_dir,
        f"step {best['step']}, the best by periodic evaluation (Sharpe {best['eval_sharpe']:.2f} on the run's "
        f"eval split); --checkpoint latest for the newest",
    )
