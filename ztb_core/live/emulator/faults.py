"""The fault-injection table: which request gets which failure, counted and thread-safe."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from .config import FaultRule


@dataclass
class _Armed:
    rule: FaultRule
    seen: int = 0  # matching requests so far
    fired: int = 0


@dataclass
class FaultTable:
    """Rules are checked in order; `pick` returns the latency rules that fire plus the first other
    rule that fires for a request to `endpoint`. `fired` counts hits per rule kind for tests."""

    seed: int = 0
    _rules: list[_Armed] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fired: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def add(self, rule: FaultRule | dict) -> FaultRule:
        rule = rule if isinstance(rule, FaultRule) else FaultRule.model_validate(rule)
        with self._lock:
            self._rules.append(_Armed(rule))
        return rule

    def extend(self, rules: list[FaultRule]) -> None:
        for rule in rules:
            self.add(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [a.rule for a in self._rules]

    def pick(self, endpoint: str) -> tuple[list[FaultRule], FaultRule | None]:
        delays: list[FaultRule] = []
        chosen: FaultRule | None = None
        with self._lock:
            for armed in self._rules:
                rule = armed.rule
                if rule.endpoint not in ("*", endpoint):
                    continue
                if rule.kind != "latency" and chosen is not None:
                    continue
                armed.seen += 1
                if armed.seen <= rule.after:
                    continue
                if rule.times is not None and armed.fired >= rule.times:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                armed.fired += 1
                self.fired[rule.kind] = self.fired.get(rule.kind, 0) + 1
                if rule.kind == "latency":
                    delays.append(rule)
                else:
                    chosen = rule
        return delays, chosen
