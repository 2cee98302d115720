"""The von Mises-Fisher dense associative memory of Theriault and Tantari, copying and splitting.

Data ``x`` lie on the unit sphere of ``R^N`` (see :func:`damlib.data.centre_and_normalise`),
labels ``y`` in ``[C]``. A model holds ``P`` memories ``w^mu`` on the sphere, non-negative class
weights ``g_y^mu`` (``sum_{mu, y} g_y^mu = 1``, stored as logits ``a`` with
``g = softmax(a)`` over all ``P*C`` entries) and an inverse temperature ``beta``:

    P(x, y | w, g) = sum_mu g_y^mu exp(beta w^mu . x) / Z(beta),

a mixture of von Mises-Fisher densities that all share the normaliser ``Z(beta)``
(:func:`log_normaliser`). The loss is the cross-entropy of the class posterior
``P(y | x) = P(x, y) / sum_y' P(x, y')`` against label-smoothed targets; ``Z`` cancels there,
and enters only the joint likelihood (:func:`log_likelihood`).

Shapes: ``w`` is ``(..., P, N)``, ``logits`` ``(..., P, C)``, ``beta`` ``(...)``; the leading axes
are a batch of independent models (a sweep over ``beta`` or seeds is one call). Data ``x`` is
``(n, N)`` and ``y`` ``(n,)``, shared by every model of the batch.

The closed forms used throughout (``T_{x mu y} = log g_y^mu + beta w^mu . x``):

- joint responsibility ``R_{x mu y} = softmax_{mu, y} T``, class responsibility
  ``R^y_{x mu} = softmax_mu T_{x . y}``;
- ``dL/dT_{x mu y} = (R_{x mu y} - q_y(x) R^y_{x mu}) / n`` with ``q`` the smoothed target;
- the residual of memory ``mu`` on ``x``: ``c_{x mu} = sum_y dL/dT_{x mu y}``, so that the Euclidean
  gradient is ``beta sum_x c_{x mu} x`` and the logit gradient ``sum_x dL/dT``.

Copying memory ``mu`` with half its class weights on each copy leaves ``P(x, y)`` unchanged and
halves the gradient of both copies, so a stationary point stays stationary (:func:`copy_memories`).
Moving the two copies apart, ``w +- delta``, changes the loss at second order by
``delta^T S_mu delta / 2`` with the splitting matrix (:func:`splitting_matrix`)

    S_mu = beta^2 sum_x c_{x mu} x x^T - beta (sum_x c_{x mu} w^mu . x) I   (on the tangent space),

so the copied point is a saddle as soon as some ``S_mu`` has a negative eigenvalue.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.special
import torch

from . import checks
from .progress import bar

LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------------------------
# The normaliser


def _log_bessel_debye(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``log I_nu(x)`` by the uniform (Debye) expansion in ``1/nu``, three correction terms.

    Relative error about ``u_4 / nu^4``: below ``1e-10`` for ``nu >= 100``.
    """
    z = x / nu
    root = np.sqrt(1 + z * z)
    t = 1 / root
    eta = root + np.log(z / (1 + root))
    u1 = t * (3 - 5 * t**2) / 24
    u2 = t**2 * (81 - 462 * t**2 + 385 * t**4) / 1152
    u3 = t**3 * (30375 - 369603 * t**2 + 765765 * t**4 - 425425 * t**6) / 414720
    series = 1 + u1 / nu + u2 / nu**2 + u3 / nu**3
    return nu * eta - 0.5 * np.log(2 * np.pi * nu) - 0.5 * np.log(root) + np.log(series)


def log_bessel_i(nu: float, x) -> np.ndarray:
    """``log I_nu(x)`` for ``x > 0``, from ``scipy.special.ive`` (``I_nu(x) e^{-x}``).

    Where ``ive`` underflows (large ``nu``, small ``x``: for ``nu = 391``, any ``x`` below about
    40) the uniform asymptotic expansion takes over; there ``nu`` is large and it is accurate.
    """
    x = np.asarray(x, dtype=np.float64)
    if np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("x must be finite and positive for log I_nu(x)")
    checks.positive("nu", nu, allow_zero=True)
    scaled = scipy.special.ive(nu, x)
    out = np.empty_like(x)
    ok = scaled > 1e-250
    out[ok] = np.log(scaled[ok]) + x[ok]
    if np.any(~ok):
        if nu < 20:
            raise ValueError(f"log I_nu(x) underflows for nu={nu} at x={x[~ok].min()}")
        out[~ok] = _log_bessel_debye(float(nu), x[~ok])
    return out


def log_normaliser(beta, n_features: int) -> torch.Tensor:
    """``log Z(beta)``: the log normaliser of the von Mises-Fisher density on the sphere of ``R^N``.

    ``Z(beta) = int_{S^{N-1}} exp(beta w . x) dx = (2 pi)^{N/2} I_{N/2-1}(beta) / beta^{N/2-1}``
    (surface measure), independent of the unit vector ``w``. ``beta`` is a positive number or a
    tensor of them (any shape; the result has the same shape, float64).
    """
    checks.positive_int("n_features", n_features)
    if n_features < 2:
        raise ValueError(f"n_features must be at least 2 (a sphere), got {n_features}")
    b = torch.as_tensor(beta, dtype=torch.float64)
    arr = b.detach().cpu().numpy()
    if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"beta must be finite and positive, got {beta!r}")
    nu = n_features / 2 - 1
    log_z = 0.5 * n_features * np.log(2 * np.pi) + log_bessel_i(nu, arr) - nu * np.log(arr)
    return torch.as_tensor(log_z, dtype=torch.float64, device=b.device)


# ----------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class DAM:
    """A batch of dense associative memories: ``w (..., P, N)``, ``logits (..., P, C)``, ``beta (...)``."""

    w: torch.Tensor
    logits: torch.Tensor
    beta: torch.Tensor

    def __post_init__(self):
        checks.shape("w", self.w, (None, None))
        checks.shape("logits", self.logits, (self.w.shape[-2], None))
        if self.logits.shape[:-2] != self.w.shape[:-2]:
            raise ValueError(
                f"logits must have the batch shape of w {tuple(self.w.shape[:-2])}, "
                f"got {tuple(self.logits.shape[:-2])}"
            )
        if not isinstance(self.beta, torch.Tensor) or self.beta.shape != self.w.shape[:-2]:
            raise ValueError(f"beta must be a tensor of the batch shape {tuple(self.w.shape[:-2])}")
        if not bool((self.beta > 0).all()) or not bool(torch.isfinite(self.beta).all()):
            raise ValueError("beta must be finite and positive")

    @property
    def n_memories(self) -> int:
        return self.w.shape[-2]

    @property
    def n_classes(self) -> int:
        return self.logits.shape[-1]

    @property
    def class_weights(self) -> torch.Tensor:
        """``g`` of shape ``(..., P, C)``, non-negative, summing to one over ``(P, C)``."""
        flat = self.logits.flatten(-2).softmax(-1)
        return flat.reshape(self.logits.shape)

    def to(self, *args, **kwargs) -> DAM:
        return DAM(self.w.to(*args, **kwargs), self.logits.to(*args, **kwargs), self.beta.to(*args, **kwargs))


def _normalise(w: torch.Tensor) -> torch.Tensor:
    return w / w.norm(dim=-1, keepdim=True)


def make_model(w: torch.Tensor, labels: torch.Tensor, n_classes: int, beta, *, purity: float = 1.0) -> DAM:
    """A model whose memory ``mu`` starts at ``w[mu]`` (normalised), class weight mostly on ``labels[mu]``.

    ``labels`` has shape ``(..., P)``; a fraction ``purity`` of each memory's weight is on its label,
    the rest spread over the other classes (so that every logit is finite). ``beta`` is a number or a
    tensor of the batch shape.
    """
    checks.shape("w", w, (None, None))
    checks.positive_int("n_classes", n_classes)
    if not 0 < purity <= 1:
        raise ValueError(f"purity must lie in (0, 1], got {purity!r}")
    if labels.shape != w.shape[:-1]:
        raise ValueError(f"labels must have shape {tuple(w.shape[:-1])}, got {tuple(labels.shape)}")
    if bool((labels < 0).any()) or bool((labels >= n_classes).any()):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    if bool((w.norm(dim=-1) == 0).any()):
        raise ValueError("w has a zero row, which cannot be normalised to the sphere")
    if purity == 1 and bool((torch.nn.functional.one_hot(labels, n_classes).sum(-2) == 0).any()):
        raise ValueError("labels must give every class at least one memory when purity = 1")
    other = (1 - purity) / max(n_classes - 1, 1)
    g = torch.full((*labels.shape, n_classes), other, dtype=w.dtype, device=w.device)
    g.scatter_(-1, labels.unsqueeze(-1), purity)  # log 0 = -inf where purity = 1
    beta = torch.as_tensor(beta, dtype=w.dtype, device=w.device).expand(w.shape[:-2]).clone()
    return DAM(_normalise(w), g.log(), beta)


def init_from_data(
    x: torch.Tensor,
    y: torch.Tensor,
    n_memories: int,
    n_classes: int,
    beta,
    *,
    generator: torch.Generator,
    batch: tuple[int, ...] = (),
) -> DAM:
    """Memories started at training points, class by class: memory ``mu`` is a random point of class
    ``mu mod C`` (drawn without replacement; an independent draw for each model of the batch).

    ``batch`` gives leading batch axes; ``beta`` a number or a tensor of that shape.
    """
    checks.positive_int("n_memories", n_memories)
    checks.positive_int("n_classes", n_classes)
    checks.shape("x", x, (None,))
    labels = torch.arange(n_memories) % n_classes
    by_class = [torch.nonzero(y.cpu() == k).flatten() for k in range(n_classes)]
    need = [(labels == k).sum().item() for k in range(n_classes)]
    for k in range(n_classes):
        if need[k] > len(by_class[k]):
            raise ValueError(
                f"n_memories={n_memories} needs {need[k]} points of class {k}, the data has "
                f"{len(by_class[k])}"
            )
    runs = int(np.prod(batch)) if batch else 1
    idx = torch.empty(runs, n_memories, dtype=torch.long)
    for r in range(runs):  # index bookkeeping only, no computation
        for k in range(n_classes):
            pick = torch.randperm(len(by_class[k]), generator=generator, device=generator.device)[: need[k]]
            idx[r, labels == k] = by_class[k][pick.cpu()]
    idx = idx.to(x.device).reshape(*batch, n_memories)
    return make_model(x[idx], y[idx], n_classes, beta)


def _check_data(model: DAM, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    checks.shape("x", x, (model.w.shape[-1],))
    if x.dim() != 2:
        raise ValueError(f"x must have shape (n, {model.w.shape[-1]}), got {tuple(x.shape)}")
    if y is not None:
        if y.shape != x.shape[:1]:
            raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
        if bool((y < 0).any()) or bool((y >= model.n_classes).any()):
            raise ValueError(f"y must hold labels in [0, {model.n_classes})")


def log_terms(model: DAM, x: torch.Tensor) -> torch.Tensor:
    """``T_{x mu y} = log g_y^mu + beta w^mu . x`` of shape ``(..., n, P, C)``."""
    _check_data(model, x)
    log_g = model.logits - model.logits.flatten(-2).logsumexp(-1)[..., None, None]
    h = torch.einsum("...pd,nd->...np", model.w, x)
    return log_g.unsqueeze(-3) + (model.beta[..., None, None] * h).unsqueeze(-1)


def _mixture(model: DAM, x: torch.Tensor):
    """``E = exp(beta h - m) (..., n, P)``, ``G (..., P, C)``, ``F = E G (..., n, C)``, shift ``m (..., n)``.

    ``P(x, y) Z(beta) = exp(m) F``: every sum over memories is a matrix product, no ``(n, P, C)``
    tensor is formed. The shift ``m = max_mu beta h`` keeps the exponentials in range; a class whose
    memories all lie more than about ``80 / beta`` below the best overlap underflows in float32
    (use float64 for ``beta`` beyond about 40).
    """
    _check_data(model, x)
    h = torch.einsum("...pd,nd->...np", model.w, x)
    s = model.beta[..., None, None] * h
    m = s.amax(-1)
    E = (s - m.unsqueeze(-1)).exp()
    G = model.class_weights
    return E, G, E @ G, m


def class_log_posterior(model: DAM, x: torch.Tensor) -> torch.Tensor:
    """``log P(y | x)`` of shape ``(..., n, C)``."""
    _, _, F, _ = _mixture(model, x)
    return F.log() - F.sum(-1, keepdim=True).log()


def log_likelihood(model: DAM, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean joint log-likelihood ``(1/n) sum log P(x, y)`` (density on sphere x classes), shape ``(...)``."""
    _check_data(model, x, y)
    _, _, F, m = _mixture(model, x)
    picked = F.gather(-1, y.expand(*F.shape[:-1]).unsqueeze(-1)).squeeze(-1).log() + m
    log_z = log_normaliser(model.beta.detach(), x.shape[-1]).to(picked)
    return picked.mean(-1) - log_z


def targets(y: torch.Tensor, n_classes: int, smoothing: float, dtype=torch.float64) -> torch.Tensor:
    """Label-smoothed targets ``q = (1 - s) onehot(y) + s / C``, shape ``(n, C)``."""
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must lie in [0, 1), got {smoothing!r}")
    q = torch.full((len(y), n_classes), smoothing / n_classes, dtype=dtype, device=y.device)
    q.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(q[:, :1], 1 - smoothing))
    return q


def loss(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1) -> torch.Tensor:
    """Cross-entropy of the class posterior against smoothed targets, mean over data, shape ``(...)``."""
    _check_data(model, x, y)
    q = targets(y, model.n_classes, smoothing, model.w.dtype)
    return -(q * class_log_posterior(model, x)).sum(-1).mean(-1)


def accuracy(model: DAM, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of ``x`` whose most probable class is ``y``, shape ``(...)``."""
    _check_data(model, x, y)
    return (class_log_posterior(model, x).argmax(-1) == y).to(model.w.dtype).mean(-1)


def _score_parts(model: DAM, x: torch.Tensor, y: torch.Tensor, smoothing: float):
    """``(E, G, V)``: ``dL/dT_{x mu y} = E_{x mu} G_{mu y} V_{x y}``, ``V = (1/Z_x - q_{xy}/F_{xy}) / n``."""
    E, G, F, _ = _mixture(model, x)
    q = targets(y, model.n_classes, smoothing, F.dtype)
    V = (1 / F.sum(-1, keepdim=True) - q / F) / len(x)
    return E, G, V


def _score_grad(model: DAM, x: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """``dL/dT`` of shape ``(..., n, P, C)`` (forms the full tensor: for tests and small models)."""
    E, G, V = _score_parts(model, x, y, smoothing)
    return E.unsqueeze(-1) * G.unsqueeze(-3) * V.unsqueeze(-2)


def residuals(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1) -> torch.Tensor:
    """The residuals ``c_{x mu} = sum_y dL/dT_{x mu y}`` of shape ``(..., n, P)`` (they carry the ``1/n``)."""
    _check_data(model, x, y)
    E, G, V = _score_parts(model, x, y, smoothing)
    return E * (V @ G.transpose(-1, -2))


def _finite_part(logits: torch.Tensor) -> torch.Tensor:
    """Logits with the ``-inf`` of absent classes (g = 0) set to 0, for divergence checks."""
    return torch.where(torch.isneginf(logits), torch.zeros_like(logits), logits)


def project(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v`` projected on the tangent space of the sphere at ``w``: ``v - (v . w) w`` (rows)."""
    return v - (v * w).sum(-1, keepdim=True) * w


def gradient(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1):
    """Riemannian gradient of :func:`loss`: ``(grad_w (..., P, N), grad_logits (..., P, C))``.

    ``grad_w`` is the Euclidean gradient ``beta sum_x c_{x mu} x`` projected on the tangent space of
    each memory; ``grad_logits`` is the plain gradient in the logits.
    """
    _check_data(model, x, y)
    E, G, V = _score_parts(model, x, y, smoothing)
    c = E * (V @ G.transpose(-1, -2))  # (..., n, P)
    euclid = model.beta[..., None, None] * torch.einsum("...np,nd->...pd", c, x)
    return project(model.w, euclid), G * (E.transpose(-1, -2) @ V)


def gradient_scale(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1) -> torch.Tensor:
    """``sum_x |grad of the x-th term|``: the size of the terms that cancel in a zero gradient, ``(...)``.

    A stationary point's gradient is a sum of ``n`` non-zero terms; float round-off leaves about
    ``1e-16`` times this. Dividing a gradient norm by it gives a relative size.
    """
    _check_data(model, x, y)
    E, G, V = _score_parts(model, x, y, smoothing)
    c = E * (V @ G.transpose(-1, -2))  # (..., n, P)
    # |tangent part of beta c x| per (x, mu): beta |c| sqrt(1 - h^2)
    h = torch.einsum("...pd,nd->...np", model.w, x)
    per_w = model.beta[..., None, None] * c.abs() * (1 - h**2).clamp_min(0).sqrt()
    per_logit = E**2 * (V**2 @ (G**2).transpose(-1, -2))  # sum_y (dL/dT)^2
    per_term = (per_w**2).sum(-1) + per_logit.sum(-1)
    return per_term.sqrt().sum(-1)


def gradient_norm(grads) -> torch.Tensor:
    """Norm of a ``(grad_w, grad_logits)`` pair over each model, shape ``(...)``."""
    gw, ga = grads
    return (gw.pow(2).sum((-2, -1)) + ga.pow(2).sum((-2, -1))).sqrt()


# ----------------------------------------------------------------------------------------------
# Training


@dataclass
class History:
    """Checkpoints of a run: step, training wall time (s, evaluation excluded), loss, test accuracy, and
    work: the number of memory-digit pairs the run has evaluated so far (a step on ``n`` digits with ``P``
    memories adds ``n P``; each pair costs ``O(N)`` flops), a count of compute that does not depend on
    the machine."""

    step: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    work: list = field(default_factory=list)


def train(
    model: DAM,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    lr_logits: float | None = None,
    batch_size: int | None = None,
    smoothing: float = 0.1,
    generator: torch.Generator | None = None,
    eval_every: int | None = None,
    eval_data=None,
    history: History | None = None,
    clock: float = 0.0,
    work: int = 0,
    first_step: int = 0,
    progress: bool | None = None,
) -> DAM:
    """Riemannian Adam on every model of the batch at once; returns the trained model.

    Each step: the tangent gradient of a mini-batch (the same indices for every model), Adam's
    moment estimates, the step projected on the tangent space, then every memory renormalised.
    Logits take a plain Adam step with ``lr_logits`` (default ``lr``). With ``eval_every`` and
    ``eval_data = (x_test, y_test)``, appends ``(step, wall time, loss, test accuracy, work)`` to
    ``history`` (wall time counts training only and starts at ``clock``, work at ``work``; steps are
    counted from ``first_step``). Raises
    :class:`~damlib.checks.DivergenceError` at the first non-finite step.
    """
    checks.positive_int("steps", steps)
    checks.positive("lr", lr)
    lr_logits = checks.positive("lr_logits", lr if lr_logits is None else lr_logits)
    _check_data(model, x, y)
    if batch_size is not None:
        checks.positive_int("batch_size", batch_size)
        if generator is None:
            raise ValueError("generator is required with batch_size (mini-batches are drawn from it)")
    if eval_every is not None and (eval_data is None or history is None):
        raise ValueError("eval_every needs eval_data=(x_test, y_test) and a History to fill")
    b1, b2, eps = 0.9, 0.999, 1e-8
    w, a = model.w.clone(), model.logits.clone()
    mw, vw, ma, va = (torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(a), torch.zeros_like(a))

    per_step = model.w.shape[-2] * (batch_size if batch_size is not None and batch_size < len(x) else len(x))

    def record(t, cur):
        xt, yt = eval_data
        history.step.append(first_step + t)
        history.seconds.append(clock + elapsed)
        history.work.append(work + t * per_step)
        history.loss.append(loss(cur, x, y, smoothing=smoothing).detach().cpu())
        history.accuracy.append(accuracy(cur, xt, yt).detach().cpu())

    elapsed, start = 0.0, time.perf_counter()
    for t in bar(range(1, steps + 1), progress=progress):
        if batch_size is not None and batch_size < len(x):
            idx = torch.randint(len(x), (batch_size,), generator=generator, device=generator.device).to(
                x.device
            )
            xb, yb = x[idx], y[idx]
        else:
            xb, yb = x, y
        gw, ga = gradient(DAM(w, a, model.beta), xb, yb, smoothing=smoothing)
        mw.mul_(b1).add_(gw, alpha=1 - b1)
        vw.mul_(b2).addcmul_(gw, gw, value=1 - b2)
        ma.mul_(b1).add_(ga, alpha=1 - b1)
        va.mul_(b2).addcmul_(ga, ga, value=1 - b2)
        c1, c2 = 1 - b1**t, 1 - b2**t
        step_w = project(w, (mw / c1) / ((vw / c2).sqrt() + eps))
        w = _normalise(w - lr * step_w)
        a = a - lr_logits * (ma / c1) / ((va / c2).sqrt() + eps)
        if eval_every is not None and (t % eval_every == 0 or t == steps):
            elapsed += time.perf_counter() - start
            checks.finite(t, w, "memories")
            checks.finite(t, _finite_part(a), "class logits")
            record(t, DAM(w, a, model.beta))
            start = time.perf_counter()
    checks.finite(steps, w, "memories")
    checks.finite(steps, _finite_part(a), "class logits")
    return DAM(w, a, model.beta)


def polish(
    model: DAM,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    smoothing: float = 0.1,
    max_iter: int = 2000,
    tolerance: float = 1e-15,
) -> DAM:
    """Drive one model (no batch axes) to a stationary point with L-BFGS in its own dtype.

    The memories are parametrised as ``w = v / |v|`` with ``v`` free, so a zero gradient in ``v``
    is a zero Riemannian gradient. Used to reach a stationary point to round-off (in float64).
    """
    if model.w.dim() != 2:
        raise ValueError(f"polish takes a single model (w of shape (P, N)), got {tuple(model.w.shape)}")
    checks.positive_int("max_iter", max_iter)
    _check_data(model, x, y)
    v = model.w.clone().requires_grad_(True)
    a = model.logits.clone().requires_grad_(True)
    for search, iters in (("strong_wolfe", max_iter), (None, max_iter // 4 + 1)):
        # The line search compares losses, which round-off blurs once the gradient is ~1e-8; the
        # second pass takes unit quasi-Newton steps, which only need the gradient.
        opt = torch.optim.LBFGS(
            [v, a],
            lr=1,
            max_iter=iters,
            history_size=100,
            tolerance_grad=tolerance,
            tolerance_change=0,
            line_search_fn=search,
        )

        def closure(opt=opt):
            opt.zero_grad()
            value = loss(DAM(_normalise(v), a, model.beta), x, y, smoothing=smoothing)
            value.backward()
            a.grad = _finite_part(a.grad)
            return value

        opt.step(closure)
    checks.finite(max_iter, v.detach(), "memories")
    return DAM(_normalise(v.detach()), a.detach(), model.beta)


def newton_polish(
    model: DAM,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    smoothing: float = 0.1,
    steps: int = 4,
    cg_iters: int = 300,
) -> DAM:
    """Newton-CG refinement of one model near a minimum: a few Newton steps, each solved by conjugate
    gradients with autograd Hessian-vector products (in ``w = v / |v|`` and the finite logits).

    Only the gradient enters the stopping rules, so it reaches round-off where a line search on the
    loss cannot. Start it from :func:`polish`; near a saddle the Newton step is not a descent step.
    """
    if model.w.dim() != 2:
        raise ValueError(
            f"newton_polish takes a single model (w of shape (P, N)), got {tuple(model.w.shape)}"
        )
    checks.positive_int("steps", steps)
    checks.positive_int("cg_iters", cg_iters)
    _check_data(model, x, y)
    free = torch.isfinite(model.logits).flatten()
    embed = torch.eye(free.numel(), dtype=model.w.dtype, device=model.w.device)[:, free]
    n_w = model.w.numel()

    def f(theta):
        v = theta[:n_w].reshape(model.w.shape)
        shift = (embed @ theta[n_w:]).reshape(model.logits.shape)
        base = torch.where(torch.isfinite(model.logits), torch.zeros_like(model.logits), model.logits)
        return loss(DAM(_normalise(v), base + shift, model.beta), x, y, smoothing=smoothing)

    theta = torch.cat([model.w.flatten(), _finite_part(model.logits).flatten()[free]])
    grad = torch.func.grad(f)
    for _ in range(steps):
        g = grad(theta)
        # conjugate gradients on H d = -g
        d = torch.zeros_like(theta)
        r = -g
        p = r.clone()
        rr = r @ r
        for _ in range(cg_iters):
            hp = torch.func.jvp(grad, (theta,), (p,))[1]
            curv = p @ hp
            if curv <= 0:
                break
            alpha = rr / curv
            d = d + alpha * p
            r = r - alpha * hp
            rr_new = r @ r
            if rr_new.sqrt() < 1e-15 * g.norm():
                break
            p = r + (rr_new / rr) * p
            rr = rr_new
        theta = theta + d
    checks.finite(steps, theta, "parameters")
    v = theta[:n_w].reshape(model.w.shape)
    base = torch.where(torch.isfinite(model.logits), torch.zeros_like(model.logits), model.logits)
    return DAM(_normalise(v), base + (embed @ theta[n_w:]).reshape(model.logits.shape), model.beta)


# ----------------------------------------------------------------------------------------------
# Copying and splitting


def _check_index(model: DAM, index) -> torch.Tensor:
    idx = torch.as_tensor(index, dtype=torch.long, device=model.w.device).flatten()
    if idx.numel() == 0:
        raise ValueError("index must name at least one memory")
    if bool((idx < 0).any()) or bool((idx >= model.n_memories).any()):
        raise ValueError(f"index must hold memories in [0, {model.n_memories}), got {idx.tolist()}")
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
    c = residuals(model, x, y, smoothing=smoothing)  # (..., n, P)
    beta = model.beta[..., None, None, None]
    h = torch.einsum("...pd,nd->...np", model.w, x)
    lam = (c * h).sum(-2)[..., None, None] * model.beta[..., None, None, None]
    S = beta**2 * torch.einsum("...np,ni,nj->...pij", c, x, x)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    S = S - lam * eye
    proj = eye - model.w.unsqueeze(-1) * model.w.unsqueeze(-2)
    return proj @ S @ proj


def splitting_eigen(
    model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1, vectors: bool = True
):
    """Smallest tangent eigenvalue of each ``S_mu`` and its eigenvector: ``((..., P), (..., P, N))``.

    The normal direction (eigenvalue 0 of the projected matrix) is moved out of the way first. With
    ``vectors=False`` only the eigenvalues are computed (faster) and the second item is ``None``.
    """
    S = splitting_matrix(model, x, y, smoothing=smoothing)
    shift = S.abs().sum(-1).amax(-1)[..., None, None] + 1.0  # beyond the spectrum
    S = S + shift * model.w.unsqueeze(-1) * model.w.unsqueeze(-2)
    if not vectors:
        return torch.linalg.eigvalsh(S)[..., 0], None
    vals, vecs = torch.linalg.eigh(S)
    return vals[..., 0], vecs[..., :, 0]


def splitting_apply(model: DAM, c: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``S_mu v_mu`` for tangent vectors ``v (..., P, N)``, given the residuals ``c (..., n, P)``."""
    beta = model.beta[..., None, None]
    h = torch.einsum("...pd,nd->...np", model.w, x)
    lam = beta * (c * h).sum(-2).unsqueeze(-1)
    proj_v = torch.einsum("...np,nd->...pd", c * torch.einsum("...pd,nd->...np", v, x), x)
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
    c = residuals(model, x, y, smoothing=smoothing)
    beta = model.beta[..., None]
    # upper bound of |S|: beta^2 sum |c| |x|^2 + |lambda|
    h = torch.einsum("...pd,nd->...np", model.w, x)
    bound = beta**2 * c.abs().sum(-2) + (beta * (c * h).sum(-2)).abs()
    v = torch.randn(
        model.w.shape,
        generator=generator,
        dtype=model.w.dtype,
        device=generator.device if generator is not None else model.w.device,
    ).to(model.w.device)
    v = _normalise(project(model.w, v))
    for _ in range(iters):
        v = bound.unsqueeze(-1) * v - splitting_apply(model, c, x, v)
        v = _normalise(project(model.w, v))
    val = (v * splitting_apply(model, c, x, v)).sum(-1)
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
) -> tuple[DAM, History, list]:
    """Splitting steepest descent (Wu et al. 2019) for one model: train, split, retrain, up to ``p_max``.

    Train ``stage_steps``; then split the ``min(P, p_max - P)`` memories of most negative splitting
    eigenvalue (:func:`splitting_directions` on ``split_batch`` digits) along their eigenvectors by
    ``eps``, and train again; once ``P = p_max``, train until ``total_steps`` steps in all. Adam's
    moments restart after each split. Returns the model, its :class:`History` (wall time and work include
    the eigenvector computations, counted as ``split_iters`` passes over the ``split_batch`` digits;
    evaluation is excluded) and the steps at which it split.
    """
    for name, value in (("p_max", p_max), ("stage_steps", stage_steps), ("total_steps", total_steps)):
        checks.positive_int(name, value)
    if model.w.dim() != 2:
        raise ValueError(
            f"grow_by_splitting takes a single model (w of shape (P, N)), got {tuple(model.w.shape)}"
        )
    if p_max < model.n_memories:
        raise ValueError(f"p_max must be at least the {model.n_memories} starting memories, got {p_max}")
    checks.positive("eps", eps)
    history, splits, step, clock, work = History(), [], 0, 0.0, 0
    opts = dict(
        lr=lr,
        batch_size=batch_size,
        smoothing=smoothing,
        generator=generator,
        eval_every=eval_every,
        eval_data=eval_data,
        history=history,
    )
    while True:
        last = model.n_memories >= p_max
        n_steps = total_steps - step if last else min(stage_steps, total_steps - step)
        if n_steps <= 0:
            break
        model = train(model, x, y, steps=n_steps, clock=clock, work=work, first_step=step, **opts)
        step += n_steps
        clock, work = history.seconds[-1], history.work[-1]
        if last or step >= total_steps:
            break
        start = time.perf_counter()
        if split_batch is not None and split_batch < len(x):
            idx = torch.randperm(len(x), generator=generator, device=generator.device)[:split_batch].to(
                x.device
            )
            xs, ys = x[idx], y[idx]
        else:
            xs, ys = x, y
        vals, dirs = splitting_directions(
            model, xs, ys, smoothing=smoothing, iters=split_iters, generator=generator
        )
        k = min(model.n_memories, p_max - model.n_memories)
        chosen = vals.argsort()[:k]
        work += split_iters * len(xs) * model.n_memories
        model = split_memories(model, chosen, dirs[chosen], eps=eps)
        clock += time.perf_counter() - start
        splits.append(step)
    return model, history, splits


def smoothed_accuracy(history: History, window: int = 1) -> np.ndarray:
    """Test accuracy of a single run averaged over ``window`` consecutive checkpoints: ``(len - window + 1,)``;
    entry ``i`` belongs to checkpoint ``i + window - 1``."""
    checks.positive_int("window", window)
    acc = np.array([float(a) for a in history.accuracy])
    if len(acc) < window:
        raise ValueError(f"window={window} is longer than the history's {len(acc)} checkpoints")
    return np.convolve(acc, np.ones(window) / window, mode="valid")


def time_to_reach(history: History, target: float, *, window: int = 1, measure: str = "seconds") -> float:
    """The ``measure`` (``"seconds"``, ``"work"`` or ``"step"``) of the first checkpoint whose accuracy,
    averaged over ``window`` checkpoints ending there, reaches ``target``; ``nan`` if none does."""
    if measure not in ("seconds", "work", "step"):
        raise ValueError(f"measure must be 'seconds', 'work' or 'step', got {measure!r}")
    hit = np.flatnonzero(smoothed_accuracy(history, window) >= target - 1e-9)
    return float(getattr(history, measure)[hit[0] + window - 1]) if len(hit) else float("nan")


def saddle_point_iteration(
    model: DAM, x: torch.Tensor, y: torch.Tensor, *, max_iter: int = 500, tol: float = 1e-12
) -> tuple[DAM, list]:
    """Iterate the saddle-point equations of the slides with every training digit its own archetype.

    With ``sigma_{x mu}`` the responsibility of memory ``mu`` for digit ``x`` given its label
    (softmax over ``mu`` of ``beta w^mu . x + log g^mu_{y_x}``):

        xbar^mu = (1/n) sum_x sigma_{x mu} x,    ybar^mu_y = (1/n) sum_x 1[y_x = y] sigma_{x mu},
        w^mu = xbar^mu / |xbar^mu|,              g^mu_y = ybar^mu_y,

    the overlap factor of the slides taken as 1 (a point estimate). Its fixed points are the stationary
    points of the joint log-likelihood. Returns the model at the fixed point and the largest change of a
    memory per iteration. Stops when the change is below ``tol``.
    """
    checks.positive_int("max_iter", max_iter)
    checks.positive("tol", tol)
    _check_data(model, x, y)
    if model.w.dim() != 2:
        raise ValueError(
            f"saddle_point_iteration takes a single model (w of shape (P, N)), got {tuple(model.w.shape)}"
        )
    onehot = torch.nn.functional.one_hot(y, model.n_classes).to(x.dtype)  # (n, C)
    w, g = model.w, model.class_weights
    changes = []
    for it in range(max_iter):
        s = model.beta * (x @ w.T)  # (n, P)
        log_g = torch.where(g > 0, g, torch.ones_like(g)).log().masked_fill(g <= 0, float("-inf"))
        sigma = (s + log_g.T[y]).softmax(-1)  # (n, P)
        xbar = sigma.T @ x / len(x)
        new_w = _normalise(xbar)
        g = (sigma.T @ onehot) / len(x)  # ybar, sums to 1
        changes.append((new_w - w).norm(dim=-1).max().item())
        w = new_w
        checks.finite(it + 1, w, "memories")
        if changes[-1] < tol:
            break
    logits = torch.where(g > 0, g, torch.ones_like(g)).log().masked_fill(g <= 0, float("-inf"))
    return DAM(w, logits, model.beta), changes


def mean_overlap_factor(kappa, n_features: int) -> np.ndarray:
    """``I_{N/2}(kappa) / I_{N/2-1}(kappa)``: mean overlap of a vMF sample with its mean direction."""
    checks.positive_int("n_features", n_features)
    nu = n_features / 2 - 1
    k = np.asarray(kappa, dtype=np.float64)
    return np.exp(log_bessel_i(nu + 1, k) - log_bessel_i(nu, k))


def tangent_hessian(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1):
    """Full Riemannian Hessian of :func:`loss` for one model by autograd (small models only).

    Coordinates: ``w^mu = normalise(w^mu + B_mu z_mu)`` with ``B_mu (N, N-1)`` an orthonormal basis of
    the tangent space (a second-order retraction), then the finite logits (a ``-inf`` logit, a class
    weight held at zero, is not a coordinate). Returns ``(H (d, d), bases (P, N, N-1))`` with
    ``d = P (N-1) + number of finite logits``.
    """
    if model.w.dim() != 2:
        raise ValueError(
            f"tangent_hessian takes a single model (w of shape (P, N)), got {tuple(model.w.shape)}"
        )
    _check_data(model, x, y)
    P, N = model.w.shape
    eye = torch.eye(N, dtype=model.w.dtype, device=model.w.device)
    bases = []
    for mu in range(P):  # P is small here; a QR per memory
        q, _ = torch.linalg.qr(torch.cat([model.w[mu, :, None], eye], dim=1))
        bases.append(q[:, 1:N])
    bases = torch.stack(bases)
    free = torch.isfinite(model.logits).flatten()
    embed = torch.eye(free.numel(), dtype=model.w.dtype, device=model.w.device)[:, free]  # (P*C, k)
    n_w = P * (N - 1)

    def f(theta):
        z = theta[:n_w].reshape(P, N - 1)
        shift = (embed @ theta[n_w:]).reshape(model.logits.shape)
        w = _normalise(model.w + torch.einsum("pij,pj->pi", bases, z))
        return loss(DAM(w, model.logits + shift, model.beta), x, y, smoothing=smoothing)

    theta0 = torch.zeros(n_w + int(free.sum()), dtype=model.w.dtype, device=model.w.device)
    return torch.func.hessian(f)(theta0), bases


def replace_beta(model: DAM, beta) -> DAM:
    """The same memories with another inverse temperature (number or tensor of the batch shape)."""
    b = torch.as_tensor(beta, dtype=model.w.dtype, device=model.w.device).expand(model.w.shape[:-2]).clone()
    return replace(model, beta=b)


# ----------------------------------------------------------------------------------------------
# The Krotov-Hopfield (2016) dense associative memory, for comparison


def kh_outputs(memories: torch.Tensor, v: torch.Tensor, *, power: int, temperature: float) -> torch.Tensor:
    """Class outputs ``c_alpha in (-1, 1)`` of the Krotov-Hopfield classifier, shape ``(n, C)``.

    ``memories (K, N + C)`` hold pixel and label parts; ``v (n, N)`` pixels in ``[-1, 1]``. With all
    label units at ``-1`` but ``alpha`` (``+-1``),
    ``c_alpha = tanh(sum_mu F(xi_alpha + s) - F(-xi_alpha + s))``
    with ``s = xi_pix . v - sum_{gamma != alpha} xi_gamma``, ``F(z) = max(z, 0)^power / temperature^power``.
    """
    checks.positive_int("power", power)
    checks.positive("temperature", temperature)
    checks.shape("v", v, (None,))
    n_pix = v.shape[-1]
    if memories.dim() != 2 or memories.shape[-1] <= n_pix:
        raise ValueError(f"memories must have shape (K, {n_pix} + C), got {tuple(memories.shape)}")
    pix, lab = memories[:, :n_pix], memories[:, n_pix:]  # (K, N), (K, C)
    s = (v @ pix.T).unsqueeze(-1) - (lab.sum(-1, keepdim=True) - lab).unsqueeze(0)  # (n, K, C)
    on = torch.relu((s + lab) / temperature) ** power
    off = torch.relu((s - lab) / temperature) ** power
    return torch.tanh((on - off).sum(-2))


def train_kh(
    v: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    *,
    n_memories: int,
    power: int,
    temperature: float,
    loss_power: int = 2,
    steps: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Train Krotov-Hopfield memories (Adam, loss ``sum (c - t)^{2 m}``, memories clipped to [-1, 1]).

    Targets ``t`` are ``+1`` for the right class and ``-1`` otherwise. Returns memories ``(K, N + C)``.
    """
    for name, value in (
        ("n_memories", n_memories),
        ("steps", steps),
        ("batch_size", batch_size),
        ("loss_power", loss_power),
    ):
        checks.positive_int(name, value)
    checks.positive("lr", lr)
    xi = (
        (
            0.3
            * torch.randn(
                n_memories,
                v.shape[-1] + n_classes,
                generator=generator,
                dtype=v.dtype,
                device=generator.device,
            )
            - 0.1
        )
        .to(v.device)
        .clamp(-1, 1)
        .requires_grad_(True)
    )
    opt = torch.optim.Adam([xi], lr=lr)
    tgt = 2 * torch.nn.functional.one_hot(y, n_classes).to(v.dtype) - 1
    for step in range(1, steps + 1):
        idx = torch.randint(len(v), (batch_size,), generator=generator, device=generator.device).to(v.device)
        out = kh_outputs(xi, v[idx], power=power, temperature=temperature)
        value = ((out - tgt[idx]) ** (2 * loss_power)).sum(-1).mean()
        opt.zero_grad()
        value.backward()
        opt.step()
        with torch.no_grad():
            xi.clamp_(-1, 1)
        checks.finite(step, xi.detach(), "Krotov-Hopfield memories")
    return xi.detach()
