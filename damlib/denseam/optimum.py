"""Reading a sweep: its optimal learning rate (one rule: :func:`optimal_lr`), the loss there, its
stability edge, and how far the optimum moves across sizes (:func:`transfer_factor`); :func:`transfer`
reads all of them from one recipe's sweeps over sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import checks
from .training import History


def _check_history(history) -> None:
    if not isinstance(history, History):
        raise ValueError(f"history must be a denseam History (a sweep's result), got {type(history).__name__}")


def _check_histories(histories) -> None:
    if isinstance(histories, (str, History)) or not isinstance(histories, Sequence) or not histories:
        raise ValueError(f"histories must be a non-empty sequence of History, got {type(histories).__name__}")
    for h in histories:
        _check_history(h)


def _mean_final(history: History) -> torch.Tensor:
    """Seed-averaged final loss ``(n_lr,)`` in float64, ``inf`` where some seed diverged."""
    final = history.final.mean(-1).double()
    return torch.where(torch.isfinite(final), final, torch.full_like(final, math.inf))


def has_optimum(history: History) -> bool:
    """Whether some learning rate of ``history`` has no diverged seed (else there is no optimum)."""
    _check_history(history)
    return bool(torch.isfinite(history.final.mean(-1)).any())


def optimal_lr(history: History) -> float:
    """The minimiser of the seed-averaged final loss over the base learning rate.

    Refined between grid points by a parabola through the log-loss at the best grid point and its
    two neighbours (log-lr axis); the grid minimum itself is returned at the edge of the grid, when
    a neighbour diverged or when the parabola opens downward. A learning rate with a diverged seed
    is never the optimum. Raises ``ValueError`` when every learning rate has a diverged seed (test
    with :func:`has_optimum` first where that can happen).
    """
    if not has_optimum(history):
        raise ValueError("every learning rate of history has a diverged run: no optimal learning rate")
    final = _mean_final(history)
    lr = history.lrs.double().log()
    i = int(torch.argmin(final))
    if 0 < i < len(final) - 1 and bool(torch.isfinite(final[i - 1:i + 2]).all()):
        y, x = final[i - 1:i + 2].log(), lr[i - 1:i + 2]
        a = ((y[2] - y[1]) / (x[2] - x[1]) - (y[1] - y[0]) / (x[1] - x[0])) / (x[2] - x[0])
        if a > 0:
            slope = (y[2] - y[0]) / (x[2] - x[0]) - a * (x[0] + x[2] - 2 * x[1])
            x_star = x[1] - slope / (2 * a)
            return float(x_star.clamp(x[0], x[2]).exp())
    return float(lr[i].exp())


def best_loss(history: History) -> float:
    """The lowest seed-averaged final loss over the learning rates (``inf`` when all diverged): the
    height at which a figure marks the optimum of :func:`optimal_lr`."""
    _check_history(history)
    final = history.final.mean(-1)
    finite = final[torch.isfinite(final)]
    return float(finite.min()) if len(finite) else math.inf


def max_stable(history: History) -> float:
    """The largest base learning rate at which no seed diverged (``nan`` when every rate did)."""
    _check_history(history)
    ok = torch.isfinite(history.final).all(-1).nonzero()
    return float(history.lrs[ok.max()]) if len(ok) else math.nan


def transfer_factor(histories: Sequence[History]) -> float:
    """``max / min`` over sizes of the optimal base learning rate (:func:`optimal_lr`): 1 is perfect;
    ``inf`` when some size has no optimum on the grid (every learning rate diverged there)."""
    _check_histories(histories)
    if not all(has_optimum(h) for h in histories):
        return math.inf
    best = [optimal_lr(h) for h in histories]
    return max(best) / min(best)


def pinned_at_edge(history: History) -> bool:
    """Whether the best grid rate is the largest stable one (the loss still falls where the runs
    start to diverge), so that the optimum is the stability edge, not an interior minimum."""
    if not has_optimum(history):
        return False
    best = int(torch.argmin(_mean_final(history)))
    return math.isclose(float(history.lrs[best]), max_stable(history), rel_tol=1e-6)



def nearest_lr_index(lrs: torch.Tensor, lr: float) -> int:
    """The index of the grid rate of ``lrs`` nearest ``lr`` on a logarithmic axis."""
    checks.positive("lr", lr)
    grid = checks.in_range("lrs", checks.real_tensor("lrs", lrs, dtype=torch.float64, device="cpu"), 0, lo_open=True)
    if grid.numel() == 0:
        raise ValueError("lrs must hold at least one learning rate")
    return int(torch.argmin((grid.log() - math.log(lr)).abs()))


@dataclass(frozen=True)
class Transfer:
    """How one recipe's optimum moves across the sizes of its sweeps (lists indexed by size).

    ``optimum``: :func:`optimal_lr` (``nan`` where every rate diverged); ``best_loss``:
    :func:`best_loss`; ``max_stable``: :func:`max_stable`; ``factor``: :func:`transfer_factor`.
    """

    optimum: list[float]
    best_loss: list[float]
    max_stable: list[float]
    factor: float

    def __str__(self) -> str:
        def r(values, digits):
            return [round(v, digits) for v in values]

        return (f"optimal eta {r(self.optimum, 4)} factor {self.factor:.2f} best loss "
                f"{r(self.best_loss, 3)} max stable {r(self.max_stable, 4)}")


def transfer(histories: Sequence[History]) -> Transfer:
    """The :class:`Transfer` of one recipe's sweeps ``histories``, one per size."""
    _check_histories(histories)
    return Transfer(
        optimum=[optimal_lr(h) if has_optimum(h) else math.nan for h in histories],
        best_loss=[best_loss(h) for h in histories],
        max_stable=[max_stable(h) for h in histories],
        factor=transfer_factor(histories),
    )
