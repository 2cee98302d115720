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

    ``generator`` is required (``None`` raises ``ValueError``: no draw uses torch's global generator).
    The draw happens on the generator's device (the CPU for :func:`damlib.generator`) and is
    then moved to ``device``, so a seed gives the same embeddings on every device.
    """
    checks.positive_int("n", n)
    checks.positive_int("d", d)
    checks.generator("generator", generator)
    g = torch.randn(n, d, generator=generator, dtype=dtype, device=generator.device)
    return (g / g.norm(dim=-1, keepdim=True)).to(device)


def correlated_pair(alpha, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Two unit embeddings of ``R^2`` with inner product ``alpha``, shape ``(..., 2, 2)``.

    Rows ``e_0 = (1, 0)`` and ``e_1 = (alpha, sqrt(1 - alpha^2))``. ``alpha`` may be
    a tensor of correlations, giving one pair per entry.
    """
    a = checks.in_range("alpha", checks.real_tensor("alpha", alpha, dtype=dtype, device=device), -1, 1)
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
    checks.shape("p", p, (None,), batch=False)
    checks.probabilities("p", p)
    checks.positive_int("batch_size", batch_size)
    checks.positive_int("steps", steps)
    checks.generator("generator", generator, device="cpu")
    # drawn on the CPU (``generator`` must be a CPU generator), then moved to p's device
    draws = torch.multinomial(p.expand(steps, -1).cpu(), batch_size, replacement=True, generator=generator)
    counts = torch.zeros(steps, p.shape[-1], dtype=p.dtype, device="cpu")
    counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=p.dtype))
    return (counts / batch_size).to(p.device)


def check_problem(E, U, p, targets) -> None:
    """Shapes and values of a problem: ``E (..., N, d)``, ``U (..., M, d')``, ``p (..., N)`` summing to one,
    ``targets (N,)`` long class indices in ``[0, M)``; raises ``ValueError`` naming the argument."""
    checks.shape("E", E, (None, None))
    checks.shape("U", U, (None, None))
    checks.finite_data("E", E)
    checks.finite_data("U", U)
    n, m = E.shape[-2], U.shape[-2]
    checks.shape("p", p, (n,))
    checks.probabilities("p", p)
    check_targets(targets, n, m)


def check_targets(targets, n: int, m: int, name: str = "targets") -> torch.Tensor:
    """``targets``: a long tensor ``(n,)`` of class indices in ``[0, m)``; raises ``ValueError``."""
    if not isinstance(targets, torch.Tensor):
        raise ValueError(f"{name} must be a long tensor of shape ({n},), got {type(targets).__name__}")
    checks.indices(name, targets, m)
    if targets.dtype != torch.long or targets.shape != (n,):
        raise ValueError(f"{name} must be a long tensor of shape ({n},), got {targets.dtype} {tuple(targets.shape)}")
    return targets


def _check_scores(S) -> None:
    checks.shape("S", S, (None, None))
    checks.finite_data("S", S)


def scores(W: torch.Tensor, E: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """Scores ``s(x, y) = e_x^T W u_y``: ``W (..., d, d')`` gives shape ``(..., N, M)``."""
    checks.shape("E", E, (None, None))
    checks.shape("U", U, (None, None))
    checks.shape("W", W, (E.shape[-1], U.shape[-1]))
    for name, t in (("W", W), ("E", E), ("U", U)):
        checks.finite_data(name, t)
    return _scores(W, E, U)


def _scores(W, E, U):
    return E @ W @ U.transpose(-1, -2)


def loss_from_scores(S: torch.Tensor, p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Frequency-weighted cross-entropy of scores ``S (..., N, M)``, shape ``(...)``."""
    _check_scores(S)
    checks.shape("p", p, (S.shape[-2],))
    checks.probabilities("p", p)
    check_targets(targets, S.shape[-2], S.shape[-1])
    return _loss_from_scores(S, p, targets)


def _loss_from_scores(S, p, targets):
    logp = torch.log_softmax(S, dim=-1)
    right = logp.gather(-1, targets.expand(*S.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    return -(p * right).sum(-1)


def loss(W, E, U, p, targets) -> torch.Tensor:
    """The loss ``L(W)`` for ``W (..., d, d')``, shape ``(...)``."""
    check_problem(E, U, p, targets)
    return _loss_from_scores(scores(W, E, U), p, targets)


def residuals(S: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``p_W(z|x) - 1[z = f*(x)]`` for scores ``S (..., N, M)``, same shape."""
    _check_scores(S)
    check_targets(targets, S.shape[-2], S.shape[-1])
    return _residuals(S, targets)


def _residuals(S, targets, one_hot=None):
    """``softmax(S) - onehot(targets)``; a loop passes ``one_hot`` built once."""
    if one_hot is None:
        one_hot = torch.nn.functional.one_hot(targets, S.shape[-1]).to(S.dtype)
    return torch.softmax(S, dim=-1) - one_hot


def gradient(W, E, U, p, targets) -> torch.Tensor:
    """Closed-form gradient ``sum_x p(x) e_x (sum_z (p_W(z|x) - 1[z=f*(x)]) u_z)^T``, shape of ``W``."""
    check_problem(E, U, p, targets)
    R = _residuals(scores(W, E, U), targets)
    return E.transpose(-1, -2) @ (p.unsqueeze(-1) * R) @ U


def margins(S: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Margins ``m(x) = s(x, f*(x)) - max_{y != f*(x)} s(x, y)`` of scores ``S (..., N, M)``, shape ``(..., N)``."""
    _check_scores(S)
    check_targets(targets, S.shape[-2], S.shape[-1])
    if S.shape[-1] < 2:
        raise ValueError(f"S must have at least two classes (last axis) for a margin, got {tuple(S.shape)}")
    return _margins(S, targets)


def _margins(S, targets):
    idx = targets.expand(*S.shape[:-1]).unsqueeze(-1)
    right = S.gather(-1, idx).squeeze(-1)
    wrong = S.scatter(-1, idx, -math.inf).amax(-1)
    return right - wrong


def zero_one_loss(S: torch.Tensor, p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Frequency-weighted error ``sum_x p(x) 1[m(x) <= 0]`` of scores ``S (..., N, M)``, shape ``(...)``."""
    margins(S, targets)  # checks S and targets
    checks.shape("p", p, (S.shape[-2],))
    checks.probabilities("p", p)
    return _zero_one(S, p, targets)


def _zero_one(S, p, targets):
    return (p * (_margins(S, targets) <= 0).to(p.dtype)).sum(-1)


def couplings(E: torch.Tensor, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Theorem 1's constant correlations ``alpha = E E^T (N, N)`` and ``beta = U U^T (M, M)``."""
    for name, t in (("E", E), ("U", U)):
        checks.shape(name, t, (None, None))
        checks.finite_data(name, t)
    return E @ E.transpose(-1, -2), U @ U.transpose(-1, -2)


def _per_step(weights: torch.Tensor, steps: int, n: int) -> torch.Tensor:
    """Frequencies as one row per step: ``(N,)`` is repeated, ``(steps, N)`` is kept."""
    if weights.dim() == 1:
        return weights.expand(steps, n)
    if weights.shape != (steps, n):
        raise ValueError(f"p must have shape ({n},) or (steps, {n}) = ({steps}, {n}), got {tuple(weights.shape)}")
    return weights


def _learning_rate(lr, like: torch.Tensor) -> torch.Tensor:
    lr = checks.in_range("lr", checks.real_tensor("lr", lr, dtype=like.dtype, device=like.device), 0)
    return lr[..., None, None]


def _batched(name: str, start: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """``start (..., a, b)`` expanded to the batch shape it shares with ``others`` (each ``(..., *, *)``)."""
    try:
        batch = torch.broadcast_shapes(*(t.shape[:-2] for t in (start, *others)))
    except RuntimeError as err:
        raise ValueError(f"the batch axes of {name}, lr and the embeddings do not broadcast: {err}") from None
    return start.expand(*batch, *start.shape[-2:])


def descend(W0, E, U, p, targets, *, lr, steps: int) -> torch.Tensor:
    """Gradient descent on ``W``, step by step.

    Parameters
    ----------
    W0 : tensor ``(..., d, d')``
        The start; leading axes are runs.
    E, U : tensor ``(N, d)``, ``(M, d')``
        Input and output embeddings.
    p : tensor ``(N,)`` or ``(steps, N)``
        Token frequencies: full-batch descent, or one row of mini-batch frequencies per step
        (:func:`minibatch_frequencies`).
    targets : long tensor ``(N,)``
        Class of each token.
    lr : float or tensor
        Broadcasts against the batch axes of ``W0`` (one learning rate per run).
    steps : int
        Steps to take.

    Returns
    -------
    tensor ``(steps + 1, ..., d, d')``
        The trajectory ``W_0, ..., W_steps``.
    """
    checks.positive_int("steps", steps)
    checks.shape("E", E, (None, None))
    checks.shape("p", p, (None,))
    n = E.shape[-2]
    rows = _per_step(p, steps, n)
    check_problem(E, U, rows[0], targets)
    checks.probabilities("p", rows)
    checks.shape("W0", W0, (E.shape[-1], U.shape[-1]))
    checks.finite_data("W0", W0)
    eta = _learning_rate(lr, W0)
    W = _batched("W0", W0, eta, E, U)
    out = [W]
    watch = checks.Watch()
    for t in range(steps):
        R = _residuals(_scores(W, E, U), targets)
        W = W - eta * (E.transpose(-1, -2) @ (rows[t].unsqueeze(-1) * R) @ U)
        watch.see(t + 1, W, "matrix W")
        out.append(W)
    watch.check()
    return torch.stack(out)


def evolve_particles(S0, alpha, beta, p, targets, *, lr, steps: int) -> torch.Tensor:
    """Theorem 1's particle system: scores ``S_0, ..., S_steps``, shape ``(steps + 1, ..., N, M)``.

    One step is ``w_{x',y'} <- w_{x',y'} - lr sum_x p(x) alpha_{x,x'} sum_z
    beta_{z,y'} (p(z|x) - 1[z = f*(x)])``, i.e. ``S <- S - lr alpha^T diag(p) R beta``
    with the residuals ``R`` of :func:`residuals`. No matrix ``W`` appears.
    ``p`` and ``lr`` are as in :func:`descend`.
    """
    checks.positive_int("steps", steps)
    checks.shape("S0", S0, (None, None))
    checks.finite_data("S0", S0)
    n, m = S0.shape[-2], S0.shape[-1]
    checks.shape("alpha", alpha, (n, n))
    checks.shape("beta", beta, (m, m))
    checks.finite_data("alpha", alpha)
    checks.finite_data("beta", beta)
    check_targets(targets, n, m)
    checks.shape("p", p, (None,))
    rows = _per_step(p, steps, n)
    checks.probabilities("p", rows)
    eta = _learning_rate(lr, S0)
    S = _batched("S0", S0, eta, alpha, beta)
    out = [S]
    watch = checks.Watch()
    for t in range(steps):
        R = _residuals(S, targets)
        S = S - eta * (alpha.transpose(-1, -2) @ (rows[t].unsqueeze(-1) * R) @ beta)
        watch.see(t + 1, S, "particles")
        out.append(S)
    watch.check()
    return torch.stack(out)


# --- Curvature -------------------------------------------------------------------------------------


def hessian(W, E, U, p, targets) -> torch.Tensor:
    """Closed-form Hessian of ``L`` at ``W (..., d, d')``, shape ``(..., d d', d d')``.

    ``H = sum_x p(x) (e_x e_x^T) kron (U^T (diag(p_W(.|x)) - p_W(.|x) p_W(.|x)^T) U)``: the
    covariance of the output embeddings under ``p_W(.|x)``, one Kronecker block per token.
    Rows and columns index ``W`` flattened row-major (``W[i, j]`` is entry ``i d' + j``).
    ``W``, ``E`` and ``p`` may carry batch axes; ``U`` may not.
    ``targets`` only enters through the problem check: the Hessian of the cross-entropy does not
    depend on the labels.
    """
    check_problem(E, U, p, targets)
    if U.dim() != 2:
        raise ValueError(f"U must have shape (M, d') without batch axes, got {tuple(U.shape)}")
    P = torch.softmax(scores(W, E, U), dim=-1)                                  # (..., N, M)
    mu = P @ U                                                                  # (..., N, d')
    second = torch.einsum("...xz,zj,zl->...xjl", P, U, U)                       # (..., N, d', d')
    cov = second - mu.unsqueeze(-1) * mu.unsqueeze(-2)
    H = torch.einsum("...x,...xi,...xk,...xjl->...ijkl", p, E, E, cov)
    d, dp = W.shape[-2], W.shape[-1]
    return H.reshape(*H.shape[:-4], d * dp, d * dp)


def sharpness(W, E, U, p, targets) -> torch.Tensor:
    """Operator norm (largest eigenvalue) of the Hessian of ``L`` at ``W (..., d, d')``, shape ``(...)``.

    The Hessian is positive semi-definite (the loss is convex in ``W``), so its operator norm is
    its largest eigenvalue.
    """
    return torch.linalg.eigvalsh(hessian(W, E, U, p, targets))[..., -1]


def smoothness(E: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The smoothness constant ``lambda`` of the two-class loss (Proposition 5), shape ``(...)``.

    ``lambda = (1/2) * largest eigenvalue of E^T diag(p) E``, for embeddings ``E (..., N, d)`` and
    frequencies ``p (..., N)``: the loss is ``lambda``-smooth in the plane of ``g``, so gradient
    descent with ``lr < 2 / lambda`` lowers it at every step.
    """
    checks.shape("E", E, (None, None))
    checks.finite_data("E", E)
    checks.shape("p", p, (E.shape[-2],))
    checks.probabilities("p", p)
    return 0.5 * torch.linalg.eigvalsh(E.mT @ (p[..., :, None] * E))[..., -1]


# --- The two-class plane (Section 4.3 of the paper) ------------------------------------------------


def plane_to_matrix(g: torch.Tensor) -> torch.Tensor:
    """``W = (1/2) g (u_0 - u_1)^T`` with ``U = I_2``: ``g (..., d)`` gives ``W (..., d, 2)``.

    With two classes and ``U = I_2``, the margin of token ``x`` is ``s_x e_x . g`` with
    ``s_x = +1`` for class 0 and ``-1`` for class 1, so every statistic of the memory is a
    function of ``g``; gradient descent started in this plane stays in it.
    """
    checks.shape("g", g, (None,))
    checks.finite_data("g", g)
    return torch.stack([g / 2, -g / 2], dim=-1)


def matrix_to_plane(W: torch.Tensor) -> torch.Tensor:
    """``g = W u_0 - W u_1`` with ``U = I_2``: ``W (..., d, 2)`` gives ``g (..., d)``.

    The inverse of :func:`plane_to_matrix` on the plane; off it, the component along
    ``u_0 + u_1`` is dropped (it changes no margin).
    """
    checks.shape("W", W, (None, 2))
    checks.finite_data("W", W)
    return W[..., 0] - W[..., 1]


def plane_grid(g0_range, g1_range, n: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """An ``n x n`` grid of points ``g`` of the plane, shape ``(n, n, 2)``, indexed ``[i1, i0]``.

    Row ``i1`` runs over ``g1`` and column ``i0`` over ``g0``, the layout ``contour`` expects.
    """
    checks.positive_int("n", n)
    for name, pair in (("g0_range", g0_range), ("g1_range", g1_range)):
        if isinstance(pair, str) or not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{name} must be an increasing pair of finite numbers, got {pair!r}")
        lo, hi = (checks.number(name, v) for v in pair)
        if not lo < hi:
            raise ValueError(f"{name} must be an increasing pair of finite numbers, got {pair!r}")
    a0 = torch.linspace(g0_range[0], g0_range[1], n, dtype=dtype, device=device)
    a1 = torch.linspace(g1_range[0], g1_range[1], n, dtype=dtype, device=device)
    G1, G0 = torch.meshgrid(a1, a0, indexing="ij")
    return torch.stack([G0, G1], dim=-1)


LANDSCAPE_FIELDS = ("loss", "zero_one", "sharpness")


def landscape(g: torch.Tensor, E, p, targets, *, fields=("loss", "zero_one")) -> dict[str, torch.Tensor]:
    """Loss, 0-1 loss and Hessian operator norm at points ``g (..., 2)`` of the plane, each ``(...)``.

    ``E (..., N, 2)`` holds the input embeddings (leading axes broadcast against those of ``g``,
    so several problems can be drawn at once), ``U = I_2``. ``fields`` picks among
    ``"loss"``, ``"zero_one"`` and ``"sharpness"`` (the last is the norm of the Hessian in ``W``).
    """
    unknown = set(fields) - set(LANDSCAPE_FIELDS)
    if unknown or isinstance(fields, str) or not fields:
        raise ValueError(f"fields must be among {LANDSCAPE_FIELDS}, got {sorted(unknown)}")
    checks.shape("E", E, (None, 2))
    U = torch.eye(2, dtype=E.dtype, device=E.device)
    W = plane_to_matrix(g)
    check_problem(E, U, p, targets)
    S = _scores(W, E, U)                                                        # (..., N, 2)
    out = {}
    if "loss" in fields:
        out["loss"] = _loss_from_scores(S, p, targets)
    if "zero_one" in fields:
        out["zero_one"] = _zero_one(S, p, targets)
    if "sharpness" in fields:
        out["sharpness"] = sharpness(W, E, U, p, targets)
    return out


# --- Closed forms of Section 4.1 (orthogonal embeddings) -------------------------------------------


def orthogonal_flow_margin(t, p, n_classes: int, *, m0: float = 0.0):
    """Margin ``m(t)`` of a token of frequency ``p`` under gradient flow, orthonormal embeddings.

    With ``M`` orthonormal classes, started with all wrong scores equal (e.g. ``W_0 = 0``), the
    margin obeys ``dm/dt = p M / (e^m + M - 1)``; integrating, ``e^m + (M-1) m = p M t + e^{m0} +
    (M-1) m0 =: z``, inverted with the Lambert function: ``m = z/a - W(e^{z/a} / a)``, ``a = M - 1``
    (for ``M = 2``: ``m = z - W(e^z)``, Theorem 2). ``W(e^y)`` is evaluated as the Wright omega
    function ``omega(y)`` (scipy), which does not overflow for large ``y``, and ``m`` as the equal
    ``log(a omega(z/a - log a))``.
    Returns a float64 numpy array of the broadcast shape of ``t`` and ``p``.
    """
    import numpy as np
    from scipy.special import wrightomega

    checks.positive_int("n_classes", n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    checks.number("m0", m0)
    t = checks.real_tensor("t", t, dtype=torch.float64, device="cpu").numpy()
    p = checks.real_tensor("p", p, dtype=torch.float64, device="cpu").numpy()
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("t must be finite and non-negative")
    if not np.all(np.isfinite(p)) or np.any(p <= 0) or np.any(p > 1):
        raise ValueError("p must lie in (0, 1]")
    a = n_classes - 1
    z = p * n_classes * t + math.exp(m0) + a * m0
    # omega + log(omega) = y, so z/a - omega(y) = log(a omega(y)): no cancellation for large t
    return np.log(a * np.real(wrightomega(z / a - math.log(a))))


def orthogonal_descent_loss_bound(t, p, n_classes: int, lr):
    """Theorem 2's bound on a token's loss after ``t`` steps of GD from ``W_0 = 0``, orthonormal embeddings.

    The margin update ``m <- m + lr p M / (e^m + M - 1)`` and ``e^a >= 1 + a`` give
    ``e^{m_t} >= 1 + lr p t`` for every learning rate, hence
    ``-log p_W(f*(x)|x) = log(1 + (M-1) e^{-m_t}) <= log(1 + (M-1) / (1 + lr p t))``,
    i.e. the loss decays like ``(M-1) / (lr p t)``. Numpy array of the broadcast shape.
    """
    import numpy as np

    checks.positive_int("n_classes", n_classes)
    t, p, lr = (checks.real_tensor(name, v, dtype=torch.float64, device="cpu").numpy()
                for name, v in (("t", t), ("p", p), ("lr", lr)))
    for name, v, low in (("t", t, 0), ("p", p, None), ("lr", lr, None)):
        if not np.all(np.isfinite(v)) or (np.any(v < 0) if low == 0 else np.any(v <= 0)):
            raise ValueError(f"{name} must be finite and {'non-negative' if low == 0 else 'positive'}")
    return np.log1p((n_classes - 1) / (1 + lr * p * t))


def plane_best_zero_one(E, p, targets, *, directions: int = 3600) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest 0-1 loss over the plane, and a direction ``g`` attaining it.

    The 0-1 loss of ``g`` depends only on its direction, so it is minimised over ``directions``
    unit vectors evenly spaced on the circle. ``E (..., N, 2)``; returns the loss ``(...)`` and
    the unit direction ``(..., 2)``.
    """
    checks.shape("E", E, (None, 2))
    checks.positive_int("directions", directions)
    theta = torch.arange(directions, dtype=E.dtype, device=E.device) * (2 * math.pi / directions)
    g = torch.stack([theta.cos(), theta.sin()], -1)                             # (K, 2)
    g = g.reshape(directions, *([1] * (E.dim() - 2)), 2)                        # (K, ..., 2)
    zo = landscape(g, E, p, targets, fields=("zero_one",))["zero_one"]          # (K, ...)
    best, k = zo.min(0)
    return best, g.reshape(directions, 2)[k]


def plane_gradient_hessian(g, E, p, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ``(..., 2)`` and Hessian ``(..., 2, 2)`` of ``g -> L((1/2) g (u_0 - u_1)^T)``.

    The chain rule applied to :func:`gradient` and :func:`hessian` (``U = I_2``): with
    ``c = (1, -1)``, ``dL/dg = (1/2) grad_W L c`` and ``d2L/dg2 = (1/4) (I kron c)^T H_W (I kron c)``.
    """
    checks.shape("E", E, (None, 2))
    U = torch.eye(2, dtype=E.dtype, device=E.device)
    W = plane_to_matrix(g)
    grad = matrix_to_plane(gradient(W, E, U, p, targets)) / 2
    d = g.shape[-1]
    H = hessian(W, E, U, p, targets).reshape(*W.shape[:-2], d, 2, d, 2)
    c = torch.tensor([1.0, -1.0], dtype=E.dtype, device=E.device)
    return grad, torch.einsum("...ijkl,j,l->...ik", H, c, c) / 4


def plane_minimiser(E, p, targets, *, iterations: int = 50, g0=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimiser of the loss on the plane by damped Newton steps, batched over problems ``E (..., N, 2)``.

    Each step solves the 2 x 2 Newton system and halves the step until the loss does not increase.
    Returns ``g (..., 2)`` and the final gradient norm ``(...)``: a norm that is not small means no
    finite minimiser was reached (separable data, where the loss decreases to zero at infinity).
    """
    checks.shape("E", E, (None, 2))
    checks.positive_int("iterations", iterations)
    batch = E.shape[:-2]
    if g0 is not None:
        checks.shape("g0", g0, (2,))
        checks.finite_data("g0", g0)
    g = torch.zeros(*batch, 2, dtype=E.dtype, device=E.device) if g0 is None else g0.expand(*batch, 2).clone()
    U = torch.eye(2, dtype=E.dtype, device=E.device)

    def objective(h):
        return loss(plane_to_matrix(h), E, U, p, targets)

    for _ in range(iterations):
        grad, H = plane_gradient_hessian(g, E, p, targets)
        ridge = 1e-12 * torch.eye(2, dtype=E.dtype, device=E.device)
        step = torch.linalg.solve(H + ridge, grad.unsqueeze(-1)).squeeze(-1)
        t = torch.ones(batch, dtype=E.dtype, device=E.device)
        current = objective(g)
        for _ in range(30):  # backtracking, batched: shrink the step where the loss went up
            worse = objective(g - t[..., None] * step) > current
            if not bool(worse.any()):
                break
            t = torch.where(worse, t / 2, t)
        g = g - t[..., None] * step
    grad, _ = plane_gradient_hessian(g, E, p, targets)
    return g, grad.norm(dim=-1)
