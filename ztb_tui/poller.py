"""Background polling that never blocks the UI and never overlaps.

Polling pauses while the owner's screen is hidden by another full screen and resumes with an
immediate poll when it comes back, so hidden panels cost nothing. A modal dialog hides nothing:
the screen behind it stays visible, so it keeps polling (a stop countdown over a run view must not
freeze that run's progress and ETA).

Each source gets one `Poller`: a timer starts a *thread* worker that calls `fetch()`; the
result is handed back to the UI thread with `call_from_thread`, applied, and only then is the
next timer armed. So at most one poll per source is ever in flight, a slow disk only slows that
source, and a poll that raises shows its error and tries again on the next tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from textual.app import App
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen

T = TypeVar("T")


def screen_visible(screen: Screen) -> bool:
    """True when `screen` is on display: the current screen, or under only modal dialogs."""
    stack = screen.app.screen_stack
    if screen not in stack:
        return False
    above = stack[stack.index(screen) + 1 :]
    return all(isinstance(s, ModalScreen) for s in above)


class Poller(Generic[T]):
    def __init__(
        self,
        owner: DOMNode,
        name: str,
        fetch: Callable[[], T],
        apply: Callable[[T], None],
        interval_s: float,
        on_error: Callable[[BaseException], None] | None = None,
    ):
        self.owner = owner
        self.name = name
        self.fetch = fetch
        self.apply = apply
        self.interval_s = interval_s
        self.on_error = on_error
        self.in_flight = False
        self.polls = 0
        self._again = False
        self._timer: Any = None
        self._stopped = False
        self.paused = False

    def visible(self) -> bool:
        if isinstance(self.owner, App):
            return True
        try:
            return screen_visible(self.owner.screen)
        except Exception:
            return False

    def start(self, delay: float = 0.0) -> Poller[T]:
        self._stopped = False
        self._arm(delay)
        return self

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def poll_now(self) -> None:
        """Poll as soon as possible; if a poll is in flight, run another right after it."""
        if self._stopped:
            return
        self.paused = False
        if self.in_flight:
            self._again = True
            return
        if self._timer is not None:
            self._timer.stop()
        self._kick()

    def _arm(self, delay: float) -> None:
        if self._stopped:
            return
        if delay <= 0:  # Textual timers cannot have a zero delay: queue the poll instead
            self._timer = None
            self.owner.call_later(self._kick)
            return
        self._timer = self.owner.set_timer(delay, self._kick, name=f"poll-{self.name}")

    def _kick(self) -> None:
        if self._stopped or self.in_flight:
            return
        self._timer = None
        if not self.visible():
            self.paused = True  # re-armed by poll_now() when the screen is current again
            return
        self.in_flight = True
        self.owner.run_worker(
            self._work, name=f"poll-{self.name}", group=f"poll-{self.name}", thread=True, exit_on_error=False
        )

    def _work(self) -> None:
        try:
            result: Any = self.fetch()
            failed: BaseException | None = None
        except Exception as exc:  # shown, then retried on the next tick
            result, failed = None, exc
        try:
            self.owner.app.call_from_thread(self._done, result, failed)
        except RuntimeError:
            pass  # the app is shutting down

    def _done(self, result: Any, failed: BaseException | None) -> None:
        self.in_flight = False
        self.polls += 1
        if self._stopped:
            return
        try:
            if failed is not None:
                if self.on_error is not None:
                    self.on_error(failed)
            else:
                self.apply(result)
        finally:
            if self._again:
                self._again = False
                self._arm(0)
            else:
                self._arm(self.interval_s)
