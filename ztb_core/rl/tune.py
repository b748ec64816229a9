"""`ztb tune`: an Optuna study over the PPO/env knobs, each trial a normal `ztb train --headless`
run in its own process and run directory (kill-file, checkpoints, console: nothing special).

One `ztb tune` process is one worker and one run of kind `tune`. Many workers share a study
through Optuna's storage: SQLite or a journal file on one machine, a PostgreSQL/MySQL URL across
machines. Each worker asks the study for a trial, starts the train run with the trial's
parameters as `--set` overrides, follows the run's periodic-evaluation rows in its
`metrics.jsonl` (each one is reported to the trial; when the pruner says so the worker drops the
run's kill-file, and the run saves and stops), then tells the study the outcome.

The tune run writes what the console shows (`reports/trials.json`, rewritten atomically after
each trial, and one `trial` metrics row per finished trial) and its trial registry: the finished
runs' evaluation records, so the Deflated Sharpe Ratio of any model from the study is deflated for
every configuration the study tried (`evaluation.trials.collect_trials`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import optuna
import sqlalchemy.exc
from optuna.storages.journal import JournalFileBackend, JournalStorage
from pydantic import Field, model_validator

from ..atomic import atomic_write_json
from ..config import ZtbModel, load_config
from ..errors import ConfigError, RunError
from ..evaluation.trials import TrialRegistry
from ..paths import runs_dir
from ..runs import RunWriter
from ..runtime.killfile import KillSwitch
from .child import ChildTrainRun
from .config import TrainConfig

log = logging.getLogger("ztb.rl.tune")


class ParamRange(ZtbModel):
    """One knob of the search space: a range (`low`, `high`, optional `log`, `integer`) or `choices`."""

    low: float | None = Field(None, description="smallest value (ranges)")
    high: float | None = Field(None, description="largest value (ranges)")
    log: bool = Field(False, description="sample on a log scale (ranges)")
    integer: bool = Field(False, description="integers only (ranges)")
    choices: list[float | int | str | bool] | None = Field(None, description="the values to choose from")

    @model_validator(mode="after")
    def _one_kind(self) -> ParamRange:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either non-empty choices or low/high, not both")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a range needs low < high, got low={self.low}, high={self.high}")
        elif self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


def _default_space() -> dict[str, ParamRange]:
    r = ParamRange
    return {
        "ppo.learning_rate": r(low=1e-5, high=1e-3, log=True),
        "ppo.lr_schedule": r(choices=["constant", "linear"]),
        "ppo.n_steps": r(choices=[512, 1024, 2048, 4096]),
        "ppo.gamma": r(low=0.8, high=0.995),
        "ppo.gae_lambda": r(low=0.8, high=0.98),
        "ppo.ent_coef": r(low=1e-6, high=1e-2, log=True),
        "ppo.clip_range": r(choices=[0.1, 0.2, 0.3]),
        "ppo.target_kl": r(choices=[0.01, 0.02, 0.05]),
        "ppo.n_epochs": r(choices=[3, 5, 10]),
        "env.reward.turnover_penalty": r(low=-0.95, high=1.0),
    }


class TuneConfig(ZtbModel):
    default_file: ClassVar[str] = "tune.yaml"

    trials: int = Field(20, ge=1, le=100_000, description="trials this worker runs (--trials)")
    study: str | None = Field(None, description="study name (--study); none = the tune run's id")
    storage: str | None = Field(
        None,
        description="Optuna storage (--storage): sqlite:///file.db, journal:///file.log, postgresql://..., "
        "mysql://...; none = a SQLite file in the tune run's folder",
    )
    seed: int | None = Field(None, ge=0, description="sampler seed (none = random; give each worker its own)")
    objective: Literal["best", "last"] = Field(
        "best",
        description="the trial's value: the best periodic-evaluation Sharpe (the checkpoint `ztb eval` "
        "picks) or the last one",
    )
    pruner: Literal["median", "none"] = Field("median", description="median: stop trials below the median so far")
    startup_trials: int = Field(5, ge=0, description="trials finished before the pruner and TPE kick in")
    warmup_evaluations: int = Field(1, ge=0, description="evaluations of a trial before it may be pruned")
    min_sharpe: float | None = Field(
        None, description="also prune a trial whose evaluation Sharpe is below this after the warm-up (none = off)"
    )
    train_config: str | None = Field(None, description="train config YAML of every trial (none = configs/train.yaml)")
    train_overrides: list[str] = Field(
        [], description="--set overrides of every trial, e.g. total_timesteps=200000 (before the sampled ones)"
    )
    poll_s: float = Field(1.0, gt=0, le=60, description="seconds between reads of a trial's metrics")
    stop_timeout_s: float = Field(
        120.0, gt=0, description="after a kill-file, wait this long for the trial run to save and exit"
    )
    heartbeat_s: int = Field(
        60, ge=1, description="RDB storage: a running trial's heartbeat period (its worker is alive)"
    )
    grace_s: int = Field(
        300, ge=1, description="RDB storage: a running trial with no heartbeat this long is failed (its worker died)"
    )
    space: dict[str, ParamRange] = Field(
        default_factory=_default_space, description="dotted train-config key -> range or choices"
    )

    @model_validator(mode="after")
    def _space_not_empty(self) -> TuneConfig:
        if not self.space:
            raise ValueError("space: at least one parameter to tune")
        return self


# --- storage ------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The storage URL with any password replaced by ***, so it can be written and logged."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def open_storage(url: str, heartbeat_s: int | None = None, grace_s: int | None = None) -> Any:
    """An Optuna storage for a URL: `journal:///path` (a journal file, safe for several processes
    on one file system), or an RDB URL (`sqlite:///`, `postgresql://`, `mysql://`). On an RDB each
    running trial beats every `heartbeat_s`; one silent for `grace_s` (its worker died with it) is
    failed by the next worker that asks for a trial, so a study on many machines never waits on it."""
    if url.startswith("journal://"):
        path = Path(url[len("journal://") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if not re.match(r"^(sqlite|postgresql|mysql)(\+\w+)?://", url):
        raise ConfigError(
            f"storage {redact_url(url)!r}: use sqlite:///file.db, journal:///file.log, postgresql://... or mysql://..."
        )
    # SQLite: several local workers write to one file; wait for its lock instead of failing at once
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(1, 6):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s, grace_period=grace_s
            )
        except ImportError as exc:  # a database driver that is not installed
            raise ConfigError(f"storage {redact_url(url)!r}: {exc}") from None
        except sqlalchemy.exc.DBAPIError as exc:
            # workers started together race to create the schema of a new database: the loser
            # finds the tables half made; a moment later they are there
            if attempt == 5:
                raise ConfigError(f"storage {redact_url(url)!r}: {exc.orig}") from None
            log.info("storage %s busy (%s); retrying", redact_url(url), exc.orig)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


# --- the trial runs -----------------------------------------------------------------------------


def suggest(trial: optuna.Trial, space: dict[str, ParamRange]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, r in space.items():
        if r.choices is not None:
            out[key] = trial.suggest_categorical(key, r.choices)
        elif r.integer:
            out[key] = trial.suggest_int(key, int(r.low or 0), int(r.high or 0), log=r.log)
        else:
            out[key] = trial.suggest_float(key, float(r.low or 0.0), float(r.high or 0.0), log=r.log)
    return out


def _override(key: str, value: Any) -> str:
    return f"{key}={str(value).lower() if isinstance(value, bool) else value}"


def check_space(cfg: TuneConfig) -> TrainConfig:
    """Every trial's config must load: the base config with the overrides and, per knob, each end
    of its range and every choice. A bad key fails here, before the study or any run exists."""
    path = Path(cfg.train_config) if cfg.train_config else None
    base = load_config(TrainConfig, path, cfg.train_overrides)
    for key, r in cfg.space.items():
        for v in r.choices if r.choices is not None else (r.low, r.high):
            load_config(TrainConfig, path, [*cfg.train_overrides, _override(key, v)])
    if not base.eval.every_steps:
        raise ConfigError("tune: trials need periodic evaluation (eval.every_steps > 0) to be scored and pruned")
    return base


def trial_run_id(study: str, number: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", study)[:80]
    return f"{safe}-t{number:04d}"


@dataclass
class TrialOutcome:
    state: Literal["complete", "pruned", "fail"]
    value: float | None
    run_id: str
    message: str = ""


def trial_value(values: list[float], objective: str) -> float:
    """A trial's value from its evaluation Sharpes, oldest first: the best (the checkpoint `ztb eval`
    picks by default) or the last."""
    return max(values) if objective == "best" else values[-1]


class TrialRunner:
    """Runs one trial's train run and follows its evaluation rows."""

    def __init__(self, cfg: TuneConfig, base: TrainConfig, logs_dir: Path, stop: Callable[[], bool]):
        self.cfg, self.base, self.logs_dir, self.stop = cfg, base, logs_dir, stop

    def child(self, run_id: str, params: dict[str, Any]) -> ChildTrainRun:
        overrides = [*self.cfg.train_overrides, *(_override(k, v) for k, v in params.items())]
        return ChildTrainRun(run_id, self.cfg.train_config, overrides, self.logs_dir)

    def run(self, trial: optuna.Trial, params: dict[str, Any], run_id: str) -> TrialOutcome:
        split = self.base.eval.split
        values: list[float] = []

        def on_row(row: dict) -> str | None:
            if row.get("split") != split:  # only periodic evaluation writes rows of the evaluation split
                return None
            # an undefined Sharpe (a flat policy; rows from before `score_flat` leave it out) is 0: it earned nothing
            sharpe = row.get("sharpe")
            v = float(sharpe) if isinstance(sharpe, (int, float)) else 0.0
            v = v if math.isfinite(v) else 0.0
            step = int(row.get("step", 0))
            values.append(v)
            trial.report(v, step)
            if self._should_prune(trial, v, len(values)):
                log.info("trial %d pruned at step %d", trial.number, step)
                return f"pruned by tune at step {step} (Sharpe {v:.3f})"
            return None

        rc, stopped = self.child(run_id, params).follow(on_row, self.stop, self.cfg.poll_s, self.cfg.stop_timeout_s)
        if rc != 0:
            return TrialOutcome("fail", None, run_id, f"train run exited with code {rc} (see logs/{run_id}.out)")
        if not values:
            return TrialOutcome("fail", None, run_id, "the train run wrote no evaluation rows")
        value = trial_value(values, self.cfg.objective)
        if stopped is not None and stopped.startswith("pruned"):
            return TrialOutcome("pruned", value, run_id, stopped)
        if stopped is not None:  # stopped from outside before it finished: not a result
            return TrialOutcome("fail", value, run_id, "stopped before the end")
        return TrialOutcome("complete", value, run_id)

    def _should_prune(self, trial: optuna.Trial, value: float, n_evals: int) -> bool:
        if n_evals <= self.cfg.warmup_evaluations:
            return False
        if self.cfg.min_sharpe is not None and value < self.cfg.min_sharpe:
            return True
        return trial.should_prune()


# --- the study ----------------------------------------------------------------------------------


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds")


def trials_document(study: optuna.Study, storage_url: str) -> dict:
    """`reports/trials.json`: the study as the console shows it (every worker's trials)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.value is not None else t.user_attrs.get("last_value")
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": value,
                "params": dict(t.params),
                "run_id": t.user_attrs.get("run_id"),
                "started_at": _iso(t.datetime_start),
                "finished_at": _iso(t.datetime_complete),
            }
        )
    return {
        "study": study.study_name,
        "storage": redact_url(storage_url),
        "direction": "maximize",
        "trials": rows,
    }


def collect_trial_records(study: optuna.Study, registry: TrialRegistry) -> int:
    """Copy into the tune run's registry the evaluation records of every finished study trial whose
    run folder is on this machine and not copied yet (other workers' too: duplicates are one trial)."""
    have = {(r.get("run_id"), r.get("split"), r.get("step")) for r in registry.records()}
    new = []
    for t in study.get_trials(deepcopy=False):
        rid = t.user_attrs.get("run_id")
        if not rid or not t.state.is_finished() or not (runs_dir() / rid).is_dir():
            continue
        for rec in TrialRegistry(runs_dir() / rid).records():
            key = (rec.get("run_id"), rec.get("split"), rec.get("step"))
            if key not in have and rec.get("source") == "periodic_eval":
                have.add(key)
                new.append({**rec, "study": study.study_name, "trial": t.number})
    registry.append(new)
    return len(new)


@contextmanager
def _heartbeat(storage: Any, trial: optuna.Trial, every_s: float) -> Iterator[None]:
    """Beat for `trial` while its train run works (what `study.optimize` does; ask/tell does not)."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception as exc:  # a database hiccup must not end the trial; the next beat may land
                log.warning("heartbeat of trial %d failed: %s", trial.number, exc)
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-trial-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def run_study(
    cfg: TuneConfig, writer: RunWriter, kill: KillSwitch | None = None, say: Callable[[str], None] = print
) -> dict:
    """Run `cfg.trials` trials of the study as this worker; returns the trials document. A stop
    (the tune run's kill-file, the global one, or `kill.trip`) stops the running trial's train run
    through its own kill-file and ends the loop."""
    base = check_space(cfg)
    storage_url = cfg.storage or f"sqlite:///{writer.dir / 'study.db'}"
    storage = open_storage(storage_url, cfg.heartbeat_s, cfg.grace_s)
    name = cfg.study or writer.run_id
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=cfg.startup_trials)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=cfg.startup_trials, n_warmup_steps=0)
        if cfg.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
    )
    writer.event("study_opened", study=name, storage=redact_url(storage_url), existing_trials=len(study.trials))
    kill = kill or KillSwitch(writer.dir)
    runner = TrialRunner(cfg, base, writer.logs_dir, kill.requested)
    registry = TrialRegistry(writer.dir)
    doc = trials_document(study, storage_url)
    for i in range(cfg.trials):
        if kill.requested():
            writer.event("stop_requested", step=i, reason=kill.reason or "stop requested")
            break
        if isinstance(storage, optuna.storages.RDBStorage):  # trials of dead workers: FAIL, so they count as tried
            optuna.storages.fail_stale_trials(study)
        trial = study.ask()
        run_id = trial_run_id(name, trial.number)
        if (runs_dir() / run_id).exists():
            raise RunError(f"trial {trial.number}: run {run_id} already exists (another study of the same name?)")
        trial.set_user_attr("run_id", run_id)
        params = suggest(trial, cfg.space)
        writer.set_status("running", step=i, message=f"trial {trial.number} ({i + 1}/{cfg.trials}): {run_id}")
        writer.event("trial_started", step=i, trial=trial.number, run_id=run_id, params=params)
        say(f"trial {trial.number} ({i + 1}/{cfg.trials}) -> run {run_id}: {params}")
        with _heartbeat(storage, trial, cfg.heartbeat_s):
            out = runner.run(trial, params, run_id)
        if out.value is not None:
            trial.set_user_attr("last_value", out.value)
        if out.state == "complete":
            study.tell(trial, out.value)
        elif out.state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        copied = collect_trial_records(study, registry)
        writer.metric(trial.number, "trial", {"value": out.value, "state": out.state}, flush=True)
        writer.event("trial_finished", step=i + 1, trial=trial.number, state=out.state, value=out.value, records=copied)
        doc = trials_document(study, storage_url)
        atomic_write_json(writer.reports_dir / "trials.json", doc)
        say(f"trial {trial.number}: {out.state}, value {out.value if out.value is not None else 'n/a'} {out.message}")
        writer.heartbeat(i + 1)
    atomic_write_json(writer.reports_dir / "trials.json", doc)
    return doc
