"""Are memories prototypes of their class? Measures for the slide "Our DAM", for the vMF model and
the Krotov-Hopfield memory alike."""

from __future__ import annotations

import torch

from .. import checks


def neighbour_purity(memories: torch.Tensor, labels: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                     k: int = 10) -> torch.Tensor:
    """For each memory, the fraction of its ``k`` nearest digits (largest overlap ``w . x``) that belong
    to its class: ``(P,)`` in ``[0, 1]``.

    ``memories (P, N)`` and digits ``x (n, N)`` are compared by their overlap, so both should be on the
    sphere; ``labels (P,)`` are the memories' classes, ``y (n,)`` the digits'. A memory that looks like
    the digits of its class scores near 1; one that looks like no digit in particular, near the share of
    its class in the data.
    """
    checks.positive_int("k", k)
    checks.shape("x", x, (None, None), batch=False)
    checks.tensor("memories", memories, floating=True)
    checks.finite_data("memories", memories)
    checks.finite_data("x", x)
    if k > len(x):
        raise ValueError(f"k={k} is more than the {len(x)} digits")
    if memories.dim() != 2 or memories.shape[1] != x.shape[1]:
        raise ValueError(f"memories must have shape (P, {x.shape[1]}), got {tuple(memories.shape)}")
    checks.indices("labels", labels)
    checks.indices("y", y)
    if labels.shape != memories.shape[:1]:
        raise ValueError(f"labels must have shape ({len(memories)},), got {tuple(labels.shape)}")
    if y.shape != x.shape[:1]:
        raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    nearest = (memories @ x.T).topk(k, dim=-1).indices         # (P, k)
    return (y[nearest] == labels[:, None]).to(memories.dtype).mean(-1)


def kh_winning_share(memories: torch.Tensor, v: torch.Tensor, *, power: int, temperature: float) -> torch.Tensor:
    """For each Krotov-Hopfield memory, the fraction of digits ``v (n, N)`` on which its rectified
    polynomial term ``F(xi_pix . v + xi_label)`` (summed over classes) is the largest of all memories:
    ``(K,)``. With a high power the largest term dominates the output and the gradient, so a memory that
    wins on no digit gets almost no gradient and stays where it started."""
    checks.positive_int("power", power)
    checks.positive("temperature", temperature)
    checks.shape("v", v, (None, None), batch=False)
    checks.finite_data("v", v)
    n_pix = v.shape[-1]
    checks.tensor("memories", memories, floating=True)
    if memories.dim() != 2 or memories.shape[-1] <= n_pix:
        raise ValueError(f"memories must have shape (K, {n_pix} + C), got {tuple(memories.shape)}")
    checks.finite_data("memories", memories)
    pix, lab = memories[:, :n_pix], memories[:, n_pix:]
    s = (v @ pix.T).unsqueeze(-1) - (lab.sum(-1, keepdim=True) - lab).unsqueeze(0)   # (n, K, C)
    term = (torch.relu((s + lab) / temperature) ** power).sum(-1)                      # (n, K)
    wins = term.argmax(-1)
    return torch.bincount(wins, minlength=len(memories)).to(v.dtype) / len(v)
