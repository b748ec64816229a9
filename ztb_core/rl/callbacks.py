"""The SB3 callback that connects PPO's loop to the run directory.

* every step: kill-file / signal check (cheap, throttled), heartbeat, progress, fault injection;
* every rollout boundary (`_on_rollout_start`, i.e. after the previous `train()`): the training
  metrics row, an in-memory snapshot (the last consistent state: a stop mid-rollout saves this
  one, so no step is counted without having been trained on), periodic evaluation and
  checkpoint submission.

Duplication guard: `train` metric rows are written only for steps beyond the last one written,
and the checkpoint step is always a rollout boundary, so a resume re-collects exactly the steps
after it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from ..ops.killfile import KillSwitch
from ..runs import RunReader, RunWriter
from .checkpoints import CheckpointSaver, capture_state
from .config import TrainConfig

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
    "train/loss": "loss",
    "train/std": "action_std",
}


class InjectedCrash(RuntimeError):
    """Raised by the fault-injection hook (tests of the supervisor)."""


def encoder_state(cfg: TrainConfig) -> dict:
    """What a checkpoint records about the Stage-1 encoder: the sha256 of its file, so an agent
    is never paired with a different encoder than the one it was trained with."""
    if not cfg.encoder.path:
        return {}
    from .encoder import encoder_fingerprint

    return {"encoder_sha256": encoder_fingerprint(cfg.encoder.path)}


def next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


class TrainingCallback(BaseCallback):
    def __init__(
        self,
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
    ):
        super().__init__(verbose=0)
        self.cfg, self.writer, self.kill, self.saver = cfg, writer, kill, saver
        self.config_dict, self.config_hash = config_dict, config_hash
        self.vecnorm, self.evaluator, self.on_progress = vecnorm, evaluator, on_progress
        self.start_step = start_step
        self.extra_state = encoder_state(cfg)
        self.next_ckpt = next_multiple(start_step, cfg.checkpoint.every_steps)
        self.next_eval = next_multiple(start_step, cfg.eval.every_steps) if cfg.eval.every_steps else None
        self.last_train_row = start_step
        self.last_saved_step = start_step if start_step else -1
        self.last_snapshot: dict | None = None
        self.last_score: float | None = None
        self.block_ms: list[float] = []
        self.stop_reason: str | None = None
        self._t0 = time.perf_counter()
        self._next_ui = 0.0
        self._next_log = time.monotonic() + 30.0
        fault = os.environ.get(FAULT_ENV)
        self.fault_step = int(fault) if fault and not self._fault_already_injected() else None

    def _fault_already_injected(self) -> bool:
        return any(e.get("event") == "fault_injected" for e in RunReader(self.writer.dir).events())

    # ---- helpers --------------------------------------------------------------------------
    def fps(self) -> float:
        dt = time.perf_counter() - self._t0
        return (self.num_timesteps - self.start_step) / dt if dt > 0 else 0.0

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
        block = block_ms + (time.perf_counter() - t0) * 1000.0
        self.block_ms.append(block)
        if accepted:
            self.last_saved_step = int(state["num_timesteps"])
        else:
            self.writer.event(
                "checkpoint_skipped", step=int(state["num_timesteps"]), reason="a save is still in flight"
            )
        return accepted

    def _train_row(self, step: int) -> None:
        if step <= self.last_train_row:
            return  # duplication guard: never two rows for one step, never a step going backwards
        values: dict[str, Any] = {}
        for key, name in _LOGGER_KEYS.items():
            if key in self.model.logger.name_to_value:
                values[name] = self.model.logger.name_to_value[key]
        buf = self.model.ep_info_buffer
        if buf:
            values["ep_rew_mean"] = float(np.mean([e["r"] for e in buf]))
            values["ep_len_mean"] = float(np.mean([e["l"] for e in buf]))
            eq = [e["equity"] for e in buf if "equity" in e]
            if eq:
                values["ep_equity_mean"] = float(np.mean(eq))
        values["fps"] = self.fps()
        values["n_updates"] = int(getattr(self.model, "_n_updates", 0))
        self.writer.metric(step, "train", values)
        self.last_train_row = step

    # ---- SB3 hooks ------------------------------------------------------------------------
    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        self.start_step = self.num_timesteps

    def _on_rollout_start(self) -> None:
        step = self.num_timesteps
        self._train_row(step)
        state, block_ms = self.snapshot()
        self.last_snapshot = state
        score = None
        evaluated = False
        if self.next_eval is not None and self.evaluator is not None and step >= self.next_eval:
            score = self.evaluate(step)
            evaluated = True
            self.next_eval = next_multiple(step, self.cfg.eval.every_steps)
        if step >= self.next_ckpt or evaluated:
            if step != self.last_saved_step:
                self.save(state, block_ms, score)
            self.next_ckpt = next_multiple(step, self.cfg.checkpoint.every_steps)
        self.writer.heartbeat(step)

    def evaluate(self, step: int) -> float | None:
        flat, score = self.evaluator(self.model, self.vecnorm, step)
        self.writer.metric(step, self.cfg.eval.split, flat, flush=True)
        self.last_score = score
        self.writer.event(
            "evaluated",
            step=step,
            split=self.cfg.eval.split,
            score=score,
            seconds=round(flat.get("eval_seconds", 0.0), 3),
        )
        return score

    def _on_step(self) -> bool:
        n = self.num_timesteps
        if self.fault_step is not None and n >= self.fault_step:
            self.fault_step = None
            self.writer.event("fault_injected", step=n, env=FAULT_ENV)
            raise InjectedCrash(f"injected crash at step {n} ({FAULT_ENV})")
        if self.kill.requested():
            self.stop_reason = self.kill.reason or "stop requested"
            self.writer.event("stop_requested", step=n, reason=self.stop_reason)
            self.writer.set_status("stopping", step=n, message=self.stop_reason)
            return False
        self.writer.heartbeat(n)
        now = time.monotonic()
        if now >= self._next_ui:
            self._next_ui = now + 0.25
            if self.on_progress is not None:
                self.on_progress(n, self.fps())
            if now >= self._next_log:
                self._next_log = now + 30.0
                log.info("step %d/%d  %.0f fps", n, self.cfg.rounded_total(), self.fps())
        return True
