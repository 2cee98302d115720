"""The copied point across the inverse temperature: one model per ``beta``, trained as one batch,
and the splitting picture of each (which memories' copies are saddles, and how the worst one splits).

The saddles chapter and its explorer (:func:`damlib.widgets.saddle_explorer`) both compute from here;
:func:`damlib.plotting.dam.draw_saddle` draws one state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import checks
from ..config import generator
from .model import DAM, init_from_data
from .optimise import train
from .splitting import splitting_eigen


def models_over_beta(x: torch.Tensor, y: torch.Tensor, betas: Sequence[float], *, n_memories: int = 10,
                     steps: int, lr: float, seed: int = 0) -> DAM:
    """One vMF model per ``beta``, all trained together by full-batch Adam (batch ``(len(betas),)``).

    ``x (n, N)`` unit-norm digits, ``y (n,)`` their classes (10); memory ``mu`` starts at a training
    digit of class ``mu mod 10`` (:func:`~damlib.dam.init_from_data`, drawn from ``seed``).
    """
    checks.shape("x", x, (None, None), batch=False)
    beta = checks.real_tensor("betas", betas, dtype=x.dtype, device=x.device)
    if beta.dim() != 1 or beta.numel() == 0:
        raise ValueError(f"betas must be a non-empty sequence of positive numbers, got {betas!r}")
    checks.in_range("betas", beta, 0, lo_open=True)
    checks.positive_int("n_memories", n_memories)
    checks.positive_int("steps", steps)
    checks.positive("lr", lr)
    checks.positive_int("seed", seed, allow_zero=True)
    start = init_from_data(x, y, n_memories, 10, beta, generator=generator(seed), batch=(len(betas),))
    return train(start, x, y, steps=steps, lr=lr).model


def saddle_states(models: DAM, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, np.ndarray | float]]:
    """The splitting picture of every model of a batch over ``beta`` (``models.beta`` of shape ``(B,)``).

    Per model: ``beta``; ``lam (P,)``, the smallest Hessian eigenvalue of the copied point along the
    splitting direction of each memory, ``(delta, -delta) / sqrt(2)`` (negative: a saddle); ``labels
    (P,)``, each memory's class; ``worst``, the memory with the lowest ``lam``; ``w (N,)`` that memory and
    ``u (N,)`` its unit splitting direction. One call of :func:`~damlib.dam.splitting_eigen` for the
    whole batch.
    """
    if not isinstance(models, DAM):
        raise ValueError(f"models must be a DAM, got {type(models).__name__}")
    if models.beta.dim() != 1:
        raise ValueError(f"models must be a batch over beta of shape (B,), got beta of shape "
                         f"{tuple(models.beta.shape)}")
    vals, vecs = splitting_eigen(models, x, y)                          # (B, P), (B, P, N)
    lam = vals / 2

    def to_numpy(t):
        return t.detach().cpu().numpy()

    states = []
    for b, worst in enumerate(lam.argmin(-1).tolist()):
        states.append({"beta": float(models.beta[b]), "lam": to_numpy(lam[b]),
                       "labels": to_numpy(models.logits[b].argmax(-1)), "worst": worst,
                       "w": to_numpy(models.w[b, worst]), "u": to_numpy(vecs[b, worst])})
    return states
