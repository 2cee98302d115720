"""The book's measure of splitting steepest descent: how much wall time and compute a run grown by
splitting from ``P0`` memories, and one of ``P_max`` memories trained from scratch, spend to reach the
test accuracy that the scratch run ends with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import checks
from ..config import generator
from .model import init_from_data
from .optimise import History, smoothed_accuracy, time_to_reach, train
from .splitting import grow_by_splitting


@dataclass
class Race:
    """Splitting against scratch at one ``P_max``: both :class:`History`, the ``target`` accuracy (the
    scratch run's final accuracy, averaged over ``window`` checkpoints) and what each spends to reach it,
    ``seconds_*`` in wall time and ``work_*`` in memory-digit pairs (``nan`` when never reached)."""

    scratch: History
    split: History
    window: int
    target: float
    acc_split: float
    seconds_scratch: float
    seconds_split: float
    work_scratch: float
    work_split: float

    @property
    def speedup_seconds(self) -> float:
        return self.seconds_scratch / self.seconds_split

    @property
    def speedup_work(self) -> float:
        return self.work_scratch / self.work_split


def race(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *, p_max: int,
         p0: int, total_steps: int, stage_steps: int, eval_every: int, batch_size: int, beta: float,
         lr: float, eps: float, window: int, seed: int = 0) -> Race:
    """Train ``p_max`` memories from scratch and grow ``p0`` to ``p_max`` by splitting, same settings.

    Parameters
    ----------
    x, y, x_test, y_test : torch.Tensor
        Training and test digits on the sphere ``(n, N)`` and their classes (10).
    p_max, p0 : int
        Memories of the scratch run (and the final size of the grown one); starting memories of the
        grown run. Both start at training digits of class ``mu mod 10``.
    total_steps, stage_steps : int
        Adam steps of each run; steps between splits.
    eval_every : int
        Steps between checkpoints (test accuracy).
    batch_size : int
        Mini-batch size, also the digits drawn for each splitting direction.
    beta, lr, eps : float
        Inverse temperature, Adam step size, half the distance between split copies.
    window : int
        Checkpoints averaged for "reached" (test accuracy is noisy).
    seed : int
        Seed of each run's generator (both runs start from the same one).

    Returns
    -------
    Race
    """
    for name, value in (("p_max", p_max), ("p0", p0), ("total_steps", total_steps),
                        ("stage_steps", stage_steps), ("eval_every", eval_every), ("batch_size", batch_size),
                        ("window", window)):
        checks.positive_int(name, value)
    checks.positive("beta", beta)
    checks.positive("lr", lr)
    checks.positive("eps", eps)
    gen = generator(seed)
    start = init_from_data(x, y, p_max, 10, beta, generator=gen)
    scratch = train(start, x, y, steps=total_steps, lr=lr, batch_size=batch_size, generator=gen,
                    eval_every=eval_every, eval_data=(x_test, y_test))
    gen = generator(seed)
    small = init_from_data(x, y, p0, 10, beta, generator=gen)
    split = grow_by_splitting(small, x, y, p_max=p_max, stage_steps=stage_steps, total_steps=total_steps,
                              lr=lr, eps=eps, batch_size=batch_size, split_batch=batch_size, generator=gen,
                              eval_every=eval_every, eval_data=(x_test, y_test))
    target = float(smoothed_accuracy(scratch, window)[-1])
    reach = {(run, measure): time_to_reach(h, target, window=window, measure=measure)
             for run, h in (("scratch", scratch), ("split", split)) for measure in ("seconds", "work")}
    return Race(scratch, split, window, target, float(smoothed_accuracy(split, window)[-1]),
                reach["scratch", "seconds"], reach["split", "seconds"],
                reach["scratch", "work"], reach["split", "work"])


def smoothed_curve(history: History, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy averaged over ``window`` checkpoints, with the wall time and the compute at each."""
    checks.positive_int("window", window)
    return (smoothed_accuracy(history, window), np.array(history.seconds[window - 1:]),
            np.array(history.work[window - 1:], dtype=float))
