"""Table 1 of Holtzman, Krotov and Hanin (2026) as data: each scale and learning-rate multiplier of
a parameterisation is a monomial in ``D, K, B, N``.

A sweep asks :func:`parameterisation` for ``("proportional", "relu", "adam")`` and trains with
learning rates ``eta_W = eta * m_W(D, K, B, N)`` etc., where ``eta`` is the transferable base rate.
The rows are reconstructed from the paper's appendices (each row's ``source`` names them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .. import checks

REGIMES = ("proportional", "k_only")
ACTIVATIONS = ("linear", "relu", "softmax")
OPTIMIZERS = ("sgd", "adam")
DIMS = ("D", "K", "B", "N")


choice = checks.choice


@dataclass(frozen=True)
class Monomial:
    """``coef * D^a * K^b * B^c * N^d``, with the exponents as a mapping ``{"D": a, ...}``."""

    exponents: tuple[tuple[str, float], ...] = ()
    coef: float = 1.0

    @classmethod
    def of(cls, coef: float = 1.0, **exponents: float) -> Monomial:
        bad = set(exponents) - set(DIMS)
        if bad:
            raise ValueError(f"exponents must be among {DIMS}, got {sorted(bad)}")
        return cls(tuple(sorted(exponents.items())), coef)

    def __call__(self, dims: dict[str, int]) -> float:
        return self.coef * math.prod(float(dims[k]) ** e for k, e in self.exponents)

    def __str__(self) -> str:
        if not self.exponents:
            return f"{self.coef:g}"
        body = " ".join(f"{k}^{e:g}" for k, e in self.exponents)
        return body if self.coef == 1 else f"{self.coef:g} {body}"


@dataclass(frozen=True)
class Parameterisation:
    """One row of Table 1: the multipliers ``s_in, s_out`` and learning-rate factors ``lr_W, lr_b, lr_c``.

    ``lr_b = None`` means the inner bias is not trained (softmax ignores a shift of all logits; we
    freeze ``b`` there). ``source`` says where the row comes from.
    """

    s_in: Monomial
    s_out: Monomial
    lr_W: Monomial
    lr_b: Monomial | None
    lr_c: Monomial
    source: str

    def scales(self, *, D: int, K: int, B: int, N: int) -> Scales:
        dims = {"D": D, "K": K, "B": B, "N": N}
        for k, v in dims.items():
            checks.positive_int(k, v)
        return Scales(self.s_in(dims), self.s_out(dims), self.lr_W(dims),
                      0.0 if self.lr_b is None else self.lr_b(dims), self.lr_c(dims))


@dataclass(frozen=True)
class Scales:
    """The numbers of a :class:`Parameterisation` at given sizes: ``eta_W = eta * lr_W`` etc."""

    s_in: float
    s_out: float
    lr_W: float
    lr_b: float
    lr_c: float


_M = Monomial.of
_ONE = _M()
# Table 1, reconstructed from Appendices C (init), D (linear SGD), F (Adam), G (biases), H (softmax)
# and I (K only). "elementwise" covers linear and ReLU^p. Keys: (regime, family, optimiser).
TABLE1: dict[tuple[str, str, str], Parameterisation] = {
    ("proportional", "elementwise", "sgd"): Parameterisation(
        _M(D=-0.5), _M(K=-0.5), _M(B=1), _ONE, _ONE, "App. C.1, C.3, D.18, G.7, G.12"),
    ("proportional", "elementwise", "adam"): Parameterisation(
        _M(D=-0.5), _M(K=-0.5), _ONE, _ONE, _ONE, "App. C, F.22"),
    ("proportional", "softmax", "adam"): Parameterisation(
        _M(D=-0.5), _M(D=0.5), _ONE, None, _ONE, "App. H.3, H.7, H.24"),
    ("k_only", "elementwise", "sgd"): Parameterisation(
        _M(D=-0.5), _M(K=-1), _M(K=1), _M(K=1), _ONE, "App. I.1, I.6"),
    ("k_only", "elementwise", "adam"): Parameterisation(
        _M(D=-0.5), _M(K=-1), _ONE, _ONE, _ONE, "App. I.14"),
    ("k_only", "softmax", "adam"): Parameterisation(
        _M(D=-0.5), _M(D=0.5), _ONE, None, _ONE, "App. I.15, I.20"),
}
# Not in Table 1: the paper gives no prescription for softmax with SGD (App. H.3, unstable). For
# Figs 14-15 we use the elementwise SGD learning-rate factor with the softmax output scale (chosen).
SOFTMAX_SGD: dict[str, Parameterisation] = {
    "proportional": Parameterisation(_M(D=-0.5), _M(D=0.5), _M(B=1), None, _ONE,
                                     "not in Table 1 (chosen: eta_W ~ B as for elementwise SGD)"),
    "k_only": Parameterisation(_M(D=-0.5), _M(D=0.5), _M(K=1), None, _ONE,
                               "not in Table 1 (chosen: eta_W ~ K as for elementwise SGD)"),
}
# The "standard" parameterisation used as the wrong-scaling control: the same initial scales as the
# proportional elementwise row, every learning rate O(1).
NAIVE = Parameterisation(_M(D=-0.5), _M(K=-0.5), _ONE, _ONE, _ONE, "control: no learning-rate scaling")


def parameterisation(regime: str, activation: str, optimizer: str, *,
                     naive: bool = False) -> Parameterisation:
    """The Table 1 row for ``(regime, activation, optimizer)``; ``naive=True`` gives the control."""
    choice("regime", regime, REGIMES)
    choice("activation", activation, ACTIVATIONS)
    choice("optimizer", optimizer, OPTIMIZERS)
    family = "softmax" if activation == "softmax" else "elementwise"
    if naive:
        if family == "softmax":
            return replace(NAIVE, s_out=_M(D=0.5), lr_b=None)
        return NAIVE
    if family == "softmax" and optimizer == "sgd":
        return SOFTMAX_SGD[regime]
    return TABLE1[(regime, family, optimizer)]


