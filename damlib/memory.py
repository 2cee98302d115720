"""The linear associative memory of Cabannes, Simsek and Bietti (2024).

Tokens ``x in [N]`` are mapped to classes ``y in [M]`` by a target ``f*``
(``targets``, a long tensor of shape ``(N,)``). Fixed input embeddings ``E``
(``(N, d)``, rows ``e_x``) and output embeddings ``U`` (``(M, d')``, rows ``u_y``)
give the scores ``s(x, y) = e_x^T W u_y`` of a matrix ``W`` of shape ``(d, d')``,
the probabilities ``p_W(y|x) = softmax_y s(x, y)`` and the loss

    L(W) = sum_x p(x) CE(s(x, .), f*(x)).

Theorem 1 of the paper: the ``N*M`` particles ``w_{x,y} = s(x, y)`` evolve on
their own under any gradient dynamics, with couplings ``alpha = E E^T`` and
``beta = U U^T``; W is not needed. :func:`evolve_particles` runs that system and
:func:`descend` runs gradient descent on ``W`` itself.

Every function accepts leading batch axes on ``W`` (and on the scores), so a
sweep over learning rates or seeds is one call. Frequencies ``p`` have shape
``(N,)``; a stochastic run passes one row of mini-batch frequencies per step
(see :func:`minibatch_frequencies`).
"""

from __future__ import annotations

import math

import torch

from . import checks


def sphere_embeddings(
    n: int,
    d: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` standard Gaussian vectors of ``R^d`` normalised to the unit sphere, shape ``(n, d)``.

    The draw happens on the generator's device (the CPU for :func:`damlib.generator`) and is
    then moved to ``device``, so a seed gives the same embeddings on every device.
    """
    checks.positive_int("n", n)
    checks.positive_int("d", d)
    g = torch.randn(n, d, generator=generator, dtype=dtype,
                    device=generator.device if generator is not None else None)
    return (g / g.norm(dim=-1, keepdim=True)).to(device)


def correlated_pair(alpha, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Two unit embeddings of ``R^2`` with inner product ``alpha``, shape ``(..., 2, 2)``.

    Rows ``e_0 = (1, 0)`` and ``e_1 = (alpha, sqrt(1 - alpha^2))``. ``alpha`` may be
    a tensor of correlations, giving one pair per entry.
    """
    a = torch.as_tensor(alpha, dtype=dtype, device=device)
    if not bool(((a >= -1) & (a <= 1)).all()):
        raise ValueError(f"alpha must lie in [-1, 1], got {alpha!r}")
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    e0 = torch.stack([one, zero], -1)
    e1 = torch.stack([a, torch.sqrt(1 - a**2)], -1)
    return torch.stack([e0, e1], -2)


def uniform_frequencies(n: int, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Uniform token frequencies ``p(x) = 1/n``, shape ``(n,)``."""
    checks.positive_int("n", n)
    return torch.full((n,), 1.0 / n, dtype=dtype, device=device)


def zipf_frequencies(
    n: int, exponent: float = 1.0, *, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """Zipf token frequencies ``p(x) ~ (x + 1)^(-exponent)`` for ``x = 0..n-1``, shape ``(n,)``."""
    checks.positive_int("n", n)
    checks.positive("exponent", exponent, allow_zero=True)
    p = torch.arange(1, n + 1, dtype=dtype, device=device) ** (-exponent)
    return p / p.sum()


def minibatch_frequencies(
    p: torch.Tensor, batch_size: int, steps: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Empirical token frequencies of ``steps`` mini-batches of ``batch_size`` tokens drawn from ``p``.

    Returns shape ``(steps, N)``; row ``t`` sums to one. Feeding these rows to
    :func:`descend` or :func:`evolve_particles` in place of ``p`` is stochastic
    gradient descent with those mini-batches (the paper's eq. (12) with the sum
    over a random batch).
    """
    checks.probabilities("p", p)
    checks.positive_int("batch_size", batch_size)
    checks.positive_int("steps", steps)
    # drawn on the CPU (``generator`` must be a CPU generator), then moved to p's device
    draws = torch.multinomial(p.expand(steps, -1).cpu(), batch_size, replacement=True, generator=generator)
    counts = torch.zeros(steps, p.shape[-1], dtype=p.dtype)
    counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=p.dtype))
    return (counts / batch_size).to(p.device)


def _check_problem(E, U, p, targets) -> None:
    checks.shape("E", E, (None, None))
    checks.shape("U", U, (None, None))
    n, m = E.shape[-2], U.shape[-2]
    checks.shape("p", p, (n,))
    checks.probabilities("p", p)
    if not isinstance(targets, torch.Tensor) or targets.dtype != torch.long or targets.shape != (n,):
        raise ValueError(f"targets must be a long tensor of shape ({n},), got {targets!r}")
    if bool((targets < 0).any()) or bool((targets >= m).any()):
        raise ValueError(f"targets must be class indices in [0, {m}), got {targets.tolist()}")


def scores(W: torch.Tensor, E: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """Scores ``s(x, y) = e_x^T W u_y``: ``W (..., d, d')`` gives shape ``(..., N, M)``."""
    checks.shape("W", W, (E.shape[-1], U.shape[-1]))
    return E @ W @ U.transpose(-1, -2)


def loss_from_scores(S: torch.Tensor, p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Frequency-weighted cross-entropy of scores ``S (..., N, M)``, shape ``(...)``."""
    logp = torch.log_softmax(S, dim=-1)
    right = logp.gather(-1, targets.expand(*S.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    return -(p * right).sum(-1)


def loss(W, E, U, p, targets) -> torch.Tensor:
    """The loss ``L(W)`` for ``W (..., d, d')``, shape ``(...)``."""
    _check_problem(E, U, p, targets)
    return loss_from_scores(scores(W, E, U), p, targets)


def residuals(S: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``p_W(z|x) - 1[z = f*(x)]`` for scores ``S (..., N, M)``, same shape."""
    return torch.softmax(S, dim=-1) - torch.nn.functional.one_hot(targets, S.shape[-1]).to(S.dtype)


def gradient(W, E, U, p, targets) -> torch.Tensor:
    """Closed-form gradient ``sum_x p(x) e_x (sum_z (p_W(z|x) - 1[z=f*(x)]) u_z)^T``, shape of ``W``."""
    _check_problem(E, U, p, targets)
    R = residuals(scores(W, E, U), targets)
    return E.transpose(-1, -2) @ (p.unsqueeze(-1) * R) @ U


def margins(S: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Margins ``m(x) = s(x, f*(x)) - max_{y != f*(x)} s(x, y)`` of scores ``S (..., N, M)``, shape ``(..., N)``."""
    idx = targets.expand(*S.shape[:-1]).unsqueeze(-1)
    right = S.gather(-1, idx).squeeze(-1)
    wrong = S.scatter(-1, idx, -math.inf).amax(-1)
    return right - wrong


def zero_one_loss(S: torch.Tensor, p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Frequency-weighted error ``sum_x p(x) 1[m(x) <= 0]`` of scores ``S (..., N, M)``, shape ``(...)``."""
    return (p * (margins(S, targets) <= 0).to(p.dtype)).sum(-1)


def couplings(E: torch.Tensor, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Theorem 1's constant correlations ``alpha = E E^T (N, N)`` and ``beta = U U^T (M, M)``."""
    return E @ E.transpose(-1, -2), U @ U.transpose(-1, -2)


def _per_step(weights: torch.Tensor, steps: int, n: int) -> torch.Tensor:
    """Frequencies as one row per step: ``(N,)`` is repeated, ``(steps, N)`` is kept."""
    if weights.dim() == 1:
        return weights.expand(steps, n)
    if weights.shape != (steps, n):
        raise ValueError(f"p must have shape ({n},) or (steps, {n}) = ({steps}, {n}), got {tuple(weights.shape)}")
    return weights


def _learning_rate(lr, like: torch.Tensor) -> torch.Tensor:
    lr = torch.as_tensor(lr, dtype=like.dtype, device=like.device)
    if not bool(torch.isfinite(lr).all()) or bool((lr < 0).any()):
        raise ValueError(f"lr must be finite and non-negative, got {lr.tolist()}")
    return lr[..., None, None]


def descend(W0, E, U, p, targets, *, lr, steps: int) -> torch.Tensor:
    """Gradient descent on ``W``: the trajectory ``W_0, ..., W_steps``, shape ``(steps + 1, ..., d, d')``.

    ``p`` is ``(N,)`` for full-batch descent or ``(steps, N)`` for one row of
    mini-batch frequencies per step. ``lr`` is a float or a tensor that
    broadcasts against the batch axes of ``W0`` (one learning rate per run).
    """
    checks.positive_int("steps", steps)
    n = E.shape[-2]
    rows = _per_step(p, steps, n)
    _check_problem(E, U, rows[0], targets)
    checks.probabilities("p", rows)
    eta = _learning_rate(lr, W0)
    out = [W0]
    W = W0
    for t in range(steps):
        R = residuals(scores(W, E, U), targets)
        W = W - eta * (E.transpose(-1, -2) @ (rows[t].unsqueeze(-1) * R) @ U)
        checks.finite(t + 1, W, "matrix W")
        out.append(W)
    return torch.stack(out)


def evolve_particles(S0, alpha, beta, p, targets, *, lr, steps: int) -> torch.Tensor:
    """Theorem 1's particle system: scores ``S_0, ..., S_steps``, shape ``(steps + 1, ..., N, M)``.

    One step is ``w_{x',y'} <- w_{x',y'} - lr sum_x p(x) alpha_{x,x'} sum_z
    beta_{z,y'} (p(z|x) - 1[z = f*(x)])``, i.e. ``S <- S - lr alpha^T diag(p) R beta``
    with the residuals ``R`` of :func:`residuals`. No matrix ``W`` appears.
    ``p`` and ``lr`` are as in :func:`descend`.
    """
    checks.positive_int("steps", steps)
    n, m = S0.shape[-2], S0.shape[-1]
    checks.shape("alpha", alpha, (n, n))
    checks.shape("beta", beta, (m, m))
    rows = _per_step(p, steps, n)
    checks.probabilities("p", rows)
    eta = _learning_rate(lr, S0)
    out = [S0]
    S = S0
    for t in range(steps):
        R = residuals(S, targets)
        S = S - eta * (alpha.transpose(-1, -2) @ (rows[t].unsqueeze(-1) * R) @ beta)
        checks.finite(t + 1, S, "particles")
        out.append(S)
    return torch.stack(out)
