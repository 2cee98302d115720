"""One matplotlib style for every figure of the book, and helpers that repeat.

Call :func:`use_style` once at the top of a notebook. The convention: a figure is drawn at most
:data:`COLUMN_WIDTH` inches wide (:func:`subplots` and :func:`figure` refuse wider ones; lay panels
out in more rows instead), so that the page column shows it at 96 px per inch and its text, never
below :data:`MIN_FONT_PT`, at 9 px or more; ordered sizes take :func:`size_colors`; a legend that
would cover data goes under the figure (:func:`figure_legend`).
"""

from __future__ import annotations

import io
import string

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

# The page column of Jupyter Book's default theme at a 1280 px window is 672 px. A figure is drawn
# at most COLUMN_WIDTH inches wide, so that 1 inch is 96 px there and text is shown at the size it
# was drawn. The inline backend crops to the drawn artists (bbox "tight"), which may come out wider
# than the figure size when a legend or a label sits outside the axes: WIDTH_TOLERANCE allows for
# that, and MIN_FONT_PT keeps text at MIN_TEXT_PX or more even then.
COLUMN_PX = 672
COLUMN_WIDTH = 7.0
WIDTH_TOLERANCE = 0.25
MIN_TEXT_PX = 9
COLUMN_DPI = round(COLUMN_PX / COLUMN_WIDTH)  # 96: the pixels per inch of a figure at the column
MIN_FONT_PT = MIN_TEXT_PX * 72 * (COLUMN_WIDTH + WIDTH_TOLERANCE) / COLUMN_PX  # 6.99 pt

STYLE = {
    "figure.figsize": (COLUMN_WIDTH, 3.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 8.5,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8.5,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 7.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "figure.titlesize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=COLORS),
    "lines.linewidth": 1.4,
    "image.cmap": "viridis",
    "figure.constrained_layout.use": True,
}

# Ordered sizes (K, D, widths...) take colours from one sequential map, light to dark = small to
# large; the map's lightest end is cut so that the smallest size still shows on white.
SIZES_CMAP = "viridis_r"
_SIZES_RANGE = (0.15, 0.95)


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


def size_colors(n: int) -> list:
    """``n`` colours for ``n`` ordered sizes (smallest first), from :data:`SIZES_CMAP`: the larger
    the size, the darker. One colour (``n = 1``) is the darkest."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    lo, hi = _SIZES_RANGE
    cmap = plt.get_cmap(SIZES_CMAP)
    return [cmap(hi if n == 1 else lo + (hi - lo) * i / (n - 1)) for i in range(n)]


def _check_width(width: float) -> None:
    if not width <= COLUMN_WIDTH:
        raise ValueError(f"width must be at most the column width, {COLUMN_WIDTH} inches (got {width}); "
                         "lay the panels out in more rows instead")


def figure(width: float | None = None, height: float | None = None, **kwargs):
    """``plt.figure`` at the book's size; ``width`` at most :data:`COLUMN_WIDTH` inches."""
    w0, h0 = STYLE["figure.figsize"]
    width = w0 if width is None else width
    _check_width(width)
    return plt.figure(figsize=(width, height or h0), **kwargs)


def subplots(nrows: int = 1, ncols: int = 1, *, width: float | None = None,
             height: float | None = None, **kwargs):
    """``plt.subplots`` with the book's default size scaled to the row count; ``width`` (inches)
    at most :data:`COLUMN_WIDTH`, the page column, else a ``ValueError``."""
    w0, h0 = STYLE["figure.figsize"]
    width = w0 if width is None else width
    _check_width(width)
    size = (width, height or (h0 * nrows if nrows > 1 else h0))
    return plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kwargs)


def drawn_width(fig) -> float:
    """Width in inches of ``fig`` as the inline backend shows it: drawn at its own dpi and cropped
    to its artists (bbox "tight"), which a legend or a label outside the axes can make wider than
    its figure size. At most ``COLUMN_WIDTH + WIDTH_TOLERANCE`` for a figure of the book."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
    width = int.from_bytes(buffer.getvalue()[16:20], "big")  # the PNG header's IHDR width
    return width / fig.dpi


def figure_legend(fig, ax, *, ncol: int | None = None, **kwargs):
    """The legend of ``ax`` under the whole figure, off the data (constrained layout makes room),
    in one row of up to six entries unless ``ncol`` says otherwise."""
    handles, labels = ax.get_legend_handles_labels()
    kwargs.setdefault("loc", "outside lower center")
    kwargs.setdefault("frameon", False)
    return fig.legend(handles, labels, ncol=ncol or min(len(labels), 6), **kwargs)
