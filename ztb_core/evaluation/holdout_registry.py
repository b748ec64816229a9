"""The project-level test registry: every configuration ever scored on a market's test split.

A run's own `trials.jsonl` (`trials.py`) counts the evaluations inside one run. Choices between
runs (which candidate became the default, which preset shipped) were also made after test figures
had been seen, and no run records those. `benchmarks/test_registry.csv` does: one row per
policy scored on a test split (configuration, checkpoint rule, training seed), with the figure as
the docs state it and where they state it. A headline Sharpe on a market is then deflated by the
number of configurations scored on that market's test split (Bailey & López de Prado's DSR, via
`sharpe_stats`).

What the deflation assumes, stated once here:

* a **configuration** is (market, split, config, checkpoint rule); its Sharpe is the median of the
  stated Sharpes of its training seeds (one seed: that figure);
* N is the number of configurations, counting those whose Sharpe the docs do not state;
* the variance of trial Sharpes is the sample variance of the configurations' Sharpes, converted
  to per period with the market's bars a year, but never below the Sharpe estimator's own sampling
  variance on the split (what a skill-less configuration's Sharpe scatters by; also used when
  fewer than two Sharpes are stated);
* skew 0 and kurtosis 3 (the normal approximation): the registry holds Sharpes, not return series.
  Fat tails widen the estimator's variance, so the DSR here is, if anything, too generous;
* the number of test bars is the stated one, or else ppy / SE² from the stated i.i.d. standard
  error of the annualised Sharpe (SE ≈ √(ppy / T)).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .calendar import periods_per_year
from .errors import EvaluationError
from .sharpe_stats import deflated_sharpe_ratio, expected_max_sharpe, sharpe_estimator_variance

#: columns of the registry, in order
COLUMNS: tuple[str, ...] = (
    "date",
    "market",
    "split",
    "config",
    "checkpoint",
    "train_seed",
    "test_sharpe",
    "test_sharpe_se",
    "n_test_bars",
    "timeframe",
    "calendar",
    "source",
    "note",
)
#: the registry lists test-split scorings only: val scorings are the selection process itself
SPLITS: frozenset[str] = frozenset({"test"})
#: "" for a rule with no checkpoints (a baseline, a reference), else which checkpoint was scored:
#: final, best (by validation) or step:N (one chosen by its step)
_CHECKPOINT = re.compile(r"^(|final|best|step:\d+)$")
#: how far two rows' test-bar counts of one market's split may differ (stated figures are rounded)
BARS_TOLERANCE = 0.01
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RegistryError(EvaluationError):
    """A registry file or row is unusable; the message names the file, line and column."""


@dataclass(frozen=True)
class Scoring:
    """One row: one policy scored on one market's test split."""

    line: int
    date: str
    market: str
    split: str
    config: str
    checkpoint: str
    train_seed: int | None
    test_sharpe: float | None
    test_sharpe_se: float | None
    n_test_bars: int | None
    timeframe: str
    calendar: str
    source: str
    note: str

    @property
    def config_key(self) -> tuple[str, str, str, str]:
        return (self.market, self.split, self.config, self.checkpoint)


@dataclass(frozen=True)
class Configuration:
    """A configuration on one market's split, and the Sharpe it stands for (median over seeds)."""

    config: str
    checkpoint: str
    sharpes: tuple[float, ...]

    @property
    def sharpe(self) -> float | None:
        return float(statistics.median(self.sharpes)) if self.sharpes else None

    @property
    def label(self) -> str:
        return f"{self.config} [{self.checkpoint}]" if self.checkpoint else self.config


@dataclass(frozen=True)
class MarketTrials:
    """Every configuration scored on one market's split, and what the deflation needs from them."""

    market: str
    split: str
    configurations: tuple[Configuration, ...]
    n_scorings: int
    periods_per_year: float
    n_test_bars: int | None
    n_test_bars_source: str

    @property
    def n_configurations(self) -> int:
        return len(self.configurations)

    @property
    def sharpes(self) -> list[float]:
        return [s for c in self.configurations if (s := c.sharpe) is not None]

    def find(self, config: str, checkpoint: str) -> Configuration:
        for c in self.configurations:
            if c.config == config and c.checkpoint == checkpoint:
                return c
        raise RegistryError(f"{self.market} ({self.split}): no configuration {config!r} with checkpoint {checkpoint!r}")


def _fail(path: Path, line: int, column: str, message: str) -> RegistryError:
    return RegistryError(f"{path}:{line}: column {column!r}: {message}")


def _optional_float(path: Path, line: int, column: str, text: str, *, positive: bool = False) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise _fail(path, line, column, f"expected a number or an empty cell, got {text!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise _fail(path, line, column, f"expected a finite{' positive' if positive else ''} number, got {text!r}")
    return value


def _optional_int(path: Path, line: int, column: str, text: str, minimum: int) -> int | None:
    if text == "":
        return None
    if not re.fullmatch(r"\d+", text) or int(text) < minimum:
        raise _fail(path, line, column, f"expected a whole number >= {minimum} or an empty cell, got {text!r}")
    return int(text)


def _row(path: Path, line: int, cells: dict[str, str]) -> Scoring:
    for column in ("market", "split", "config", "timeframe", "calendar", "source"):
        if not cells[column]:
            raise _fail(path, line, column, "must not be empty")
    if cells["date"] and not _DATE.match(cells["date"]):
        raise _fail(path, line, "date", f"expected YYYY-MM-DD or an empty cell, got {cells['date']!r}")
    if cells["split"] not in SPLITS:
        raise _fail(
            path, line, "split", f"got {cells['split']!r}; the registry lists {', '.join(sorted(SPLITS))} scorings only"
        )
    if not _CHECKPOINT.match(cells["checkpoint"]):
        raise _fail(path, line, "checkpoint", f"expected final, best, step:N or empty, got {cells['checkpoint']!r}")
    try:
        periods_per_year(cells["timeframe"], cells["calendar"])
    except EvaluationError as exc:
        raise _fail(path, line, "timeframe/calendar", str(exc)) from None
    return Scoring(
        line=line,
        date=cells["date"],
        market=cells["market"],
        split=cells["split"],
        config=cells["config"],
        checkpoint=cells["checkpoint"],
        train_seed=_optional_int(path, line, "train_seed", cells["train_seed"], 0),
        test_sharpe=_optional_float(path, line, "test_sharpe", cells["test_sharpe"]),
        test_sharpe_se=_optional_float(path, line, "test_sharpe_se", cells["test_sharpe_se"], positive=True),
        n_test_bars=_optional_int(path, line, "n_test_bars", cells["n_test_bars"], 2),
        timeframe=cells["timeframe"],
        calendar=cells["calendar"],
        source=cells["source"],
        note=cells["note"],
    )


def load_registry(path: str | Path) -> list[Scoring]:
    """Read and validate the registry. Lines starting with `#` are comments (the file's own
    documentation); the first other line is the header. Any bad row raises `RegistryError` naming
    the file, the line and the column; nothing is returned half-read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the test registry: {exc.strerror or exc}") from None
    return _parse(text, path)


def _parse(text: str, path: Path) -> list[Scoring]:
    numbered = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip() and not ln.startswith("#")]
    if not numbered:
        raise RegistryError(f"{path}: the test registry has no header line")
    parsed = list(csv.reader(ln for _, ln in numbered))
    header_line, header = numbered[0][0], parsed[0]
    if tuple(header) != COLUMNS:
        raise RegistryError(f"{path}:{header_line}: header must be {','.join(COLUMNS)}; got {','.join(header)}")
    rows: list[Scoring] = []
    seen: dict[tuple, int] = {}
    for (line, _), cells in zip(numbered[1:], parsed[1:], strict=True):
        if len(cells) != len(COLUMNS):
            raise RegistryError(f"{path}:{line}: expected {len(COLUMNS)} columns, got {len(cells)}")
        row = _row(path, line, dict(zip(COLUMNS, (c.strip() for c in cells), strict=True)))
        key = (*row.config_key, row.train_seed)
        if key in seen:
            raise _fail(
                path,
                line,
                "config",
                f"the same scoring is already on line {seen[key]} (same market, split, config, checkpoint and "
                "training seed)",
            )
        seen[key] = line
        rows.append(row)
    _check_market_consistency(path, rows)
    return rows


def registered_line(rows: Iterable[Scoring], cells: dict[str, str]) -> int | None:
    """The line of the registry that already holds this scoring (same market, split, config,
    checkpoint and training seed), or None."""
    seed = int(cells["train_seed"]) if cells.get("train_seed") else None
    key = (cells["market"], cells["split"], cells["config"], cells["checkpoint"], seed)
    return next((r.line for r in rows if (*r.config_key, r.train_seed) == key), None)


def append_scoring(path: str | Path, cells: dict[str, str]) -> Scoring:
    """Append one scoring to the registry at `path` (created with its header if absent). The file
    with the new row is validated whole first, so a bad row or a duplicate raises `RegistryError`
    and leaves the file as it was; the row goes out in one `os.write` on an O_APPEND descriptor."""
    path = Path(path)
    unknown = set(cells) - set(COLUMNS)
    if unknown:
        raise RegistryError(f"{path}: unknown registry column(s) {', '.join(sorted(unknown))}")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([cells.get(c, "") for c in COLUMNS])
    line = buf.getvalue()
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if not old.strip():
        old, prefix = "", ",".join(COLUMNS) + "\n"
    else:
        prefix = "" if old.endswith("\n") else "\n"
    rows = _parse(old + prefix + line, path)
    data = (prefix + line).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return rows[-1]


def _check_market_consistency(path: Path, rows: Iterable[Scoring]) -> None:
    """One market's split has one calendar and one length: rows that disagree are a typing error."""
    calendar_of: dict[tuple[str, str], Scoring] = {}
    bars_of: dict[tuple[str, str], Scoring] = {}
    for r in rows:
        key = (r.market, r.split)
        f = calendar_of.setdefault(key, r)
        if (r.timeframe, r.calendar) != (f.timeframe, f.calendar):
            raise _fail(
                path, r.line, "timeframe/calendar", f"{r.market} is {f.timeframe}/{f.calendar} on line {f.line}"
            )
        if r.n_test_bars is None:
            continue
        b = bars_of.setdefault(key, r)
        assert b.n_test_bars is not None
        # docs round split lengths ("89,300 each"), a run counts them: 1 % apart is the same split
        if abs(r.n_test_bars - b.n_test_bars) > BARS_TOLERANCE * b.n_test_bars:
            raise _fail(
                path,
                r.line,
                "n_test_bars",
                f"{r.market} has {b.n_test_bars} test bars on line {b.line} (more than 1 % apart: another split?)",
            )


def markets(rows: Iterable[Scoring]) -> list[MarketTrials]:
    """Group scorings into configurations per (market, split), in the order the registry lists them."""
    groups: dict[tuple[str, str], list[Scoring]] = {}
    for r in rows:
        groups.setdefault((r.market, r.split), []).append(r)
    out = []
    for (market, split), scorings in groups.items():
        configs: dict[tuple[str, str], list[float]] = {}
        for s in scorings:
            bucket = configs.setdefault((s.config, s.checkpoint), [])
            if s.test_sharpe is not None:
                bucket.append(s.test_sharpe)
        ppy = periods_per_year(scorings[0].timeframe, scorings[0].calendar)
        n_bars, n_source = _test_bars(scorings, ppy)
        out.append(
            MarketTrials(
                market=market,
                split=split,
                configurations=tuple(Configuration(c, ck, tuple(v)) for (c, ck), v in configs.items()),
                n_scorings=len(scorings),
                periods_per_year=ppy,
                n_test_bars=n_bars,
                n_test_bars_source=n_source,
            )
        )
    return out


def _test_bars(scorings: list[Scoring], ppy: float) -> tuple[int | None, str]:
    stated = [s.n_test_bars for s in scorings if s.n_test_bars is not None]
    if stated:
        return int(statistics.median_low(stated)), "stated"
    ses = [s.test_sharpe_se for s in scorings if s.test_sharpe_se is not None]
    if ses:
        # the i.i.d. SE of an annualised Sharpe is about sqrt(ppy / T): T = ppy / SE^2
        return int(round(ppy / statistics.median(ses) ** 2)), "from the stated SE"
    return None, "not stated"


@dataclass(frozen=True)
class Deflation:
    """A Sharpe deflated by the configurations scored on the same market's split."""

    sharpe: float
    n_trials: int
    n_obs: int
    trial_sharpe_sd: float
    variance_source: str
    expected_max_sharpe: float
    dsr: float


def deflate(sharpe: float, trials: MarketTrials, n_trials: int | None = None) -> Deflation:
    """DSR of an annualised `sharpe` on `trials`' market, deflated by its N configurations
    (`n_trials` overrides N, e.g. to show how the DSR moves with it). Sharpes in and out are
    annualised; the statistics run per period."""
    n = trials.n_configurations if n_trials is None else n_trials
    if trials.n_test_bars is None:
        raise RegistryError(
            f"{trials.market} ({trials.split}): neither the number of test bars nor a standard error is stated, "
            "so the Sharpe's sampling variance is unknown"
        )
    ppy = trials.periods_per_year
    sr = sharpe / math.sqrt(ppy)
    var_pp, source = _trial_variance(trials, sr)
    out = deflated_sharpe_ratio(sr, trials.n_test_bars, n, var_pp)
    return Deflation(
        sharpe=sharpe,
        n_trials=n,
        n_obs=trials.n_test_bars,
        trial_sharpe_sd=math.sqrt(var_pp * ppy),
        variance_source=source,
        expected_max_sharpe=out["expected_max_sharpe"] * math.sqrt(ppy),
        dsr=out["dsr"],
    )


def _trial_variance(trials: MarketTrials, sharpe_per_period: float) -> tuple[float, str]:
    """Per-period variance of the trials' Sharpes: the registry's own (two or more stated), but
    never below the Sharpe estimator's sampling variance on the split, which is what even a
    skill-less configuration's test Sharpe scatters by (two or three close figures would
    otherwise make N look harmless)."""
    assert trials.n_test_bars is not None
    sampling = sharpe_estimator_variance(sharpe_per_period, trials.n_test_bars)
    sharpes = trials.sharpes
    if len(sharpes) >= 2:
        registry = statistics.variance(sharpes) / trials.periods_per_year
        if registry >= sampling:
            return registry, "registry"
    return sampling, "sampling variance"


def expected_max_annualised(trials: MarketTrials) -> float | None:
    """What the best of the market's N configurations would score with no skill at all
    (annualised, with the variance `deflate` uses for a Sharpe of 0), or None when the test
    length is unknown."""
    if trials.n_test_bars is None:
        return None
    var_pp, _ = _trial_variance(trials, 0.0)
    return expected_max_sharpe(trials.n_configurations, var_pp) * math.sqrt(trials.periods_per_year)
