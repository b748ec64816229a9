"""`LiveConfig`: everything `ztb live` reads from `configs/live.yaml`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ...config import ZtbModel
from ...paths import artifacts_dir
from ...trading_costs import CostConfig
from ..execution.paper import PaperConfig
from ..venue.exchange_config import ExchangeConfig
from .risk import RiskConfig
from .sizing_config import SizingConfig


class PolicyConfig(ZtbModel):
    """What decides the target position on each bar close."""

    kind: Literal["agent", "sma"] = Field(
        "sma",
        description="agent: a trained PPO checkpoint; sma: moving-average crossover (demos and dry-run smoke tests)",
    )
    checkpoint: Path | None = Field(None, description="agent: checkpoint file or training run directory")
    deterministic: bool = Field(True, description="agent: act deterministically (the policy's mean action)")
    buffer_bars: int | None = Field(
        None,
        ge=100,
        description="agent: M1 bars kept for online features; null = what the checkpoint's features, lookback "
        "and encoder need (never fewer)",
    )
    sma_fast: int = Field(10, ge=1, description="sma: fast window, bars")
    sma_slow: int = Field(30, ge=2, description="sma: slow window, bars")

    @model_validator(mode="after")
    def _check(self) -> PolicyConfig:
        if self.sma_fast >= self.sma_slow:
            raise ValueError(f"sma_fast ({self.sma_fast}) must be smaller than sma_slow ({self.sma_slow})")
        return self


class LiveConfig(ZtbModel):
    default_file: ClassVar[str | None] = "live.yaml"
    #: exchange settings have one file, shared with `ztb exchange health` and `ztb data fetch`
    section_files: ClassVar[dict[str, str]] = {"exchange": "exchange.yaml"}

    mode: Literal["dry_run", "live"] = Field(
        "dry_run", description="dry_run: paper fills against live quotes; live: real orders (needs keys + confirm)"
    )
    confirm_live: bool = Field(False, description="Same as --confirm-live: real orders are really meant")
    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    sizing: SizingConfig = Field(default_factory=SizingConfig)
    costs: CostConfig = Field(default_factory=CostConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    capital: float = Field(
        100000.0, gt=0, description="Quote currency the strategy trades with (its equity at start); P&L is added to it"
    )
    market: Literal["crypto", "fx"] = Field("crypto", description="Market kind (calendar of the features)")
    allow_market_mismatch: bool = Field(
        False,
        description="Real trading with an agent trained on another market kind (fx calendar vs 24/7 crypto); "
        "refused unless true (a dry run only warns)",
    )
    market_data: Literal["rest", "websocket"] = Field(
        "rest",
        description="rest: poll bars built from REST trades every poll_interval_s; websocket: ccxt.pro trade "
        "stream, each bar decided as it closes, REST trade polling as the fallback",
    )
    ws_url: str | None = Field(
        None,
        description="Replaces ccxt.pro's websocket URL (urls.api.ws), e.g. `ztb emulator`'s; null = the exchange's",
    )
    ws_max_failures: int = Field(5, ge=1, description="Websocket failures in a row before falling back to REST")
    ws_silence_s: float = Field(
        30.0,
        gt=0,
        description="A websocket that sends no message (trade or book) for this long, socket open or not, is "
        "treated as dead: REST polling takes over",
    )
    ws_reconnect_s: float = Field(
        60.0, gt=0, description="After a websocket fallback, seconds between attempts on a fresh websocket"
    )
    ws_gap_refill_s: float = Field(
        2.0,
        gt=0,
        description="A websocket message after a gap this long (shorter than ws_silence_s) may follow trades "
        "the socket dropped: the bars not yet decided are completed over REST before they are handed out",
    )
    risk_interval_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between private syncs and risk checks (stale data, stop-loss, breakers) when no "
        "bar closed: they run on this timer whatever the market-data channel does",
    )
    history_symbol: str | None = Field(
        None,
        description="Data-store symbol the start-up history is backfilled from (imported or `ztb data fetch`-ed); "
        "null = the exchange symbol",
    )
    bar_timeframe: str = Field("1m", description="Decision bar length (ccxt timeframe; the agent needs 1m)")
    warmup_bars: int = Field(300, ge=2, description="Bars of history loaded before the first decision")
    poll_interval_s: float = Field(5.0, gt=0, description="Seconds between market polls")
    journal_path: Path | None = Field(
        None, description="SQLite order journal; default artifacts/live/journal-<mode>-<exchange>-<symbol>.sqlite"
    )
    flatten_on_stop: bool = Field(False, description="On a kill-file stop, also close the position")
    reconcile_grace_s: float = Field(
        10.0, ge=0, description="An unknown placement still unresolved after this long raises a critical alert"
    )
    unknown_outcome_window_s: float = Field(
        600.0,
        ge=0,
        description="The venue's worst execution delay: an unknown placement is ruled never placed only after it "
        "stays absent from open orders and fills this long",
    )
    in_flight_match: Literal["adopt", "ask"] = Field(
        "adopt",
        description="An unknown placement matched by exactly one exchange order stamped while our request was at "
        "the exchange: adopt it as ours (an account only this bot trades) or ask the operator (an account others "
        "trade too: without client order ids such an order could be someone else's twin)",
    )
    unknown_alert_interval_s: float = Field(
        300.0, gt=0, description="Seconds between reminders of the same unresolved placement"
    )
    max_bars: int | None = Field(None, ge=1, description="Stop (completed) after this many decisions")
    telemetry_interval_s: float = Field(
        10.0, gt=0, description="Seconds between resource samples (metrics split `sys`)"
    )

    @field_validator("bar_timeframe")
    @classmethod
    def _tf(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[mhd]", value):
            raise ValueError(f"a ccxt timeframe like 1m, 5m, 1h, got {value!r}")
        return value

    def resolved_journal_path(self) -> Path:
        return journal_path_for(self.mode, self.exchange.exchange, self.exchange.symbol, self.journal_path)


def journal_path_for(
    mode: str, exchange: str, symbol: str, journal_path: str | Path | None = None, artifacts: Path | None = None
) -> Path:
    """The journal a live session uses: `journal_path` when set, else one per (paper|live, exchange,
    symbol) under `artifacts`/live (default: this process's artifacts folder). The console finds a
    run's journal through the same rule."""
    if journal_path is not None:
        return Path(journal_path).expanduser()
    kind = "paper" if mode == "dry_run" else "live"
    base = artifacts if artifacts is not None else artifacts_dir()
    return base / "live" / f"journal-{kind}-{exchange}-{symbol.replace('/', '_')}.sqlite"
