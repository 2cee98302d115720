"""The authors' training protocol for splitting, on this package's model: their optimiser (SMD),
epochs with early stopping on a validation loss, splitting between stages, and their measure
(the wall time and compute of the whole run until early stopping ends it, and its final accuracy).

Read from their released code (see the ``dam`` notes). What is theirs: the optimiser's update rules
(heavy-ball momentum on every variable, the memories' gradient projected on the tangent space and the
memories renormalised, the class weights updated multiplicatively and renormalised by each memory's
largest weight, ``beta`` trained), learning rate 0.1 and momentum 0.99, Keras epochs (shuffled
mini-batches, a last partial batch), early stopping on the validation loss with patience 1 (each
stage of a grown run is its own ``fit`` with its own early stopping), splitting a memory when its
splitting eigenvalue is below ``max_eigval = -0.001`` (at most ``min(P, P_max - P)`` of the most
negative) by ``eps = 0.25``, and the two set-ups' sizes. What differs: 10 classes (they add an 11th,
background class and component), the splitting directions from matrix-free power iteration
(:func:`~damlib.dam.splitting_directions`, counted in the run's time and compute) where they learn
them during one or more "splitting epochs", and no Sinkhorn constraint on the class weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import checks
from ..data import _take_rows
from .model import DAM, _check_data, _normalise, _score_parts, check_single, loss, make_model, overlaps, project
from .splitting import split_memories, splitting_directions


def gradient_with_beta(model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1):
    """``(grad_w, grad_logits, grad_beta)`` of :func:`~damlib.dam.loss` for one model; ``grad_w`` is the
    tangent gradient, ``grad_beta = sum_{x, mu} c_{x mu} w^mu . x``."""
    check_single(model, "gradient_with_beta")
    _check_data(model, x, y)
    checks.in_range("smoothing", smoothing, 0, 1, hi_open=True)
    return _gradient_with_beta(model, x, y, smoothing)


def _gradient_with_beta(model: DAM, x: torch.Tensor, y: torch.Tensor, smoothing: float):
    E, G, V = _score_parts(model, x, y, smoothing)
    c = E * (V @ G.transpose(-1, -2))  # (n, P)
    h = overlaps(model.w, x)
    euclid = model.beta * (c.T @ x)
    return project(model.w, euclid), G * (E.T @ V), (c * h).sum()


class SMD:
    """The authors' optimiser on one model: heavy-ball momentum ``v <- m v - lr g``, step ``lr v``.

    Memories: ``g`` the tangent gradient, then ``w <- normalise(w + lr v)``. Class weights: ``g`` the
    gradient in the weights ``g_mu,y`` (each memory's largest weight 1), the step taken in their
    logarithm, then each memory's weights renormalised by their largest (a multiplicative update).
    ``beta``: plain. After a split the kept copy keeps its velocity and the new copy starts at rest.
    """

    def __init__(self, model: DAM, *, lr: float = 0.1, momentum: float = 0.99):
        checks.positive("lr", lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        self.lr, self.momentum = lr, momentum
        self.vw = torch.zeros_like(model.w)
        self.va = torch.zeros_like(model.logits)
        self.vb = torch.zeros_like(model.beta)
        self.t = 0                     # steps taken, for the divergence step
        self.watch = checks.Watch()

    def grow(self, n_memories: int) -> None:
        """New memories (appended by a split) start at rest."""
        extra = n_memories - self.vw.shape[0]
        self.vw = torch.cat([self.vw, self.vw.new_zeros(extra, self.vw.shape[1])])
        self.va = torch.cat([self.va, self.va.new_zeros(extra, self.va.shape[1])])

    @torch.no_grad()
    def step(self, model: DAM, x: torch.Tensor, y: torch.Tensor, *, smoothing: float = 0.1) -> DAM:
        gw, ga, gb = _gradient_with_beta(model, x, y, smoothing)
        log_g = model.logits - model.logits.amax(-1, keepdim=True)           # largest weight 1
        g = log_g.exp()
        grad_g = torch.where(g > 0, ga / g.clamp_min(1e-300), torch.zeros_like(ga))
        m, lr = self.momentum, self.lr
        self.vw = m * self.vw - lr * gw
        self.va = m * self.va - lr * grad_g
        self.vb = m * self.vb - lr * gb
        w = _normalise(model.w + lr * self.vw)
        a = log_g + lr * self.va
        a = a - a.amax(-1, keepdim=True)
        beta = model.beta + lr * self.vb
        self.t += 1
        # a beta that leaves (0, inf) diverges as NaN does; both are read once per epoch
        self.watch.see(self.t, torch.where(beta > 0, beta, torch.full_like(beta, float("nan"))), "beta")
        self.watch.see(self.t, w, "memories")
        return DAM._unchecked(w, a, beta)


@dataclass
class Run:
    """One run of the protocol: per epoch ``epochs`` (cumulative count), ``seconds`` (wall time of the
    run so far, validation and splitting included), ``work`` (memory-digit pairs evaluated so far,
    validation and splitting included), ``val_loss`` (``nan`` without a validation set) and
    ``memories``; ``splits`` (epochs after which it split), the final ``model``, and why it ended
    (``"early stopping"``, ``"epochs"``)."""

    model: DAM
    epochs: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    work: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    memories: list = field(default_factory=list)
    splits: list = field(default_factory=list)
    ended_by: str = ""


def _fit(run: Run, opt: SMD, x, y, x_val, y_val, *, epochs: int, batch_size: int, patience: int,
         smoothing: float, generator: torch.Generator, clock: list) -> str:
    """Keras ``fit`` with ``EarlyStopping(patience)`` on the validation loss: train ``epochs`` epochs
    of shuffled mini-batches at most; returns why it stopped."""
    best, wait = float("inf"), 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator, device=generator.device).to(x.device)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            run.model = opt.step(run.model, _take_rows(x, idx), _take_rows(y, idx), smoothing=smoothing)
        work = len(x) * run.model.n_memories
        opt.watch.check()
        if x_val is not None:
            val = float(loss(run.model, x_val, y_val, smoothing=smoothing))
            work += len(x_val) * run.model.n_memories
        else:
            val = float("nan")
        run.epochs.append(len(run.epochs) + 1)
        run.seconds.append(time.perf_counter() - clock[0])
        run.work.append((run.work[-1] if run.work else 0) + work)
        run.val_loss.append(val)
        run.memories.append(run.model.n_memories)
        if x_val is not None:
            if val < best:
                best, wait = val, 0
            else:
                wait += 1
                if wait >= patience:
                    return "early stopping"
    return "epochs"


def authors_run(model: DAM, x: torch.Tensor, y: torch.Tensor, *, p_max: int, stage_epochs: int,
                final_epochs: int | None = None, max_splits: int = 14, batch_size: int,
                val_fraction: float = 0.0, patience: int = 1, lr: float = 0.1, momentum: float = 0.99,
                eps: float = 0.25, max_eigval: float = -1e-3, split_iters: int = 20,
                split_batch: int | None = None, smoothing: float = 0.1,
                generator: torch.Generator) -> Run:
    """One run of the authors' protocol: fit, then split and fit again until ``p_max`` memories (or
    ``max_splits`` splits, or no memory with a splitting eigenvalue below ``max_eigval``).

    A model that starts at ``p_max`` memories, or with ``max_splits = 0``, is the run without
    splitting.

    Parameters
    ----------
    model : DAM
        The starting model, a single one (``w`` of shape ``(P0, N)``).
    x, y : torch.Tensor
        Training digits ``(n, N)`` and classes ``(n,)``; the last ``val_fraction`` of them is held out
        as the validation set, as Keras' ``validation_split`` does.
    p_max : int
        Number of memories to grow to.
    stage_epochs : int
        Epochs of each stage (a ``fit``; early stopping may end it sooner).
    final_epochs : int, optional
        Epochs of the stage at ``p_max`` (default ``stage_epochs``).
    max_splits : int
        Largest number of splits.
    batch_size : int
        Mini-batch size.
    val_fraction : float
        Fraction held out for early stopping; ``0``: no validation, every stage runs its epochs.
    patience : int
        Epochs without a lower validation loss before a stage stops.
    lr, momentum : float
        SMD's learning rate and momentum.
    eps, max_eigval : float
        Split distance; split only memories whose splitting eigenvalue is below ``max_eigval``.
    split_iters, split_batch : int
        Power iterations for the splitting directions, on ``split_batch`` training digits (default all).
    smoothing : float
        Label smoothing.
    generator : torch.Generator
        Shuffles the epochs, draws the splitting digits and the power iterations' start.

    Returns
    -------
    Run
    """
    for name, value in (("p_max", p_max), ("stage_epochs", stage_epochs), ("batch_size", batch_size),
                        ("patience", patience), ("split_iters", split_iters)):
        checks.positive_int(name, value)
    check_single(model, "authors_run")
    _check_data(model, x, y)
    checks.generator("generator", generator)
    checks.positive_int("max_splits", max_splits, allow_zero=True)
    checks.positive("eps", eps)
    checks.number("max_eigval", max_eigval)
    if final_epochs is not None:
        checks.positive_int("final_epochs", final_epochs)
    if split_batch is not None:
        checks.positive_int("split_batch", split_batch)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    if p_max < model.n_memories:
        raise ValueError(f"p_max must be at least the {model.n_memories} starting memories, got {p_max}")
    check_single(model, "authors_run")
    n_val = int(round(val_fraction * len(x)))
    x_fit, y_fit = x[:len(x) - n_val], y[:len(x) - n_val]
    x_val, y_val = (x[len(x) - n_val:], y[len(x) - n_val:]) if n_val else (None, None)
    final_epochs = stage_epochs if final_epochs is None else final_epochs
    run, opt, clock = Run(model), SMD(model, lr=lr, momentum=momentum), [time.perf_counter()]
    opts = dict(batch_size=batch_size, patience=patience, smoothing=smoothing, generator=generator,
                clock=clock)
    while True:
        at_max = run.model.n_memories >= p_max or len(run.splits) >= max_splits
        run.ended_by = _fit(run, opt, x_fit, y_fit, x_val, y_val,
                            epochs=final_epochs if at_max else stage_epochs, **opts)
        if at_max:
            return run
        if split_batch is not None and split_batch < len(x_fit):
            pick = torch.randperm(len(x_fit), generator=generator, device=generator.device)[:split_batch]
            xs, ys = x_fit[pick.to(x.device)], y_fit[pick.to(x.device)]
        else:
            xs, ys = x_fit, y_fit
        vals, dirs = splitting_directions(run.model, xs, ys, smoothing=smoothing, iters=split_iters,
                                          generator=generator)
        k = min(run.model.n_memories, p_max - run.model.n_memories)
        order = vals.argsort()[:k]
        chosen = order[vals[order] < max_eigval]
        run.work[-1] += split_iters * len(xs) * run.model.n_memories
        if len(chosen) == 0:   # no saddle left to leave: train on at this size
            run.ended_by = _fit(run, opt, x_fit, y_fit, x_val, y_val, epochs=final_epochs, **opts)
            return run
        run.model = split_memories(run.model, chosen, dirs[chosen], eps=eps)
        opt.grow(run.model.n_memories)
        run.splits.append(run.epochs[-1])
        run.seconds[-1] = time.perf_counter() - clock[0]


def random_start(n_memories: int, n_features: int, n_classes: int, beta: float, *,
                 generator: torch.Generator, classes: str = "one", dtype=torch.float32, device=None) -> DAM:
    """Their ``RandomSpherical`` start: memories uniform on the sphere; ``classes="one"``: memory ``mu``
    holds class ``mu mod C`` alone (our reading of their ``Categorical`` initialiser), ``"all"``: every
    class weight equal."""
    checks.positive_int("n_memories", n_memories)
    checks.positive_int("n_features", n_features)
    checks.generator("generator", generator)
    w = torch.randn(n_memories, n_features, generator=generator, dtype=dtype, device=generator.device)
    return _with_classes(w.to(device), n_classes, beta, classes)


def mean_start(x: torch.Tensor, n_memories: int, n_classes: int, beta: float, *, noise: float = 1e-3,
               generator: torch.Generator, classes: str = "one") -> DAM:
    """Their small-data start: every memory at the data's mean direction plus a tiny isotropic
    perturbation of relative size ``noise`` (their "tiny vMF noise"); class weights as in
    :func:`random_start`."""
    checks.shape("x", x, (None, None), batch=False)
    checks.finite_data("x", x)
    checks.positive_int("n_memories", n_memories)
    checks.positive("noise", noise, allow_zero=True)
    checks.generator("generator", generator)
    mean = _normalise(x.mean(0))
    kick = torch.randn(n_memories, x.shape[1], generator=generator, dtype=x.dtype, device=generator.device)
    return _with_classes(mean + noise * _normalise(kick.to(x.device)), n_classes, beta, classes)


def _with_classes(w: torch.Tensor, n_classes: int, beta: float, classes: str) -> DAM:
    checks.positive_int("n_classes", n_classes)
    checks.choice("classes", classes, ("one", "all"))
    labels = torch.arange(len(w), device=w.device) % n_classes
    if classes == "one":
        return make_model(w, labels, n_classes, beta)
    if classes != "all":
        raise ValueError(f"classes must be 'one' or 'all', got {classes!r}")
    model = make_model(w, labels, n_classes, beta, purity=1 / n_classes)
    return DAM(model.w, torch.zeros_like(model.logits), model.beta)


def arrays(run: Run) -> dict[str, np.ndarray]:
    """A run's per-epoch curves as arrays (for the store)."""
    if not isinstance(run, Run):
        raise ValueError(f"run must be a protocol Run (authors_run), got {type(run).__name__}")
    return {"epochs": np.asarray(run.epochs), "seconds": np.asarray(run.seconds),
            "work": np.asarray(run.work, dtype=float), "val_loss": np.asarray(run.val_loss),
            "memories": np.asarray(run.memories), "splits": np.asarray(run.splits, dtype=int)}
