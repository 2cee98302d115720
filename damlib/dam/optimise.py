"""Optimisation of the vMF memory: the batched Riemannian Adam trainer and its result, and the
L-BFGS and Newton-CG polishers that reach a stationary point to round-off.

:func:`train` returns a :class:`History`: the trained model, the checkpoints it recorded and the
:class:`TrainState` where it stopped, from which ``train(..., resume=state)`` continues (the step
count, the training clock and the compute count go on; :func:`~damlib.dam.grow_by_splitting` resumes
after every split this way). :func:`smoothed_accuracy` and :func:`time_to_reach` read a History.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import checks
from ..data import _take_rows
from ..optim import BatchedAdam
from ..progress import bar
from ..train import check_record
from .model import DAM, _check_data, _finite_part, _gradient, _loss, _normalise, _project, accuracy, check_single, loss

RECORDS = ("loss", "accuracy")  # what a checkpoint of train() can evaluate


@dataclass(frozen=True)
class TrainState:
    """Where a run stopped, for a later :func:`train` to continue from (``resume=``).

    ``step``: steps taken; ``seconds``: training wall time so far (evaluation excluded); ``work``:
    memory-digit pairs evaluated so far; ``history``: the run's :class:`History` so far (its
    checkpoints are carried over), or ``None``. The optimiser's moments are not part of the state: a
    resumed run starts Adam afresh, as after a split, where the number of memories changes.
    """

    step: int = 0
    seconds: float = 0.0
    work: int = 0
    history: History | None = None


@dataclass
class History:
    """The result of a run: the trained ``model``, its checkpoints and the ``state`` where it stopped.

    Checkpoints (one entry each, in order): ``step``, training wall time ``seconds`` (evaluation
    excluded), training ``loss``, test ``accuracy`` (tensors of the batch shape) and ``work``, the number
    of memory-digit pairs the run has evaluated so far (a step on ``n`` digits with ``P`` memories adds
    ``n P``; each pair costs ``O(N)`` flops), a count of compute that does not depend on the machine.
    ``splits`` lists the steps after which :func:`~damlib.dam.grow_by_splitting` split (empty for a
    plain :func:`train`).
    """

    model: DAM
    state: TrainState = field(default_factory=TrainState)
    step: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    work: list = field(default_factory=list)
    splits: list = field(default_factory=list)


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
    record: Collection[str] = RECORDS,
    resume: TrainState | None = None,
    progress: bool | None = None,
) -> History:
    """Riemannian Adam on every model of the batch at once.

    Each step: the tangent gradient of a mini-batch (the same indices for every model), an Adam
    update (:class:`damlib.optim.BatchedAdam`, torch's arithmetic) projected on the tangent space, then
    every memory renormalised (the retraction). The logits take the plain Adam update.

    Parameters
    ----------
    model : DAM
        The starting models, batch shape ``(...)``.
    x, y : torch.Tensor
        Training digits ``(n, N)`` on the sphere and their classes ``(n,)``.
    steps : int
        Adam steps to take.
    lr, lr_logits : float
        Step sizes of the memories and of the class logits (``lr_logits`` defaults to ``lr``).
    batch_size : int, optional
        Mini-batch size (the same indices for every model); ``None``: full batch.
    smoothing : float
        Label smoothing of the targets.
    generator : torch.Generator, optional
        Draws the mini-batches; required with ``batch_size``.
    eval_every : int, optional
        Record a checkpoint every ``eval_every`` steps and at the last one.
    eval_data : tuple of torch.Tensor, optional
        ``(x_test, y_test)`` for the checkpoints' test accuracy (needed when ``record`` names it).
    record : collection of str
        What a checkpoint evaluates, among ``RECORDS`` (``"loss"``: the training loss,
        ``"accuracy"``: the test accuracy); its step, wall time and work are always recorded, and a
        quantity not named keeps an empty list in the History.
    resume : TrainState, optional
        Continue a run: steps, wall time and work are counted on from it, and the checkpoints of
        ``resume.history`` come first in the result. ``model`` is where training restarts (after a
        split it has more memories than ``resume.history.model``).
    progress : bool, optional
        Show a progress bar (default: :func:`damlib.progress.enabled`).

    Returns
    -------
    History
        The trained model, the checkpoints and the :class:`TrainState` to resume from.

    Raises
    ------
    DivergenceError
        At the first step (counted on from ``resume``) where the memories or the logits are not
        finite; the flag is kept on the device and read at the checkpoints and at the end.
    """
    checks.positive_int("steps", steps)
    checks.positive("lr", lr)
    lr_logits = checks.positive("lr_logits", lr if lr_logits is None else lr_logits)
    _check_data(model, x, y)
    checks.in_range("smoothing", smoothing, 0, 1, hi_open=True)
    if batch_size is not None:
        checks.positive_int("batch_size", batch_size)
        checks.generator("generator", generator)
    check_record(record, RECORDS)
    if eval_every is not None:
        checks.positive_int("eval_every", eval_every)
        if "accuracy" in record and eval_data is None:
            raise ValueError("eval_every with record='accuracy' needs eval_data=(x_test, y_test)")
    if eval_data is not None:
        if not isinstance(eval_data, (tuple, list)) or len(eval_data) != 2:
            raise ValueError(f"eval_data must be a pair (x_test, y_test), got {type(eval_data).__name__}")
        _check_data(model, *eval_data)
    if resume is not None and not isinstance(resume, TrainState):
        raise ValueError(f"resume must be a TrainState, got {type(resume).__name__}")
    resume = TrainState() if resume is None else resume
    past = resume.history
    history = History(model, step=list(past.step) if past else [], seconds=list(past.seconds) if past else [],
                      loss=list(past.loss) if past else [], accuracy=list(past.accuracy) if past else [],
                      work=list(past.work) if past else [], splits=list(past.splits) if past else [])
    w, a = model.w.clone(), model.logits.clone()
    # Adam's update of the memories lands in `update`, which is then projected and retracted
    update = torch.zeros_like(w)
    rates = [torch.tensor([rate], dtype=torch.float64, device=w.device) for rate in (lr, lr_logits)]
    opt = BatchedAdam([update, a], rates)

    per_step = model.w.shape[-2] * (batch_size if batch_size is not None and batch_size < len(x) else len(x))

    def checkpoint(t, cur):
        history.step.append(resume.step + t)
        history.seconds.append(resume.seconds + elapsed)
        history.work.append(resume.work + t * per_step)
        if "loss" in record:
            history.loss.append(loss(cur, x, y, smoothing=smoothing).detach().cpu())
        if "accuracy" in record:
            history.accuracy.append(accuracy(cur, *eval_data).detach().cpu())

    watch = checks.Watch()
    elapsed, start = 0.0, time.perf_counter()
    for t in bar(range(1, steps + 1), progress=progress):
        if batch_size is not None and batch_size < len(x):
            idx = torch.randint(len(x), (batch_size,), generator=generator, device=generator.device).to(
                x.device
            )
            xb, yb = _take_rows(x, idx), _take_rows(y, idx)
        else:
            xb, yb = x, y
        gw, ga = _gradient(DAM._unchecked(w, a, model.beta), xb, yb, smoothing)
        update.zero_()
        opt.step([gw, ga])
        w = _normalise(w + _project(w, update))
        watch.see(resume.step + t, w, "memories")
        watch.see(resume.step + t, _finite_part(a), "class logits")
        if eval_every is not None and (t % eval_every == 0 or t == steps):
            elapsed += time.perf_counter() - start
            watch.check()
            checkpoint(t, DAM(w, a, model.beta))
            start = time.perf_counter()
    if eval_every is None:
        elapsed += time.perf_counter() - start
    watch.check()
    history.model = DAM(w, a, model.beta)
    history.state = TrainState(resume.step + steps, resume.seconds + elapsed, resume.work + steps * per_step,
                               history)
    return history


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
    check_single(model, "polish")
    checks.positive_int("max_iter", max_iter)
    checks.positive("tolerance", tolerance)
    _check_data(model, x, y)
    checks.in_range("smoothing", smoothing, 0, 1, hi_open=True)
    watch, evaluations = checks.Watch(), [0]
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
            evaluations[0] += 1
            watch.see(evaluations[0], v.detach(), "memories")
            value = _loss(DAM._unchecked(_normalise(v), a, model.beta), x, y, smoothing)
            value.backward()
            watch.see(evaluations[0], value.detach(), "loss")
            a.grad = _finite_part(a.grad)
            return value

        try:
            opt.step(closure)
        except RuntimeError:
            watch.check()  # an overflow that L-BFGS's line search cannot convert: name its evaluation
            raise
        watch.check()  # the step of a polisher is its loss evaluation
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
    gradients with Hessian-vector products by double backward (in ``w = v / |v|`` and the finite logits).

    Only the gradient enters the stopping rules, so it reaches round-off where a line search on the
    loss cannot. Start it from :func:`polish`; near a saddle the Newton step is not a descent step.
    """
    check_single(model, "newton_polish")
    checks.positive_int("steps", steps)
    checks.positive_int("cg_iters", cg_iters)
    _check_data(model, x, y)
    checks.in_range("smoothing", smoothing, 0, 1, hi_open=True)
    watch = checks.Watch()
    free = torch.isfinite(model.logits).flatten()
    embed = torch.eye(free.numel(), dtype=model.w.dtype, device=model.w.device)[:, free]
    n_w = model.w.numel()

    def f(theta):
        v = theta[:n_w].reshape(model.w.shape)
        shift = (embed @ theta[n_w:]).reshape(model.logits.shape)
        base = torch.where(torch.isfinite(model.logits), torch.zeros_like(model.logits), model.logits)
        return _loss(DAM._unchecked(_normalise(v), base + shift, model.beta), x, y, smoothing)

    theta = torch.cat([model.w.flatten(), _finite_part(model.logits).flatten()[free]])
    for step in range(1, steps + 1):
        g, hvp = _gradient_and_hvp(f, theta)
        # conjugate gradients on H d = -g
        d = torch.zeros_like(theta)
        r = -g
        p = r.clone()
        rr = r @ r
        first = None                               # the first direction's Rayleigh quotient
        for _ in range(cg_iters):
            hp = hvp(p)
            curv = p @ hp
            quotient = curv / (p @ p)
            first = quotient if first is None else first
            # stop at negative curvature, and at the null directions of the invariances (the scale
            # of each v, a shift of the logits): a gradient at round-off has parts along them, and
            # their round-off curvature would turn those into arbitrarily long steps
            if curv <= 0 or quotient < 1e-10 * first:
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
        watch.see(step, theta, "parameters")
    watch.check()
    v = theta[:n_w].reshape(model.w.shape)
    base = torch.where(torch.isfinite(model.logits), torch.zeros_like(model.logits), model.logits)
    return DAM(_normalise(v), base + (embed @ theta[n_w:]).reshape(model.logits.shape), model.beta)


def _gradient_and_hvp(f, theta: torch.Tensor):
    """The gradient of the scalar ``f`` at ``theta`` (1-d) and a function ``p -> H p`` (its Hessian).

    The gradient's graph is kept, so each product is one backward pass through it (double
    backward): five times faster than recomputing the gradient by forward-over-reverse
    (``torch.func.jvp`` of ``torch.func.grad``, the tests' reference) for every product.
    """
    leaf = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        g, = torch.autograd.grad(f(leaf), leaf, create_graph=True)

    def hvp(p: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(g, leaf, p, retain_graph=True)[0]

    return g.detach(), hvp


def smoothed_accuracy(history: History, window: int = 1) -> np.ndarray:
    """Test accuracy of a single run averaged over ``window`` consecutive checkpoints: ``(len - window + 1,)``;
    entry ``i`` belongs to checkpoint ``i + window - 1``."""
    checks.positive_int("window", window)
    if not isinstance(history, History):
        raise ValueError(f"history must be a History, got {type(history).__name__}")
    acc = np.array([float(a) for a in history.accuracy])
    if len(acc) < window:
        raise ValueError(f"window={window} is longer than the history's {len(acc)} checkpoints")
    return np.convolve(acc, np.ones(window) / window, mode="valid")


def time_to_reach(history: History, target: float, *, window: int = 1, measure: str = "seconds") -> float:
    """The ``measure`` (``"seconds"``, ``"work"`` or ``"step"``) of the first checkpoint whose accuracy,
    averaged over ``window`` checkpoints ending there, reaches ``target``; ``nan`` if none does."""
    checks.choice("measure", measure, ("seconds", "work", "step"))
    checks.number("target", target)
    hit = np.flatnonzero(smoothed_accuracy(history, window) >= target - 1e-9)
    return float(getattr(history, measure)[hit[0] + window - 1]) if len(hit) else float("nan")
