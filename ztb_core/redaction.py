"""Secrets out of text: the one replacement every log filter, notification and error message uses."""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "***"


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by ***, longest first (so a secret that
    contains another is not left half-shown)."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
