"""Stored runs of ``dam``: splitting steepest descent under the authors' protocol
(:mod:`damlib.dam.protocol`), in their two set-ups, one seed per shard.

- ``dam_split_small``: their small-data set-up (their Fig. 5): the first 1,000 training digits, no
  validation set, batch 100, ``beta_init = 32``, every memory started at the data's mean direction
  plus a tiny perturbation; ``P0 = 100`` grown to 400 (300 epochs per stage, up to 14 splits), beside
  the run without splitting from the same start (100 memories) and the run of 400 memories from the
  same kind of start (training from scratch), each for as many epochs as the grown run took.
- ``dam_split_speedup``: their speed-up set-up (their Fig. 6) on the digits at hand: 4,000 training
  digits, 10% held out for early stopping (patience 1), ``beta_init = 1``, memories uniform on the
  sphere, one class each; from scratch ``P_max`` memories for ``100 + P_max // 10`` epochs at most,
  by splitting ``P0 = 10`` grown to ``P_max`` with 100 epochs per stage at most. ``P_max`` in
  {70, 100, 130} keeps their 54, 36 and 27 training digits per memory (3,600 / P_max; theirs
  54,000 / {1000, 1500, 2000}). The batch keeps their 54 steps per epoch (3,600 / 67) rather than
  their 1,000 digits: with 1,000 an epoch here is 4 steps and early stopping ends every run within
  two epochs, before momentum 0.99 has moved anything.
"""

from __future__ import annotations

import time

import numpy as np

from .. import dam
from ..config import generator
from ..dam import protocol
from . import Experiment, register

SEEDS = tuple(range(10))

SMALL = dict(n_train=1000, batch_size=100, beta_init=32.0, p0=100, p_max=400, stage_epochs=300,
             max_splits=14, lr=0.1, momentum=0.99, eps=0.25, max_eigval=-1e-3, split_iters=20,
             noise=1e-3, smoothing=0.1, check_epochs=3)

SPEEDUP = dict(n_train=4000, val_fraction=0.1, batch_size=67, beta_init=1.0, p0=10,
               p_maxes=[70, 100, 130], stage_epochs=100, max_splits=14, lr=0.1, momentum=0.99, eps=0.25,
               max_eigval=-1e-3, split_iters=20, split_batch=1000, smoothing=0.1)


def _seed(shard: str) -> int:
    return int(shard.split("=", 1)[1])


def small_params(shard: str) -> dict:
    """The parameters of one shard (``"seed=S"``) of ``dam_split_small``."""
    return {**SMALL, "seed": _seed(shard)}


def speedup_params(shard: str) -> dict:
    """The parameters of one shard (``"seed=S"``) of ``dam_split_speedup``."""
    return {**SPEEDUP, "seed": _seed(shard)}


def _finish(run: protocol.Run, digits, smoothing: float, prefix: str) -> dict:
    out = {f"{prefix}_{k}": v for k, v in protocol.arrays(run).items()}
    out[f"{prefix}_test_accuracy"] = np.float64(dam.accuracy(run.model, digits.x_test, digits.y_test))
    out[f"{prefix}_train_loss"] = np.float64(dam.loss(run.model, digits.x, digits.y, smoothing=smoothing))
    out[f"{prefix}_stopped_early"] = np.bool_(run.ended_by == "early stopping")
    return {k: np.atleast_1d(v) for k, v in out.items()}   # as the store keeps them


def _small_opts(p: dict) -> dict:
    return dict(batch_size=p["batch_size"], lr=p["lr"], momentum=p["momentum"], eps=p["eps"],
                max_eigval=p["max_eigval"], split_iters=p["split_iters"], smoothing=p["smoothing"])


def small_slice(params: dict, *, digits=None) -> dict:
    """The first ``check_epochs`` epochs of the grown run (before its first split): the cheap slice a
    chapter recomputes at build. Returns ``check_loss`` (training loss) and ``check_beta``."""
    p = params
    digits = digits if digits is not None else dam.load_digits(p["n_train"])
    gen = generator(p["seed"])
    start = protocol.mean_start(digits.x, p["p0"], 10, p["beta_init"], noise=p["noise"], generator=gen)
    run = protocol.authors_run(start, digits.x, digits.y, p_max=p["p0"], stage_epochs=p["check_epochs"],
                               max_splits=0, generator=gen, **_small_opts(p))
    return {"check_loss": np.atleast_1d(np.float64(dam.loss(run.model, digits.x, digits.y,
                                                         smoothing=p["smoothing"]))),
            "check_beta": np.atleast_1d(np.float64(run.model.beta))}


def run_small(params: dict, *, digits=None) -> dict:
    """The three runs of the small-data set-up for one seed; ``digits`` may be passed (tests)."""
    p = params
    digits = digits if digits is not None else dam.load_digits(p["n_train"])
    opts = _small_opts(p)
    out = small_slice(p, digits=digits)
    gen = generator(p["seed"])
    start = protocol.mean_start(digits.x, p["p0"], 10, p["beta_init"], noise=p["noise"],
                                generator=gen)
    split = protocol.authors_run(start, digits.x, digits.y, p_max=p["p_max"], stage_epochs=p["stage_epochs"],
                                 max_splits=p["max_splits"], generator=gen, **opts)
    out.update(_finish(split, digits, p["smoothing"], "split"))
    epochs = split.epochs[-1]
    for name, model in (("nosplit", start),
                        ("scratch", protocol.mean_start(digits.x, p["p_max"], 10, p["beta_init"],
                                                        noise=p["noise"], generator=generator(p["seed"])))):
        run = protocol.authors_run(model, digits.x, digits.y, p_max=model.n_memories, stage_epochs=epochs,
                                   max_splits=0, generator=generator(p["seed"] + 1000), **opts)
        out.update(_finish(run, digits, p["smoothing"], name))
    return out


def run_speedup(params: dict, *, digits=None, p_maxes=None) -> dict:
    """Scratch and splitting runs at every ``P_max`` for one seed (``p_maxes`` selects some, for a
    cheap slice); arrays are named ``<method>_<P_max>_<quantity>``."""
    p = params
    digits = digits if digits is not None else dam.load_digits(p["n_train"])
    n_features = digits.x.shape[1]
    opts = dict(batch_size=p["batch_size"], val_fraction=p["val_fraction"], lr=p["lr"],
                momentum=p["momentum"], eps=p["eps"], max_eigval=p["max_eigval"],
                split_iters=p["split_iters"], split_batch=p["split_batch"], smoothing=p["smoothing"])
    out = {}
    for p_max in p_maxes or p["p_maxes"]:
        for name, p0, epochs in (("scratch", p_max, p["stage_epochs"] + p_max // 10),
                                 ("split", p["p0"], p["stage_epochs"])):
            gen = generator(p["seed"])
            start = protocol.random_start(p0, n_features, 10, p["beta_init"], generator=gen,
                                          dtype=digits.x.dtype, device=digits.x.device)
            clock = time.perf_counter()
            run = protocol.authors_run(start, digits.x, digits.y, p_max=p_max, stage_epochs=epochs,
                                       max_splits=p["max_splits"], generator=gen, **opts)
            out[f"{name}_{p_max}_wall"] = np.atleast_1d(np.float64(time.perf_counter() - clock))
            out.update(_finish(run, digits, p["smoothing"], f"{name}_{p_max}"))
    return out


register(Experiment(
    name="dam_split_small", shards=tuple(f"seed={s}" for s in SEEDS[:5]), params=small_params,
    run=run_small,
    description="dam splitting, the authors' small-data set-up (1,000 digits, P0 = 100 -> 400), one seed"))
register(Experiment(
    name="dam_split_speedup", shards=tuple(f"seed={s}" for s in SEEDS), params=speedup_params,
    run=run_speedup,
    description="dam splitting, the authors' speed-up protocol (early stopping) at P_max 70..130, one seed"))
