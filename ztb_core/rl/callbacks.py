"""SB3 callbacks that connect PPO's loop to the run directory, one job each, combined by
`training_callbacks` into a `CallbackList` (order matters: it is the order of the hooks):

* `FaultInjection`  every step: the supervisor tests' injected crash (`ZTB_FAULT_CRASH_AT_STEP`);
* `KillFileStop`    every step: kill-file / signal check; stopping ends `learn()` normally;
* `Heartbeat`       every step: status.json heartbeat, the progress bar, a log line every
                    `log_interval_s`;
* `TrainMetrics`    every rollout boundary and at the end: one `train` metrics row;
* `PeriodicEval`    at rollout boundaries past each `eval.every_steps`, and at the end of a
                    completed run: the validation score;
* `Checkpoints`     every rollout boundary: an in-memory snapshot (the last consistent state: a
                    stop mid-rollout saves this one, so no step is counted without having been
                    trained on); a save every `checkpoint.every_steps` and after each evaluation;
                    the final save in `_on_training_end`.

Rollout boundary = `_on_rollout_start`, i.e. after the previous `train()`. Duplication guard:
`train` metric rows are written only for steps beyond the last one written, and the checkpoint
step is always a rollout boundary, so a resume re-collects exactly the steps after it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from ..runs import RunReader, RunWriter
from ..runtime.killfile import KillSwitch
from .checkpoints import CheckpointSaver, capture_state
from .config import TrainConfig
from .encoder import encoder_state

log = logging.getLogger("ztb.rl.train")
FAULT_ENV = "ZTB_FAULT_CRASH_AT_STEP"

_LOGGER_KEYS = {
    "train/policy_gradient_loss": "policy_loss",
    "train/value_loss": "value_loss",
    "train/entropy_loss": "entropy_loss",
    "train/approx_kl": "approx_kl",
    "train/clip_fraction": "clip_fraction",
    "train/explained_variance": "explained_variance",
    "train/learning_rate": "learning_rate",
    "train/clip_range": "clip_range",
    "train/loss": "loss",
    "train/std": "action_std",
}


class InjectedCrash(RuntimeError):
    """Raised by the fault-injection hook (tests of the supervisor)."""


def next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


@dataclass
class TrainSession:
    """What the callbacks of one `learn()` share: where it started, when, and why it stopped."""

    start_step: int
    t0: float = 0.0
    stop_reason: str | None = None

    def start(self, step: int) -> None:
        self.start_step, self.t0 = step, time.perf_counter()

    def fps(self, step: int) -> float:
        dt = time.perf_counter() - self.t0 if self.t0 else 0.0
        return (step - self.start_step) / dt if dt > 0 else 0.0

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None


class FaultInjection(BaseCallback):
    """Crash once at the step named by ZTB_FAULT_CRASH_AT_STEP (never again in the same run)."""

    def __init__(self, writer: RunWriter):
        super().__init__()
        self.writer = writer
        fault = os.environ.get(FAULT_ENV)
        injected = fault and any(e.get("event") == "fault_injected" for e in RunReader(writer.dir).events())
        self.fault_step = int(fault) if fault and not injected else None

    def _on_step(self) -> bool:
        n = self.num_timesteps
        if self.fault_step is not None and n >= self.fault_step:
            self.fault_step = None
            self.writer.event("fault_injected", step=n, env=FAULT_ENV)
            raise InjectedCrash(f"injected crash at step {n} ({FAULT_ENV})")
        return True


class KillFileStop(BaseCallback):
    """Stop `learn()` when the run's (or the global) kill file appears or a signal arrives."""

    def __init__(self, kill: KillSwitch, writer: RunWriter, session: TrainSession):
        super().__init__()
        self.kill, self.writer, self.session = kill, writer, session

    def _on_step(self) -> bool:
        if not self.kill.requested():
            return True
        n = self.num_timesteps
        self.session.stop_reason = self.kill.reason or "stop requested"
        self.writer.event("stop_requested", step=n, reason=self.session.stop_reason)
        self.writer.set_status("stopping", step=n, message=self.session.stop_reason)
        return False


class Heartbeat(BaseCallback):
    """status.json heartbeat every step (throttled by the writer), the progress bar 4x a second and
    a `step N/total fps` log line every `log_interval_s`."""

    def __init__(
        self,
        writer: RunWriter,
        session: TrainSession,
        total: int,
        log_interval_s: float,
        on_progress: Callable[[int, float], None] | None = None,
    ):
        super().__init__()
        self.writer, self.session, self.total = writer, session, total
        self.log_interval_s, self.on_progress = log_interval_s, on_progress
        self._next_ui = 0.0
        self._next_log = 0.0

    def _on_training_start(self) -> None:
        self.session.start(self.num_timesteps)
        self._next_log = time.monotonic() + self.log_interval_s

    def _on_rollout_start(self) -> None:
        self.writer.heartbeat(self.num_timesteps)

    def _on_step(self) -> bool:
        n = self.num_timesteps
        self.writer.heartbeat(n)
        now = time.monotonic()
        if now >= self._next_ui:
            self._next_ui = now + 0.25
            if self.on_progress is not None:
                self.on_progress(n, self.session.fps(n))
        if now >= self._next_log:
            self._next_log = now + self.log_interval_s
            log.info("step %d/%d  %.0f fps", n, self.total, self.session.fps(n))
        return True


class TrainMetrics(BaseCallback):
    """One `train` metrics row per rollout boundary (SB3's logger values of the last update) and
    one at the end of a completed run; never two rows for one step."""

    def __init__(self, writer: RunWriter, session: TrainSession):
        super().__init__()
        self.writer, self.session = writer, session
        self.last_row = session.start_step

    def _on_rollout_start(self) -> None:
        self.write_row(self.num_timesteps)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if not self.session.stopped:
            self.write_row(self.num_timesteps)

    def write_row(self, step: int) -> None:
        if step <= self.last_row:
            return  # duplication guard: never two rows for one step, never a step going backwards
        logged = self.model.logger.name_to_value
        values: dict[str, Any] = {name: logged[key] for key, name in _LOGGER_KEYS.items() if key in logged}
        buf = self.model.ep_info_buffer
        if buf:
            values["ep_rew_mean"] = float(np.mean([e["r"] for e in buf]))
            values["ep_len_mean"] = float(np.mean([e["l"] for e in buf]))
            for key in ("equity", "turnover", "costs", "penalty"):
                got = [e[key] for e in buf if key in e]
                if got:
                    values[f"ep_{key}_mean"] = float(np.mean(got))
        values["fps"] = self.session.fps(step)
        values["n_updates"] = int(getattr(self.model, "_n_updates", 0))
        self.writer.metric(step, "train", values)
        self.last_row = step


class PeriodicEval(BaseCallback):
    """Score the current policy on the evaluation split at the first rollout boundary past each
    multiple of `eval.every_steps`, and once more at the end of a completed run."""

    def __init__(self, cfg: TrainConfig, writer: RunWriter, session: TrainSession, evaluator: Callable, vecnorm: Any):
        super().__init__()
        self.cfg, self.writer, self.session = cfg, writer, session
        self.evaluator, self.vecnorm = evaluator, vecnorm
        self.next_eval = next_multiple(session.start_step, cfg.eval.every_steps)
        self.last_step: int | None = None  # step of the latest evaluation
        self.last_score: float | None = None

    def _on_rollout_start(self) -> None:
        step = self.num_timesteps
        if step >= self.next_eval:
            self.evaluate(step)
            self.next_eval = next_multiple(step, self.cfg.eval.every_steps)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if not self.session.stopped and self.last_step != self.num_timesteps:
            self.evaluate(self.num_timesteps)

    def evaluate(self, step: int) -> float | None:
        flat, score = self.evaluator(self.model, self.vecnorm, step)
        self.writer.metric(step, self.cfg.eval.split, flat, flush=True)
        self.last_step, self.last_score = step, score
        self.writer.event(
            "evaluated",
            step=step,
            split=self.cfg.eval.split,
            score=score,
            seconds=round(flat.get("eval_seconds", 0.0), 3),
        )
        return score

    def score_at(self, step: int) -> float | None:
        return self.last_score if self.last_step == step else None


class Checkpoints(BaseCallback):
    """Snapshots at rollout boundaries, saves on the checkpoint cadence and after evaluations,
    and the final save (a stopped run saves its last consistent snapshot)."""

    def __init__(
        self,
        cfg: TrainConfig,
        writer: RunWriter,
        saver: CheckpointSaver,
        session: TrainSession,
        config_dict: dict,
        config_hash: str,
        vecnorm: Any,
        evaluation: PeriodicEval | None = None,
        forecast_state: dict | None = None,
        vol_sizing_state: dict | None = None,
    ):
        super().__init__()
        self.cfg, self.writer, self.saver, self.session = cfg, writer, saver, session
        self.config_dict, self.config_hash, self.vecnorm = config_dict, config_hash, vecnorm
        self.evaluation = evaluation
        # what an agent needs besides its weights: the encoder's sha256, the fitted forecast, and the
        # volatility forecaster live sizes with (or why there is none)
        self.extra_state = {
            **encoder_state(cfg.encoder.path),
            **({"forecast": forecast_state} if forecast_state is not None else {}),
            **({"vol_sizing": vol_sizing_state} if vol_sizing_state is not None else {}),
        }
        self.next_ckpt = next_multiple(session.start_step, cfg.checkpoint.every_steps)
        self.last_saved_step = session.start_step if session.start_step else -1
        self.last_snapshot: dict | None = None
        self.block_ms: list[float] = []
        self.final_step: int | None = None

    def snapshot(self) -> tuple[dict, float]:
        t0 = time.perf_counter()
        state = capture_state(self.model, self.vecnorm, self.config_dict, self.config_hash, self.extra_state)
        return state, (time.perf_counter() - t0) * 1000.0

    def save(self, state: dict, block_ms: float, score: float | None = None, final: bool = False) -> bool:
        """Submit a snapshot; the time blocked (snapshot + waiting for a free slot) is recorded."""
        t0 = time.perf_counter()
        accepted = self.saver.submit(
            state, eval_score=score, extra={"block_ms": round(block_ms, 3), **({"final": True} if final else {})}
        )
        self.block_ms.append(block_ms + (time.perf_counter() - t0) * 1000.0)
        if accepted:
            self.last_saved_step = int(state["num_timesteps"])
        else:
            self.writer.event(
                "checkpoint_skipped", step=int(state["num_timesteps"]), reason="a save is still in flight"
            )
        return accepted

    def _score(self, step: int) -> float | None:
        return self.evaluation.score_at(step) if self.evaluation is not None else None

    def _on_rollout_start(self) -> None:
        step = self.num_timesteps
        state, block_ms = self.snapshot()
        self.last_snapshot = state
        score = self._score(step)
        if step >= self.next_ckpt or score is not None:
            if step != self.last_saved_step:
                self.save(state, block_ms, score)
            self.next_ckpt = next_multiple(step, self.cfg.checkpoint.every_steps)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self.session.stopped:
            snap = self.last_snapshot
            if snap is None:  # stopped before the first rollout boundary: keep the start state
                snap, _ = self.snapshot()
                self.save(snap, 0.0, final=True)
            elif int(snap["num_timesteps"]) != self.last_saved_step:
                self.save(snap, 0.0, final=True)
            self.saver.wait(60)
        else:
            snap, block = self.snapshot()
            self.save(snap, block, self._score(self.num_timesteps), final=True)
            self.saver.wait(120)
        self.final_step = int(snap["num_timesteps"])


@dataclass
class TrainingCallbacks:
    """The callback list handed to `learn()` and the members the trainer reads afterwards."""

    callback: CallbackList
    session: TrainSession
    checkpoints: Checkpoints


def training_callbacks(
    cfg: TrainConfig,
    writer: RunWriter,
    kill: KillSwitch,
    saver: CheckpointSaver,
    config_dict: dict,
    config_hash: str,
    vecnorm: Any,
    evaluator: Callable | None,
    on_progress: Callable[[int, float], None] | None = None,
    start_step: int = 0,
    forecast_state: dict | None = None,
    vol_sizing_state: dict | None = None,
) -> TrainingCallbacks:
    session = TrainSession(start_step)
    evaluation = PeriodicEval(cfg, writer, session, evaluator, vecnorm) if evaluator and cfg.eval.every_steps else None
    checkpoints = Checkpoints(
        cfg, writer, saver, session, config_dict, config_hash, vecnorm, evaluation, forecast_state, vol_sizing_state
    )
    parts: list[BaseCallback] = [
        FaultInjection(writer),
        KillFileStop(kill, writer, session),
        Heartbeat(writer, session, cfg.rounded_total(), cfg.log_interval_s, on_progress),
        TrainMetrics(writer, session),
        *([evaluation] if evaluation is not None else []),
        checkpoints,  # after the evaluation: a checkpoint carries the score of its step
    ]
    return TrainingCallbacks(CallbackList(parts), session, checkpoints)
