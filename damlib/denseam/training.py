"""Training DenseAMs: one model size and recipe (:class:`Setup`), its data stream, and a trainer
that runs a whole learning-rate sweep as one batched tensor program.

:func:`sweep` trains ``len(lrs) x seeds`` models and returns their :class:`History` (the result);
:class:`Trainer` is the same computation with its state kept, for callers that need the trained
models (denoising) or the first steps (:func:`first_updates`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from .. import checks
from ..config import device as default_device
from ..optim import BatchedAdam, BatchedSGD
from ..progress import bar
from .model import (
    Params,
    _buffer,
    _denoise,
    _forward,
    _loss_and_grads,
    _mse,
    _participation,
    centre,
    gram_eigenvalues,
    init_params,
)
from .settings import DEFAULTS, Defaults
from .table import ACTIVATIONS, DIMS, OPTIMIZERS, REGIMES, Parameterisation, Scales, choice, parameterisation

RECORDS = ("gram", "k_eff", "update", "hidden", "dout")
DROP_EVERY = 10  # with diverged="mask", Trainer.run stops computing the diverged runs every so many steps


@dataclass(frozen=True)
class Setup:
    """One model size and training recipe; :meth:`scales` applies its row of Table 1 (or the
    ``naive`` control, or a ``table_row`` of one's own, e.g. with some learning rates zero)."""

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
    table_row: Parameterisation | None = None   # a row of one's own instead of Table 1's

    def __post_init__(self):
        for k in DIMS:
            checks.positive_int(k, getattr(self, k))
        choice("activation", self.activation, ACTIVATIONS)
        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("regime", self.regime, REGIMES)
        checks.positive("p", self.p)
        checks.positive("noise", self.noise, allow_zero=True)
        if self.table_row is not None and not isinstance(self.table_row, Parameterisation):
            raise ValueError(f"table_row must be a Parameterisation, got {type(self.table_row).__name__}")

    @property
    def row(self) -> Parameterisation:
        """``table_row`` when given, else the Table 1 row (or the control, ``naive``) of the recipe."""
        if self.table_row is not None:
            return self.table_row
        return parameterisation(self.regime, self.activation, self.optimizer, naive=self.naive)

    def scales(self) -> Scales:
        return self.row.scales(D=self.D, K=self.K, B=self.B, N=self.N)


def proportional(D: int, defaults: Defaults = DEFAULTS, **kw) -> Setup:
    """A :class:`Setup` of the proportional regime at input dimension ``D`` (K, B, N in proportion)."""
    checks.positive_int("D", D)
    _check_defaults(defaults)
    d = defaults
    return Setup(D, max(1, round(d.k_over_d * D)), max(1, round(d.b_over_d * D)),
                 max(1, round(d.n_over_d * D)), regime="proportional", noise=d.noise, **kw)


def k_only(K: int, defaults: Defaults = DEFAULTS, **kw) -> Setup:
    """A :class:`Setup` of the K-only regime: width ``K``, data dimensions fixed by ``defaults``."""
    checks.positive_int("K", K)
    _check_defaults(defaults)
    D = defaults.k_only_d
    return Setup(D, K, D, round(defaults.n_over_d * D), regime="k_only", noise=defaults.noise, **kw)


def gaussian_data(setup: Setup, seeds: int, *, generator: torch.Generator, dtype=torch.float32,
                  device=None) -> torch.Tensor:
    """Isotropic data sets ``(seeds, N, D)``, entries N(0, 1), on the generator's device (default)."""
    _check_setup(setup)
    checks.positive_int("seeds", seeds)
    checks.generator("generator", generator, device=device)
    return torch.randn(seeds, setup.N, setup.D, generator=generator, dtype=dtype,
                       device=generator.device if device is None else device)


def _check_setup(setup) -> None:
    if not isinstance(setup, Setup):
        raise ValueError(f"setup must be a Setup, got {type(setup).__name__}")


def _check_defaults(defaults) -> None:
    if not isinstance(defaults, Defaults):
        raise ValueError(f"defaults must be a Defaults, got {type(defaults).__name__}")


def batches(data: torch.Tensor, setup: Setup, steps: int, *, generator: torch.Generator) -> Iterator[
        tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches ``(clean, noisy)``, each ``(S, B, D)``: ``B`` points drawn with replacement from each
    of the ``S`` data sets ``data (S, N, D)``, fresh Gaussian noise every step."""
    _check_setup(setup)
    checks.positive_int("steps", steps)
    checks.shape("data", data, (None, None, None), batch=False)
    checks.finite_data("data", data)
    checks.generator("generator", generator, device=data.device)
    return _batches(data, setup, steps, generator)


def _batches(data, setup, steps, generator):
    S, N, D = data.shape
    for _ in range(steps):
        idx = torch.randint(N, (S, setup.B), generator=generator, device=data.device)
        clean = torch.gather(data, 1, idx[..., None].expand(S, setup.B, D))
        noise = torch.randn(clean.shape, generator=generator, dtype=data.dtype, device=data.device)
        yield clean, clean + setup.noise * noise


@dataclass
class History:
    """What a sweep recorded. Tensors are indexed ``[log point, learning rate, seed]``.

    ``loss``: MSE per coordinate (the paper's loss divided by D) on the fixed evaluation set, always
    recorded; ``records``: the quantities asked for with ``record=`` (``gram`` gives ``gram1``,
    ``gram2``; ``k_eff``; ``update``: RMS entry of the effective weight step ``C Delta W``;
    ``hidden``: RMS pre-activation; ``dout``: RMS change of the outputs over the last step), also
    reachable as ``history[name]``. ``diverged[lr, seed]`` is the step at which a run diverged
    (``-1``: never). ``steps`` holds the step number of each log point.
    """

    setup: Setup
    lrs: torch.Tensor
    steps: torch.Tensor
    loss: torch.Tensor
    records: dict[str, torch.Tensor] = field(default_factory=dict)
    diverged: torch.Tensor | None = None

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.loss if name == "loss" else self.records[name]

    @property
    def n_diverged(self) -> int:
        """How many runs of the sweep diverged (they are kept, masked: loss ``inf`` from then on)."""
        return 0 if self.diverged is None else int((self.diverged >= 0).sum())

    @property
    def first_divergence(self) -> int | None:
        """The earliest step at which some run diverged, ``None`` when none did."""
        if self.n_diverged == 0:
            return None
        return int(self.diverged[self.diverged >= 0].min())

    @property
    def final(self) -> torch.Tensor:
        """Final loss per coordinate ``(n_lr, n_seeds)``; ``inf`` where the run diverged."""
        return self.loss[-1]


class Trainer:
    """``n_lr x n_seeds`` independent models of one :class:`Setup`, trained as one tensor program,
    with the training state (parameters, optimiser moments, step, divergences) kept between calls.

    Run ``r = i_lr * n_seeds + i_seed`` has base learning rate ``lrs[i_lr]`` and shares its initial
    weights, data set and mini-batches with every run of the same seed index.

    Parameters
    ----------
    setup : Setup
        The model size and recipe.
    lrs : sequence of float
        Base learning rates ``eta`` (``n_lr``), multiplied by the Table 1 factors of ``setup``.
    seeds : int
        Independent initialisations and data sets per learning rate.
    data : torch.Tensor, optional
        Training sets ``(N, D)`` (shared by every seed) or ``(seeds, N, D)``; default: Gaussian data
        drawn from the trainer's generator (:func:`gaussian_data`).
    seed : int
        Seed of the trainer's generator (data, initial weights, evaluation noise, mini-batches).
    dtype, device
        Of every tensor; ``device`` defaults to :func:`damlib.device`.
    defaults : Defaults
        Training choices: evaluation set size, Adam's betas and eps, blow-up level.
    """

    def __init__(self, setup: Setup, lrs, seeds: int, *, data: torch.Tensor | None = None, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None, defaults: Defaults = DEFAULTS):
        _check_setup(setup)
        _check_defaults(defaults)
        checks.positive_int("seeds", seeds)
        checks.positive_int("seed", seed, allow_zero=True)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        dev = torch.device(device) if device is not None else default_device()
        lrs = checks.real_tensor("lrs", lrs, dtype=dtype, device="cpu").reshape(-1)
        if lrs.numel() == 0 or not bool(torch.isfinite(lrs).all()) or bool((lrs <= 0).any()):
            raise ValueError("lrs must be a non-empty sequence of finite positive learning rates")
        self.setup, self.defaults, self.seeds = setup, defaults, seeds
        self.lrs = lrs
        self.gen = torch.Generator(device=dev).manual_seed(seed)
        if data is None:
            data = gaussian_data(setup, seeds, generator=self.gen, dtype=dtype, device=dev)
        else:
            data = checks.real_tensor("data", data, dtype=dtype, device=dev)
            checks.finite_data("data", data)
            if data.dim() == 2:
                data = data.expand(seeds, *data.shape)
            if tuple(data.shape) != (seeds, setup.N, setup.D):
                raise ValueError(f"data must have shape ({setup.N}, {setup.D}) or ({seeds}, {setup.N}, "
                                 f"{setup.D}), got {tuple(data.shape)}")
        self.data = data
        n_lr = lrs.numel()
        self.R = n_lr * seeds
        self.seed_of_run = torch.arange(seeds, device=dev).repeat(n_lr)            # (R,)
        per_seed = init_params(seeds, setup.K, setup.D, generator=self.gen, dtype=dtype, device=dev)
        self.params = Params(*(t[self.seed_of_run] for t in per_seed.tensors()))
        n_eval = min(defaults.n_eval, setup.N)
        self.eval_clean = data[:, :n_eval]
        self.eval_noisy = self.eval_clean + setup.noise * torch.randn(
            self.eval_clean.shape, generator=self.gen, dtype=dtype, device=dev)
        self._eval_inputs = self.per_run(self.eval_noisy)                            # (R, n_eval, D)
        self._eval_targets = self.per_run(self.eval_clean)
        sc = self._scales = setup.scales()
        base = lrs.to(dev).repeat_interleave(seeds)                                 # (R,)
        run_lrs = [base * sc.lr_W, base * sc.lr_b, base * sc.lr_c]                  # the optimiser's, (R,) each
        opt = BatchedAdam if setup.optimizer == "adam" else BatchedSGD
        kw = {"betas": defaults.betas, "eps": defaults.eps} if setup.optimizer == "adam" else {}
        self.opt = opt(self.params.tensors(), run_lrs, **kw)
        self.alive = torch.ones(self.R, dtype=torch.bool, device=dev)
        self.died = torch.full((self.R,), -1, dtype=torch.long, device=dev)
        self._unparked = torch.zeros(self.R, dtype=torch.bool, device=dev)  # died, not yet parked
        self.t = 0
        self.last_update: torch.Tensor | None = None
        self._stash: torch.Tensor | None = None   # outputs before the last step, for the "dout" record
        self._work: dict[str, torch.Tensor] = {}  # the step's temporaries, reused (model._loss_and_grads)
        self._eval_work: dict[str, torch.Tensor] = {}  # and the evaluation's
        # inside run(), the runs still trained: row i of every per-run tensor is run _rows[i]
        # (None: every run, in order); see _drop_dead
        self._rows: torch.Tensor | None = None
        self._died_all: torch.Tensor | None = None  # the divergence steps of every run, while rows are dropped

    def _forward(self, x: torch.Tensor, params: Params | None = None, *, outputs_only: bool = False,
                 work: dict | None = None):
        """``(x_hat, h, a)`` of every run on ``x``; with ``outputs_only``, ``x_hat`` by the faster
        :func:`~.model._denoise`; ``work`` as in :func:`~.model._forward`."""
        s, sc = self.setup, self._scales
        fn = _denoise if outputs_only else _forward
        return fn(params or self.params, x, s_in=sc.s_in, s_out=sc.s_out, activation=s.activation,
                  p=s.p, centred=s.centred, work=work)

    @torch.no_grad()
    def denoise(self, x: torch.Tensor, iterations: int = 1) -> torch.Tensor:
        """Apply each run's trained denoiser ``iterations`` times to ``x (R, B, D)`` or ``(B, D)``:
        ``x <- x_hat(x)``, the discrete energy descent of the paper's Eq. (3.5). Returns ``(R, B, D)``."""
        checks.positive_int("iterations", iterations)
        checks.shape("x", x, (self.setup.D,))
        checks.finite_data("x", x)
        if x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[0] != self.R):
            raise ValueError(f"x must have shape (B, {self.setup.D}) or ({self.R}, B, {self.setup.D}), "
                             f"got {tuple(x.shape)}")
        x = x.to(self.params.W)
        for _ in range(iterations):
            x = self._forward(x, outputs_only=True)
        return x

    def per_run(self, x_seeded: torch.Tensor) -> torch.Tensor:
        """Broadcast a per-seed tensor ``(S, ...)`` to the runs ``(R, ...)``."""
        return x_seeded[self.seed_of_run]

    def step(self, clean: torch.Tensor, noisy: torch.Tensor, *, measure_update: bool = True,
             park: bool = True) -> torch.Tensor:
        """One optimiser step on the per-seed batch ``(S, B, D)``; returns the loss per run before it.

        ``measure_update=False`` skips the RMS of the step (the ``update`` record), and
        ``park=False`` leaves the runs that diverged unparked (their rates are zero at once; their
        parameters and moments are reset at the next step that parks), both for the steps after
        which nothing is read."""
        s, sc = self.setup, self._scales
        rows = len(self.seed_of_run)
        inputs = torch.index_select(noisy, 0, self.seed_of_run,
                                    out=_buffer(self._work, "inputs", (rows, *noisy.shape[1:]), noisy))
        if self._rows is not None:  # the rows left are no longer groups of every seed
            clean = torch.index_select(clean, 0, self.seed_of_run,
                                       out=_buffer(self._work, "clean", (rows, *clean.shape[1:]), clean))
        loss, grads = _loss_and_grads(self.params, inputs, clean, s_in=sc.s_in, s_out=sc.s_out,
                                      activation=s.activation, p=s.p, centred=s.centred, work=self._work)
        self.t += 1
        deltas = self.opt.step(grads, deltas=measure_update)
        if measure_update:
            dW = centre(deltas[0]) if s.centred else deltas[0]
            self.last_update = dW.pow(2).mean((-1, -2)).sqrt()
        self._check(loss)
        if park:
            self._park()
        return loss

    def _check(self, loss: torch.Tensor) -> None:
        """Mark the runs that diverged at this step, on the device (no host sync): their step goes to
        ``died`` and their rates are zeroed (:meth:`_park` then resets their state)."""
        bad = ~torch.isfinite(loss) | (loss / self.setup.D > self.defaults.blowup)
        for p in self.params.tensors():
            # a run's sum is not finite when one of its entries is not (or when they overflow
            # together, far past the blow-up level): one read of the weights, no temporary
            bad |= ~torch.isfinite(p.flatten(1).sum(1))
        newly = bad & self.alive
        self.died = torch.where(newly, self.t, self.died)
        self.alive &= ~newly
        for lr in self.opt.lrs:
            lr.masked_fill_(newly, 0)
        self._unparked |= newly

    def _park(self) -> None:
        """Park the runs that died since the last call at a finite point (parameters zero) and zero
        their optimiser moments; until then a dead run may hold non-finite values, which touch no
        other run (every operation of a step is per run)."""
        for p in self.params.tensors():
            p.masked_fill_(self._unparked.view(-1, *([1] * (p.dim() - 1))), 0)
        self.opt.reset(self._unparked)
        self._unparked.zero_()

    def _drop_dead(self) -> None:
        """Stop computing the runs that diverged: every per-run tensor keeps only the rows of the runs
        still alive (inside :meth:`run`; :meth:`_restore_rows` puts every run back at its end).

        Each operation of a step acts on each run alone, so the runs left take the same steps bit
        for bit (``tests/test_denseam.py``); a dropped run is where parking would have put it.
        """
        keep = self.alive.nonzero().flatten()
        if len(keep) in (0, len(self.alive)):  # none died since the last call, or none is left
            return
        if self._rows is None:
            self._rows = torch.arange(self.R, device=keep.device)
            self._died_all = self.died.clone()
        self._died_all[self._rows] = self.died
        self._rows = self._rows[keep]
        self._map_rows(lambda t: t[keep])
        self._index_runs()

    def _restore_rows(self) -> None:
        """Every run back in its row after :meth:`_drop_dead`: a dropped run parked (parameters,
        moments and rates zero), its divergence step kept."""
        if self._rows is None:
            return
        rows, died = self._rows, self._died_all
        died[rows] = self.died

        def full(t: torch.Tensor) -> torch.Tensor:
            out = torch.zeros((self.R, *t.shape[1:]), dtype=t.dtype, device=t.device)
            out[rows] = t
            return out

        self._map_rows(full)
        self.died = died
        self._rows = self._died_all = None
        self._index_runs()

    def _map_rows(self, f) -> None:
        """Replace every per-run tensor ``t`` of the trainer and its optimiser by ``f(t)``."""
        self.params = Params(*(f(t) for t in self.params.tensors()))
        self.opt.map_runs(self.params.tensors(), f)
        for name in ("alive", "died", "_unparked", "last_update", "_stash"):
            if getattr(self, name) is not None:
                setattr(self, name, f(getattr(self, name)))
        self._work.clear()
        self._eval_work.clear()

    def _index_runs(self) -> None:
        """The seed of each row and the rows' evaluation sets, from ``_rows``."""
        rows = self._rows if self._rows is not None else torch.arange(self.R, device=self.alive.device)
        self.seed_of_run = rows % self.seeds                     # run r = i_lr * seeds + i_seed
        self._eval_inputs = self.per_run(self.eval_noisy)
        self._eval_targets = self.per_run(self.eval_clean)

    def check_divergence(self) -> None:
        """Raise :class:`~damlib.DivergenceError` at the earliest step at which some run diverged."""
        first = torch.where(self.died >= 0, self.died, torch.iinfo(torch.long).max).min()
        if int(first) != torch.iinfo(torch.long).max:
            raise checks.DivergenceError(int(first), "loss")

    @torch.no_grad()
    def evaluate(self, record: Iterable[str] = ()) -> dict[str, torch.Tensor]:
        """Loss per coordinate on the fixed evaluation set, and the quantities of ``record`` (among
        :data:`RECORDS`); ``(R,)`` each."""
        x_eval, work = self._eval_inputs, self._eval_work
        if {"gram", "k_eff", "hidden"} & set(record):
            x_hat, h, a = self._forward(x_eval, work=work)
        else:
            x_hat = self._forward(x_eval, outputs_only=True, work=work)
        out = {"loss": _mse(x_hat, self._eval_targets, work) / self.setup.D}
        for name in record:
            if name == "gram":
                top = gram_eigenvalues(a[:, : self.setup.B], centred=self.setup.centred)
                out["gram1"], out["gram2"] = top[:, 0], top[:, 1]
            elif name == "k_eff":
                out["k_eff"] = _participation(a, work)
            elif name == "update":
                out["update"] = (self.last_update if self.last_update is not None
                                 else torch.zeros(self.R, device=x_hat.device))
            elif name == "hidden":
                out["hidden"] = h.pow(2).mean((-1, -2)).sqrt()
            elif name == "dout":
                prev = self._stash if self._stash is not None else x_hat
                out["dout"] = (x_hat - prev).pow(2).mean((-1, -2)).sqrt()
            else:
                raise ValueError(f"record must be among {', '.join(RECORDS)}; got {name!r}")
        dead = ~self.alive
        for v in out.values():
            v.masked_fill_(dead, float("inf") if v is out["loss"] else float("nan"))
        if self._rows is not None:  # the dropped runs diverged
            for k, v in out.items():
                full = torch.full((self.R,), float("inf") if k == "loss" else float("nan"), dtype=v.dtype,
                                  device=v.device)
                out[k] = full.index_copy_(0, self._rows, v)
        return out

    def run(self, steps: int, *, log_every: int | None = None, record: Sequence[str] = (),
            diverged: str = "mask", progress: bool | None = None, batch_stream=None,
            drop_every: int | None = DROP_EVERY) -> History:
        """Train for ``steps`` more steps and return what was recorded over them.

        Parameters
        ----------
        steps : int
            Optimiser steps to take.
        log_every : int, optional
            Record every ``log_every`` steps (default: 50 log points), and after the last step.
        record : sequence of str
            Quantities to record besides the loss, among :data:`RECORDS`.
        diverged : {"mask", "raise"}
            ``"mask"`` parks a diverging run (loss ``inf`` from then on) and carries on with the
            others (the result's ``diverged``, ``n_diverged`` and ``first_divergence`` say which and
            when); every ``drop_every`` steps the runs that diverged are dropped from the batch,
            so that they cost nothing more, and put back, parked, at the end; ``"raise"`` raises
            :class:`~damlib.DivergenceError` with the first divergence's step, read at the log points
            and after the last step.
        progress : bool, optional
            Progress bar (:func:`damlib.progress.bar`; default: off in the book build).
        batch_stream : iterable of (clean, noisy), optional
            Replaces the mini-batches drawn by :func:`batches`.
        drop_every : int, optional
            With ``diverged="mask"``, how often the diverged runs are dropped (default
            :data:`DROP_EVERY`; ``None``: every run is computed to the end, the same numbers).

        Returns
        -------
        History
            Indexed ``[log point, learning rate, seed]``; the first log point is the state before
            these steps.
        """
        checks.positive_int("steps", steps)
        choice("diverged", diverged, ("mask", "raise"))
        if drop_every is not None:
            checks.positive_int("drop_every", drop_every)
        log_every = checks.positive_int("log_every", max(1, steps // 50) if log_every is None else log_every)
        if isinstance(record, str) or any(name not in RECORDS for name in record):
            raise ValueError(f"record must be a collection of names among {RECORDS}, got {record!r}")
        stream = batch_stream if batch_stream is not None else _batches(self.data, self.setup, steps, self.gen)
        logs, at = [self.evaluate(record)], [self.t]
        try:
            for i, (clean, noisy) in enumerate(bar(stream, total=steps, progress=progress,
                                                   desc=f"D={self.setup.D} K={self.setup.K}")):
                if i >= steps:
                    break
                logs_next = (self.t + 1) % log_every == 0 or i == steps - 1
                if "dout" in record and logs_next:
                    with torch.no_grad():
                        self._stash = self._forward(self._eval_inputs, outputs_only=True)
                self.step(clean, noisy, measure_update="update" in record and logs_next, park=logs_next)
                if diverged == "mask" and drop_every is not None and self.t % drop_every == 0:
                    self._drop_dead()
                if self.t % log_every == 0 or i == steps - 1:
                    if diverged == "raise":
                        self.check_divergence()
                    logs.append(self.evaluate(record))
                    at.append(self.t)
        finally:
            self._restore_rows()
        n_lr = self.lrs.numel()

        def stack(key):
            return torch.stack([lg[key] for lg in logs]).reshape(len(logs), n_lr, self.seeds).cpu()

        loss = stack("loss")
        extra = {k: stack(k) for k in logs[0] if k != "loss"}
        return History(self.setup, self.lrs.cpu(), torch.tensor(at, device="cpu"), loss, extra,
                       self.died.reshape(n_lr, self.seeds).cpu())


def sweep(setup: Setup, lrs, *, seeds: int = 1, steps: int, seed: int = 0, data=None,
          record: Sequence[str] = (), log_every: int | None = None, dtype=torch.float32, device=None,
          progress: bool | None = None, defaults: Defaults = DEFAULTS) -> History:
    """Train ``len(lrs) x seeds`` models of one size as one batched program and return the result.

    Parameters
    ----------
    setup : Setup
        The model size and recipe.
    lrs : sequence of float
        Base learning rates ``eta``.
    seeds : int
        Independent initialisations and data sets per learning rate.
    steps : int
        Optimiser steps.
    seed : int
        Seed of the sweep's generator.
    data : torch.Tensor, optional
        Training sets ``(N, D)`` or ``(seeds, N, D)``; default Gaussian.
    record : sequence of str
        Quantities to record besides the loss, among :data:`RECORDS`.
    log_every : int, optional
        Record every ``log_every`` steps (default: 50 log points).
    dtype, device, progress, defaults
        As for :class:`Trainer` and :meth:`Trainer.run`.

    Returns
    -------
    History
        Loss and records, indexed ``[log point, learning rate, seed]``.
    """
    trainer = Trainer(setup, lrs, seeds, data=data, seed=seed, dtype=dtype, device=device,
                      defaults=defaults)
    return trainer.run(steps, log_every=log_every, record=record, progress=progress)


@torch.no_grad()
def _outputs(trainer: Trainer, noisy: torch.Tensor):
    x_hat, h, _ = trainer._forward(trainer.per_run(noisy))
    return x_hat, h


def first_updates(setup: Setup, lr: float, *, seeds: int = 4, steps: int = 1, seed: int = 0,
                  dtype=torch.float32, device=None, defaults: Defaults = DEFAULTS,
                  diverged: str = "raise") -> dict[str, torch.Tensor]:
    """RMS change per entry of the hidden pre-activations and of the outputs over the first steps.

    Parameters
    ----------
    setup : Setup
        The model size and recipe.
    lr : float
        Base learning rate ``eta``.
    seeds : int
        Independent models.
    steps : int
        The first steps to measure.
    seed, dtype, device, defaults
        As for :class:`Trainer`.
    diverged : {"raise", "mask"}
        ``"raise"``: a :class:`~damlib.DivergenceError` with the first step at which a loss, an
        output or a pre-activation is not finite (or a loss passes ``defaults.blowup``);
        ``"mask"``: diverging runs are parked as in :meth:`Trainer.run` (their later changes measure
        the parking, not the model) and the result's ``"diverged"`` says which and when.

    Returns
    -------
    dict
        ``{"hidden": (steps, seeds), "output": (steps, seeds)}``: the RMS change on the evaluation
        inputs over each step (Desideratum 2 asks both to stay of order one as the sizes grow); with
        ``diverged="mask"`` also ``"diverged": (seeds,)``, the step at which each run diverged (-1: never).
    """
    checks.positive("lr", lr)
    checks.positive_int("steps", steps)
    choice("diverged", diverged, ("raise", "mask"))
    trainer = Trainer(setup, [lr], seeds, seed=seed, dtype=dtype, device=device, defaults=defaults)
    x0, h0 = _outputs(trainer, trainer.eval_noisy)
    out = {"hidden": [], "output": []}
    watch = checks.Watch()
    for clean, noisy in _batches(trainer.data, setup, steps, trainer.gen):
        trainer.step(clean, noisy)
        x1, h1 = _outputs(trainer, trainer.eval_noisy)
        watch.see(trainer.t, x1, "outputs")
        watch.see(trainer.t, h1, "hidden pre-activations")
        out["hidden"].append((h1 - h0).pow(2).mean((-1, -2)).sqrt())
        out["output"].append((x1 - x0).pow(2).mean((-1, -2)).sqrt())
        x0, h0 = x1, h1
    if diverged == "mask":
        return {**{k: torch.stack(v).cpu() for k, v in out.items()}, "diverged": trainer.died.cpu()}
    errors = []
    for check in (trainer.check_divergence, watch.check):  # the loss's and the outputs' first bad step
        try:
            check()
        except checks.DivergenceError as err:
            errors.append(err)
    if errors:
        raise min(errors, key=lambda err: err.step)
    return {k: torch.stack(v).cpu() for k, v in out.items()}
