"""Optimisers that step a whole batch of independent runs at once, each with its own learning rate.

Every parameter carries a leading run axis ``R``; ``lrs[i]`` is an ``(R,)`` tensor of rates for
parameter ``i``. The updates are ``torch.optim``'s, applied in place, with the float operations in
another order: they equal ``torch.optim`` run by run to round-off (``tests/test_optim.py``), not
bit for bit.
"""

from __future__ import annotations

import math

import torch


class BatchedSGD:
    """Plain SGD on ``R`` runs at once; ``lrs[i]`` is an ``(R,)`` tensor of rates for parameter ``i``."""

    def __init__(self, params: list[torch.Tensor], lrs: list[torch.Tensor]):
        self.params, self.lrs = params, [lr.to(params[0]) for lr in lrs]

    def _lr(self, i: int, p: torch.Tensor) -> torch.Tensor:
        return self.lrs[i].reshape(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], *, deltas: bool = True) -> list[torch.Tensor] | None:
        """Apply one step in place; returns the updates ``Delta p`` (``None`` with ``deltas=False``,
        which spares a temporary the size of each parameter)."""
        out = []
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            lr = self._lr(i, p)
            if deltas:
                out.append(-lr * g)
            # one fused pass, the same whether or not the updates are returned (so that recording
            # them does not move a trajectory by a rounding)
            p.addcmul_(lr, g, value=-1)
        return out if deltas else None

    def reset(self, dead: torch.Tensor) -> None:
        """Forget the state of the runs where ``dead`` (R,) is true (SGD has none)."""

    def map_runs(self, params: list[torch.Tensor], f) -> None:
        """Step ``params`` from now on (new tensors of the same parameters, e.g. some of the runs),
        and replace every per-run tensor ``t`` of the state by ``f(t)`` to match."""
        self.params, self.lrs = params, [f(lr) for lr in self.lrs]


class BatchedAdam(BatchedSGD):
    """Adam (Kingma and Ba; torch.optim.Adam's update) on ``R`` runs with per-run learning rates."""

    def __init__(self, params, lrs, *, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lrs)
        self.betas, self.eps, self.t = betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self._scratch(params)

    def _scratch(self, params) -> None:
        """The step's two temporaries, kept between steps (every entry is written before it is read)."""
        self._denom, self._d = [torch.empty_like(p) for p in params], [torch.empty_like(p) for p in params]

    @torch.no_grad()
    def step(self, grads, *, deltas: bool = True):
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        out = []
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            self.m[i].lerp_(g, 1 - b1)
            self.v[i].mul_(b2).addcmul_(g, g, value=1 - b2)
            # the temporaries are kept between steps rather than allocated every step; the update
            # is a new tensor only when it is returned
            denom = torch.sqrt(self.v[i], out=self._denom[i]).div_(math.sqrt(bc2)).add_(self.eps)
            d = torch.mul(-(self._lr(i, p) / bc1), self.m[i], out=None if deltas else self._d[i])
            d.div_(denom)
            p.add_(d)
            out.append(d)
        return out if deltas else None

    def reset(self, dead):
        for s in self.m + self.v:
            s.masked_fill_(dead.view(-1, *([1] * (s.dim() - 1))), 0)

    def map_runs(self, params, f):
        super().map_runs(params, f)
        self.m, self.v = [f(t) for t in self.m], [f(t) for t in self.v]
        self._scratch(params)
