"""The von Mises-Fisher dense associative memory: the model, its loss and its gradients.

Data ``x`` lie on the unit sphere of ``R^N`` (see :func:`damlib.data.centre_and_normalise`),
labels ``y`` in ``[C]``. A model holds ``P`` memories ``w^mu`` on the sphere, non-negative class
weights ``g_y^mu`` (``sum_{mu, y} g_y^mu = 1``, stored as logits ``a`` with
``g = softmax(a)`` over all ``P*C`` entries) and an inverse temperature ``beta``:

    P(x, y | w, g) = sum_mu g_y^mu exp(beta w^mu . x) / Z(beta),

a mixture of von Mises-Fisher densities that all share the normaliser ``Z(beta)``
(:func:`~damlib.dam.vmf.log_normaliser`). The loss is the cross-entropy of the class posterior
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
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .. import checks
from .vmf import log_normaliser


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

    @classmethod
    def _unchecked(cls, w: torch.Tensor, logits: torch.Tensor, beta: torch.Tensor) -> DAM:
        """A model built inside a loop, from tensors the loop made: no checks, no host sync."""
        model = object.__new__(cls)
        object.__setattr__(model, "w", w)
        object.__setattr__(model, "logits", logits)
        object.__setattr__(model, "beta", beta)
        return model

    def to(self, *args, **kwargs) -> DAM:
        return DAM(self.w.to(*args, **kwargs), self.logits.to(*args, **kwargs), self.beta.to(*args, **kwargs))


def overlaps(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``h_{x mu} = w^mu . x`` of shape ``(..., n, P)``, for memories ``w (..., P, N)`` and data ``x (n, N)``.

    Computed as ``w x^T`` of shape ``(..., P, n)`` and returned transposed (a view): with few memories
    and many points, the BLAS multiplies about 2.3 times faster with the long axis last (float64,
    ``P = 40``, ``n = 4000``, ``N = 784``, one thread).
    """
    return torch.matmul(w, x.transpose(-1, -2)).transpose(-1, -2)


def _normalise(w: torch.Tensor) -> torch.Tensor:
    return w / w.norm(dim=-1, keepdim=True)


def make_model(w: torch.Tensor, labels: torch.Tensor, n_classes: int, beta, *, purity: float = 1.0) -> DAM:
    """A model whose memory ``mu`` starts at ``w[mu]`` (normalised), class weight mostly on ``labels[mu]``.

    ``labels`` has shape ``(..., P)``; a fraction ``purity`` of each memory's weight is on its label,
    the rest spread over the other classes (so that every logit is finite). ``beta`` is a number or a
    tensor of the batch shape.
    """
    checks.shape("w", w, (None, None))
    checks.finite_data("w", w)
    checks.positive_int("n_classes", n_classes)
    checks.in_range("purity", purity, 0, 1, lo_open=True)
    labels = checks.indices("labels", labels, n_classes)
    if labels.shape != w.shape[:-1]:
        raise ValueError(f"labels must have shape {tuple(w.shape[:-1])}, got {tuple(labels.shape)}")
    if bool((w.norm(dim=-1) == 0).any()):
        raise ValueError("w has a zero row, which cannot be normalised to the sphere")
    if purity == 1 and bool((torch.nn.functional.one_hot(labels, n_classes).sum(-2) == 0).any()):
        raise ValueError("labels must give every class at least one memory when purity = 1")
    other = (1 - purity) / max(n_classes - 1, 1)
    g = torch.full((*labels.shape, n_classes), other, dtype=w.dtype, device=w.device)
    g.scatter_(-1, labels.unsqueeze(-1), purity)  # log 0 = -inf where purity = 1
    beta = _beta(beta, w)
    return DAM(_normalise(w), g.log(), beta)


def _beta(beta, w: torch.Tensor) -> torch.Tensor:
    """``beta`` (a positive number or a tensor of the batch shape of ``w``) as a tensor of that shape."""
    b = checks.in_range("beta", checks.real_tensor("beta", beta, dtype=w.dtype, device=w.device), 0, lo_open=True)
    try:
        return b.expand(w.shape[:-2]).clone()
    except RuntimeError:
        raise ValueError(f"beta must be a number or a tensor of the batch shape {tuple(w.shape[:-2])}, "
                         f"got shape {tuple(b.shape)}") from None


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
    checks.shape("x", x, (None, None), batch=False)
    checks.finite_data("x", x)
    checks.indices("y", y, n_classes, dim=1)
    if len(y) != len(x):
        raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    checks.generator("generator", generator)
    if not isinstance(batch, tuple) or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batch):
        raise ValueError(f"batch must be a tuple of positive integers, got {batch!r}")
    labels = torch.arange(n_memories, device="cpu") % n_classes
    by_class = [torch.nonzero(y.cpu() == k).flatten() for k in range(n_classes)]
    need = [(labels == k).sum().item() for k in range(n_classes)]
    for k in range(n_classes):
        if need[k] > len(by_class[k]):
            raise ValueError(
                f"n_memories={n_memories} needs {need[k]} points of class {k}, the data has "
                f"{len(by_class[k])}"
            )
    runs = int(np.prod(batch)) if batch else 1
    idx = torch.empty(runs, n_memories, dtype=torch.long, device="cpu")
    for r in range(runs):  # index bookkeeping only, no computation
        for k in range(n_classes):
            pick = torch.randperm(len(by_class[k]), generator=generator, device=generator.device)[: need[k]]
            idx[r, labels == k] = by_class[k][pick.cpu()]
    idx = idx.to(x.device).reshape(*batch, n_memories)
    return make_model(x[idx], y[idx], n_classes, beta)


def _check_model(model) -> None:
    if not isinstance(model, DAM):
        raise ValueError(f"model must be a DAM, got {type(model).__name__}")
    checks.finite_data("model.w", model.w)
    if bool(torch.isnan(model.logits).any()) or bool(torch.isposinf(model.logits).any()):
        raise ValueError("model.logits must not hold NaN or +inf (-inf marks a class weight of zero)")


def _check_data(model: DAM, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    _check_model(model)
    checks.shape("x", x, (model.w.shape[-1],))
    if x.dim() != 2:
        raise ValueError(f"x must have shape (n, {model.w.shape[-1]}), got {tuple(x.shape)}")
    checks.finite_data("x", x)
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1]:
            raise ValueError(f"y must be a tensor of shape ({len(x)},), got {y!r}")
        checks.indices("y", y, model.n_classes)


def check_single(model: DAM, caller: str) -> None:
    """Raise ``ValueError`` unless ``model`` is a single model (``w`` of shape ``(P, N)``, no batch axes)."""
    if not isinstance(model, DAM):
        raise ValueError(f"model must be a DAM, got {type(model).__name__}")
    if model.w.dim() != 2:
        raise ValueError(f"{caller} takes a single model (w of shape (P, N)), got {tuple(model.w.shape)}")


def log_terms(model: DAM, x: torch.Tensor) -> torch.Tensor:
    """``T_{x mu y} = log g_y^mu + beta w^mu . x`` of shape ``(..., n, P, C)``."""
    _check_data(model, x)
    log_g = model.logits - model.logits.flatten(-2).logsumexp(-1)[..., None, None]
    h = overlaps(model.w, x)
    return log_g.unsqueeze(-3) + (model.beta[..., None, None] * h).unsqueeze(-1)


def _mixture(model: DAM, x: torch.Tensor):
    """``E = exp(beta h - m) (..., n, P)``, ``G (..., P, C)``, ``F = E G (..., n, C)``, shift ``m (..., n)``.

    ``P(x, y) Z(beta) = exp(m) F``: every sum over memories is a matrix product, no ``(n, P, C)``
    tensor is formed. The shift ``m = max_mu beta h`` keeps the exponentials in range; a class whose
    memories all lie more than about ``80 / beta`` below the best overlap underflows in float32
    (use float64 for ``beta`` beyond about 40).
    """
    h = overlaps(model.w, x)
    s = model.beta[..., None, None] * h
    m = s.amax(-1)
    E = (s - m.unsqueeze(-1)).exp()
    G = model.class_weights
    return E, G, E @ G, m


def class_log_posterior(model: DAM, x: torch.Tensor) -> torch.Tensor:
    """``log P(y | x)`` of shape ``(..., n, C)``."""
    _check_data(model, x)
    return _class_log_posterior(model, x)


def _class_log_posterior(model: DAM, x: torch.Tensor) -> torch.Tensor:
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
    checks.positive_int("n_classes", n_classes)
    checks.indices("y", y, n_classes, dim=1)
    checks.in_range("smoothing", smoothing, 0, 1, hi_open=True)
    return _targets(y, n_classes, smoothing, dtype)


def _targets(y, n_classes, smoothing, dtype):
    q = torch.full((len(y), n_classes), smoothing / n_classes, dtype=dtype, device=y.device)
    q.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(q[:, :1], 1 - smoothing))
    return q


def loss(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1) -> torch.Tensor:
    """Cross-entropy of the class posterior against smoothed targets, mean over data, shape ``(...)``."""
    _check_data(model, x, y)
    checks.in_range("smoothing", smoothing, 0, 1, hi_open=True)
    return _loss(model, x, y, smoothing)


def _loss(model: DAM, x: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    q = _targets(y, model.n_classes, smoothing, model.w.dtype)
    return -(q * _class_log_posterior(model, x)).sum(-1).mean(-1)


def accuracy(model: DAM, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of ``x`` whose most probable class is ``y``, shape ``(...)``."""
    _check_data(model, x, y)
    return (_class_log_posterior(model, x).argmax(-1) == y).to(model.w.dtype).mean(-1)


def _score_parts(model: DAM, x: torch.Tensor, y: torch.Tensor, smoothing: float):
    """``(E, G, V)``: ``dL/dT_{x mu y} = E_{x mu} G_{mu y} V_{x y}``, ``V = (1/Z_x - q_{xy}/F_{xy}) / n``."""
    E, G, F, _ = _mixture(model, x)
    q = _targets(y, model.n_classes, smoothing, F.dtype)
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
    checks.shape("w", w, (None,))
    checks.shape("v", v, (w.shape[-1],))
    return _project(w, v)


def _project(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return v - (v * w).sum(-1, keepdim=True) * w


def gradient(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1):
    """Riemannian gradient of :func:`loss`: ``(grad_w (..., P, N), grad_logits (..., P, C))``.

    ``grad_w`` is the Euclidean gradient ``beta sum_x c_{x mu} x`` projected on the tangent space of
    each memory; ``grad_logits`` is the plain gradient in the logits.
    """
    _check_data(model, x, y)
    checks.in_range("smoothing", smoothing, 0, 1, hi_open=True)
    return _gradient(model, x, y, smoothing)


def _gradient(model: DAM, x: torch.Tensor, y: torch.Tensor, smoothing: float):
    E, G, V = _score_parts(model, x, y, smoothing)
    c = E * (V @ G.transpose(-1, -2))  # (..., n, P)
    euclid = model.beta[..., None, None] * torch.einsum("...np,nd->...pd", c, x)
    return _project(model.w, euclid), G * (E.transpose(-1, -2) @ V)


def gradient_scale(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1) -> torch.Tensor:
    """``sum_x |grad of the x-th term|``: the size of the terms that cancel in a zero gradient, ``(...)``.

    A stationary point's gradient is a sum of ``n`` non-zero terms; float round-off leaves about
    ``1e-16`` times this. Dividing a gradient norm by it gives a relative size.
    """
    _check_data(model, x, y)
    E, G, V = _score_parts(model, x, y, smoothing)
    c = E * (V @ G.transpose(-1, -2))  # (..., n, P)
    # |tangent part of beta c x| per (x, mu): beta |c| sqrt(1 - h^2)
    h = overlaps(model.w, x)
    per_w = model.beta[..., None, None] * c.abs() * (1 - h**2).clamp_min(0).sqrt()
    per_logit = E**2 * (V**2 @ (G**2).transpose(-1, -2))  # sum_y (dL/dT)^2
    per_term = (per_w**2).sum(-1) + per_logit.sum(-1)
    return per_term.sqrt().sum(-1)


def gradient_norm(grads) -> torch.Tensor:
    """Norm of a ``(grad_w, grad_logits)`` pair over each model, shape ``(...)``."""
    if not isinstance(grads, (tuple, list)) or len(grads) != 2:
        raise ValueError(f"grads must be a pair (grad_w, grad_logits), got {type(grads).__name__}")
    gw, ga = grads
    checks.shape("grads[0]", gw, (None, None))
    checks.shape("grads[1]", ga, (gw.shape[-2], None))
    return (gw.pow(2).sum((-2, -1)) + ga.pow(2).sum((-2, -1))).sqrt()


def tangent_hessian(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1):
    """Full Riemannian Hessian of :func:`loss` for one model by autograd (small models only).

    Coordinates: ``w^mu = normalise(w^mu + B_mu z_mu)`` with ``B_mu (N, N-1)`` an orthonormal basis of
    the tangent space (a second-order retraction), then the finite logits (a ``-inf`` logit, a class
    weight held at zero, is not a coordinate). Returns ``(H (d, d), bases (P, N, N-1))`` with
    ``d = P (N-1) + number of finite logits``.
    """
    check_single(model, "tangent_hessian")
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
        return _loss(DAM._unchecked(w, model.logits + shift, model.beta), x, y, smoothing)

    theta0 = torch.zeros(n_w + int(free.sum()), dtype=model.w.dtype, device=model.w.device)
    return torch.func.hessian(f)(theta0), bases


def replace_beta(model: DAM, beta) -> DAM:
    """The same memories with another inverse temperature (number or tensor of the batch shape)."""
    if not isinstance(model, DAM):
        raise ValueError(f"model must be a DAM, got {type(model).__name__}")
    return replace(model, beta=_beta(beta, model.w))
