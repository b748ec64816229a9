"""Assembling a `ztb live` run, kept apart from the loop that runs it (`runner.py`), the way
nautilus_trader keeps its node builder apart from the engine.

Two phases, so that every refusal comes before anything is written: `prepare_session` /
`prepare_minimal` check the mode, keys, venue and policy (no run directory, no order, no lock);
`run_session` / `run_minimal_session` then open the run (`opened_run`: journal lock, run directory,
secrets scrubbed from the logs, journal) and close it with one teardown whatever happens. The
command line prints the banners between the two and the results after."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...atomic import atomic_write_json
from ...errors import ConfigError, ZtbError
from ...logs import setup_logging
from ...runs import RunWriter
from ...runtime.killfile import KillSwitch
from ...runtime.run_writer import create_run
from ...runtime.telemetry import TelemetryThread
from ..execution.journal import Journal, JournalLock
from ..execution.paper import PaperVenue
from ..market.stream import MarketFeed
from ..venue.factory import live_refusal, make_adapter
from ..venue.secrets import (
    Credentials,
    CredentialsError,
    SecretsFilter,
    install_log_filter,
    load_credentials,
    redact,
    remove_log_filter,
)
from .live_config import LiveConfig
from .minimal import StepResult, flow_qty_from_env, run_minimal
from .policy import Policy, make_policy, market_mismatch
from .runner import LiveRunner
from .sizing import forecast_sizing

# every logger a key could reach: ours, ccxt's and the root (the run log's handler sits on "ztb")
SCRUBBED_LOGGERS = ("", "ccxt", "ztb_core", "ztb")
MINIMAL_STEPS = 10  # the minimal flow's steps: its run's total_steps


@dataclass(frozen=True)
class SessionPlan:
    """A decision-loop run that passed every refusal: what the banner shows and the run needs."""

    cfg: LiveConfig
    mode: str  # "dry_run" or "live"
    credentials: Credentials | None
    policy: Policy
    mismatch: str | None  # the agent was trained on another market kind (allowed here)


@dataclass(frozen=True)
class SessionResult:
    state: str
    bars: int
    orders: int
    run_dir: Path


@dataclass(frozen=True)
class MinimalPlan:
    cfg: LiveConfig
    credentials: Credentials
    qty: Decimal | None  # TEST_FLOW_QTY, or None for the venue's minimum


@dataclass(frozen=True)
class MinimalResult:
    report: dict[str, Any]  # `MinimalReport.as_dict()`, details redacted (as in reports/minimal.json)
    passed: bool
    run_dir: Path


def refuse_unsupported_venue(cfg: LiveConfig) -> None:
    """Real-money modes only on venues whose fills ztb can reconcile."""
    why = live_refusal(cfg.exchange.exchange)
    if why:
        raise ConfigError(f"exchange.exchange: {why}")


def prepare_session(cfg: LiveConfig, mode: str, confirmed: bool, checkpoint: Path | None) -> SessionPlan:
    """Every refusal of a decision-loop run, before any run directory or lock exists: an unsupported
    venue or missing keys for real money, real money without confirmation, a policy that cannot be
    loaded, an agent trained on another market kind (real money only, unless allowed)."""
    credentials = None
    if mode == "live":
        refuse_unsupported_venue(cfg)
        credentials = load_credentials(cfg.exchange)  # raises, naming the variables / file it looked for
        if not confirmed:
            raise ZtbError(
                "real trading needs an explicit --confirm-live (or confirm_live: true in the config); "
                "use --dry-run to paper trade on live quotes"
            )
    policy = make_policy(cfg.policy, cfg.sizing.allow_short, checkpoint)
    mismatch = market_mismatch(policy, cfg.market)
    if mismatch and mode == "live" and not cfg.allow_market_mismatch:
        raise ConfigError(
            f"{mismatch}. Real trading is refused: retrain on this market, or set allow_market_mismatch: true "
            "(configs/live.yaml) / pass --allow-market-mismatch to trade it anyway"
        )
    if cfg.sizing.vol_forecast == "required":
        forecast_sizing(cfg.sizing, policy)  # refused here, before a run folder exists, not by the runner
    return SessionPlan(cfg, mode, credentials, policy, mismatch)


def prepare_minimal(cfg: LiveConfig) -> MinimalPlan:
    """The minimal flow's refusals: it places a real order, so it needs a supported venue and keys."""
    refuse_unsupported_venue(cfg)
    try:
        credentials = load_credentials(cfg.exchange)
    except CredentialsError as exc:
        raise CredentialsError(f"--minimal places a real order and needs API keys: {exc}") from None
    return MinimalPlan(cfg, credentials, flow_qty_from_env())


@dataclass
class OpenedRun:
    writer: RunWriter
    journal: Journal


def _scrub_logs(credentials: Credentials | None) -> SecretsFilter | None:
    """Scrub the keys from every log handler of this process, the ztb run log included."""
    if credentials is None:
        return None
    filt = install_log_filter(credentials, loggers=SCRUBBED_LOGGERS)
    for handler in logging.getLogger("ztb").handlers:
        handler.addFilter(filt)
    return filt


@contextmanager
def opened_run(
    cfg: LiveConfig,
    credentials: Credentials | None,
    journal_mode: str,
    *,
    run_id: str | None,
    total_steps: int | None,
    config_sources: dict[str, str] | None,
    telemetry: bool,
) -> Iterator[OpenedRun]:
    """The one teardown of every live run. Takes the journal lock (before the run directory: a
    refusal leaves nothing), creates the run, scrubs the keys from the logs, opens the journal; an
    exception ends the run `failed` with a redacted event and message and goes on unchanged (type,
    args, traceback); then everything is closed in order, the scrubbing last."""
    lock = JournalLock(cfg.resolved_journal_path()).acquire()
    writer = create_run("live", cfg, run_id=run_id, total_steps=total_steps, config_sources=config_sources)
    setup_logging(writer.dir)
    guard = _scrub_logs(credentials)
    journal = None
    sampler = None
    try:
        if telemetry:
            # a slow exchange call must not make the run look dead; the step still shows stalls
            writer.start_heartbeat()
            sampler = TelemetryThread(writer, interval_s=cfg.telemetry_interval_s).start()
        journal = Journal(cfg.resolved_journal_path(), journal_mode, cfg.exchange.exchange, cfg.exchange.symbol)
        yield OpenedRun(writer, journal)
    except BaseException as exc:
        # redacted where it is written; the exception itself goes on unchanged
        writer.error_event(exc, scrub=lambda text: redact(text, credentials))
        writer.set_status("failed", message=redact(f"{type(exc).__name__}: {exc}", credentials)[:300])
        raise
    finally:
        if sampler is not None:
            sampler.stop()
        if journal is not None:
            journal.close()
        lock.release()
        writer.close()
        if guard is not None:
            remove_log_filter(guard, loggers=SCRUBBED_LOGGERS)


def run_session(
    plan: SessionPlan,
    *,
    max_bars: int | None,
    run_id: str | None,
    risk_disabled: bool,
    reset_breakers: bool,
    config_sources: dict[str, str] | None = None,
) -> SessionResult:
    """Build the venue (paper fills on live quotes for a dry run), feed, kill switch and runner on an
    opened run, and run the decision loop until `max_bars`, a stop request or a breaker."""
    cfg, mode = plan.cfg, plan.mode
    journal_mode = "paper" if mode == "dry_run" else "live"
    with opened_run(
        cfg,
        plan.credentials,
        journal_mode,
        run_id=run_id,
        total_steps=max_bars or cfg.max_bars,
        config_sources=config_sources,
        telemetry=True,
    ) as run:
        writer = run.writer
        if risk_disabled:
            writer.event("alert", level="warning", message="risk limits disabled by --disable-risk-limits")
        if plan.mismatch:
            writer.event("alert", level="warning", message=f"market mismatch: {plan.mismatch}")
        adapter = make_adapter(cfg.exchange, plan.credentials)
        venue = PaperVenue(adapter, run.journal, cfg.costs, cfg.paper) if mode == "dry_run" else adapter
        kill = KillSwitch(writer.dir)
        kill.install_signal_handlers()
        feed = (
            MarketFeed.websocket(
                adapter, cfg.ws_url, cfg.ws_max_failures, cfg.ws_silence_s, cfg.ws_reconnect_s, cfg.ws_gap_refill_s
            )
            if cfg.market_data == "websocket"
            else None
        )
        runner = LiveRunner(cfg, adapter, venue, run.journal, plan.policy, writer, kill=kill, mode=mode, feed=feed)
        if reset_breakers:
            writer.event("breakers_reset", cleared=runner.risk.reset_breakers())
        state = runner.run(max_bars)
        return SessionResult(state, runner.stats.bars, runner.stats.orders, writer.dir)


def run_minimal_session(
    plan: MinimalPlan,
    *,
    run_id: str | None,
    config_sources: dict[str, str] | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> MinimalResult:
    """The minimal flow in a run of its own: one event and heartbeat per step, the report (details
    redacted) in reports/minimal.json, the run `completed` when every step passed, else `failed`."""
    cfg = plan.cfg
    with opened_run(
        cfg,
        plan.credentials,
        "live",
        run_id=run_id,
        total_steps=MINIMAL_STEPS,
        config_sources=config_sources,
        telemetry=False,
    ) as run:
        writer = run.writer
        writer.set_status("running", message="minimal flow")
        adapter = make_adapter(cfg.exchange, plan.credentials)
        steps: list[StepResult] = []

        def record(s: StepResult) -> None:
            steps.append(s)
            writer.event("minimal_step", step=s.name, ok=s.ok, latency_ms=s.latency_ms, detail=s.detail)
            writer.heartbeat(len(steps))
            if on_step is not None:
                on_step(s)

        report = run_minimal(adapter, run.journal, qty=plan.qty, on_step=record, window_s=cfg.unknown_outcome_window_s)
        data = report.as_dict()
        for s in data["steps"]:
            s["detail"] = redact(s["detail"], plan.credentials)
        atomic_write_json(writer.dir / "reports" / "minimal.json", data)
        verdict = "passed" if report.passed else "failed"
        writer.set_status(
            "completed" if report.passed else "failed", step=len(steps), message=f"minimal flow {verdict}"
        )
        writer.event("minimal_done", passed=report.passed)
        return MinimalResult(data, report.passed, writer.dir)
