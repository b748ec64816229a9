"""Errors raised by the evaluation package (all user-facing `ZtbError`s)."""

from __future__ import annotations

from ..errors import ZtbError


class EvaluationError(ZtbError):
    """Inputs to an evaluation are unusable (empty, NaN, constant, misaligned)."""
