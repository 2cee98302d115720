"""Whole sweeps of the linear associative memory as one tensor program.

:func:`sweep` advances a batch of independent memories together by gradient descent or SGD:
every run has its own learning rate, embeddings, frequencies and start (any of them may carry
leading batch axes, which broadcast), and one step is a few batched matmuls for all runs at once,
with no Python loop over runs. It records only the statistics asked for, at the steps asked for,
and the first step at which each run classifies every token correctly.

:func:`plane_picture` draws the two-class plane of Section 4.3 (landscape and trajectories) from
the same kernels; the figures of the book and the explorer of :mod:`damlib.widgets` both use it.

The model (scores, residuals, margins, losses, Hessian) is :mod:`damlib.memory`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import checks
from . import memory as am
from .progress import bar

RECORDS = ("W", "scores", "loss", "zero_one", "margins", "sharpness")


@dataclass
class Sweep:
    """What :func:`sweep` returns.

    ``steps``: ``(T,)`` long tensor, the recorded step indices (step 0 is ``W_0``).
    ``records``: name -> tensor of shape ``(T, *batch, ...)`` (``W``: ``(T, *batch, d, d')``,
    ``scores``: ``(T, *batch, N, M)``, ``margins``: ``(T, *batch, N)``, the rest ``(T, *batch)``).
    ``first_perfect``: ``(*batch,)`` long, the first step ``t`` at which ``W_t`` has zero 0-1 loss
    under the true frequencies, ``-1`` if it never does within the run.
    ``W``: ``(*batch, d, d')``, the final matrix.
    """

    steps: torch.Tensor
    records: dict[str, torch.Tensor]
    first_perfect: torch.Tensor
    W: torch.Tensor

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.records[name]


def _batch_shape(W0, E, U, p, lr) -> torch.Size:
    try:
        return torch.broadcast_shapes(W0.shape[:-2], E.shape[:-2], U.shape[:-2], p.shape[:-1], lr.shape)
    except RuntimeError as err:
        raise ValueError(f"the batch axes of W0, E, U, p and lr do not broadcast: {err}") from None


def _check_sweep(W0, E, U, p, targets, lr, steps, record, at, batch_size):
    am.check_problem(E, U, p, targets)
    checks.shape("W0", W0, (E.shape[-1], U.shape[-1]))
    lr = torch.as_tensor(lr, dtype=W0.dtype, device=W0.device)
    if not bool(torch.isfinite(lr).all()) or bool((lr < 0).any()):
        raise ValueError(f"lr must be finite and non-negative, got {lr.flatten()[:6].tolist()}")
    checks.positive_int("steps", steps)
    unknown = set(record) - set(RECORDS)
    if unknown or isinstance(record, str):
        raise ValueError(f"record must be a collection of names among {RECORDS}, got {record!r}")
    if at is None:
        at = torch.arange(steps + 1)
    else:
        at = torch.as_tensor(at, dtype=torch.long).flatten().unique(sorted=True)
        if at.numel() == 0 or int(at[0]) < 0 or int(at[-1]) > steps:
            raise ValueError(f"at must hold step indices in [0, steps={steps}], got {at.tolist()[:8]}")
    if batch_size is not None:
        checks.positive_int("batch_size", batch_size)
    return lr, at


def _minibatch(p_flat: torch.Tensor, batch_size: int, generator) -> torch.Tensor:
    """Empirical frequencies of one mini-batch per run: ``p_flat (B, N)`` gives ``(B, N)``."""
    draws = torch.multinomial(p_flat, batch_size, replacement=True, generator=generator)
    counts = torch.zeros_like(p_flat).scatter_add_(1, draws, torch.ones_like(draws, dtype=p_flat.dtype))
    return counts / batch_size


def sweep(
    W0: torch.Tensor,
    E: torch.Tensor,
    U: torch.Tensor,
    p: torch.Tensor,
    targets: torch.Tensor,
    *,
    lr,
    steps: int,
    record=("loss",),
    at=None,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Sweep:
    """Run a batch of independent memories by (stochastic) gradient descent, ``steps`` steps each.

    Shapes (leading ``*`` axes are batch axes; they broadcast together into the batch shape):
    ``W0 (*, d, d')``, ``E (*, N, d)``, ``U (*, M, d')``, ``p (*, N)`` token frequencies,
    ``targets (N,)`` class of each token (shared by all runs), ``lr`` float or tensor ``(*)``.
    Runs with different embedding dimensions can share one batch by padding ``E`` and ``U`` with
    zero columns: the padded coordinates of ``W`` then get no gradient.

    ``record``: names among ``"W"``, ``"scores"``, ``"loss"``, ``"zero_one"``, ``"margins"``,
    ``"sharpness"`` (the operator norm of the closed-form Hessian), evaluated with the true
    frequencies ``p`` at the steps ``at`` (default: every step ``0..steps``).
    ``batch_size``: ``None`` for full-batch gradient descent; an integer for SGD, where each run
    draws, at each step, ``batch_size`` tokens from its own ``p`` (with ``generator``) and the
    gradient uses their empirical frequencies (the paper's eq. (12) over a random batch).

    Raises :class:`~damlib.checks.DivergenceError` at the first step where some run's ``W`` is not
    finite. Returns a :class:`Sweep`.
    """
    lr, at = _check_sweep(W0, E, U, p, targets, lr, steps, record, at, batch_size)
    shape = _batch_shape(W0, E, U, p, lr)
    n = E.shape[-2]
    W = W0.expand(*shape, *W0.shape[-2:]).clone()
    p_full = p.expand(*shape, n)
    eta = lr.expand(shape)[..., None, None]
    Et = E.transpose(-1, -2)
    if batch_size is not None:
        p_flat = p_full.reshape(-1, n)
        if generator is not None and generator.device != p_flat.device:
            raise ValueError(f"generator must live on {p_flat.device}, got {generator.device}")

    first = torch.full(shape, -1, dtype=torch.long, device=W.device)
    wanted = torch.zeros(steps + 1, dtype=torch.bool)
    wanted[at] = True
    out: dict[str, list[torch.Tensor]] = {name: [] for name in record}

    def observe(t: int, S: torch.Tensor) -> None:
        perfect = (am.margins(S, targets) > 0) | (p_full == 0)
        first.masked_fill_(perfect.all(-1) & (first < 0), t)
        if not wanted[t]:
            return
        for name in record:
            if name == "W":
                out[name].append(W.clone())
            elif name == "scores":
                out[name].append(S)
            elif name == "loss":
                out[name].append(am.loss_from_scores(S, p_full, targets))
            elif name == "zero_one":
                out[name].append(am.zero_one_loss(S, p_full, targets))
            elif name == "margins":
                out[name].append(am.margins(S, targets))
            else:
                out[name].append(am.sharpness(W, E, U, p_full, targets))

    for t in bar(range(steps + 1), desc="steps", progress=progress):
        S = am.scores(W, E, U)
        observe(t, S)
        if t == steps:
            break
        weights = p_full if batch_size is None else _minibatch(p_flat, batch_size, generator).view_as(p_full)
        R = am.residuals(S, targets)
        W = W - eta * (Et @ (weights.unsqueeze(-1) * R) @ U)
        checks.finite(t + 1, W, "matrix W")
    records = {name: torch.stack(values) for name, values in out.items()}
    return Sweep(steps=at.to(W.device), records=records, first_perfect=first, W=W)


def first_perfect_step(
    E: torch.Tensor, p: torch.Tensor, targets: torch.Tensor, *, lr, steps: int, U: torch.Tensor | None = None
) -> torch.Tensor:
    """First GD step with perfect accuracy, from ``W_0 = 0``, for a batch of problems: shape ``(*)``.

    A thin wrapper of :func:`sweep` that records nothing else (the quantity of the paper's
    Figure 3). ``U`` defaults to ``I_M`` with ``M = max(targets) + 1``. ``-1``: never within
    ``steps`` steps.
    """
    if U is None:
        U = torch.eye(int(targets.max()) + 1, dtype=E.dtype, device=E.device)
    W0 = torch.zeros(E.shape[-1], U.shape[-1], dtype=E.dtype, device=E.device)
    return sweep(W0, E, U, p, targets, lr=lr, steps=steps, record=(), at=[0]).first_perfect


def plane_picture(
    E: torch.Tensor,
    p: torch.Tensor,
    targets: torch.Tensor,
    *,
    lr,
    steps: int,
    g_start=(0.0, 0.0),
    g0_range=(-1.0, 1.0),
    g1_range=(-1.0, 1.0),
    n: int = 50,
    fields=("loss", "zero_one"),
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Landscape of the two-class plane and descent trajectories drawn on it, in one call.

    ``E (N, 2)`` input embeddings (``U = I_2``), ``p (N,)``, ``targets (N,)`` in ``{0, 1}``;
    ``lr`` a float or a ``(R,)`` tensor (one trajectory per learning rate); the runs start at the
    point ``g_start`` of the plane (``W_0 = (1/2) g (u_0 - u_1)^T``).
    Returns ``g`` (the ``(n, n, 2)`` grid), one ``(n, n)`` map per name in ``fields`` (see
    :func:`damlib.memory.landscape`), ``path`` ``(steps + 1, R, 2)`` the trajectories of ``g``,
    and ``path_loss``, ``path_zero_one`` ``(steps + 1, R)`` (and ``path_sharpness`` when
    ``"sharpness"`` is in ``fields``).
    """
    checks.shape("E", E, (None, 2))
    g = am.plane_grid(g0_range, g1_range, n, dtype=E.dtype, device=E.device)
    out = {"g": g, **am.landscape(g, E, p, targets, fields=fields)}
    lr = torch.as_tensor(lr, dtype=E.dtype, device=E.device).reshape(-1)
    W0 = am.plane_to_matrix(torch.as_tensor(g_start, dtype=E.dtype, device=E.device))
    U = torch.eye(2, dtype=E.dtype, device=E.device)
    record = ("W", "loss", "zero_one") + (("sharpness",) if "sharpness" in fields else ())
    run = sweep(W0, E, U, p, targets, lr=lr, steps=steps, record=record,
                batch_size=batch_size, generator=generator)
    out["path"] = am.matrix_to_plane(run["W"])
    out["path_loss"], out["path_zero_one"] = run["loss"], run["zero_one"]
    if "sharpness" in fields:
        out["path_sharpness"] = run["sharpness"]
    out["first_perfect"] = run.first_perfect
    return out
