"""Drawing functions of the ``dam`` chapters, shared by their figures and their explorers."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .style import COLORS, figure


def draw_saddle(state: Mapping, *, eps: float = 1.0, ylim=None):
    """One state of :func:`damlib.dam.saddle_states`: each memory's splitting eigenvalue (bars, left),
    then the worst memory, its splitting direction and the two copies ``normalise(w +- eps u)`` it
    splits into. Returns the figure."""
    fig = figure(7.0, 2.4)
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


def memory_limit(images, quantile: float = 0.995) -> float:
    """One colour limit for a set of memories: the ``quantile`` of their absolute pixel values."""
    values = np.abs(np.concatenate([np.ravel(np.asarray(img)) for img in images]))
    return float(np.quantile(values, quantile))


def draw_memories(axes, images, titles=(), *, lim: float, title_colors=None):
    """Memories as 28x28 thumbnails on ``axes`` (one axis each, same order), on one diverging colour
    scale ``[-lim, lim]`` (red positive, blue negative) so that thumbnails compare. Each image is a
    flat ``(784,)`` array; ``titles`` label them. Returns the last image (for a colour bar)."""
    shown = None
    titles = list(titles) + [""] * (len(images) - len(titles))
    colors = list(title_colors) if title_colors is not None else ["black"] * len(images)
    for ax, img, title, color in zip(np.ravel(axes), images, titles, colors):
        img = np.asarray(img)
        side = int(round(len(img) ** 0.5))
        shown = ax.imshow(img.reshape(side, side), cmap="RdBu_r", vmin=-lim, vmax=lim)
        if title:
            ax.set_title(title, fontsize=8, pad=2, color=color)
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
    return shown
