"""The one-step DenseAM denoiser of Holtzman, Krotov and Hanin (2026), its parameterisations,
and a trainer that runs a whole learning-rate sweep as one batched tensor program.

Model (one run)::

    h     = s_in * W_c x_noisy + b            hidden pre-activations, shape (B, K)
    x_hat = s_out * W_c^T phi(h) + c          denoised output,        shape (B, D)
    L     = (1/B) sum_b |x_hat_b - x_b|^2     denoising loss

with ``W`` of shape ``(K, D)`` drawn N(0, 1), ``b = 0``, ``c = 0`` at initialisation, and
``W_c = C W`` (``C = I - 11^T/K``, the centred model) or ``W_c = W`` (uncentred). Every state
carries a leading run axis ``R``: ``W`` is ``(R, K, D)``, ``b`` ``(R, K)``, ``c`` ``(R, D)``.

Parameterisations (Table 1 of the paper, reconstructed from its appendices) live in
:data:`TABLE1` as data: each scale and learning-rate multiplier is a monomial in ``D, K, B, N``.
A sweep asks :func:`parameterisation` for ``("proportional", "relu", "adam")`` and trains with
learning rates ``eta_W = eta * m_W(D, K, B, N)`` etc., where ``eta`` is the transferable base rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
from scipy.special import gamma

from . import checks
from .config import device as default_device
from .optim import BatchedAdam, BatchedSGD
from .progress import bar

REGIMES = ("proportional", "k_only")
ACTIVATIONS = ("linear", "relu", "softmax")
OPTIMIZERS = ("sgd", "adam")
DIMS = ("D", "K", "B", "N")


# ----------------------------------------------------------------------------- parameterisations
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


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def parameterisation(regime: str, activation: str, optimizer: str, *,
                     naive: bool = False) -> Parameterisation:
    """The Table 1 row for ``(regime, activation, optimizer)``; ``naive=True`` gives the control."""
    _choice("regime", regime, REGIMES)
    _choice("activation", activation, ACTIVATIONS)
    _choice("optimizer", optimizer, OPTIMIZERS)
    family = "softmax" if activation == "softmax" else "elementwise"
    if naive:
        if family == "softmax":
            return replace(NAIVE, s_out=_M(D=0.5), lr_b=None)
        return NAIVE
    if family == "softmax" and optimizer == "sgd":
        return SOFTMAX_SGD[regime]
    return TABLE1[(regime, family, optimizer)]


# ----------------------------------------------------------------------------- model
def relu_power_norm(p: float) -> float:
    """``sqrt(E[relu(z)^(2p)])`` for ``z ~ N(0, 1)``: ReLU^p divided by it has unit second moment."""
    checks.positive("p", p)
    return math.sqrt(0.5 * 2**p * gamma(p + 0.5) / math.sqrt(math.pi))


def activate(h: torch.Tensor, activation: str, p: float = 1.0) -> torch.Tensor:
    """``phi(h)`` over the last (hidden) axis: linear, normalised ReLU^p, or softmax."""
    _choice("activation", activation, ACTIVATIONS)
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
    dev = device if device is not None else (generator.device if generator is not None else None)
    W = torch.randn(runs, K, D, generator=generator, dtype=dtype, device=dev)
    return Params(W, torch.zeros(runs, K, dtype=dtype, device=W.device),
                  torch.zeros(runs, D, dtype=dtype, device=W.device))


def forward(params: Params, x: torch.Tensor, *, s_in: float, s_out: float, activation: str = "linear",
            p: float = 1.0, centred: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Denoise ``x`` of shape ``(R, B, D)`` (or ``(B, D)``, shared by all runs).

    Returns ``(x_hat, h, a)``: outputs ``(R, B, D)``, pre-activations and activations ``(R, B, K)``.
    """
    W = params.W
    checks.shape("W", W, (None, None))
    R, K, D = W.shape
    checks.shape("x", x, (D,))
    if x.dim() == 3 and x.shape[0] != R:
        raise ValueError(f"x must have shape (B, {D}) or ({R}, B, {D}), got {tuple(x.shape)}")
    Wc = centre(W) if centred else W
    eq = "rkd,rbd->rbk" if x.dim() == 3 else "rkd,bd->rbk"
    h = s_in * torch.einsum(eq, Wc, x) + params.b[:, None, :]
    a = activate(h, activation, p)
    x_hat = s_out * torch.einsum("rbk,rkd->rbd", a, Wc) + params.c[:, None, :]
    return x_hat, h, a


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The paper's loss ``(1/B) sum_b |x_hat_b - x_b|^2`` per run: ``(R, B, D)`` to ``(R,)``."""
    return (x_hat - x).pow(2).sum(-1).mean(-1)


# ----------------------------------------------------------------------------- experiments
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
class Grid:
    """The sweep grid shared by the hpt chapters at the current run scale (see :func:`grid`)."""

    sizes: list[int]          # proportional regime: D (= K = B)
    widths: list[int]         # K-only regime: K at D = DEFAULTS.k_only_d
    n_lr: int                 # learning rates per sweep, log-spaced
    steps: int
    seeds: int
    lr_decades: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"sgd": (-3.0, 0.0), "adam": (-4.0, -0.5)})

    def lrs(self, optimizer: str) -> torch.Tensor:
        """The base learning rates of a sweep with ``optimizer``: ``n_lr`` points, log-spaced."""
        lo, hi = self.lr_decades[_choice("optimizer", optimizer, OPTIMIZERS)]
        return torch.logspace(lo, hi, self.n_lr)


def grid() -> Grid:
    """Sizes, learning-rate grid, steps and seeds of the hpt chapters at the run scale (all chosen: the
    paper's captions do not give them; ``paper`` follows the sizes its text names)."""
    from .config import by_scale
    return Grid(sizes=by_scale(ci=[16, 32, 64], book=[16, 32, 64, 128], paper=[64, 128, 256, 512, 1024]),
                widths=by_scale(ci=[64, 128, 256], book=[32, 64, 128, 256, 512, 1024],
                                paper=[64, 256, 1024, 4096, 16384]),
                n_lr=by_scale(ci=11, book=13, paper=17), steps=by_scale(ci=200, book=500, paper=3000),
                seeds=by_scale(ci=2, book=3, paper=5))


@dataclass(frozen=True)
class Setup:
    """One model size and training recipe; :meth:`scales` applies the Table 1 row."""

    D: int
    K: int
    B: int
    N: int
    activation: str = "linear"
    p: float = 1.0
    centred: bool = True
    optimizer: str = "sgd"
    regime: str = "proportional"
    naive: bool = False
    noise: float = DEFAULTS.noise

    def __post_init__(self):
        for k in DIMS:
            checks.positive_int(k, getattr(self, k))
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("regime", self.regime, REGIMES)
        checks.positive("p", self.p)
        checks.positive("noise", self.noise, allow_zero=True)

    @property
    def row(self) -> Parameterisation:
        return parameterisation(self.regime, self.activation, self.optimizer, naive=self.naive)

    def scales(self) -> Scales:
        return self.row.scales(D=self.D, K=self.K, B=self.B, N=self.N)


def proportional(D: int, defaults: Defaults = DEFAULTS, **kw) -> Setup:
    """A :class:`Setup` of the proportional regime at input dimension ``D`` (K, B, N in proportion)."""
    checks.positive_int("D", D)
    d = defaults
    return Setup(D, max(1, round(d.k_over_d * D)), max(1, round(d.b_over_d * D)),
                 max(1, round(d.n_over_d * D)), regime="proportional", noise=d.noise, **kw)


def k_only(K: int, defaults: Defaults = DEFAULTS, **kw) -> Setup:
    """A :class:`Setup` of the K-only regime: width ``K``, data dimensions fixed by ``defaults``."""
    checks.positive_int("K", K)
    D = defaults.k_only_d
    return Setup(D, K, D, round(defaults.n_over_d * D), regime="k_only", noise=defaults.noise, **kw)


def gaussian_data(setup: Setup, seeds: int, *, generator: torch.Generator, dtype=torch.float32,
                  device=None) -> torch.Tensor:
    """Isotropic data sets ``(seeds, N, D)``, entries N(0, 1)."""
    checks.positive_int("seeds", seeds)
    return torch.randn(seeds, setup.N, setup.D, generator=generator, dtype=dtype, device=device)


def batches(data: torch.Tensor, setup: Setup, steps: int, *, generator: torch.Generator) -> Iterator[
        tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches ``(clean, noisy)``, each ``(S, B, D)``: ``B`` points drawn with replacement from each
    of the ``S`` data sets ``data (S, N, D)``, fresh Gaussian noise every step."""
    checks.positive_int("steps", steps)
    S, N, D = data.shape
    for _ in range(steps):
        idx = torch.randint(N, (S, setup.B), generator=generator, device=data.device)
        clean = torch.gather(data, 1, idx[..., None].expand(S, setup.B, D))
        noise = torch.randn(clean.shape, generator=generator, dtype=data.dtype, device=data.device)
        yield clean, clean + setup.noise * noise


def gram_eigenvalues(a: torch.Tensor, *, centred: bool, top: int = 2) -> torch.Tensor:
    """Largest ``top`` eigenvalues of the hidden Gram matrix ``A^T A / K`` (centred: ``(CA)^T (CA) / K``).

    ``a`` holds activations ``(R, B, K)``; returns ``(R, top)``, largest first. ``A^T A / K`` is the
    ``B x B`` matrix through which the SGD step moves the outputs (App. E.1).
    """
    checks.shape("a", a, (None, None))
    K = a.shape[-1]
    if centred:
        a = a - a.mean(-1, keepdim=True)
    G = a @ a.transpose(-1, -2) / K
    return torch.linalg.eigvalsh(G).flip(-1)[..., :top]


def participation(a: torch.Tensor) -> torch.Tensor:
    """Participation ratio ``K_eff = 1 / sum_k a_k^2`` of softmax rows ``(R, B, K)``, averaged over B."""
    return (1 / a.pow(2).sum(-1)).mean(-1)


@dataclass
class History:
    """What a sweep logged. Tensors are indexed ``[log point, learning rate, seed]``.

    ``loss``: MSE per coordinate (the paper's loss divided by D) on the fixed evaluation set;
    ``stats``: the extra statistics asked for (``gram`` gives ``gram1``, ``gram2``; ``k_eff``;
    ``update``: RMS entry of the effective weight step ``C Delta W``; ``hidden``: RMS pre-activation;
    ``dout``: RMS change of the outputs over the last step). ``diverged[lr, seed]`` is the step at which a
    run diverged (``-1``: never). ``steps`` holds the step number of each log point.
    """

    setup: Setup
    lrs: torch.Tensor
    steps: torch.Tensor
    loss: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    diverged: torch.Tensor | None = None

    @property
    def final(self) -> torch.Tensor:
        """Final loss per coordinate ``(n_lr, n_seeds)``; ``inf`` where the run diverged."""
        return self.loss[-1]


class Sweep:
    """``n_lr x n_seeds`` independent models of one :class:`Setup`, trained as one tensor program.

    Run ``r = i_lr * n_seeds + i_seed`` has base learning rate ``lrs[i_lr]`` and shares its initial
    weights, data set and mini-batches with every run of the same seed index.
    """

    def __init__(self, setup: Setup, lrs, seeds: int, *, data: torch.Tensor | None = None, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None, defaults: Defaults = DEFAULTS):
        if not isinstance(setup, Setup):
            raise ValueError(f"setup must be a Setup, got {type(setup).__name__}")
        checks.positive_int("seeds", seeds)
        dev = torch.device(device) if device is not None else default_device()
        lrs = torch.as_tensor(lrs, dtype=dtype).reshape(-1)
        if lrs.numel() == 0 or not bool(torch.isfinite(lrs).all()) or bool((lrs <= 0).any()):
            raise ValueError("lrs must be a non-empty sequence of finite positive learning rates")
        self.setup, self.defaults, self.seeds = setup, defaults, seeds
        self.lrs = lrs
        self.gen = torch.Generator(device=dev).manual_seed(seed)
        if data is None:
            data = gaussian_data(setup, seeds, generator=self.gen, dtype=dtype, device=dev)
        else:
            data = torch.as_tensor(data, dtype=dtype, device=dev)
            if data.dim() == 2:
                data = data.expand(seeds, *data.shape)
            if tuple(data.shape) != (seeds, setup.N, setup.D):
                raise ValueError(f"data must have shape ({setup.N}, {setup.D}) or ({seeds}, {setup.N}, "
                                 f"{setup.D}), got {tuple(data.shape)}")
        self.data = data
        n_lr = lrs.numel()
        self.R = n_lr * seeds
        self.seed_of_run = torch.arange(seeds, device=dev).repeat(n_lr)            # (R,)
        W0 = torch.randn(seeds, setup.K, setup.D, generator=self.gen, dtype=dtype, device=dev)
        self.params = Params(W0[self.seed_of_run].clone(),
                             torch.zeros(self.R, setup.K, dtype=dtype, device=dev),
                             torch.zeros(self.R, setup.D, dtype=dtype, device=dev))
        n_eval = min(defaults.n_eval, setup.N)
        self.eval_clean = data[:, :n_eval]
        self.eval_noisy = self.eval_clean + setup.noise * torch.randn(
            self.eval_clean.shape, generator=self.gen, dtype=dtype, device=dev)
        sc = setup.scales()
        base = lrs.to(dev).repeat_interleave(seeds)                                 # (R,)
        self.run_lrs = [base * sc.lr_W, base * sc.lr_b, base * sc.lr_c]
        opt = BatchedAdam if setup.optimizer == "adam" else BatchedSGD
        kw = {"betas": defaults.betas, "eps": defaults.eps} if setup.optimizer == "adam" else {}
        self.opt = opt(self.params.tensors(), self.run_lrs, **kw)
        self.alive = torch.ones(self.R, dtype=torch.bool, device=dev)
        self.died = torch.full((self.R,), -1, dtype=torch.long, device=dev)
        self.t = 0
        self.last_update: torch.Tensor | None = None
        self._stash: torch.Tensor | None = None   # outputs before the last step, for the "dout" statistic

    def _forward(self, x: torch.Tensor, params: Params | None = None):
        s, sc = self.setup, self.setup.scales()
        return forward(params or self.params, x, s_in=sc.s_in, s_out=sc.s_out, activation=s.activation,
                       p=s.p, centred=s.centred)

    @torch.no_grad()
    def denoise(self, x: torch.Tensor, iterations: int = 1) -> torch.Tensor:
        """Apply each run's trained denoiser ``iterations`` times to ``x (R, B, D)`` or ``(B, D)``:
        ``x <- x_hat(x)``, the discrete energy descent of the paper's Eq. (3.5). Returns ``(R, B, D)``."""
        checks.positive_int("iterations", iterations)
        x = x.to(self.params.W)
        for _ in range(iterations):
            x = self._forward(x)[0]
        return x

    def per_run(self, x_seeded: torch.Tensor) -> torch.Tensor:
        """Broadcast a per-seed tensor ``(S, ...)`` to the runs ``(R, ...)``."""
        return x_seeded[self.seed_of_run]

    def step(self, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        """One optimiser step on the per-seed batch ``(S, B, D)``; returns the loss per run before it."""
        ps = self.params.tensors()
        for p in ps:
            p.requires_grad_(True)
        x_hat, _, _ = self._forward(self.per_run(noisy))
        loss = mse(x_hat, self.per_run(clean))
        grads = torch.autograd.grad(loss.sum(), ps)
        for p in ps:
            p.requires_grad_(False)
        self.t += 1
        deltas = self.opt.step(list(grads))
        dW = centre(deltas[0]) if self.setup.centred else deltas[0]
        self.last_update = dW.pow(2).mean((-1, -2)).sqrt()
        self._check(loss.detach())
        return loss.detach()

    def _check(self, loss: torch.Tensor) -> None:
        bad = ~torch.isfinite(loss) | (loss / self.setup.D > self.defaults.blowup)
        for p in self.params.tensors():
            bad |= ~torch.isfinite(p).flatten(1).all(1)
        newly = bad & self.alive
        if bool(newly.any()):
            self.died[newly] = self.t
            self.alive &= ~newly
            for p in self.params.tensors():
                p[newly] = 0           # park dead runs at a finite point; their lr is zeroed below
            for lr in self.opt.lrs:
                lr[newly] = 0
            self.opt.reset(newly)

    @torch.no_grad()
    def evaluate(self, stats: Iterable[str] = ()) -> dict[str, torch.Tensor]:
        """Loss per coordinate on the fixed evaluation set, and the statistics asked for; ``(R,)`` each."""
        x_hat, h, a = self._forward(self.per_run(self.eval_noisy))
        out = {"loss": mse(x_hat, self.per_run(self.eval_clean)) / self.setup.D}
        for name in stats:
            if name == "gram":
                g = gram_eigenvalues(a[:, : self.setup.B], centred=self.setup.centred)
                out["gram1"], out["gram2"] = g[:, 0], g[:, 1]
            elif name == "k_eff":
                out["k_eff"] = participation(a)
            elif name == "update":
                out["update"] = (self.last_update if self.last_update is not None
                                 else torch.zeros(self.R, device=a.device))
            elif name == "hidden":
                out["hidden"] = h.pow(2).mean((-1, -2)).sqrt()
            elif name == "dout":
                prev = self._stash if self._stash is not None else x_hat
                out["dout"] = (x_hat - prev).pow(2).mean((-1, -2)).sqrt()
            else:
                raise ValueError(f"stats must be among gram, k_eff, update, hidden, dout; got {name!r}")
        dead = ~self.alive
        for v in out.values():
            v[dead] = float("inf") if v is out["loss"] else float("nan")
        return out

    def run(self, steps: int, *, log_every: int | None = None, stats: Sequence[str] = (),
            diverged: str = "mask", progress: bool | None = None, batch_stream=None) -> History:
        """Train for ``steps`` steps, logging every ``log_every`` (default: 50 log points).

        ``diverged="mask"`` parks a diverging run (loss ``inf`` from then on) and carries on with the
        others; ``"raise"`` raises :class:`~damlib.DivergenceError` at the first divergence.
        ``batch_stream`` (optional) replaces the mini-batches drawn by :func:`batches`.
        """
        checks.positive_int("steps", steps)
        _choice("diverged", diverged, ("mask", "raise"))
        log_every = checks.positive_int("log_every", log_every or max(1, steps // 50))
        stream = batch_stream if batch_stream is not None else batches(self.data, self.setup, steps,
                                                                        generator=self.gen)
        logs, at = [self.evaluate(stats)], [self.t]
        for i, (clean, noisy) in enumerate(bar(stream, total=steps, progress=progress,
                                               desc=f"D={self.setup.D} K={self.setup.K}")):
            if i >= steps:
                break
            if "dout" in stats and ((self.t + 1) % log_every == 0 or i == steps - 1):
                with torch.no_grad():
                    self._stash = self._forward(self.per_run(self.eval_noisy))[0]
            self.step(clean, noisy)
            if diverged == "raise" and not bool(self.alive.all()):
                raise checks.DivergenceError(int(self.died.max()), "loss")
            if self.t % log_every == 0 or i == steps - 1:
                logs.append(self.evaluate(stats))
                at.append(self.t)
        n_lr = self.lrs.numel()

        def stack(key):
            return torch.stack([lg[key] for lg in logs]).reshape(len(logs), n_lr, self.seeds).cpu()

        loss = stack("loss")
        extra = {k: stack(k) for k in logs[0] if k != "loss"}
        return History(self.setup, self.lrs.cpu(), torch.tensor(at), loss, extra,
                       self.died.reshape(n_lr, self.seeds).cpu())


def sweep(setup: Setup, lrs, *, seeds: int = 1, steps: int, seed: int = 0, data=None,
          stats: Sequence[str] = (), log_every: int | None = None, dtype=torch.float32, device=None,
          progress: bool | None = None,
          defaults: Defaults = DEFAULTS) -> History:
    """Train ``len(lrs) x seeds`` models of one size as one batched program; see :class:`Sweep`."""
    sw = Sweep(setup, lrs, seeds, data=data, seed=seed, dtype=dtype, device=device, defaults=defaults)
    return sw.run(steps, log_every=log_every, stats=stats, progress=progress)


@torch.no_grad()
def _outputs(sw: Sweep, noisy: torch.Tensor):
    x_hat, h, _ = sw._forward(sw.per_run(noisy))
    return x_hat, h


def first_updates(setup: Setup, lr: float, *, seeds: int = 4, steps: int = 1, seed: int = 0,
                  dtype=torch.float32, device=None, defaults: Defaults = DEFAULTS) -> dict[str, torch.Tensor]:
    """RMS change per entry of the hidden pre-activations and of the outputs over the first steps.

    Measured on the evaluation inputs, after each of the first ``steps`` steps at base rate ``lr``:
    returns ``{"hidden": (steps, seeds), "output": (steps, seeds)}`` (Desideratum 2 asks both to stay
    of order one as the sizes grow).
    """
    checks.positive("lr", lr)
    sw = Sweep(setup, [lr], seeds, seed=seed, dtype=dtype, device=device, defaults=defaults)
    x0, h0 = _outputs(sw, sw.eval_noisy)
    out = {"hidden": [], "output": []}
    for clean, noisy in batches(sw.data, setup, steps, generator=sw.gen):
        sw.step(clean, noisy)
        x1, h1 = _outputs(sw, sw.eval_noisy)
        out["hidden"].append((h1 - h0).pow(2).mean((-1, -2)).sqrt())
        out["output"].append((x1 - x0).pow(2).mean((-1, -2)).sqrt())
        x0, h0 = x1, h1
    return {k: torch.stack(v).cpu() for k, v in out.items()}


def coarse_mnist(images: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """MNIST images ``(n, 784)`` coarse-grained by ``s x s`` block averaging (``D = (28/s)^2``), each pixel
    centred over the data set, then divided by one number so that the mean square per coordinate is 1.

    Returns ``(x (n, D), mean (D,), rms)``; pixels are recovered as ``x * rms + mean``.
    """
    from .data import coarse_grain
    x = coarse_grain(images, s)
    mean = x.mean(0)
    rms = float((x - mean).pow(2).mean().sqrt())
    if rms == 0:
        raise ValueError("images are all equal: nothing to normalise")
    return (x - mean) / rms, mean, rms


def best_lr(history: History) -> float:
    """The base learning rate with the lowest final loss, averaged over seeds (diverged runs: ``inf``)."""
    final = history.final.mean(-1)
    final = torch.where(torch.isfinite(final), final, torch.full_like(final, float("inf")))
    return float(history.lrs[int(torch.argmin(final))])


def has_optimum(history: History) -> bool:
    """Whether some learning rate of ``history`` has no diverged seed (else there is no optimum)."""
    return bool(torch.isfinite(history.final.mean(-1)).any())


def optimal_lr(history: History) -> float:
    """The minimiser of the seed-averaged final loss over the base learning rate, refined between grid
    points by a parabola through the log-loss at the best grid point and its two neighbours (log-lr axis).

    The grid minimum itself is returned at the edge of the grid or when a neighbour diverged. Raises
    ``ValueError`` when no learning rate has all its seeds finite (see :func:`has_optimum`).
    """
    final = history.final.mean(-1).double()
    lr = history.lrs.double().log()
    if not has_optimum(history):
        raise ValueError("every learning rate of history has a diverged run: no optimal learning rate")
    final = torch.where(torch.isfinite(final), final, torch.full_like(final, float("inf")))
    i = int(torch.argmin(final))
    if 0 < i < len(final) - 1 and bool(torch.isfinite(final[i - 1:i + 2]).all()):
        y, x = final[i - 1:i + 2].log(), lr[i - 1:i + 2]
        a = ((y[2] - y[1]) / (x[2] - x[1]) - (y[1] - y[0]) / (x[1] - x[0])) / (x[2] - x[0])
        if a > 0:
            slope = (y[2] - y[0]) / (x[2] - x[0]) - a * (x[0] + x[2] - 2 * x[1])
            x_star = x[1] - slope / (2 * a)
            return float(x_star.clamp(x[0], x[2]).exp())
    return float(lr[i].exp())


def transfer_factor(histories: Sequence[History]) -> float:
    """``max / min`` over sizes of the optimal base learning rate (:func:`optimal_lr`): 1 is perfect;
    ``inf`` when some size has no optimum on the grid (every learning rate diverged there)."""
    if not all(has_optimum(h) for h in histories):
        return math.inf
    best = [optimal_lr(h) for h in histories]
    return max(best) / min(best)
