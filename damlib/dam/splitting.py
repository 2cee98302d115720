"""Copying and splitting memories, the splitting matrices, and growth by splitting.

Copying memory ``mu`` with half its class weights on each copy leaves ``P(x, y)`` unchanged and
halves the gradient of both copies, so a stationary point stays stationary (:func:`copy_memories`).
Moving the two copies apart, ``w +- delta``, changes the loss at second order by
``delta^T S_mu delta / 2`` with the splitting matrix (:func:`splitting_matrix`)

    S_mu = beta^2 sum_x c_{x mu} x x^T - beta (sum_x c_{x mu} w^mu . x) I   (on the tangent space),

so the copied point is a saddle as soon as some ``S_mu`` has a negative eigenvalue.
:func:`grow_by_splitting` uses it to grow a model (splitting steepest descent, Wu et al. 2019).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import scipy.linalg
import torch

from .. import checks
from ..data import _take_rows
from .model import DAM, _check_data, _normalise, check_single, overlaps, project, residuals
from .optimise import History, train

LOG2 = math.log(2.0)


def _check_index(model: DAM, index) -> torch.Tensor:
    if not isinstance(model, DAM):
        raise ValueError(f"model must be a DAM, got {type(model).__name__}")
    idx = checks.indices("index", index, model.n_memories, device=model.w.device).flatten()
    if idx.numel() == 0:
        raise ValueError("index must name at least one memory")
    if len(set(idx.tolist())) != idx.numel():
        raise ValueError(f"index must not repeat a memory, got {idx.tolist()}")
    return idx


def copy_memories(model: DAM, index) -> DAM:
    """Append a copy of the memories ``index`` (a list over the ``P`` axis); each copy and its original
    carry half the original class weights (logits minus ``log 2``). ``P(x, y)`` is unchanged."""
    return split_memories(
        model,
        index,
        torch.zeros_like(model.w[..., :1, :]).expand(
            *model.w.shape[:-2], len(_check_index(model, index)), model.w.shape[-1]
        ),
        eps=0.0,
    )


def split_memories(model: DAM, index, directions: torch.Tensor, *, eps: float) -> DAM:
    """Split each memory ``index[k]`` into ``normalise(w +- eps u_k)`` with ``u = directions[..., k, :]``.

    The ``+`` copy replaces the memory, the ``-`` copy is appended; both carry half the class weights.
    ``directions`` has shape ``(..., len(index), N)`` (projected on the tangent space and normalised here).
    """
    idx = _check_index(model, index)
    checks.positive("eps", eps, allow_zero=True)
    checks.shape("directions", directions, (len(idx), model.w.shape[-1]))
    checks.finite_data("directions", directions)
    w_sel = model.w[..., idx, :]
    u = project(w_sel, directions.to(model.w))
    norm = u.norm(dim=-1, keepdim=True)
    if eps > 0 and bool((norm <= 1e-12 * directions.norm(dim=-1, keepdim=True).to(norm)).any()):
        raise ValueError("directions has a row with no tangent component")
    u = torch.where(norm > 0, u / norm.clamp_min(1e-300), u)
    w = model.w.clone()
    w[..., idx, :] = _normalise(w_sel + eps * u)
    a = model.logits.clone()
    a[..., idx, :] -= LOG2
    w = torch.cat([w, _normalise(w_sel - eps * u)], dim=-2)
    a = torch.cat([a, a[..., idx, :]], dim=-2)
    return DAM(w, a, model.beta)


def splitting_matrix(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1) -> torch.Tensor:
    """The splitting matrices ``S_mu`` of shape ``(..., P, N, N)``, restricted to each tangent space.

    ``S_mu = P_mu (beta^2 X^T diag(c_mu) X - lambda_mu I) P_mu``, ``lambda_mu = beta sum_x c_{x mu} w^mu . x``
    and ``P_mu`` the tangent projector; the normal direction ``w^mu`` is an eigenvector with eigenvalue 0.
    After copying memory ``mu`` (each copy with half its class weights), the Hessian of the larger model
    in the direction ``(delta, -delta) / sqrt(2)`` has Rayleigh quotient
    ``delta^T S_mu delta / (2 |delta|^2)``.
    Costs ``n N^2`` per memory: use :func:`splitting_directions` for many memories.
    """
    c, lam = _splitting_parts(model, x, y, smoothing)
    if x.device.type != "cpu":
        return _batched_matrices(model, c, lam, x)
    blocks = np.stack([np.triu(U) + np.triu(U, 1).T for U in _upper_blocks(model, c, lam, x)])
    N = x.shape[-1]
    return torch.as_tensor(blocks, dtype=x.dtype, device="cpu").reshape(*model.w.shape[:-1], N, N)


def _splitting_parts(model: DAM, x: torch.Tensor, y: torch.Tensor, smoothing: float):
    """The residuals ``c (..., n, P)`` and ``lambda_mu = beta sum_x c_{x mu} w^mu . x`` of shape ``(..., P)``."""
    c = residuals(model, x, y, smoothing=smoothing)
    return c, model.beta[..., None] * (c * overlaps(model.w, x)).sum(-2)


def _batched_matrices(model: DAM, c: torch.Tensor, lam: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """:func:`splitting_matrix` as batched tensor operations (for a GPU): ``(..., P, N, N)``."""
    beta = model.beta[..., None, None, None]
    S = beta**2 * torch.einsum("...np,ni,nj->...pij", c, x, x)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    S = S - lam[..., None, None] * eye
    # P S P with P = I - w w^T, as the rank-two update S - w a^T - a w^T + (w^T a) w w^T with
    # a = S w: O(N^2) per memory instead of two O(N^3) products
    N = S.shape[-1]
    flat, w = S.reshape(-1, N, N), model.w.expand(S.shape[:-1]).reshape(-1, N, 1)
    a = flat @ w
    sigma = (w * a).sum(1, keepdim=True)
    flat.baddbmm_(w, a.transpose(1, 2), alpha=-1).baddbmm_(a, w.transpose(1, 2), alpha=-1)
    flat.baddbmm_(w * sigma, w.transpose(1, 2))
    return flat.view(S.shape)


def _upper_blocks(model: DAM, c: torch.Tensor, lam: torch.Tensor, x: torch.Tensor):
    """On a CPU, the upper triangle (``(N, N)`` NumPy arrays, the strict lower triangle zero) of each
    splitting matrix, memory by memory over the flattened batch ``(..., P)``.

    ``X^T diag(c) X`` is two symmetric rank-k updates (BLAS ``syrk``), over the points with
    ``c > 0`` and with ``c < 0``: ``n N^2`` flops a memory, half of the general product, and one
    ``N x N`` matrix in memory at a time. The projection ``P S P`` is the symmetric rank-two update
    ``S - w b^T - b w^T`` with ``a = S w``, ``b = a - (w^T a / 2) w`` (``syr2``).
    """
    xn = x.detach().cpu().numpy()
    syrk, symv, syr2 = scipy.linalg.blas.get_blas_funcs(("syrk", "symv", "syr2"), (xn,))
    P, N = model.w.shape[-2:]
    w = model.w.detach().reshape(-1, N).numpy()
    beta = model.beta.detach().expand(model.w.shape[:-2]).reshape(-1).numpy()
    cs = c.detach().transpose(-1, -2).reshape(-1, len(xn)).numpy()        # (runs * P, n)
    lams = lam.detach().reshape(-1).numpy()
    for i, (ci, wi) in enumerate(zip(cs, w)):
        b2 = beta[i // P] ** 2
        U = np.zeros((N, N), dtype=xn.dtype, order="F")
        for sign, rows in ((1.0, ci > 0), (-1.0, ci < 0)):
            if rows.any():  # the transpose of a C-ordered (m, N) array is Fortran (N, m): A A^T = X^T X
                A = (np.sqrt(sign * ci[rows])[:, None] * xn[rows]).T
                U = syrk(sign * b2, A, beta=1.0, c=U, trans=0, lower=0, overwrite_c=1)
        U.flat[:: N + 1] -= lams[i]
        a = symv(1.0, U, wi, lower=0)
        yield syr2(-1.0, wi, a - 0.5 * (wi @ a) * wi, a=U, lower=0, overwrite_a=1)


def splitting_eigen(
    model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1, vectors: bool = True
):
    """Smallest tangent eigenvalue of each ``S_mu`` and its eigenvector: ``((..., P), (..., P, N))``.

    The normal direction (eigenvalue 0 of the projected matrix) is moved out of the way first, by
    adding ``s w w^T`` with ``s`` beyond the spectrum (the largest absolute row sum, plus one). With
    ``vectors=False`` only the eigenvalues are computed (faster) and the second item is ``None``.

    On a CPU each matrix is formed (:func:`_upper_blocks`) and solved in turn, by LAPACK's
    selected-eigenpair driver (``dsyevx``, through scipy) on its upper triangle: about five times
    faster than the full decomposition at ``N = 784``; elsewhere one batched ``torch.linalg.eigh``.
    """
    if x.device.type != "cpu":
        S = splitting_matrix(model, x, y, smoothing=smoothing)
        shift = S.abs().sum(-1).amax(-1)[..., None, None] + 1.0
        return _lowest_eigenpair(S + shift * model.w.unsqueeze(-1) * model.w.unsqueeze(-2), vectors=vectors)
    c, lam = _splitting_parts(model, x, y, smoothing)
    syr = scipy.linalg.blas.get_blas_funcs("syr", (x.detach().numpy(),))
    w = model.w.detach().reshape(-1, model.w.shape[-1]).numpy()
    pairs = []
    for U, wi in zip(_upper_blocks(model, c, lam, x), w):
        A = np.abs(U)
        rows = A.sum(0) + A.sum(1) - np.diag(A)                             # |S| row sums
        U = syr(rows.max() + 1.0, wi, a=U, lower=0, overwrite_a=1)
        pairs.append(_lowest_pair(U, vectors, lower=False))
    return _stack_pairs(pairs, model.w.shape[:-1], model.w.dtype, vectors)


def _lowest_pair(a: np.ndarray, vectors: bool, *, lower: bool = True):
    """The smallest eigenvalue of the symmetric ``a (N, N)`` (read from one triangle) and, with
    ``vectors``, its eigenvector ``(N,)``: LAPACK's selected-pair driver (``?syevx``)."""
    out = scipy.linalg.eigh(a, lower=lower, subset_by_index=[0, 0], driver="evx", eigvals_only=not vectors,
                            overwrite_a=True, check_finite=False)
    return (out[0][0], out[1][:, 0]) if vectors else (out[0], None)


def _stack_pairs(pairs, batch: torch.Size, dtype, vectors: bool):
    """The list of :func:`_lowest_pair` results as ``(values batch, vectors (*batch, N) or None)``."""
    vals = torch.as_tensor(np.array([v for v, _ in pairs]), dtype=dtype, device="cpu").reshape(batch)
    if not vectors:
        return vals, None
    vecs = torch.as_tensor(np.stack([z for _, z in pairs]), dtype=dtype, device="cpu")
    return vals, _signed(vecs.reshape(*batch, -1))


def _lowest_eigenpair(S: torch.Tensor, *, vectors: bool = True):
    """The smallest eigenvalue ``(...)`` of each symmetric matrix of ``S (..., N, N)`` and, with
    ``vectors``, its unit eigenvector ``(..., N)`` (else ``None``), signed so that its entry of largest
    magnitude is positive.

    On a CPU, LAPACK's selected-eigenpair driver matrix by matrix (:func:`_lowest_pair`); elsewhere
    the batched ``torch.linalg.eigh``.
    """
    if S.device.type != "cpu":
        if not vectors:
            return torch.linalg.eigvalsh(S)[..., 0], None
        vals, vecs = torch.linalg.eigh(S)
        return vals[..., 0], _signed(vecs[..., :, 0])
    flat = S.detach().reshape(-1, *S.shape[-2:]).numpy().copy()
    return _stack_pairs([_lowest_pair(a, vectors) for a in flat], S.shape[:-2], S.dtype, vectors)


def _signed(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors ``(..., N)`` with the sign that makes each one's largest-magnitude entry positive."""
    top = v.gather(-1, v.abs().argmax(-1, keepdim=True))
    return v * torch.where(top < 0, -1.0, 1.0).to(v.dtype)


def splitting_apply(model: DAM, c: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``S_mu v_mu`` for tangent vectors ``v (..., P, N)``, given the residuals ``c (..., n, P)``."""
    _check_data(model, x)
    checks.shape("c", c, (len(x), model.n_memories))
    checks.shape("v", v, (model.n_memories, model.w.shape[-1]))
    return _splitting_apply(model, c, x, v)


def _splitting_apply(model: DAM, c: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    beta = model.beta[..., None, None]
    h = overlaps(model.w, x)
    lam = beta * (c * h).sum(-2).unsqueeze(-1)
    proj_v = torch.einsum("...np,nd->...pd", c * overlaps(v, x), x)
    return project(model.w, beta**2 * proj_v - lam * v)


def splitting_directions(
    model: DAM,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    smoothing: float = 0.1,
    iters: int = 100,
    generator: torch.Generator | None = None,
):
    """Most negative curvature direction of every ``S_mu`` by shifted power iteration (matrix-free).

    Returns ``(eigenvalue estimates (..., P), directions (..., P, N))``. Costs ``O(iters n P N)``
    instead of the ``O(n P N^2)`` of forming the matrices; the estimate is a Rayleigh quotient, so
    it bounds the smallest eigenvalue from above.
    """
    checks.positive_int("iters", iters)
    checks.generator("generator", generator)
    c = residuals(model, x, y, smoothing=smoothing)
    beta = model.beta[..., None]
    # upper bound of |S|: beta^2 sum |c| |x|^2 + |lambda|
    h = overlaps(model.w, x)
    bound = beta**2 * c.abs().sum(-2) + (beta * (c * h).sum(-2)).abs()
    v = torch.randn(model.w.shape, generator=generator, dtype=model.w.dtype, device=generator.device)
    v = _normalise(project(model.w, v.to(model.w.device)))
    for _ in range(iters):
        v = bound.unsqueeze(-1) * v - _splitting_apply(model, c, x, v)
        v = _normalise(project(model.w, v))
    val = (v * _splitting_apply(model, c, x, v)).sum(-1)
    return val, v


def grow_by_splitting(
    model: DAM,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    p_max: int,
    stage_steps: int,
    total_steps: int,
    lr: float,
    eps: float,
    batch_size: int | None = None,
    split_batch: int | None = None,
    split_iters: int = 30,
    smoothing: float = 0.1,
    generator: torch.Generator,
    eval_every: int,
    eval_data,
    progress: bool | None = None,
) -> History:
    """Splitting steepest descent (Wu et al. 2019) for one model: train, split, retrain, up to ``p_max``.

    Train ``stage_steps``; then split the ``min(P, p_max - P)`` memories of most negative splitting
    eigenvalue (:func:`splitting_directions` on ``split_batch`` digits) along their eigenvectors by
    ``eps``, and train again (:func:`~damlib.dam.train` resumed from the previous stage's state, Adam's
    moments restarted); once ``P = p_max``, train until ``total_steps`` steps in all.

    Parameters
    ----------
    model : DAM
        The starting model, a single one (``w`` of shape ``(P0, N)``).
    x, y : torch.Tensor
        Training digits ``(n, N)`` and classes ``(n,)``.
    p_max : int
        Number of memories to grow to (at least ``P0``).
    stage_steps, total_steps : int
        Adam steps between splits, and in the whole run.
    lr : float
        Adam step size (memories and logits).
    eps : float
        Half the distance the two copies of a split memory move apart.
    batch_size : int, optional
        Training mini-batch size (``None``: full batch).
    split_batch : int, optional
        Digits drawn to compute the splitting directions (``None``: all of ``x``).
    split_iters : int
        Power iterations per splitting direction.
    smoothing : float
        Label smoothing.
    generator : torch.Generator
        Draws the mini-batches, the splitting digits and the power iterations' start.
    eval_every : int
        Steps between checkpoints; ``eval_data = (x_test, y_test)``.
    progress : bool, optional
        Progress bars of the training stages.

    Returns
    -------
    History
        The grown model, its checkpoints over the whole run (wall time and work include the
        eigenvector computations, counted as ``split_iters`` passes over the ``split_batch`` digits;
        evaluation is excluded) and ``splits``, the steps after which it split.
    """
    for name, value in (("p_max", p_max), ("stage_steps", stage_steps), ("total_steps", total_steps)):
        checks.positive_int(name, value)
    check_single(model, "grow_by_splitting")
    if p_max < model.n_memories:
        raise ValueError(f"p_max must be at least the {model.n_memories} starting memories, got {p_max}")
    checks.positive("eps", eps)
    checks.generator("generator", generator)
    checks.positive_int("eval_every", eval_every)
    checks.positive_int("split_iters", split_iters)
    if split_batch is not None:
        checks.positive_int("split_batch", split_batch)
    opts = dict(lr=lr, batch_size=batch_size, smoothing=smoothing, generator=generator,
                eval_every=eval_every, eval_data=eval_data, progress=progress)
    state, splits, run = None, [], None
    while True:
        step = 0 if state is None else state.step
        last = model.n_memories >= p_max
        n_steps = total_steps - step if last else min(stage_steps, total_steps - step)
        if n_steps <= 0:
            break
        run = train(model, x, y, steps=n_steps, resume=state, **opts)
        model, state = run.model, run.state
        if last or state.step >= total_steps:
            break
        start = time.perf_counter()
        if split_batch is not None and split_batch < len(x):
            idx = torch.randperm(len(x), generator=generator, device=generator.device)[:split_batch].to(
                x.device
            )
            xs, ys = _take_rows(x, idx), _take_rows(y, idx)
        else:
            xs, ys = x, y
        vals, dirs = splitting_directions(
            model, xs, ys, smoothing=smoothing, iters=split_iters, generator=generator
        )
        k = min(model.n_memories, p_max - model.n_memories)
        chosen = vals.argsort()[:k]
        model = split_memories(model, chosen, dirs[chosen], eps=eps)
        splits.append(state.step)
        run.splits = list(splits)
        state = replace(state, seconds=state.seconds + time.perf_counter() - start,
                        work=state.work + split_iters * len(xs) * run.model.n_memories)
    run.splits = splits
    return run
