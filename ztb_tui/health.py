"""Warnings for runs that are quietly going wrong: what a person would spot only by reading every
sparkline. Plain Python, no Textual: a `HealthSource` follows one run's metrics.jsonl and
events.jsonl (only what was appended since the last poll) and returns the flags that hold now,
each with the reason and, where there is one, what would fix it.

Training: a non-finite or negative learning rate in the latest update, a loss or value loss that
jumps far above its recent level, non-finite metrics, a step rate that collapses, a stall (the
run says it is running but its step has not moved), and a periodic evaluation more than two
standard errors below the run's best. Live: a run whose policy never decides (every bar
`not_ready`)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from ztb_core.runs import ACTIVE_STATES, JsonlTail, RunSummary

#: a loss counts as jumped when its newest value exceeds this multiple of the median of the
#: values before it (a doubling is ordinary PPO noise; the reported runs went up 10-30x)
LOSS_JUMP_FACTOR = 5.0
LOSS_KEYS = ("loss", "value_loss")
#: values of a loss the jump is measured against (recent level, not the first update's)
LOSS_WINDOW = 20
#: a step rate below this fraction of the run's median rate is a collapse
FPS_COLLAPSE_FRACTION = 0.2
#: an active run whose step has not moved for this long is stalled (the heartbeat may still beat)
STALL_AFTER_S = 300.0
#: evaluation rows come from these splits (eval.split: val, or test)
EVAL_SPLITS = ("val", "test")
#: consecutive `not_ready` bars before a live run is flagged (the first bars may be the warm-up)
NOT_READY_BARS = 2
#: the first read of a long run: its newest ~1,500 rows (what the checks look at), not megabytes
METRICS_TAIL_BYTES = 256 << 10
EVENTS_TAIL_BYTES = 256 << 10


@dataclass(frozen=True)
class Flag:
    code: str  # not_deciding | learning_rate | loss_jump | non_finite | fps_collapse | stall | eval_drop
    text: str  # what is wrong, one line
    fix: str = ""  # what would fix it (empty when there is no single remedy)

    def line(self) -> str:
        return f"{self.text} — {self.fix}" if self.fix else self.text


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: evaluation rows legitimately hold null for a baseline without trades; only these go "non-finite"
EVAL_NUMBERS = frozenset({"sharpe", "total_return", "max_drawdown", "loss"})


def _nullable_is_bad(split: str, key: str) -> bool:
    return split == "train" or key in EVAL_NUMBERS


def _g(value: float) -> str:
    return f"{value:.3g}"


@dataclass
class _Eval:
    step: int
    sharpe_pp: float  # per-period Sharpe
    bars: float

    @property
    def se(self) -> float:
        """Standard error of a per-period Sharpe ratio estimated on `bars` returns (Lo, 2002)."""
        return math.sqrt((1.0 + 0.5 * self.sharpe_pp**2) / max(self.bars, 1.0))


@dataclass
class _TrainState:
    losses: dict[str, deque] = field(default_factory=lambda: {k: deque(maxlen=LOSS_WINDOW + 1) for k in LOSS_KEYS})
    jump_ratio: dict[str, float] = field(default_factory=dict)  # loss key -> largest jump flagged
    latched: dict[str, Flag] = field(default_factory=dict)  # non-finite values, a bad learning rate, loss jumps
    numeric: dict[str, set[str]] = field(default_factory=dict)  # split -> keys seen with a finite value
    fps: deque = field(default_factory=lambda: deque(maxlen=200))
    evals: list[_Eval] = field(default_factory=list)


@dataclass
class _LiveState:
    streak: int = 0  # consecutive bars without a decision
    reason: str = ""
    decided: int = 0


class HealthSource:
    """The flags of one run, recomputed from what its files hold. `poll(row)` takes the run's
    current summary (state, step, heartbeat) for the stall check."""

    def __init__(self, run_dir: Path, kind: str, now: Callable[[], float] = time.time):
        self.run_dir = Path(run_dir)
        self.kind = kind
        self.now = now
        self.metrics = JsonlTail(self.run_dir / "metrics.jsonl", from_end_bytes=METRICS_TAIL_BYTES)
        self.events = JsonlTail(self.run_dir / "events.jsonl", from_end_bytes=EVENTS_TAIL_BYTES)
        self.train = _TrainState()
        self.live = _LiveState()

    def poll(self, row: RunSummary | None = None) -> tuple[Flag, ...]:
        got = self.metrics.poll()
        if got.reset:
            self.train = _TrainState()
        ev = self.events.poll()
        if ev.reset or got.reset:
            self.live = _LiveState()
        # live: a bar is either a decision (a metrics row with `decision`) or a `not_ready` event
        for rec in self._merged(got.records, ev.records):
            self._ingest(rec)
        return tuple(self._flags(row))

    @staticmethod
    def _merged(metrics: list[dict], events: list[dict]) -> Iterable[dict]:
        rows = [(r.get("time") or 0.0, 0, r) for r in metrics] + [(e.get("time") or 0.0, 1, e) for e in events]
        rows.sort(key=lambda t: (t[0] if _number(t[0]) else 0.0, t[1]))
        return (r for _, _, r in rows)

    def _loss(self, key: str, step: int, value: float) -> None:
        t = self.train
        before = list(t.losses[key])[-LOSS_WINDOW:]
        t.losses[key].append(value)
        if len(before) < 3:
            return
        level = median(before)
        old = t.latched.get(f"loss_jump/{key}")
        ratio = value / level if level > 0 else 0.0
        if ratio > LOSS_JUMP_FACTOR and (old is None or ratio > t.jump_ratio.get(key, 0.0)):
            t.jump_ratio[key] = ratio
            t.latched[f"loss_jump/{key}"] = Flag(
                "loss_jump",
                f"{key.replace('_', ' ')} jumped to {_g(value)} at step {step:,} ({ratio:.0f}x its recent median "
                f"{_g(level)})",
                "look at the learning rate and the last rollout; resume from an earlier checkpoint if it persists",
            )

    def _ingest(self, rec: dict) -> None:
        if "event" in rec:
            if rec.get("event") == "not_ready":
                self.live.streak += 1
                self.live.reason = str(rec.get("reason", ""))
            return
        split = str(rec.get("split", ""))
        step = int(rec["step"]) if _finite(rec.get("step")) else 0
        if split == "live":
            if "decision" in rec:
                self.live.streak = 0
                self.live.decided += 1
            return
        if split == "sys" or self.kind not in ("train", "pretrain"):
            return
        t = self.train
        # the run writer stores NaN and infinity as null (orjson): a key that held numbers and is
        # now null went non-finite; a literal NaN (another writer) counts too
        seen = t.numeric.setdefault(split, set())
        bad = [
            k
            for k, v in rec.items()
            if k not in ("time", "step", "split")
            and ((_number(v) and not math.isfinite(v)) or (v is None and k in seen and _nullable_is_bad(split, k)))
        ]
        seen.update(k for k, v in rec.items() if _finite(v))
        # what went wrong once stays flagged (the next update looking normal does not undo it)
        if bad and f"non_finite/{split}" not in t.latched:
            shown = ", ".join(sorted(bad)[:4]) + (f" +{len(bad) - 4}" if len(bad) > 4 else "")
            t.latched[f"non_finite/{split}"] = Flag(
                "non_finite", f"non-finite {split} metrics at step {step:,}: {shown}"
            )
        if split == "train":
            lr = rec.get("learning_rate", rec.get("lr"))
            if _number(lr) and (not math.isfinite(lr) or lr < 0):  # type: ignore[operator, arg-type]
                t.latched["learning_rate"] = Flag(
                    "learning_rate",
                    f"learning rate {lr} at step {step:,}: the optimizer "
                    + ("steps the wrong way" if math.isfinite(lr) else "has no valid step size"),  # type: ignore[arg-type]
                    "check the schedule (ppo.lr_schedule) against total_timesteps and the rollout size",
                )
            for key in LOSS_KEYS:
                v = rec.get(key)
                if _finite(v):
                    self._loss(key, step, float(v))  # type: ignore[arg-type]
            if _finite(rec.get("fps")):
                t.fps.append(float(rec["fps"]))
        if split in EVAL_SPLITS and _finite(rec.get("sharpe_per_period")) and _finite(rec.get("bars")):
            t.evals.append(_Eval(step, float(rec["sharpe_per_period"]), float(rec["bars"])))

    # ---- the checks ---------------------------------------------------------------------------
    def _flags(self, row: RunSummary | None) -> Iterable[Flag]:
        if self.kind == "live":
            yield from self._live_flags()
            return
        if self.kind in ("train", "pretrain"):
            yield from self._train_flags()
        stall = self._stall(row)
        if stall is not None:
            yield stall

    def _live_flags(self) -> Iterable[Flag]:
        s = self.live
        if s.streak >= NOT_READY_BARS:
            yield Flag(
                "not_deciding",
                f"not deciding: the last {s.streak} bars were not_ready ({s.reason})"
                if s.decided
                else f"never decided: all {s.streak} bars not_ready ({s.reason})",
                "load more history before the first decision: raise warmup_bars (or policy.buffer_bars "
                "for an agent) to what the policy needs, or pick a policy with a shorter window",
            )

    def _train_flags(self) -> Iterable[Flag]:
        t = self.train
        yield from t.latched.values()
        # sustained: the last two rates both under the fraction (one slow rollout on a busy host, a
        # checkpoint or an evaluation, is not a collapse)
        if len(t.fps) >= 5:
            *before, prev, last = t.fps
            level = median(before)
            if level > 0 and max(prev, last) < FPS_COLLAPSE_FRACTION * level:
                yield Flag(
                    "fps_collapse",
                    f"step rate collapsed to {_g(last)}/s (median {_g(level)}/s)",
                    "check the host: CPU/GPU contention, swapping, a full disk",
                )
        if len(t.evals) >= 2:
            last = t.evals[-1]
            best = max(t.evals[:-1], key=lambda e: e.sharpe_pp)
            if last.sharpe_pp < best.sharpe_pp - 2 * last.se:
                gap = (best.sharpe_pp - last.sharpe_pp) / last.se
                yield Flag(
                    "eval_drop",
                    f"evaluation at step {last.step:,} is {gap:.1f} standard errors below the best (step {best.step:,})",
                    "the best checkpoint is kept: `ztb eval --checkpoint best` scores it",
                )

    def _stall(self, row: RunSummary | None) -> Flag | None:
        if row is None or row.state not in ACTIVE_STATES or row.liveness in ("dead", "stale"):
            return None  # a dead or stale run is already shown as such
        moved = row.status.get("step_updated_at")
        if not _finite(moved):
            return None
        idle = self.now() - float(moved)  # type: ignore[arg-type]
        if idle > STALL_AFTER_S:
            return Flag(
                "stall",
                f"stalled: step {row.step:,} has not moved for {idle / 60:.0f} min while the heartbeat beats",
                "read the Logs tab; STOP and resume from the last checkpoint if it stays stuck",
            )
        return None


def summary_text(flags: tuple[Flag, ...]) -> str:
    """The runs list's short form: the first flag's text, and how many more."""
    if not flags:
        return ""
    more = f" (+{len(flags) - 1})" if len(flags) > 1 else ""
    return f"⚠ {flags[0].text}{more}"
