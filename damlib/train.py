"""Whole sweeps of the linear associative memory as one tensor program.

:func:`sweep` advances a batch of independent memories together by gradient descent or SGD:
every run has its own learning rate, embeddings, frequencies and start (any of them may carry
leading batch axes, which broadcast), and one step is a few batched matmuls for all runs at once,
with no Python loop over runs. It records only the statistics asked for, at the steps asked for,
and the first step at which each run classifies every token correctly.

:func:`plane_picture` computes the two-class plane of Section 4.3 (landscape and trajectories)
from the same kernels, and :func:`plane_states` a whole grid of such planes for the explorer of
:mod:`damlib.widgets`; :mod:`damlib.plotting.gd` draws both.

The model (scores, residuals, margins, losses, Hessian) is :mod:`damlib.memory`'s.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from . import checks
from . import memory as am
from .config import device as default_device
from .progress import bar

RECORDS = ("W", "scores", "loss", "zero_one", "margins", "sharpness")
_BLOCK_ELEMENTS = 2**20  # entries of each buffer of scores and of W in sweep (8 MB each in float64)


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


def check_record(record, names: tuple[str, ...]) -> None:
    """Check that ``record`` is a collection of names among ``names`` (the trainers' convention)."""
    unknown = set(record) - set(names)
    if unknown or isinstance(record, str):
        raise ValueError(f"record must be a collection of names among {names}, got {record!r}")


def recorded_steps(at, steps: int) -> torch.Tensor:
    """The sorted step indices ``(S,)`` to record: ``at`` (in ``0..steps``) or, if ``None``, all."""
    if at is None:
        return torch.arange(steps + 1, device="cpu")
    at = checks.indices("at", at, steps + 1, device="cpu").flatten().unique(sorted=True)
    if at.numel() == 0:
        raise ValueError(f"at must hold step indices in [0, steps={steps}], got none")
    return at


def _check_sweep(W0, E, U, p, targets, lr, steps, record, at, batch_size, generator):
    am.check_problem(E, U, p, targets)
    checks.shape("W0", W0, (E.shape[-1], U.shape[-1]))
    checks.finite_data("W0", W0)
    lr = checks.in_range("lr", checks.real_tensor("lr", lr, dtype=W0.dtype, device=W0.device), 0)
    checks.positive_int("steps", steps)
    check_record(record, RECORDS)
    at = recorded_steps(at, steps)
    if batch_size is not None:
        checks.positive_int("batch_size", batch_size)
        checks.generator("generator", generator, device=p.device)
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

    Leading ``*`` axes are batch axes; they broadcast together into the batch shape. Runs with
    different embedding dimensions can share one batch by padding ``E`` and ``U`` with zero
    columns: the padded coordinates of ``W`` then get no gradient.

    Parameters
    ----------
    W0 : tensor ``(*, d, d')``
        The starting matrices.
    E : tensor ``(*, N, d)``
        Input embeddings.
    U : tensor ``(*, M, d')``
        Output embeddings.
    p : tensor ``(*, N)``
        Token frequencies.
    targets : long tensor ``(N,)``
        Class of each token, shared by all runs.
    lr : float or tensor ``(*)``
        Learning rates.
    steps : int
        Steps of every run.
    record : collection of str
        Names among ``RECORDS``: ``"W"`` ``(T, *, d, d')``, ``"scores"`` ``(T, *, N, M)``,
        ``"loss"``, ``"zero_one"`` ``(T, *)``, ``"margins"`` ``(T, *, N)``, ``"sharpness"``
        ``(T, *)`` (the operator norm of the closed-form Hessian), evaluated with the true
        frequencies ``p``.
    at : sequence of int, optional
        The recorded steps, in ``0..steps`` (default every step).
    batch_size : int, optional
        ``None`` for full-batch gradient descent; an integer for SGD, where each run draws, at
        each step, ``batch_size`` tokens from its own ``p`` (with ``generator``) and the gradient
        uses their empirical frequencies (the paper's eq. (12) over a random batch).
    generator : torch.Generator, optional
        The SGD draws' generator, on the device of ``p``.
    progress : bool, optional
        Show a progress bar (default: :func:`damlib.progress.bar`'s).

    Returns
    -------
    Sweep
        The records at the steps ``at``, the first perfect step of every run and the final ``W``.

    Raises
    ------
    DivergenceError
        At the first step where some run's ``W`` is not finite.
    """
    lr, at = _check_sweep(W0, E, U, p, targets, lr, steps, record, at, batch_size, generator)
    shape = _batch_shape(W0, E, U, p, lr)
    n = E.shape[-2]
    W = W0.expand(*shape, *W0.shape[-2:]).clone()
    p_full = p.expand(*shape, n)
    eta = lr.expand(shape)[..., None, None]
    Et = E.transpose(-1, -2)
    if batch_size is not None:
        p_flat = p_full.reshape(-1, n)

    first = torch.full(shape, -1, dtype=torch.long, device=W.device)
    watch = checks.Watch()
    wanted = torch.zeros(steps + 1, dtype=torch.bool, device="cpu")
    wanted[at] = True
    out: dict[str, list[torch.Tensor]] = {name: [] for name in record}

    absent = p_full == 0
    one_hot = torch.nn.functional.one_hot(targets, U.shape[-2]).to(W.dtype)
    p_col = p_full.unsqueeze(-1)

    # The first perfect step and the watches on the scores and on W are computed for blocks of
    # steps at once, from the values kept in buffers: per step, a loop over tiny runs pays for each
    # operation rather than for its arithmetic. The numbers are those of a per-step check.
    S = am._scores(W, E, U)
    block = max(1, min(steps + 1, _BLOCK_ELEMENTS // max(S.numel(), W.numel())))
    kept = torch.empty(block, *S.shape, dtype=S.dtype, device=S.device)
    kept_W = torch.empty(block, *W.shape, dtype=W.dtype, device=W.device)   # W after each step

    def check_block(start: int, k: int, k_W: int) -> None:
        """Check the scores of steps ``start..start+k-1`` and the ``k_W`` matrices after them."""
        scores = kept[:k]
        watch.see_steps(start, scores, "scores")
        if k_W:
            watch.see_steps(start + 1, kept_W[:k_W], "matrix W")
        perfect = ((am._margins(scores, targets) > 0) | absent).all(-1)                # (k, *shape)
        index = perfect.to(torch.uint8).argmax(0)                                     # the first
        first.copy_(torch.where((first < 0) & perfect.any(0), start + index, first))

    def observe(t: int, S: torch.Tensor) -> None:
        for name in record:
            if name == "W":
                out[name].append(W.clone())
            elif name == "scores":
                out[name].append(S)
            elif name == "loss":
                out[name].append(am._loss_from_scores(S, p_full, targets))
            elif name == "zero_one":
                out[name].append(am._zero_one(S, p_full, targets))
            elif name == "margins":
                out[name].append(am._margins(S, targets))
            else:
                out[name].append(am.sharpness(W, E, U, p_full, targets))

    for t in bar(range(steps + 1), desc="steps", progress=progress):
        if t > 0:
            S = am._scores(W, E, U)
        kept[t % block].copy_(S)   # the scores of a finite W can still overflow: both are watched
        if wanted[t]:
            observe(t, S)
        if t == steps:
            check_block(t - t % block, t % block + 1, t % block)
            break
        weights = p_col if batch_size is None else _minibatch(p_flat, batch_size, generator).view_as(
            p_full).unsqueeze(-1)
        R = am._residuals(S, targets, one_hot)
        W = W - eta * (Et @ (weights * R) @ U)
        kept_W[t % block].copy_(W)
        if t % block == block - 1:
            check_block(t - t % block, block, block)
    watch.check()
    records = {name: torch.stack(values) for name, values in out.items()}
    return Sweep(steps=at.to(W.device), records=records, first_perfect=first, W=W)


def first_perfect_step(
    E: torch.Tensor, p: torch.Tensor, targets: torch.Tensor, *, lr, steps: int, U: torch.Tensor | None = None
) -> torch.Tensor:
    """First GD step with perfect accuracy, from ``W_0 = 0``, for a batch of problems.

    A thin wrapper of :func:`sweep` that records nothing else (the quantity of the paper's
    Figure 3).

    Parameters
    ----------
    E : tensor ``(*, N, d)``
        Input embeddings.
    p : tensor ``(*, N)``
        Token frequencies.
    targets : long tensor ``(N,)``
        Class of each token.
    lr : float or tensor ``(*)``
        Learning rates.
    steps : int
        The longest run.
    U : tensor ``(M, d')``, optional
        Output embeddings; default ``I_M`` with ``M = max(targets) + 1``.

    Returns
    -------
    long tensor ``(*)``
        The first step with every token right, ``-1`` if none within ``steps`` steps.
    """
    checks.shape("E", E, (None, None))
    if U is None:
        checks.indices("targets", targets, dim=1)
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
    resolution: int = 50,
    fields=("loss", "zero_one"),
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Landscape of the two-class plane and descent trajectories drawn on it, in one call.

    Parameters
    ----------
    E : tensor ``(N, 2)``
        Input embeddings (``U = I_2``).
    p : tensor ``(N,)``
        Token frequencies.
    targets : long tensor ``(N,)``
        Class of each token, in ``{0, 1}``.
    lr : float or tensor ``(R,)``
        One trajectory per learning rate.
    steps : int
        Gradient steps of each trajectory.
    g_start : pair of float
        The point of the plane where the runs start (``W_0 = (1/2) g (u_0 - u_1)^T``).
    g0_range, g1_range : pair of float
        The window of the landscape along ``g_0`` and ``g_1``.
    resolution : int
        Grid points along each axis of the window.
    fields : collection of str
        The landscape maps, among those of :func:`damlib.memory.landscape`.
    batch_size, generator
        SGD instead of GD, as in :func:`sweep`.

    Returns
    -------
    dict of str to tensor
        ``points (resolution, resolution, 2)`` the grid of the plane, one
        ``(resolution, resolution)`` map per name in ``fields``, ``path (steps + 1, R, 2)`` the
        trajectories of ``g``, ``path_loss`` and ``path_zero_one`` ``(steps + 1, R)`` (and
        ``path_sharpness`` when ``"sharpness"`` is in ``fields``), ``first_perfect (R,)``.
    """
    checks.shape("E", E, (None, 2))
    checks.positive_int("steps", steps)
    checks.positive_int("resolution", resolution)
    points = am.plane_grid(g0_range, g1_range, resolution, dtype=E.dtype, device=E.device)
    out = {"points": points, **am.landscape(points, E, p, targets, fields=fields)}
    lr = checks.real_tensor("lr", lr, dtype=E.dtype, device=E.device).reshape(-1)
    W0 = am.plane_to_matrix(checks.real_tensor("g_start", g_start, dtype=E.dtype, device=E.device))
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


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def plane_states(alphas, p1s, lrs, *, steps: int = 35, resolution: int = 60, g0_range=(-1.0, 8.0),
                 g1_range=(-17.0, 10.0), dtype=torch.float64, device=None) -> dict[tuple, dict[str, np.ndarray]]:
    """Landscapes and GD trajectories from ``g = 0`` for every ``(alpha, p1, lr)`` of a product grid.

    The states of the two-token plane explorer (:func:`damlib.widgets.plane_explorer`, drawn by
    :func:`damlib.plotting.gd.draw_plane`). All trajectories are one batched :func:`sweep` (batch
    ``(A, P, L)``) and all landscapes one batched :func:`damlib.memory.landscape` call.

    Parameters
    ----------
    alphas, p1s, lrs : sequence of float
        The correlations ``alpha`` of the pair of embeddings (:func:`damlib.memory.correlated_pair`),
        the frequencies ``p_1`` of the first token (in ``(0, 1)``) and the learning rates.
    steps : int
        Gradient steps of each trajectory.
    resolution : int
        Grid points along each axis of a landscape.
    g0_range, g1_range : pair of float
        The smallest window; each state's window is grown to hold its whole trajectory.
    dtype, device
        Of the computation (default device :func:`damlib.device`).

    Returns
    -------
    dict
        Per grid point ``(alpha, p1, lr)``, numpy arrays ``points (resolution, resolution, 2)``,
        ``loss`` and ``zero_one`` ``(resolution, resolution)``, ``path (steps + 1, 2)``,
        ``path_loss`` and ``path_zero_one`` ``(steps + 1,)``.
    """
    kw = dict(dtype=dtype, device=device if device is not None else default_device())
    for name, values in (("alphas", alphas), ("p1s", p1s), ("lrs", lrs)):
        if isinstance(values, str) or not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"{name} must be a non-empty sequence of numbers, got {values!r}")
        checks.real_tensor(name, values, **kw)
    checks.positive_int("steps", steps)
    checks.positive_int("resolution", resolution)
    p1 = checks.in_range("p1s", checks.real_tensor("p1s", p1s, **kw), 0, 1, lo_open=True, hi_open=True)
    a = checks.real_tensor("alphas", alphas, **kw)
    checks.in_range("lrs", checks.real_tensor("lrs", lrs, **kw), 0)
    E = am.correlated_pair(a)[:, None, None]                                   # (A, 1, 1, 2, 2)
    p = torch.stack([p1, 1 - p1], -1)[None, :, None]                            # (1, P, 1, 2)
    lr = torch.as_tensor(lrs, **kw)[None, None, :]                              # (1, 1, L)
    targets = torch.arange(2, device=kw["device"])
    run = sweep(torch.zeros(2, 2, **kw), E, torch.eye(2, **kw), p, targets,
                lr=lr, steps=steps, record=("W", "loss", "zero_one"))
    path = am.matrix_to_plane(run["W"])                                        # (T, A, P, L, 2)

    lo = torch.minimum(path.amin(0), torch.tensor([g0_range[0], g1_range[0]], **kw))
    hi = torch.maximum(path.amax(0), torch.tensor([g0_range[1], g1_range[1]], **kw))
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad                                                # (A, P, L, 2)
    s = torch.linspace(0, 1, resolution, **kw)
    axis = lo[..., None, :] + (hi - lo)[..., None, :] * s[:, None]              # (A, P, L, n, 2)
    g0, g1 = axis[..., None, :, 0], axis[..., :, None, 1]                      # rows run over g1
    points = torch.stack(torch.broadcast_tensors(g0, g1), -1)                  # (A, P, L, n, n, 2)
    land = am.landscape(points, E[..., None, None, :, :], p[..., None, None, :], targets)

    states = {}
    for (i, alpha), (j, q), (k, rate) in itertools.product(enumerate(alphas), enumerate(p1s), enumerate(lrs)):
        states[(alpha, q, rate)] = {
            "points": _numpy(points[i, j, k]), "loss": _numpy(land["loss"][i, j, k]),
            "zero_one": _numpy(land["zero_one"][i, j, k]), "path": _numpy(path[:, i, j, k]),
            "path_loss": _numpy(run["loss"][:, i, j, k]),
            "path_zero_one": _numpy(run["zero_one"][:, i, j, k]),
        }
    return states
