"""Notifications against a loopback HTTP server that records what arrives: a fake Discord webhook
(DISCORD_WEBHOOK) and Apprise json:// targets (ZTB_NOTIFY); one target that is down, one that answers
429. Also: never blocking the caller, bounded queue with counted drops, rate limit, de-duplication,
and webhook tokens never appearing in events, logs or exceptions."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ztb_core.errors import ConfigError
from ztb_core.redaction import redact_secrets
from ztb_core.runs import RunReader, RunWriter
from ztb_core.runtime import notify
from ztb_core.runtime.notify import (
    AppriseTarget,
    DiscordWebhook,
    Notifier,
    NotifyConfig,
    Target,
    url_secrets,
)
from ztb_core.runtime.run_writer import create_run
from ztb_core.runtime.stopper import record_event

TOKEN = "s3cretWebhookTokenXYZ123"


class Recorder:
    """Loopback server: /ok -> 204; /429 -> 429 (Retry-After) on the first request of each path, then
    204; /500 -> 500; /slow -> waits for `release` then 204. Records (time, path, json body)."""

    def __init__(self):
        self.received: list[tuple[float, str, dict]] = []
        self.seen: dict[str, int] = {}
        self.release = threading.Event()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    payload = {"raw": body.decode(errors="replace")}
                rec.received.append((time.monotonic(), self.path, payload))
                n = rec.seen[self.path] = rec.seen.get(self.path, 0) + 1
                if "/429" in self.path and n == 1:
                    self.send_response(429)
                    self.send_header("Retry-After", "0.3")
                elif "/500" in self.path:
                    self.send_response(500)
                elif "/slow" in self.path:
                    rec.release.wait(10)
                    self.send_response(204)
                else:
                    self.send_response(204 if "webhooks" in self.path else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def webhook(self, behaviour: str = "ok") -> str:
        return f"http://127.0.0.1:{self.port}/api/webhooks/123456789/{TOKEN}/{behaviour}"

    def paths(self) -> list[str]:
        return [p for _, p, _ in self.received]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture
def clean_notifier():
    yield
    if notify._active is not None:
        notify._active.close(timeout_s=0)
    notify._active, notify._active_env = None, None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast(**kw) -> NotifyConfig:
    base = dict(backoff_s=0.02, backoff_max_s=1.0, max_attempts=3, timeout_s=2.0, burst=50, rate_per_minute=6000)
    base.update(kw)
    return NotifyConfig(**base)


def events_of(run_dir, kind):
    return [e for e in RunReader(run_dir).events() if e["event"] == kind]


def test_run_events_reach_discord_and_apprise_through_the_run_writer(artifacts, server, monkeypatch, clean_notifier):
    monkeypatch.setenv("DISCORD_WEBHOOK", server.webhook())
    monkeypatch.setenv("ZTB_NOTIFY", f"json://127.0.0.1:{server.port}/apprise/{TOKEN}/ok")
    writer = create_run("train", {})  # the writer every job uses: wired to the notification hook
    writer.event("started", step=0, total_steps=1000)
    writer.event("checkpoint_saved", step=500)  # not a notified kind
    writer.close("completed", message="completed 1,000 steps")
    assert notify.notifier_from_env().flush(20)
    discord = [b for _, p, b in server.received if "webhooks" in p]
    apprise = [b for _, p, b in server.received if "/apprise/" in p]
    assert len(discord) == 2 and len(apprise) == 2, server.received
    assert f"ztb train {writer.run_id}: started" in discord[0]["content"]
    assert "completed 1,000 steps" in discord[1]["content"] and discord[1]["username"] == "ztb"
    assert apprise[1]["title"] == f"ztb train {writer.run_id}: completed"
    assert "message=completed 1,000 steps" in apprise[1]["message"]
    stats = notify.notifier_from_env().stats
    assert stats["delivered"] == 4 and stats["failed"] == 0


def test_watcher_and_supervisor_events_are_forwarded_too(artifacts, server, monkeypatch, clean_notifier):
    monkeypatch.setenv("DISCORD_WEBHOOK", server.webhook())
    writer = RunWriter.create("train", {})
    record_event(writer.dir, "alert", check="disk_critical", message="disk critical: 100 MiB free")
    record_event(writer.dir, "restarted", attempt=1)
    assert notify.notifier_from_env().flush(20)
    contents = [b["content"] for _, _, b in server.received]
    assert any("alert" in c and "disk_critical" in c for c in contents)
    assert any("restarted" in c for c in contents)
    writer.close("completed")


def test_429_is_retried_after_retry_after(artifacts, server):
    writer = RunWriter.create("train", {})
    n = Notifier([DiscordWebhook(server.webhook("429"))], fast(), url_secrets(server.webhook("429")))
    assert n.forward(writer.dir, writer.run_id, "train", {"event": "failed", "message": "boom"})
    assert n.flush(20)
    n.close(0)
    times = [t for t, p, _ in server.received if "429" in p]
    assert len(times) == 2 and times[1] - times[0] >= 0.25  # waited for Retry-After (0.3 s), not backoff_s
    failed = events_of(writer.dir, "notify_failed")
    assert len(failed) == 1 and failed[0]["attempt"] == 1 and "429" in failed[0]["error"]
    assert failed[0]["retry_in_s"] >= 0.3
    assert n.stats["delivered"] == 1 and n.stats["retries"] == 1
    writer.close("completed")


def test_a_target_that_is_down_is_retried_with_backoff_and_never_blocks(artifacts, caplog):
    down = f"http://127.0.0.1:{free_port()}/api/webhooks/123456789/{TOKEN}"
    writer = RunWriter.create("train", {})
    n = Notifier([DiscordWebhook(down)], fast(max_attempts=3), url_secrets(down))
    caplog.set_level(logging.WARNING, logger="ztb.notify")
    t0 = time.perf_counter()
    for i in range(20):
        n.forward(writer.dir, writer.run_id, "train", {"event": "alert", "check": f"c{i}", "message": "x"})
    assert time.perf_counter() - t0 < 1.0  # queued, not sent, on the caller's thread
    assert n.flush(30)
    n.close(0)
    failed = events_of(writer.dir, "notify_failed")
    assert len(failed) == 20 * 3 and n.stats["failed"] == 20
    first = [e for e in failed if e["notification"] == "alert"][:3]
    assert [e["attempt"] for e in first] == [1, 2, 3]
    assert first[0]["retry_in_s"] < first[1]["retry_in_s"] and first[2]["retry_in_s"] is None  # backoff doubles
    text = (writer.dir / "events.jsonl").read_text() + caplog.text
    assert TOKEN not in text and "123456789" not in text and "127.0.0.1" in text
    writer.close("completed")


def test_bounded_queue_drops_and_counts(artifacts, server):
    writer = RunWriter.create("train", {})
    n = Notifier([DiscordWebhook(server.webhook("slow"))], fast(queue_size=3))
    results = [n.forward(writer.dir, writer.run_id, "train", {"event": "alert", "check": f"c{i}"}) for i in range(10)]
    # the sender holds one (blocked on the slow target), three wait, the rest are dropped
    assert results.count(False) >= 10 - 4 and n.stats["dropped"] == results.count(False)
    server.release.set()
    assert n.flush(20)
    n.forward(writer.dir, writer.run_id, "train", {"event": "alert", "check": "after"})
    assert n.flush(20)
    n.close(0)
    dropped = events_of(writer.dir, "notify_dropped")
    assert sum(e["count"] for e in dropped) == n.stats["dropped"]
    writer.close("completed")


def test_dedup_and_failure_group(artifacts, server):
    n = Notifier([DiscordWebhook(server.webhook())], fast(dedup_window_s=600))
    send = lambda rec: n.forward(None, "train-x", "train", rec)  # noqa: E731
    assert send({"event": "alert", "check": "rss"})
    assert not send({"event": "alert", "check": "rss"})  # same check within the window
    assert send({"event": "alert", "check": "disk_warn"})
    assert send({"event": "error", "error": "ValueError: x"})
    assert not send({"event": "failed", "message": "ValueError: x"})  # one failure, one message
    assert not send({"event": "checkpoint_saved"})  # not configured
    assert n.flush(20)
    n.close(0)
    assert n.stats["suppressed"] == 2 and len(server.received) == 3


def test_each_fills_summary_and_each_breaker_is_sent(artifacts, server):
    n = Notifier([DiscordWebhook(server.webhook())], fast(dedup_window_s=600))
    send = lambda rec: n.forward(None, "live-x", "live", rec)  # noqa: E731
    assert send({"event": "breaker_tripped", "breaker": "stale_data", "reason": "old"})
    assert not send({"event": "breaker_tripped", "breaker": "stale_data", "reason": "old"})  # control: deduplicated
    assert send({"event": "breaker_tripped", "breaker": "price_jump", "reason": "jump"})  # another breaker: news
    assert send({"event": "fills_summary", "fills": 1, "buy_amount": "0.01"})
    assert send({"event": "fills_summary", "fills": 2, "buy_amount": "0.02"})  # different money, sent too
    assert n.flush(20)
    n.close(0)
    assert n.stats["suppressed"] == 1 and len(server.received) == 4


def test_rate_limit_spaces_sends(server):
    n = Notifier([DiscordWebhook(server.webhook())], fast(burst=1, rate_per_minute=600))  # 10/s after 1
    for i in range(4):
        n.forward(None, "train-x", "train", {"event": "alert", "check": f"c{i}"})
    assert n.flush(20)
    n.close(0)
    times = [t for t, _, _ in server.received]
    assert len(times) == 4 and times[-1] - times[0] >= 0.25  # 3 waits of ~0.1 s


def test_apprise_target_failure_is_reported_redacted(artifacts, server):
    url = f"json://127.0.0.1:{server.port}/500/{TOKEN}"
    writer = RunWriter.create("train", {})
    n = Notifier([AppriseTarget(url)], fast(max_attempts=2), url_secrets(url))
    n.forward(writer.dir, writer.run_id, "train", {"event": "completed"})
    assert n.flush(20)
    n.close(0)
    assert len([p for p in server.paths() if "/500/" in p]) == 2
    failed = events_of(writer.dir, "notify_failed")
    assert len(failed) == 2 and failed[0]["target"] == f"apprise json://127.0.0.1:{server.port}/***"
    assert TOKEN not in (writer.dir / "events.jsonl").read_text()
    writer.close("completed")


def test_bad_urls_are_config_errors_without_the_token(monkeypatch):
    with pytest.raises(ConfigError) as info:
        AppriseTarget(f"nosuchscheme://host/{TOKEN}")
    assert TOKEN not in str(info.value)
    with pytest.raises(ConfigError) as info:
        DiscordWebhook(f"ftp://host/{TOKEN}")
    assert TOKEN not in str(info.value)


def test_redaction_covers_tokens_and_userinfo():
    url = f"https://user:pa55word99@discord.com/api/webhooks/123456789012/{TOKEN}?thread_id=99887766554433"
    secrets = url_secrets(url)
    text = f"POST {url} failed; token {TOKEN}; pass pa55word99; thread 99887766554433"
    clean = redact_secrets(text, secrets)
    for s in (TOKEN, "pa55word99", "123456789012", "99887766554433"):
        assert s not in clean
    assert "discord.com" in redact_secrets("host discord.com", secrets)


def test_nothing_configured_means_no_notifier(monkeypatch, clean_notifier):
    monkeypatch.delenv("DISCORD_WEBHOOK", raising=False)
    monkeypatch.delenv("ZTB_NOTIFY", raising=False)
    assert notify.notifier_from_env() is None


class _Boom(Target):
    name = "boom"

    def send(self, title, body, timeout_s):
        raise RuntimeError(f"exploded with {TOKEN}")


def test_a_crashing_target_never_reaches_the_run(artifacts):
    writer = RunWriter.create("train", {})
    n = Notifier([_Boom()], fast(max_attempts=1), [TOKEN])
    n.forward(writer.dir, writer.run_id, "train", {"event": "completed"})
    assert n.flush(20)
    n.close(0)
    (failed,) = events_of(writer.dir, "notify_failed")
    assert failed["error"] == "RuntimeError: exploded with ***"
    writer.close("completed")


def test_apprise_scheme_hosts_are_secrets():
    url = "tgram://123456:ABCdefBotToken/98765"
    assert notify.display_url(url) == "tgram://***"
    clean = redact_secrets(f"sent to {url.replace('tgram://', 'host ')}; bot ABCdefBotToken", url_secrets(url))
    assert "ABCdefBotToken" not in clean and "123456" not in clean


def test_ztb_notify_command_reports_each_target(server, monkeypatch, capsys):
    from ztb_core.cli import main

    down = f"http://127.0.0.1:{free_port()}/api/webhooks/1/{TOKEN}"
    monkeypatch.setenv("DISCORD_WEBHOOK", down)
    monkeypatch.setenv("ZTB_NOTIFY", f"json://127.0.0.1:{server.port}/apprise/{TOKEN}/ok")
    assert main(["notify", "hello from the test"]) == 1
    out = capsys.readouterr().out
    assert "failed discord-webhook http://127.0.0.1" in out and "sent apprise json://127.0.0.1" in out
    assert TOKEN not in out
    assert server.received[-1][2]["message"] == "hello from the test"
    monkeypatch.delenv("DISCORD_WEBHOOK")
    assert main(["notify"]) == 0
    monkeypatch.delenv("ZTB_NOTIFY")
    assert main(["notify"]) == 2
