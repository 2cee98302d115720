"""One matplotlib style for every figure of the book, and helpers that repeat.

Call :func:`use_style` once at the top of a notebook.
"""

from __future__ import annotations

import string

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

STYLE = {
    "figure.figsize": (7.0, 3.2),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=COLORS),
    "lines.linewidth": 1.4,
    "image.cmap": "viridis",
    "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply the book's matplotlib style (sizes, fonts, colour cycle)."""
    mpl.rcParams.update(STYLE)


def to_numpy(x) -> np.ndarray:
    """A tensor (any device, any dtype) or array as a numpy array, for plotting."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def label_panels(axes, *, start: str = "a") -> None:
    """Write (a), (b), ... in the top-left corner of each axis, in order."""
    letters = string.ascii_lowercase[string.ascii_lowercase.index(start):]
    for ax, letter in zip(np.ravel(axes), letters):
        ax.text(-0.02, 1.02, f"({letter})", transform=ax.transAxes, ha="right", va="bottom",
                fontweight="bold")


def subplots(nrows: int = 1, ncols: int = 1, *, width: float | None = None,
             height: float | None = None, **kwargs):
    """``plt.subplots`` with the book's default size scaled to the panel count."""
    w0, h0 = STYLE["figure.figsize"]
    size = (width or w0, height or (h0 * nrows if nrows > 1 else h0))
    return plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kwargs)
