"""The Krotov-Hopfield (2016) dense associative memory, for comparison with the vMF model."""

from __future__ import annotations

import torch

from .. import checks
from ..data import _take_rows
from ..optim import BatchedAdam


def kh_outputs(memories: torch.Tensor, v: torch.Tensor, *, power: int, temperature: float) -> torch.Tensor:
    """Class outputs ``c_alpha in (-1, 1)`` of the Krotov-Hopfield classifier, shape ``(n, C)``.

    ``memories (K, N + C)`` hold pixel and label parts; ``v (n, N)`` pixels in ``[-1, 1]``. With all
    label units at ``-1`` but ``alpha`` (``+-1``),
    ``c_alpha = tanh(sum_mu F(xi_alpha + s) - F(-xi_alpha + s))``
    with ``s = xi_pix . v - sum_{gamma != alpha} xi_gamma``, ``F(z) = max(z, 0)^power / temperature^power``.
    """
    checks.positive_int("power", power)
    checks.positive("temperature", temperature)
    checks.shape("v", v, (None, None), batch=False)
    checks.finite_data("v", v)
    n_pix = v.shape[-1]
    checks.tensor("memories", memories, floating=True)
    if memories.dim() != 2 or memories.shape[-1] <= n_pix:
        raise ValueError(f"memories must have shape (K, {n_pix} + C), got {tuple(memories.shape)}")
    checks.finite_data("memories", memories)
    return _kh_outputs(memories, v, power, temperature)


def _kh_outputs(memories: torch.Tensor, v: torch.Tensor, power: int, temperature: float) -> torch.Tensor:
    n_pix = v.shape[-1]
    pix, lab = memories[:, :n_pix], memories[:, n_pix:]  # (K, N), (K, C)
    s = (v @ pix.T).unsqueeze(-1) - (lab.sum(-1, keepdim=True) - lab).unsqueeze(0)  # (n, K, C)
    on = torch.relu((s + lab) / temperature) ** power
    off = torch.relu((s - lab) / temperature) ** power
    return torch.tanh((on - off).sum(-2))


def kh_initial(n_memories: int, width: int, *, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """The starting memories of :func:`train_kh`, ``(n_memories, width)``: ``0.3 z - 0.1`` with ``z``
    standard normal, clipped to ``[-1, 1]`` (on the generator's device)."""
    checks.positive_int("n_memories", n_memories)
    checks.positive_int("width", width)
    checks.generator("generator", generator)
    z = torch.randn(n_memories, width, generator=generator, dtype=dtype, device=generator.device)
    return (0.3 * z - 0.1).clamp(-1, 1)


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
    checks.positive_int("n_classes", n_classes)
    checks.positive_int("power", power)
    checks.positive("temperature", temperature)
    checks.shape("v", v, (None, None), batch=False)
    checks.finite_data("v", v)
    y = checks.indices("y", y, n_classes, dim=1)
    if len(y) != len(v):
        raise ValueError(f"y must have shape ({len(v)},), got {tuple(y.shape)}")
    checks.generator("generator", generator)
    xi = kh_initial(n_memories, v.shape[-1] + n_classes, generator=generator, dtype=v.dtype).to(v.device)
    xi.requires_grad_(True)
    opt = BatchedAdam([xi], [torch.tensor([lr], dtype=torch.float64, device=xi.device)])
    watch = checks.Watch()
    tgt = 2 * torch.nn.functional.one_hot(y, n_classes).to(v.dtype) - 1
    for step in range(1, steps + 1):
        idx = torch.randint(len(v), (batch_size,), generator=generator, device=generator.device).to(v.device)
        out = _kh_outputs(xi, _take_rows(v, idx), power, temperature)
        value = ((out - _take_rows(tgt, idx)) ** (2 * loss_power)).sum(-1).mean()
        (grad,) = torch.autograd.grad(value, xi)
        opt.step([grad])
        with torch.no_grad():
            xi.clamp_(-1, 1)
        watch.see(step, xi.detach(), "Krotov-Hopfield memories")
    watch.check()
    return xi.detach()
