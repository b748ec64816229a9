"""Fail fast on a non-finite loss or gradient.

Without this, a NaN in one loss term poisons the weights at the next optimizer step, every later
loss is NaN, and the run only dies at the end of the epoch with an unrelated Lightning error
(`val_loss` filtered out as non-finite). The module checks the loss before the backward pass and
the gradients before the optimizer step, so the weights never take a non-finite update and the
checkpoints already written stay the last good ones. The error names the step, the loss term(s)
and the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import RunError


class NonFiniteLossError(RunError):
    """Training produced a NaN/inf loss or gradient; the message says where."""

    def __init__(self, message: str, step: int, terms: list[str], positions: list[int]):
        super().__init__(message)
        self.step = step
        self.terms = terms
        self.positions = positions


def non_finite_terms(parts: dict[str, torch.Tensor]) -> list[str]:
    """Names of the loss parts whose value is NaN or infinite."""
    return [k for k, v in parts.items() if not math.isfinite(float(v.detach()))]


def grads_finite(params: list[torch.nn.Parameter]) -> bool:
    """True when every gradient present is finite (one reduction, no per-parameter sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def terms_with_bad_gradient(
    parts_fn: Callable[[], dict[str, torch.Tensor]], params: list[torch.nn.Parameter]
) -> list[str]:
    """Recompute the loss parts (`parts_fn` runs the forward pass again) and name those whose own
    gradient is non-finite: only called after a failure, so its cost does not matter."""
    parts = parts_fn()
    names = [k for k in parts if k != "total"]
    bad = []
    for k in names:
        if not parts[k].requires_grad:
            continue
        grads = torch.autograd.grad(parts[k], params, retain_graph=True, allow_unused=True)
        if any(g is not None and not bool(torch.isfinite(g).all()) for g in grads):
            bad.append(k)
    return bad


def describe_batch(positions: torch.Tensor | None, batch_idx: int, epoch: int) -> str:
    if positions is None:
        return f"batch {batch_idx} of epoch {epoch}"
    pos = positions.detach().cpu().tolist()
    shown = ", ".join(str(p) for p in pos[:8]) + (", ..." if len(pos) > 8 else "")
    return f"batch {batch_idx} of epoch {epoch} (window positions {shown})"


def raise_non_finite(
    what: str, step: int, terms: list[str], positions: torch.Tensor | None, batch_idx: int, epoch: int
) -> None:
    where = describe_batch(positions, batch_idx, epoch)
    named = ", ".join(terms) if terms else "no single term (only their sum)"
    raise NonFiniteLossError(
        f"non-finite {what} at step {step}: loss term(s) {named}; {where}. Training stopped before the "
        "optimizer step, so the checkpoints already written are the last good ones",
        step=step,
        terms=terms,
        positions=[] if positions is None else [int(p) for p in positions.detach().cpu().tolist()],
    )
