"""The one-step DenseAM denoiser of Holtzman, Krotov and Hanin (2026), batched over runs.

Model (one run)::

    h     = s_in * W_c x_noisy + b            hidden pre-activations, shape (B, K)
    x_hat = s_out * W_c^T phi(h) + c          denoised output,        shape (B, D)
    L     = (1/B) sum_b |x_hat_b - x_b|^2     denoising loss

with ``W`` of shape ``(K, D)`` drawn N(0, 1), ``b = 0``, ``c = 0`` at initialisation, and
``W_c = C W`` (``C = I - 11^T/K``, the centred model) or ``W_c = W`` (uncentred). Every state
carries a leading run axis ``R``: ``W`` is ``(R, K, D)``, ``b`` ``(R, K)``, ``c`` ``(R, D)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.special import gamma

from .. import checks
from .table import ACTIVATIONS, choice


def relu_power_norm(p: float) -> float:
    """``sqrt(E[relu(z)^(2p)])`` for ``z ~ N(0, 1)``: ReLU^p divided by it has unit second moment."""
    checks.positive("p", p)
    return math.sqrt(0.5 * 2**p * gamma(p + 0.5) / math.sqrt(math.pi))


def activate(h: torch.Tensor, activation: str, p: float = 1.0) -> torch.Tensor:
    """``phi(h)`` over the last (hidden) axis: linear, normalised ReLU^p, or softmax."""
    choice("activation", activation, ACTIVATIONS)
    checks.tensor("h", h, floating=True)
    checks.positive("p", p)
    if activation == "linear":
        return h
    if activation == "relu":
        return torch.relu(h).pow(p) / relu_power_norm(p)
    return torch.softmax(h, dim=-1)


def centre(W: torch.Tensor) -> torch.Tensor:
    """``C W`` with ``C = I - 11^T/K``: remove the mean over the hidden axis (``-2``) of ``(..., K, D)``."""
    checks.shape("W", W, (None, None))
    return W - W.mean(dim=-2, keepdim=True)


@dataclass
class Params:
    """Trainable state of ``R`` runs: ``W (R, K, D)``, ``b (R, K)``, ``c (R, D)``."""

    W: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        return [self.W, self.b, self.c]


def init_params(runs: int, K: int, D: int, *, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32, device=None) -> Params:
    """N(0, 1) weights and zero biases for ``runs`` independent models."""
    for name, v in (("runs", runs), ("K", K), ("D", D)):
        checks.positive_int(name, v)
    checks.generator("generator", generator)
    dev = device if device is not None else generator.device
    W = torch.randn(runs, K, D, generator=generator, dtype=dtype, device=dev)
    return Params(W, torch.zeros(runs, K, dtype=dtype, device=W.device),
                  torch.zeros(runs, D, dtype=dtype, device=W.device))


def forward(params: Params, x: torch.Tensor, *, s_in: float, s_out: float, activation: str = "linear",
            p: float = 1.0, centred: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Denoise a batch with each of ``R`` models.

    Parameters
    ----------
    params : Params
        The state of ``R`` runs: ``W (R, K, D)``, ``b (R, K)``, ``c (R, D)``.
    x : torch.Tensor
        Noisy inputs ``(R, B, D)``, or ``(B, D)`` shared by all runs.
    s_in, s_out : float
        The input and output multipliers of the parameterisation (:class:`~.table.Scales`).
    activation : {"linear", "relu", "softmax"}
        ``phi``, applied over the hidden axis (:func:`activate`).
    p : float
        The power of ReLU^p (ignored by the other activations).
    centred : bool
        Use ``W_c = C W`` (centred model) rather than ``W``.

    Returns
    -------
    x_hat : torch.Tensor
        Outputs ``(R, B, D)``.
    h, a : torch.Tensor
        Pre-activations and activations ``(R, B, K)``.
    """
    if not isinstance(params, Params):
        raise ValueError(f"params must be Params, got {type(params).__name__}")
    W = params.W
    checks.shape("params.W", W, (None, None, None), batch=False)
    R, K, D = W.shape
    checks.shape("params.b", params.b, (R, K), batch=False)
    checks.shape("params.c", params.c, (R, D), batch=False)
    checks.shape("x", x, (D,))
    if x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[0] != R):
        raise ValueError(f"x must have shape (B, {D}) or ({R}, B, {D}), got {tuple(x.shape)}")
    for name, t in (("params.W", W), ("params.b", params.b), ("params.c", params.c), ("x", x)):
        checks.finite_data(name, t)
    checks.number("s_in", s_in)
    checks.number("s_out", s_out)
    choice("activation", activation, ACTIVATIONS)
    checks.positive("p", p)
    return _forward(params, x, s_in=s_in, s_out=s_out, activation=activation, p=p, centred=centred)


def _forward(params: Params, x: torch.Tensor, *, s_in: float, s_out: float, activation: str, p: float,
             centred: bool, work: dict | None = None):
    """:func:`forward` without its checks, for the training loop (no host sync); with ``work``, its
    tensors are written into the workspace (see :func:`_loss_and_grads`), with the same arithmetic."""
    Wc, x, h = _pre_activations(params, x, s_in=s_in, centred=centred, work=work)
    if work is None or activation == "linear":
        a = activate(h, activation, p)
    elif activation == "relu":   # activate's relu(h).pow(p) / norm, written in place
        a = torch.clamp_min(h, 0, out=_buffer(work, "a", h.shape, h)).pow_(p).div_(relu_power_norm(p))
    else:
        a = _softmax(h, work)
    x_hat = torch.baddbmm(params.c[:, None, :], a, Wc, alpha=s_out, out=_buffer(work, "x_hat", x.shape, x))
    return x_hat, h, a


def _denoise(params: Params, x: torch.Tensor, *, s_in: float, s_out: float, activation: str, p: float,
             centred: bool, work: dict | None = None) -> torch.Tensor:
    """The outputs of :func:`_forward` alone, with fewer passes over the ``(R, B, K)`` hidden layer
    (ReLU in place, its normalisation folded into the read-out); equal to round-off. ``work`` as in
    :func:`_forward`."""
    Wc, x, a = _pre_activations(params, x, s_in=s_in, centred=centred, work=work)
    scale = 1.0
    if activation == "relu":
        a = a.relu_() if p == 1 else a.relu_().pow_(p)
        scale = 1 / relu_power_norm(p)
    elif activation == "softmax":
        a = _softmax(a, work)
    return torch.baddbmm(params.c[:, None, :], a, Wc, alpha=s_out * scale,
                         out=_buffer(work, "x_hat", x.shape, x))


def _pre_activations(params: Params, x: torch.Tensor, *, s_in: float, centred: bool, work: dict | None):
    """``(W_c, x, h)``: the weights as the model reads them, ``x`` broadcast to ``(R, B, D)`` and the
    pre-activations ``h = s_in x W_c^T + b`` ``(R, B, K)``, written into ``work`` when given."""
    W = params.W
    Wc = _centred(W, work) if centred else W
    x = x.expand(W.shape[0], *x.shape[-2:])
    h = torch.baddbmm(params.b[:, None, :], x, Wc.transpose(1, 2), alpha=s_in,
                      out=_buffer(work, "h", (W.shape[0], x.shape[-2], W.shape[1]), W))
    return Wc, x, h


def _softmax(h: torch.Tensor, work: dict | None) -> torch.Tensor:
    """``softmax(h)`` over the hidden axis, written into ``work["a"]`` when given."""
    if work is None:
        return torch.softmax(h, dim=-1)
    return torch.ops.aten._softmax.out(h, -1, False, out=_buffer(work, "a", h.shape, h))


def _centred(W: torch.Tensor, work: dict | None) -> torch.Tensor:
    """:func:`centre` of ``W (R, K, D)``, written into ``work["Wc"]`` when there is a workspace."""
    return torch.sub(W, W.mean(dim=-2, keepdim=True), out=_buffer(work, "Wc", W.shape, W))


def _buffer(work: dict | None, name: str, shape, like: torch.Tensor) -> torch.Tensor | None:
    """The tensor ``work[name]`` of ``shape`` (made on first use, like ``like``), or ``None`` without a
    workspace: the ``out=`` of an operation whose result lives only until the next step."""
    if work is None:
        return None
    buf = work.get(name)
    if buf is None or buf.shape != torch.Size(shape) or buf.dtype != like.dtype or buf.device != like.device:
        buf = work[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buf


def _loss_and_grads(params: Params, noisy: torch.Tensor, clean: torch.Tensor, *, s_in: float,
                    s_out: float, activation: str, p: float, centred: bool, work: dict | None = None
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss of :func:`mse` per run and its gradients, in closed form (no autograd graph).

    ``noisy (R, B, D)``; ``clean (R, B, D)``, or ``(S, B, D)`` when the runs are ``R = n S`` groups of
    the same ``S`` data sets (run ``r`` uses set ``r mod S``). Returns ``loss (R,)`` and the
    gradients of ``loss.sum()`` with respect to ``W (R, K, D)``, ``b (R, K)``, ``c (R, D)``: what
    autograd gives through :func:`forward`, to round-off (``tests/test_denseam.py``), with five
    batched matmuls and a few passes over the ``(R, B, K)`` activations instead of autograd's
    saved temporaries and copies.

    ``work``, a dict kept by the caller between steps, holds the step's large temporaries, which
    are then written in place rather than allocated anew every step (what a fresh tensor of a few
    megabytes costs on a CPU depends on the allocator's state: up to half a step); the returned
    gradient of ``W`` is then one of them, valid until the next call with the same ``work``.
    """
    W, c = params.W, params.c
    R, K, D = W.shape
    B = noisy.shape[-2]
    Wc, _, h = _pre_activations(params, noisy, s_in=s_in, centred=centred, work=work)
    WcT = Wc.transpose(1, 2)
    # phi = scale * raw(h); the constant scale of the normalised ReLU^p is folded into the matmuls
    scale = 1 / relu_power_norm(p) if activation == "relu" else 1.0
    if activation == "relu":
        u = h.relu_()
        a = u if p == 1 else torch.pow(u, p, out=_buffer(work, "a", h.shape, W))
    elif activation == "softmax":
        a = _softmax(h, work)
    else:
        a = h
    r = torch.baddbmm(c[:, None, :], a, Wc, alpha=s_out * scale,
                      out=_buffer(work, "r", (R, B, D), W))                           # x_hat
    r.view(-1, *clean.shape).sub_(clean)                                              # x_hat - x
    flat = r.view(R, 1, -1)
    loss = torch.bmm(flat, flat.transpose(1, 2)).view(R).div_(B)     # sum of squares, no temporary
    g = 2 / B                                                        # d loss / d x_hat = g r
    da = torch.bmm(r, WcT, out=_buffer(work, "da", (R, B, K), W))    # times g s_out scale
    alpha = g * s_out * scale
    alpha_h = alpha                                                  # and the factor of dh
    if activation == "relu":
        # d raw / d h = p u^(p-1) where h > 0, else 0 (torch's relu backward masks, it does not
        # multiply); the factor p goes into alpha_h
        if p == 1:
            dh = torch.ops.aten.threshold_backward.grad_input(da, u, 0, grad_input=da)
        else:
            dh = da.mul_(u if p == 2 else u.pow(p - 1))
            if p < 1:                                                # 0 * inf where h <= 0
                dh.masked_fill_(u == 0, 0)
            alpha_h = alpha * p
    elif activation == "softmax":
        dot = torch.mul(da, a, out=_buffer(work, "da_a", da.shape, W)).sum(-1, keepdim=True)
        dh = da.sub_(dot).mul_(a)
    else:
        dh = da
    gW = torch.bmm(dh.transpose(1, 2), noisy, out=_buffer(work, "gW", W.shape, W))
    gW.baddbmm_(a.transpose(1, 2), r, beta=alpha_h * s_in, alpha=alpha)               # (R, K, D)
    if centred:
        gW.sub_(gW.mean(dim=-2, keepdim=True))                       # centre(gW), in place
    return loss, [gW, dh.sum(1).mul_(alpha_h), r.sum(1).mul_(g)]


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The paper's loss ``(1/B) sum_b |x_hat_b - x_b|^2`` per run: ``(R, B, D)`` to ``(R,)``.

    ``x_hat`` and ``x`` must have the same shape (no broadcasting)."""
    checks.shape("x_hat", x_hat, (None, None, None), batch=False)
    if not isinstance(x, torch.Tensor) or x.shape != x_hat.shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have the shape of x_hat {tuple(x_hat.shape)}, got {got}")
    checks.finite_data("x", x)
    return _mse(x_hat, x)


def _mse(x_hat: torch.Tensor, x: torch.Tensor, work: dict | None = None) -> torch.Tensor:
    """:func:`mse` without its checks; ``work`` holds the difference (the same arithmetic, in place,
    so not for autograd)."""
    if work is None:
        return (x_hat - x).pow(2).sum(-1).mean(-1)
    diff = torch.sub(x_hat, x, out=_buffer(work, "diff", x_hat.shape, x_hat))
    return diff.mul_(diff).sum(-1).mean(-1)




def gram_eigenvalues(a: torch.Tensor, *, centred: bool, top: int = 2) -> torch.Tensor:
    """Largest ``top`` eigenvalues of the hidden Gram matrix ``A^T A / K`` (centred: ``(CA)^T (CA) / K``).

    ``a`` holds activations ``(R, B, K)``; returns ``(R, top)``, largest first. ``A^T A / K`` is the
    ``B x B`` matrix through which the SGD step moves the outputs (App. E.1).
    """
    checks.shape("a", a, (None, None))
    checks.positive_int("top", top)
    if top > a.shape[-2]:
        raise ValueError(f"top must be at most the batch size {a.shape[-2]}, got {top}")
    K = a.shape[-1]
    if centred:
        a = a - a.mean(-1, keepdim=True)
    G = a @ a.transpose(-1, -2) / K
    return torch.linalg.eigvalsh(G).flip(-1)[..., :top]


def participation(a: torch.Tensor) -> torch.Tensor:
    """Participation ratio ``K_eff = 1 / sum_k a_k^2`` of softmax rows ``(R, B, K)``, averaged over B."""
    checks.shape("a", a, (None, None))
    return _participation(a)


def _participation(a: torch.Tensor, work: dict | None = None) -> torch.Tensor:
    """:func:`participation` without its checks; ``work`` holds the squares (the same arithmetic)."""
    if work is None:
        return (1 / a.pow(2).sum(-1)).mean(-1)
    return (1 / torch.mul(a, a, out=_buffer(work, "a2", a.shape, a)).sum(-1)).mean(-1)
