"""Drawing functions of the ``dam`` chapters, shared by their figures and their explorers."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from .style import COLORS


def draw_saddle(state: Mapping, *, eps: float = 1.0, ylim=None):
    """One state of :func:`damlib.dam.saddle_states`: each memory's splitting eigenvalue (bars, left),
    then the worst memory, its splitting direction and the two copies ``normalise(w +- eps u)`` it
    splits into. Returns the figure."""
    fig = plt.figure(figsize=(9.0, 2.6))
    grid = fig.add_gridspec(1, 5, width_ratios=[2.2, 1, 1, 1, 1])
    ax = fig.add_subplot(grid[0])
    lam = np.asarray(state["lam"])
    colors = [COLORS[1] if v < 0 else COLORS[0] for v in lam]
    ax.bar(np.arange(len(lam)), lam, color=colors)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_yscale("symlog", linthresh=1e-3)
    if ylim is not None:
        ax.set_ylim(ylim)
    ax.set_xticks(np.arange(len(lam)), [str(int(c)) for c in state["labels"]])
    kind = "saddle" if lam.min() < 0 else "minimum"
    ax.set(xlabel="memory (its class)", ylabel="splitting eigenvalue",
           title=rf"$\beta$ = {state['beta']:.2f}: {kind}")
    w, u = np.asarray(state["w"]), np.asarray(state["u"])
    side = int(round(len(w) ** 0.5))
    plus, minus = w + eps * u, w - eps * u
    images = [(w, "worst memory", "gray_r"), (u, "splitting direction", "RdBu_r"),
              (plus / np.linalg.norm(plus), "copy +", "gray_r"), (minus / np.linalg.norm(minus), "copy -", "gray_r")]
    for k, (img, title, cmap) in enumerate(images):
        bx = fig.add_subplot(grid[k + 1])
        lim = np.abs(img).max()
        bx.imshow(img.reshape(side, side), cmap=cmap, vmin=-lim if cmap == "RdBu_r" else None,
                  vmax=lim if cmap == "RdBu_r" else None)
        bx.set_title(title, fontsize=8)
        bx.axis("off")
    return fig
