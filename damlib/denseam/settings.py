"""The hpt chapters' shared choices where the paper's captions are silent (all chosen): the data
and training defaults (:data:`DEFAULTS`) and the plan of sweeps at each run scale
(:func:`sweep_plan`: sizes, widths, learning rates, steps, seeds)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import by_scale
from .table import OPTIMIZERS, choice


@dataclass(frozen=True)
class Defaults:
    """Choices shared by every hpt chapter where the paper's captions are silent (all chosen)."""

    noise: float = 0.5                  # x_noisy = x + noise * z, z ~ N(0, I_D)
    k_over_d: float = 1.0               # proportional regime: K = k_over_d * D
    b_over_d: float = 1.0               # B = b_over_d * D
    n_over_d: float = 4.0               # N = n_over_d * D (size of the fixed training set)
    n_eval: int = 256                   # evaluation points (fixed noise) for the logged loss
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    k_only_d: int = 32                  # K-only regime: fixed D, B = D, N = n_over_d * D
    blowup: float = 1e4                 # a run whose loss per coordinate exceeds this has diverged


DEFAULTS = Defaults()


@dataclass(frozen=True)
class SweepPlan:
    """The sweeps of the hpt chapters at one run scale (see :func:`sweep_plan`)."""

    sizes: list[int]          # proportional regime: D (= K = B)
    widths: list[int]         # K-only regime: K at D = DEFAULTS.k_only_d
    n_lr: int                 # learning rates per sweep, log-spaced
    steps: int
    seeds: int
    lr_decades: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"sgd": (-3.0, 0.0), "adam": (-4.0, -0.5)})

    def lrs(self, optimizer: str) -> torch.Tensor:
        """The base learning rates of a sweep with ``optimizer``: ``n_lr`` points, log-spaced."""
        lo, hi = self.lr_decades[choice("optimizer", optimizer, OPTIMIZERS)]
        return torch.logspace(lo, hi, self.n_lr, device="cpu")

    def lr_step(self, optimizer: str) -> float:
        """The ratio of two neighbouring learning rates of :meth:`lrs`: the grid's resolution."""
        lrs = self.lrs(optimizer)
        return float(lrs[1] / lrs[0])


def sweep_plan() -> SweepPlan:
    """Sizes, learning rates, steps and seeds of the hpt chapters at the run scale (all chosen: the
    paper's captions do not give them; ``paper`` follows the sizes its text names)."""
    return SweepPlan(
        sizes=by_scale(ci=[16, 32, 64], book=[16, 32, 64, 128], paper=[64, 128, 256, 512, 1024]),
        widths=by_scale(ci=[64, 128, 256], book=[32, 64, 128, 256, 512, 1024],
                        paper=[64, 256, 1024, 4096, 16384]),
        n_lr=by_scale(ci=11, book=13, paper=17), steps=by_scale(ci=200, book=500, paper=3000),
        seeds=by_scale(ci=2, book=3, paper=5))
