"""Stored runs of ``gd`` (Cabannes, Simsek, Bietti 2024): Figure 7 at longer sequences.

``gd_figure7``
    The induction-head transformer of Section 5.3 (:mod:`damlib.transformer`) with the paper's
    sequence length ``T = 256`` and dimensions ``d in {64, 128}``, but far fewer sequences than
    the paper's 16,384: one gradient step over 16,384 sequences of 256 tokens costs about
    1,000 s on one CPU thread, so 256 training sequences are what a CPU affords in the time of
    a book build round (see the chapter ``book/gd/transformer.md``). Three shards, each an
    independent process::

        python -m damlib.experiments run gd_figure7 bottom_d64
        python -m damlib.experiments run gd_figure7 bottom_d128
        python -m damlib.experiments run gd_figure7 top_d64

    ``bottom_d*`` train ``W_K1``, ``W_K2`` and ``W_O2`` from their random start (the bottom row
    of Figure 7), ``top_d64`` trains ``W_O2`` alone with the keys frozen at the hand-built
    induction head (the top row). A shard saves its state every ``checkpoint_every`` steps
    (an explicit :class:`damlib.transformer.State` with the curves so far, in a hidden file
    beside the shard), so a process that is cut off resumes there when run again.

Stored arrays (``S = steps + 1`` recorded steps, ``R`` learning rates): ``loss (S, R)`` the
training loss; ``output_margins (S, R, 5)`` the ``W_O2`` margins of the drawn tokens;
``induction_margins (S, R, k)`` the ``W_K2`` margins of the triggers;
``previous_token_margin (S, R)`` the median ``W_K1`` margin over positions; ``test_loss (R,)``,
``test_accuracy (R,)`` on held-out sequences; ``compute_seconds ()`` the compute time summed over
the processes that made it (equal to the stored wall time when no process was cut off).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from .. import store
from .. import transformer as tf
from ..config import generator
from ..data import load_shakespeare_table
from . import Experiment, register

FIGURE7 = "gd_figure7"
FIGURE7_SHARDS = ("bottom_d64", "bottom_d128", "top_d64")


def figure7_params(shard: str) -> dict:
    """Every parameter of one shard of ``gd_figure7`` (the chapter's rates and steps)."""
    part, d = shard.split("_d")
    top = part == "top"
    return {
        "part": part, "d": int(d), "k": 5, "T": 256, "n_train": 256, "n_test": 256,
        "chunk": 32, "seed": 0, "shown": "eTs.z", "dtype": "float32",
        "lrs": [2.5, 6.25, 12.5, 25.0] if top else [1.0, 2.5, 5.0, 10.0],
        "steps": 50 if top else 100,
        "key_strength": 8.0 if top else None,
        "checkpoint_every": 10,
    }


def figure7_problem(params: dict):
    """The task's sequences, frozen parts and start of one shard, all on the CPU.

    Returns ``(task, train_seqs, test_seqs, frozen, start)``. The training sequences are sorted
    by their number of loss positions, so that chunks pad little (the full-batch gradient does
    not depend on the order, up to round-off).
    """
    table = load_shakespeare_table()
    task = tf.make_task(params["k"], table)
    dtype = getattr(torch, params["dtype"])
    gen = generator(params["seed"])
    train_seqs = tf.sample_sequences(task, params["n_train"], params["T"], generator=gen)
    test_seqs = tf.sample_sequences(task, params["n_test"], params["T"], generator=gen)
    train_seqs = train_seqs[train_seqs.mask.sum(-1).argsort(stable=True)]
    model_gen = generator(1000 * params["seed"] + params["d"])
    frozen = tf.init_frozen(len(table.vocab), params["d"], params["T"], generator=model_gen, dtype=dtype)
    start = tf.init_params(frozen, len(params["lrs"]), generator=model_gen)
    if params["part"] == "top":
        for name, W in tf.induction_keys(frozen, task.triggers, params["key_strength"]).items():
            start[name] = W.expand_as(start[name]).clone()
    return task, train_seqs, test_seqs, frozen, start


def _checkpoint_path(shard_name: str) -> Path:
    return store.resolve_root() / FIGURE7 / f".{shard_name}.partial.pt"


def _shard_name(params: dict) -> str:
    return f"{params['part']}_d{params['d']}"


def figure7_run(params: dict, *, steps: int | None = None, resume: bool = True) -> dict[str, np.ndarray]:
    """Compute one shard; with ``steps``, only the curves of its first ``steps`` steps (the cheap
    slice a chapter recomputes), without checkpoints or the held-out evaluation.

    A full run continues from its checkpoint when one with the same parameters exists
    (``resume``), and writes one atomically every ``params["checkpoint_every"]`` steps.
    """
    task, train_seqs, test_seqs, frozen, start = figure7_problem(params)
    trained = ("WO2",) if params["part"] == "top" else tf.TRAINABLE
    lrs = torch.tensor(params["lrs"], dtype=frozen.E.dtype, device=frozen.E.device)
    total = params["steps"] if steps is None else steps
    shown_ids = load_shakespeare_table().encode(params["shown"])
    keep = steps is None
    path = _checkpoint_path(_shard_name(params))
    state, pieces, seconds = tf.State(start), [], 0.0
    if keep and resume and path.exists():
        saved = torch.load(path, weights_only=False)
        if saved["params"] == params:
            state, pieces, seconds = saved["state"], saved["pieces"], saved["seconds"]
    while state.step < total:
        begun = time.perf_counter()
        chunk_steps = min(params["checkpoint_every"], total - state.step)
        run = tf.train(frozen, state, train_seqs, lr=lrs, steps=chunk_steps, trained=trained,
                       record=tf.RECORDS, output_tokens=shown_ids, induction_tokens=task.triggers,
                       chunk=params["chunk"])
        curves = {"loss": run["loss"], "output_margins": run["output_margins"],
                  "induction_margins": run["induction_margins"],
                  "previous_token_margin": run["previous_token_margins"].median(-1).values}
        # each piece starts where the previous one ended: keep its first record only for the first
        pieces.append({k: v if not pieces else v[1:] for k, v in curves.items()})
        state = run.state
        seconds += time.perf_counter() - begun
        if keep:
            _save_atomic(path, {"params": params, "state": state, "pieces": pieces, "seconds": seconds})
    arrays = {k: torch.cat([p[k] for p in pieces]).numpy() for k in pieces[0]}
    if not keep:
        return arrays
    begun = time.perf_counter()
    test_loss, test_acc = tf.evaluate(frozen, state.params, test_seqs, chunk=params["chunk"])
    seconds += time.perf_counter() - begun
    arrays.update(test_loss=test_loss.numpy(), test_accuracy=test_acc.numpy(),
                  compute_seconds=np.array(seconds))
    return arrays


def _save_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


register(Experiment(
    name=FIGURE7,
    shards=FIGURE7_SHARDS,
    params=figure7_params,
    run=figure7_run,
    description="gd Figure 7, the induction-head transformer at T = 256, d in {64, 128}, 256 sequences",
))
