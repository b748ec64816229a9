"""`run_training`: create or continue a training run and drive PPO to the configured total.

Resume contract (see REFERENCE.md, stable-baselines3): a resumed model is rebuilt from the
config, its state restored from the newest valid checkpoint, and `learn(total - num_timesteps,
reset_num_timesteps=False)` trains exactly the remainder, so the run ends at the total rounded up
to whole rollouts however often it is interrupted. `learn()` is given that rounded total (not the
requested one), so the linear schedules, which SB3 computes from `1 - num_timesteps / total`, span
the steps that really run and reach 0 at the last update instead of going negative past the
requested total (a negative learning rate is gradient ascent on the final checkpoint). Metrics after the checkpoint's step are
rewound so they stay monotonic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger as SB3Logger
from stable_baselines3.common.logger import configure as sb3_logger
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize

from ..atomic import atomic_write_text
from ..config import changed_keys, config_hash, config_to_dict, config_to_yaml, flatten, read_yaml
from ..errors import ConfigError, ZtbError
from ..evaluation.selection import choose_checkpoint
from ..logs import setup_logging
from ..manifest import Manifest
from ..runtime.killfile import KillSwitch, clear_run_stop
from ..runtime.run_writer import create_run, open_run
from ..runtime.telemetry import TelemetryThread
from ..tensorboard import require_tensorboard, tensorboard_dir
from .callbacks import training_callbacks
from .checkpoints import CheckpointSaver, load_checkpoint_file, load_latest_valid, restore_state, warm_start_policy
from .config import INCOMPATIBLE_PREFIXES, TrainConfig, complete_recorded
from .encoder import FEATURES_KEY, NORM_KEYS, check_encoder_fingerprint, load_encoder_checked
from .env import EncoderTradingEnv, TradingEnv
from .evaluate import PeriodicEvaluator
from .forecast import Forecast, fit_forecast
from .market import prepare_splits
from .policy import finetune, model_policy
from .sb3_extractor import EncoderPPO
from .streaming import StreamRefresh, StreamWindow
from .vol_sizing import STATE_KEY as VOL_SIZING_KEY
from .vol_sizing import fit_vol_sizing_state
from .vol_sizing import summary as vol_sizing_summary

log = logging.getLogger("ztb.rl.train")


@dataclass
class TrainOutcome:
    run_dir: Path
    state: str  # completed | stopped | noop
    step: int
    total: int
    checkpoint: Path | None
    message: str
    block_ms: list[float] = field(default_factory=list)
    fps: float = 0.0


def check_compatible(recorded: dict, cfg: TrainConfig, where: str) -> list[str]:
    """Raise ConfigError naming every incompatible key; return the compatible keys that changed."""
    new = config_to_dict(cfg)
    recorded = complete_recorded(recorded)
    a, b = flatten(recorded), flatten(new)
    defaults = flatten(config_to_dict(TrainConfig()))
    # a key added after the run was recorded trained as its default does (new keys keep the old
    # behaviour by default), so it is a change only when set to something else
    bad = [k for k in changed_keys(recorded, new, only=INCOMPATIBLE_PREFIXES) if k in a or b.get(k) != defaults.get(k)]
    if bad:
        detail = "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in bad[:12])
        raise ConfigError(
            f"cannot resume {where}: the config changed in ways the checkpoint cannot follow "
            f"({', '.join(bad)}). {detail}. Start a new run instead (omit --resume)."
        )
    return changed_keys(recorded, new)


def _make_env(
    features: np.ndarray, open_: np.ndarray, close: np.ndarray, env_cfg: Any, windows: Any = None
) -> TradingEnv:
    if windows is not None:
        return EncoderTradingEnv(features, open_, close, env_cfg, windows)
    return TradingEnv(features, open_, close, env_cfg)


class FreshInfoDummyVecEnv(DummyVecEnv):
    """SB3's DummyVecEnv without its per-step `deepcopy` of the info dicts (about 15 % of a
    rollout's time with 4 environments). The copy guards against an environment that reuses one
    info dict across steps; `TradingEnv.step` returns a new dict every step, and this class puts
    that dict in the buffer and returns it, so a shallow copy of the list is the same data.
    The loop is SB3 2.x's `step_wait` unchanged otherwise (same order of steps and resets)."""

    def step_wait(self) -> Any:
        for i in range(self.num_envs):
            obs, self.buf_rews[i], terminated, truncated, self.buf_infos[i] = self.envs[i].step(self.actions[i])
            self.buf_dones[i] = terminated or truncated
            self.buf_infos[i]["TimeLimit.truncated"] = truncated and not terminated
            if self.buf_dones[i]:
                self.buf_infos[i]["terminal_observation"] = obs
                obs, self.reset_infos[i] = self.envs[i].reset()
            self._save_obs(i, obs)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), list(self.buf_infos)


@contextmanager
def unvalidated_distributions() -> Iterator[None]:
    """Skip torch.distributions' argument checks (simplex, support) while PPO runs, then restore the
    previous setting. SB3 builds a Categorical for every forward pass (one per rollout step and per
    minibatch); the checks cost about as much as the network itself for a 64x64 MLP and never
    change a number: same seed, same actions and weights. A NaN in the logits then surfaces as a
    NaN loss instead of a ValueError."""
    dist = torch.distributions.Distribution
    previous = dist._validate_args  # torch keeps the default on the class; no public getter
    dist.set_default_validate_args(False)
    try:
        yield
    finally:
        dist.set_default_validate_args(previous)


def build_vec_env(cfg: TrainConfig, market: Any) -> tuple[Any, Any]:
    """(outermost VecEnv, VecNormalize or None): DummyVecEnv|SubprocVecEnv -> VecMonitor -> VecNormalize."""
    windows = market.windows if finetune(cfg) else None
    if finetune(cfg) and windows is None:
        raise ConfigError(
            "encoder.mode is finetune but the market has no encoder windows (prepare it with this config)"
        )
    fns: list[Callable[[], gym.Env]] = [
        partial(_make_env, market.features, market.open, market.close, cfg.env, windows) for _ in range(cfg.ppo.n_envs)
    ]
    base = FreshInfoDummyVecEnv(fns) if cfg.ppo.vec_env == "dummy" else SubprocVecEnv(fns)
    venv = VecMonitor(base, info_keywords=("equity", "turnover", "costs", "penalty"))
    norm = cfg.ppo.normalize
    if not norm.enabled:
        return venv, None
    extra: dict[str, Any] = {}
    if windows is not None:
        extra["norm_obs_keys"] = list(NORM_KEYS)  # raw windows are already normalised per window
    vn = VecNormalize(
        venv,
        norm_obs=norm.norm_obs,
        norm_reward=norm.norm_reward,
        clip_obs=norm.clip_obs,
        clip_reward=norm.clip_reward,
        gamma=cfg.ppo.gamma,
        epsilon=norm.epsilon,
        **extra,
    )
    if norm.norm_obs and norm.stats_from_data:
        seed_obs_stats(vn, market.features, cfg.env.lookback)
    return vn, vn


def seed_obs_stats(vn: Any, features: np.ndarray, lookback: int) -> None:
    """Start VecNormalize's running observation statistics at the train split's exact per-feature
    mean and variance (weighted as that many samples) instead of SB3's prior (mean 0, variance 1,
    weight 1e-4). The prior dominates features whose variance is ~1e-8 (raw returns, volatilities)
    for the first ~1e5 samples and still weighs ~10 % at 1e5; the data never does that."""
    f = np.asarray(features, dtype=np.float64)
    mean = np.append(np.tile(f.mean(axis=0), lookback), 0.0)  # the position: centred, unit scale
    var = np.append(np.tile(f.var(axis=0), lookback), 1.0)
    rms = vn.obs_rms[FEATURES_KEY] if isinstance(vn.obs_rms, dict) else vn.obs_rms
    if isinstance(vn.obs_rms, dict):
        mean, var = mean[:-1], var[:-1]  # fine-tune mode keeps the position under its own key
    rms.mean, rms.var, rms.count = mean, var, float(len(f))


def schedule(initial: float, kind: str) -> float | Callable[[float], float]:
    """SB3 schedule: a constant, or linear in progress_remaining (1 -> 0 over the whole run; a
    resumed `learn(remaining, reset_num_timesteps=False)` continues the same line), never below 0."""
    if kind == "constant":
        return initial
    return LinearSchedule(initial)


@dataclass(frozen=True)
class LinearSchedule:
    """initial * progress_remaining, clamped to [0, initial] (a picklable callable, unlike a lambda).

    SB3 lets progress_remaining go below 0 when `num_timesteps` passes the total given to `learn()`
    (it finishes whole rollouts); unclamped, the learning rate and clip range would turn negative."""

    initial: float

    def __call__(self, progress_remaining: float) -> float:
        return self.initial * min(1.0, max(0.0, progress_remaining))


def build_model(cfg: TrainConfig, venv: Any) -> Any:
    if cfg.ppo.torch_threads:
        torch.set_num_threads(cfg.ppo.torch_threads)
    algo = PPO
    if finetune(cfg):
        algo = EncoderPPO
    policy, kwargs = model_policy(cfg)
    p = cfg.ppo
    return algo(
        policy,
        venv,
        learning_rate=schedule(p.learning_rate, p.lr_schedule),
        n_steps=p.n_steps,
        batch_size=p.batch_size,
        n_epochs=p.n_epochs,
        gamma=p.gamma,
        gae_lambda=p.gae_lambda,
        clip_range=schedule(p.clip_range, p.clip_schedule),
        target_kl=p.target_kl,
        ent_coef=p.ent_coef,
        vf_coef=p.vf_coef,
        max_grad_norm=p.max_grad_norm,
        policy_kwargs=kwargs,
        seed=cfg.seed,
        device=p.device,
        verbose=0,
    )


class _Progress:
    """Rich progress bar: steps, fps, ETA. A no-op when disabled."""

    def __init__(self, enabled: bool, total: int, start: int, label: str, console: Any = None):
        self.bar = None
        if not enabled:
            return
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:>6.0f} fps"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self.task = self.bar.add_task(label, total=total, completed=start, fps=0.0)
        self.bar.start()

    def update(self, step: int, fps: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, fps=fps)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@dataclass
class _Opened:
    """The run a training session writes to and where it starts: a checkpoint's entry and state
    (None for a new run or a resumed run with no valid checkpoint) and its step."""

    writer: Any
    entry: dict | None
    state: dict | None
    step0: int


@dataclass
class _Data:
    """The bars and the fitted parts a session trains on."""

    splits: dict[str, Any]
    stream: StreamWindow | None
    forecast: Forecast | None
    vol_sizing: dict  # the checkpoints' `vol_sizing` entry (rl/vol_sizing.py)


def _reopen_run(
    cfg: TrainConfig, resume_dir: Path, resume_file: Path | None, total: int, say: Callable[[str], None]
) -> _Opened | TrainOutcome:
    """Open `resume_dir` and load the checkpoint to continue from (`resume_file`, or the newest valid
    one); a TrainOutcome ("noop") when the run already reached the total."""
    recorded = read_yaml(resume_dir / "config.yaml")
    soft_changes = check_compatible(recorded, cfg, f"run {resume_dir.name}")
    writer = open_run(resume_dir)
    entry: dict | None
    state: dict | None

    def invalid(e: dict, why: str) -> None:
        writer.event("checkpoint_invalid", file=e.get("file"), step=e.get("step"), reason=why)
        say(f"checkpoint {e.get('file')} is invalid ({why}); falling back to the previous one")

    if resume_file is not None:
        entry, state = load_checkpoint_file(resume_file)
        newer = [e for e in Manifest(writer.checkpoints_dir).entries() if e.get("step", 0) > entry["step"]]
        for e in newer:  # resuming an older checkpoint abandons the branch after it
            Manifest(writer.checkpoints_dir).remove(e["file"])
        if newer:
            writer.event("checkpoints_discarded", files=[e["file"] for e in newer], resumed_from=entry["file"])
    else:
        found = load_latest_valid(writer.checkpoints_dir, on_invalid=invalid)
        entry, state = found if found else (None, None)
    if state is not None:
        assert entry is not None  # a checkpoint's entry and state are loaded together
        check_compatible(state["config"], cfg, f"checkpoint {entry['file']}")
        check_encoder_fingerprint(cfg.encoder.path, state, f"cannot resume from checkpoint {entry['file']}")
    step0 = int(state["num_timesteps"]) if state is not None else 0
    if step0 >= cfg.total_timesteps:
        msg = (
            f"run {writer.run_id} already completed {step0:,} of {cfg.total_timesteps:,} steps: nothing to do "
            f"(pass a larger --total-timesteps to train further)"
        )
        if writer.status.get("state") != "completed":
            writer.set_status("completed", step=step0, total_steps=total, message=msg)
        writer.close()
        return TrainOutcome(
            resume_dir, "noop", step0, total, writer.checkpoints_dir / entry["file"] if entry else None, msg
        )
    clear_run_stop(resume_dir)
    removed = writer.rewind_metrics(step0)
    if soft_changes:
        atomic_write_text(resume_dir / "config.yaml", config_to_yaml(cfg))
        writer.event("config_changed", keys=soft_changes)
    writer.event("resumed", step=step0, checkpoint=entry["file"] if entry else None, metrics_rows_rewound=removed)
    return _Opened(writer, entry, state, step0)


def _load_data(cfg: TrainConfig, opened: _Opened, total: int, new_run: bool) -> _Data:
    """The train (and evaluation) splits, the stream when streaming, the forecast and the volatility
    forecaster (a resumed run keeps those its checkpoint has). Unusable data discards a new run's
    folder and raises."""
    writer, state, step0 = opened.writer, opened.state, opened.step0
    t_data = time.perf_counter()
    stream = None
    try:
        stream = StreamWindow(cfg) if cfg.streaming.enabled else None
        # streaming: the train bars come through the ring buffer; the eval split is loaded only
        # when the periodic evaluation needs it (that load is not flat in memory)
        wanted: tuple[str, ...] = ("train", cfg.eval.split)
        if stream is not None:
            wanted = (cfg.eval.split,) if cfg.eval.every_steps else ()
        splits = (
            prepare_splits(
                cfg,
                wanted,
                on_progress=lambda msg: writer.set_status("starting", step=step0, total_steps=total, message=msg),
            )
            if wanted
            else {}
        )
        if stream is not None:
            splits["train"] = stream.first()
        # a resumed run keeps the forecast its checkpoints were trained with
        forecast = (
            Forecast.from_state(state["forecast"])
            if state is not None and "forecast" in state
            else fit_forecast(cfg.forecast, splits["train"])
        )
        # and the volatility forecaster they carry; a checkpoint saved before they carried one gets it now
        vol_sizing = (
            state[VOL_SIZING_KEY]
            if state is not None and VOL_SIZING_KEY in state
            else fit_vol_sizing_state(cfg.vol_sizing, splits["train"])
        )
    except ZtbError:
        if stream is not None:
            stream.close()
        if new_run:  # a new run whose data is unusable: leave nothing behind
            writer.discard()
        raise
    writer.event(
        "data_ready",
        seconds=round(time.perf_counter() - t_data, 2),
        train_rows=len(splits["train"]),
        eval_rows=len(splits[cfg.eval.split]) if cfg.eval.split in splits else 0,
        n_features=int(splits["train"].features.shape[1]),
        forecast=None
        if forecast is None
        else {"kind": cfg.forecast.kind, "train_rows": forecast.train_rows, "only": forecast.only},
        # the forecast's clip bound (fitted on train) and how often it fires there; evaluation rows
        # carry `forecast_clipped` for their own bars
        forecast_clip=None if forecast is None else forecast.clip_summary(),
        vol_sizing=vol_sizing_summary(vol_sizing),
    )
    return _Data(splits, stream, forecast, vol_sizing)


def _start_from(
    cfg: TrainConfig, model: Any, vecnorm: Any, venv: Any, opened: _Opened, warm: Any, say: Callable[[str], None]
) -> None:
    """Restore the checkpoint's state, or copy a warm start's policy weights, into a new model; set
    SB3's logger."""
    writer = opened.writer
    if opened.state is not None:
        restore_state(model, vecnorm, opened.state)
    elif warm is not None:
        try:
            warm_file = warm_start_policy(model, warm.target)
        except ZtbError:
            venv.close()
            writer.discard()
            raise
        writer.event("warm_started", checkpoint=str(warm_file), why=warm.description)
        say(f"warm start: policy weights from {warm.description}")
        venv.seed(cfg.seed + opened.step0)  # deterministic fresh episodes after a resume
    if cfg.logging.tensorboard:
        # SB3's own writer: every value it logs (losses, KL, clip fraction...) at each update
        model.set_logger(sb3_logger(str(tensorboard_dir(writer.dir)), ["tensorboard"]))
    else:
        # values are still recorded for our callbacks; without a logger of our own SB3 makes one
        # that leaves an empty /tmp/SB3-<time> folder behind for every run and resume
        model.set_logger(SB3Logger(folder=None, output_formats=[]))


def _make_saver(cfg: TrainConfig, writer: Any) -> CheckpointSaver:
    return CheckpointSaver(
        writer.checkpoints_dir,
        level=cfg.checkpoint.compression_level,
        max_pending=cfg.checkpoint.max_pending,
        when_busy=cfg.checkpoint.when_busy,
        keep_last=cfg.checkpoint.keep_last,
        keep_best=cfg.checkpoint.keep_best,
        on_saved=lambda e: writer.event(
            "checkpoint_saved",
            **{k: e[k] for k in ("file", "step", "size", "ratio", "save_seconds", "block_ms") if k in e},
        ),
        on_error=CheckpointSaver.failure_reporter(writer),
    )


def _finish(writer: Any, cbs: Any, model: Any, saver: CheckpointSaver, total: int) -> TrainOutcome:
    """The run's final state from how learning ended; a final checkpoint that is not on disk (a full
    disk) fails the run, saying how many steps are lost."""
    final_step = cbs.checkpoints.final_step if cbs.checkpoints.final_step is not None else int(model.num_timesteps)
    if cbs.session.stopped:
        outcome_state, message = "stopped", f"stopped at step {final_step:,} ({cbs.session.stop_reason})"
    else:
        outcome_state, message = "completed", f"completed {final_step:,} steps"
    saver.require_on_disk(final_step)
    entries = Manifest(writer.checkpoints_dir).entries()
    last = next((e for e in reversed(entries) if e["step"] == final_step), None)
    writer.set_status(outcome_state, step=final_step, total_steps=total, message=message)
    writer.close(outcome_state, message=message)
    return TrainOutcome(
        writer.dir,
        outcome_state,
        final_step,
        total,
        writer.checkpoints_dir / last["file"] if last else None,
        message,
        cbs.checkpoints.block_ms,
        cbs.session.fps(final_step),
    )


def run_training(
    cfg: TrainConfig,
    *,
    run_id: str | None = None,
    resume_dir: Path | None = None,
    resume_file: Path | None = None,
    argv: list[str] | None = None,
    progress: bool = True,
    console: Any = None,
    say: Callable[[str], None] | None = None,
    config_sources: Mapping[str, str] | None = None,
) -> TrainOutcome:
    """Train to `cfg.total_timesteps` in a new run, or continue `resume_dir`. `config_sources`
    (`Resolved.chosen()`) goes into a new run's run.json."""
    say = say or (lambda msg: log.info(msg))
    if cfg.logging.tensorboard:
        require_tensorboard()
    if cfg.encoder.path:  # a wrong encoder.path fails here, before a run folder exists
        load_encoder_checked(cfg.encoder.path)
    total = cfg.rounded_total()
    cfg_dict, cfg_hash = config_to_dict(cfg), config_hash(cfg)
    # a wrong warm_start fails here, before a run folder exists; a resumed run loads its own state
    warm = choose_checkpoint(cfg.warm_start, "best") if cfg.warm_start and resume_dir is None else None
    if resume_dir is not None:
        reopened = _reopen_run(cfg, resume_dir, resume_file, total, say)
        if isinstance(reopened, TrainOutcome):
            return reopened
        opened = reopened
    else:
        writer = create_run(
            "train",
            cfg,
            run_id=run_id,
            argv=argv,
            seeds={"seed": cfg.seed},
            total_steps=total,
            config_sources=config_sources,
        )
        opened = _Opened(writer, None, None, 0)
    writer, state, step0 = opened.writer, opened.state, opened.step0
    setup_logging(writer.dir, console=not progress)
    kill = KillSwitch(writer.dir)
    kill.install_signal_handlers()
    with writer:
        writer.set_status("starting", step=step0, total_steps=total, message="loading data")
        writer.start_heartbeat(2.0)
        data = _load_data(cfg, opened, total, new_run=resume_dir is None)
        splits, stream, forecast = data.splits, data.stream, data.forecast
        # the environment sees the forecast as one more column (or alone); evaluation and checkpoints get the
        # fitted forecast itself, so agents append it to the plain features (rl/forecast.py)
        venv, vecnorm = build_vec_env(cfg, forecast.augment(splits["train"]) if forecast else splits["train"])
        model = build_model(cfg, venv)
        _start_from(cfg, model, vecnorm, venv, opened, warm, say)
        saver = _make_saver(cfg, writer)
        evaluator = (
            PeriodicEvaluator(cfg, splits[cfg.eval.split], writer.reports_dir, train=splits["train"], forecast=forecast)
            if cfg.eval.every_steps
            else None
        )
        bar = _Progress(progress, total, step0, writer.run_id, console)
        cbs = training_callbacks(
            cfg,
            writer,
            kill,
            saver,
            cfg_dict,
            cfg_hash,
            vecnorm,
            evaluator,
            on_progress=bar.update,
            start_step=step0,
            forecast_state=forecast.state() if forecast is not None else None,
            vol_sizing_state=data.vol_sizing,
        )
        if stream is not None:
            cbs.callback.callbacks.insert(0, StreamRefresh(stream, writer, forecast))  # learn() initialises the list
        telemetry = TelemetryThread(writer, cfg.telemetry_interval_s, step_fn=lambda: model.num_timesteps).start()
        writer.set_status("running", step=step0, total_steps=total, message="training")
        writer.event("started", step=step0, total_steps=total, rollout=cfg.rollout_steps, resumed=state is not None)
        try:
            # the callbacks' _on_training_end makes the final save (and the last evaluation)
            with unvalidated_distributions():
                model.learn(
                    total_timesteps=total - step0,  # the rounded total: the schedules end where the run does
                    callback=cbs.callback,
                    reset_num_timesteps=False,
                    log_interval=1,
                    progress_bar=False,
                )
        finally:
            bar.stop()
            telemetry.stop()
            if stream is not None:
                stream.close()
            saver.close(timeout=120)
        outcome = _finish(writer, cbs, model, saver, total)
        venv.close()
    return outcome
