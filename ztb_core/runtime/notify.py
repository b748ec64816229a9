"""The notification sender behind `runtime.notify.forward`: selected run events sent to Discord and any
Apprise target, never in the way.

Targets come from the environment (secrets never live in configs or run folders):

* `DISCORD_WEBHOOK` — a Discord webhook URL (https://discord.com/api/webhooks/ID/TOKEN), posted to
  directly as JSON `{"content": ...}` like the original project did;
* `ZTB_NOTIFY` — comma-separated Apprise URLs (`discord://…`, `tgram://…`, `json://host/path`, …).

Which events go out, and how, is `configs/notify.yaml`. The hook is `RunWriter.event` (and
`runtime.stopper.record_event` for events written from outside a run's process, such as the watcher's
alerts and the supervisor's restarts): every run kind notifies without code of its own. `forward()`
only puts a small record on a bounded queue (a full queue drops it and counts the drop); one daemon
thread rate-limits (token bucket), de-duplicates (same run, same event group and check within
`dedup_window_s`), delivers, and retries failures with exponential backoff (honouring a 429's
Retry-After). Failures to deliver are written to the run's events as `notify_failed` (and drops as
`notify_dropped`); target URLs and their tokens are redacted from everything that is logged, written
or raised. At interpreter exit the queue is flushed for at most `flush_on_exit_s`.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from ..config import ZtbModel, load_config
from ..errors import ConfigError
from ..redaction import redact_secrets

log = logging.getLogger("ztb.notify")

ENV_DISCORD = "DISCORD_WEBHOOK"
ENV_NOTIFY = "ZTB_NOTIFY"


#: events that are one "failure" of a run: the first one out suppresses the others (dedup group)
FAILURE_EVENTS = ("error", "failed", "fatal")
# news every time (each batch of fills is different money, each day's report a different day):
# never folded into an earlier message; the rate limit still applies
DISTINCT_EVENTS = frozenset({"fills_summary", "daily_report"})


class NotifyConfig(ZtbModel):
    default_file: ClassVar[str | None] = "notify.yaml"

    events: list[str] = Field(
        [
            "started",
            "live_started",
            "completed",
            "stopped",
            "failed",
            "error",
            "fatal",
            "restarted",
            "alert",
            "stop_requested",
            "breaker_tripped",
            "fills_summary",
            "daily_report",
        ],
        description="run event kinds that are sent",
    )
    queue_size: int = Field(256, ge=1, le=100_000, description="notifications waiting at most; more are dropped")
    rate_per_minute: float = Field(20.0, gt=0, description="sustained sends per minute (token bucket)")
    burst: int = Field(5, ge=1, description="sends allowed back to back before the rate applies")
    dedup_window_s: float = Field(600.0, ge=0, description="the same run/event/check is sent once per window")
    max_attempts: int = Field(5, ge=1, le=50, description="delivery attempts per notification and target")
    backoff_s: float = Field(2.0, gt=0, description="first retry delay; doubles each attempt")
    backoff_max_s: float = Field(120.0, gt=0, description="longest retry delay (also caps a 429's Retry-After)")
    timeout_s: float = Field(10.0, gt=0, description="HTTP timeout of one delivery")
    flush_on_exit_s: float = Field(5.0, ge=0, description="at exit, wait this long for queued notifications")
    max_chars: int = Field(1900, ge=100, le=4000, description="longest message body (Discord's limit is 2000)")


# ---- secrets ------------------------------------------------------------------------------------


#: schemes whose host is a network address; in other Apprise schemes (discord://ID/TOKEN,
#: tgram://BOT_TOKEN/CHAT) the "host" is itself a credential
HOST_SCHEMES = ("http", "https", "json", "jsons", "xml", "xmls", "form", "forms")


def url_secrets(url: str) -> list[str]:
    """Parts of a target URL that may be credentials: the URL itself, user info, every path segment
    and query value of 8+ characters (webhook ids and tokens), and the host of non-HTTP schemes."""
    parts = urlsplit(url)
    out = [url, parts.password or "", parts.username or ""]
    if parts.scheme not in HOST_SCHEMES:
        out += [parts.netloc, *(p for p in re.split(r"[:@]", parts.netloc) if len(p) >= 4)]
    for piece in re.split(r"[/?&=#]", f"{parts.path}?{parts.query}"):
        if len(piece) >= 8:
            out.append(piece)
    return sorted({s for s in out if s}, key=len, reverse=True)


def display_url(url: str) -> str:
    """scheme://host/*** : enough to tell targets apart, nothing that authenticates."""
    parts = urlsplit(url)
    if parts.scheme not in HOST_SCHEMES:
        return f"{parts.scheme}://***"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}/***"


class _RedactFilter(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact_secrets(msg, self.secrets)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


# ---- targets ------------------------------------------------------------------------------------


class RetryLater(Exception):
    """A target asked to wait (HTTP 429); `after_s` is its Retry-After."""

    def __init__(self, message: str, after_s: float | None):
        super().__init__(message)
        self.after_s = after_s


class Target(ABC):
    """Where a notification goes (a Discord webhook, an Apprise URL)."""

    name: str

    @abstractmethod
    def send(self, title: str, body: str, timeout_s: float) -> None:
        """Deliver one message; raise on failure (RetryLater for a 429)."""


class DiscordWebhook(Target):
    """POST {"content": ...} to a webhook URL (the original's DISCORD_WEBHOOK)."""

    def __init__(self, url: str):
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"{ENV_DISCORD}: expected an http(s) webhook URL, got {display_url(url)}")
        self.url = url
        self.name = f"discord-webhook {display_url(url)}"

    def send(self, title: str, body: str, timeout_s: float) -> None:
        data = json.dumps({"content": f"**{title}**\n{body}"[:2000], "username": "ztb"}).encode()
        req = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429:
                raise RetryLater("HTTP 429 Too Many Requests", _retry_after(exc)) from None
            raise OSError(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise OSError(f"cannot reach the webhook: {exc.reason}") from None


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    raw = exc.headers.get("Retry-After") if exc.headers else None
    if raw is None:
        try:
            raw = json.loads(exc.read() or b"{}").get("retry_after")
        except (ValueError, AttributeError):
            raw = None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class AppriseTarget(Target):
    """One Apprise URL. Apprise reports only success or failure, so a 429 is retried like any failure."""

    def __init__(self, url: str):
        # apprise is imported only when a ZTB_NOTIFY URL is configured: `ztb --help` and runs without
        # notifications never pay for it
        import apprise

        self.url = url
        self.name = f"apprise {display_url(url)}"
        self.app = apprise.Apprise()
        if not self.app.add(url):
            raise ConfigError(f"{ENV_NOTIFY}: Apprise does not accept the URL {display_url(url)} (check its scheme)")

    def send(self, title: str, body: str, timeout_s: float) -> None:
        if not self.app.notify(body=body, title=title):
            raise OSError("Apprise reported a failed delivery")


def targets_from_env(env: dict[str, str] | None = None) -> list[Target]:
    env = dict(os.environ) if env is None else env
    targets: list[Target] = []
    if env.get(ENV_DISCORD, "").strip():
        targets.append(DiscordWebhook(env[ENV_DISCORD].strip()))
    for url in (env.get(ENV_NOTIFY) or "").split(","):
        if url.strip():
            targets.append(AppriseTarget(url.strip()))
    return targets


def env_secrets(env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    urls = [env.get(ENV_DISCORD, "").strip(), *(env.get(ENV_NOTIFY) or "").split(",")]
    out: list[str] = []
    for url in urls:
        if url.strip():
            out += url_secrets(url.strip())
    return sorted(set(out), key=len, reverse=True)


# ---- the notifier --------------------------------------------------------------------------------


@dataclass
class Notification:
    run_dir: Path | None
    run_id: str
    run_kind: str
    event: str
    title: str
    body: str
    dedup_key: tuple
    created: float = field(default_factory=time.time)


def describe(run_id: str, run_kind: str, record: dict) -> tuple[str, str]:
    """(title, body) of a run event, in plain words."""
    event = record.get("event", "?")
    title = f"ztb {run_kind} {run_id}: {event}"
    skip = {"time", "event", "traceback_tail"}
    parts = [f"{k}={v}" for k, v in record.items() if k not in skip and v is not None and v != ""]
    return title, "; ".join(parts) or event


class Notifier:
    def __init__(
        self,
        targets: list[Target],
        config: NotifyConfig | None = None,
        secrets: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = config or NotifyConfig()
        self.targets = targets
        self.secrets = secrets or []
        self.events = set(self.cfg.events)
        self.clock = clock
        self.queue: queue.Queue[Notification | None] = queue.Queue(maxsize=self.cfg.queue_size)
        self.stats = {"queued": 0, "dropped": 0, "suppressed": 0, "delivered": 0, "failed": 0, "retries": 0}
        self._dropped_unreported: dict[Path, int] = {}
        self._seen: dict[tuple, float] = {}
        self._lock = threading.Lock()
        self._tokens = float(self.cfg.burst)
        self._refilled = clock()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
        self._thread.start()
        if self.secrets:
            for name in ("apprise", "urllib3", "requests"):
                logging.getLogger(name).addFilter(_RedactFilter(self.secrets))

    # -- producer side (runs on the training / trading thread: must stay cheap) --
    def forward(self, run_dir: Path | None, run_id: str, run_kind: str, record: dict) -> bool:
        """Queue a run event if its kind is configured; False when not sent (other kind, duplicate,
        queue full). Never blocks."""
        event = record.get("event")
        if event not in self.events:
            return False
        group = "failure" if event in FAILURE_EVENTS else event
        # one message per alert check and per breaker: a second breaker is news, not a duplicate
        key = (run_id, group, record.get("check") or record.get("breaker"))
        now = self.clock()
        with self._lock:
            last = self._seen.get(key)
            if event not in DISTINCT_EVENTS and last is not None and now - last < self.cfg.dedup_window_s:
                self.stats["suppressed"] += 1
                return False
            self._seen[key] = now
        title, body = describe(run_id, run_kind, record)
        note = Notification(run_dir, run_id, run_kind, str(event), title, body[: self.cfg.max_chars], key)
        try:
            self.queue.put_nowait(note)
        except queue.Full:
            with self._lock:
                self.stats["dropped"] += 1
                if run_dir is not None:
                    self._dropped_unreported[run_dir] = self._dropped_unreported.get(run_dir, 0) + 1
            return False
        with self._lock:
            self.stats["queued"] += 1
            self._idle.clear()
        return True

    # -- worker side --
    def _take_token(self) -> bool:
        rate = self.cfg.rate_per_minute / 60.0
        while not self._stop.is_set():
            now = self.clock()
            self._tokens = min(float(self.cfg.burst), self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self._stop.wait(min(1.0, (1.0 - self._tokens) / rate))
        return False

    def _work(self) -> None:
        while True:
            try:
                note = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self.queue.empty():
                    self._idle.set()
                if self._stop.is_set():
                    return
                continue
            if note is None:
                self._idle.set()
                return
            self._report_drops()
            if self._take_token():
                for target in self.targets:
                    self._deliver(target, note)
            if self.queue.empty():
                self._idle.set()

    def _deliver(self, target: Target, note: Notification) -> None:
        delay = self.cfg.backoff_s
        for attempt in range(1, self.cfg.max_attempts + 1):
            try:
                target.send(note.title, note.body, self.cfg.timeout_s)
                self.stats["delivered"] += 1
                return
            except Exception as exc:  # noqa: BLE001 - a target's failure must never reach the run
                error = redact_secrets(f"{type(exc).__name__}: {exc}", self.secrets)[:300]
                wait = delay
                if isinstance(exc, RetryLater) and exc.after_s is not None:
                    wait = max(wait, exc.after_s)
                wait = min(wait, self.cfg.backoff_max_s)
                final = attempt == self.cfg.max_attempts
                self._record(
                    note.run_dir,
                    "notify_failed",
                    target=target.name,
                    notification=note.event,
                    attempt=attempt,
                    error=error,
                    retry_in_s=None if final else round(wait, 3),
                )
                log.warning("notification %s to %s failed (attempt %d): %s", note.event, target.name, attempt, error)
                if final:
                    self.stats["failed"] += 1
                    return
                self.stats["retries"] += 1
                if self._stop.wait(wait) and self.cfg.flush_on_exit_s <= 0:
                    return
                delay = min(delay * 2, self.cfg.backoff_max_s)

    def _report_drops(self) -> None:
        with self._lock:
            pending, self._dropped_unreported = self._dropped_unreported, {}
        for run_dir, n in pending.items():
            self._record(run_dir, "notify_dropped", count=n, queue_size=self.cfg.queue_size)

    def _record(self, run_dir: Path | None, kind: str, **data: Any) -> None:
        # one whole line in one write (as runtime.stopper.record_event does; runs.py imports this module,
        # so its JsonlAppender is not available here)
        if run_dir is None or not Path(run_dir).is_dir():
            return
        line = json.dumps({"time": round(time.time(), 3), "event": kind, **data}, default=str) + "\n"
        try:
            with open(Path(run_dir) / "events.jsonl", "ab") as fh:
                fh.write(line.encode())
        except OSError:
            pass  # a full disk must not turn a notification problem into a crash

    def flush(self, timeout_s: float) -> bool:
        """Wait until the queue is empty and the last delivery finished; False on timeout."""
        return self._idle.wait(timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        self.flush(self.cfg.flush_on_exit_s if timeout_s is None else timeout_s)
        self._stop.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=1.0)


# ---- the process-wide notifier RunWriter uses ------------------------------------------------------

_active: Notifier | None = None
_active_env: tuple[str, str] | None = None
_active_lock = threading.Lock()


def notifier_from_env() -> Notifier | None:
    """The process's notifier for the current DISCORD_WEBHOOK / ZTB_NOTIFY (None when neither is set).
    Built once per distinct setting; a bad URL is logged (redacted) and notifications stay off."""
    global _active, _active_env
    env_key = (os.environ.get(ENV_DISCORD, ""), os.environ.get(ENV_NOTIFY, ""))
    if env_key == _active_env:
        return _active
    with _active_lock:
        if env_key == _active_env:
            return _active
        if _active is not None:
            _active.close(timeout_s=1.0)
        _active, _active_env = None, env_key
        if any(v.strip() for v in env_key):
            secrets = env_secrets()
            try:
                _active = Notifier(targets_from_env(), load_config(NotifyConfig), secrets)
            except Exception as exc:  # noqa: BLE001 - a notification problem must not stop a run
                log.warning("notifications off: %s", redact_secrets(str(exc), secrets))
        return _active


@atexit.register
def _flush_at_exit() -> None:
    if _active is not None:
        _active.close()


def configured() -> bool:
    return bool(os.environ.get(ENV_DISCORD, "").strip() or os.environ.get(ENV_NOTIFY, "").strip())


def forward(run_dir: Path | None, run_id: str, run_kind: str, record: dict) -> None:
    """The run-event hook (`RunWriter`'s `on_event`, `stopper.record_event`): queue the event for the
    configured targets; a no-op unless `DISCORD_WEBHOOK` or `ZTB_NOTIFY` is set; never blocks."""
    if not configured():
        return
    notifier = notifier_from_env()
    if notifier is not None:
        notifier.forward(run_dir, run_id, run_kind, record)
