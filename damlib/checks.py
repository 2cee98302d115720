"""Argument checks shared by every damlib module, and the divergence error.

Each check raises a ``ValueError`` that names the argument and says what was
expected, so a wrong call fails at the call site rather than deep in a kernel.
"""

from __future__ import annotations

import math

import torch


class DivergenceError(FloatingPointError):
    """A training run produced NaN or inf. ``step`` is the first bad step."""

    def __init__(self, step: int, what: str = "state"):
        self.step = step
        super().__init__(f"training diverged at step {step}: the {what} is not finite")


def positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Check that a scalar is finite and positive (or zero, when allowed)."""
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")
    return value


def positive_int(name: str, value: int) -> int:
    """Check that ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def shape(name: str, tensor: torch.Tensor, expected: tuple[int | None, ...]) -> None:
    """Check the trailing dimensions of ``tensor`` (``None`` matches any size).

    Leading dimensions beyond ``expected`` are batch axes and are not checked.
    """
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    tail = tuple(tensor.shape[tensor.dim() - len(expected):]) if tensor.dim() >= len(expected) else None
    if tail is None or any(e is not None and t != e for t, e in zip(tail, expected)):
        want = "(..., " + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(tensor.shape)}")


def probabilities(name: str, p: torch.Tensor, *, atol: float = 1e-6) -> torch.Tensor:
    """Check that the last axis of ``p`` is a probability vector."""
    if not isinstance(p, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(p).__name__}")
    if p.dim() == 0 or bool((p < 0).any()) or not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} must be a vector of non-negative finite probabilities")
    total = p.sum(-1)
    if not torch.allclose(total, torch.ones_like(total), atol=atol, rtol=0):
        raise ValueError(f"{name} must sum to one along its last axis, sums to {total.flatten()[:4].tolist()}")
    return p


def finite(step: int, tensor: torch.Tensor, what: str = "state") -> None:
    """Raise :class:`DivergenceError` at ``step`` when ``tensor`` holds NaN or inf."""
    if not bool(torch.isfinite(tensor).all()):
        raise DivergenceError(step, what)
