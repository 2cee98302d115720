"""Drawing functions of ``gd`` (Cabannes, Simsek, Bietti 2024), shared by the chapters' figures
and the explorers of :mod:`damlib.widgets`.

The two-class plane (Sections 4.1 and 4.3): every landscape shades its 0-1 loss the same way,
:func:`shade_zero_one` (white where every token is right, then one grey per tenth of 0-1 loss,
darker for more loss), with :func:`zero_one_key` as its key, so that a static figure and its
explorer cannot disagree. :func:`draw_plane` draws one state of
:func:`damlib.train.plane_states`. :func:`draw_figure7` draws the induction-head transformer of
Section 5.3 from the curves that :func:`damlib.transformer.train` records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np

from .style import COLORS, figure_legend, label_panels, subplots, to_numpy

# 0-1 loss bins: exactly zero, then tenths; white, then greys of growing darkness
ZERO_ONE_LEVELS = [-1e-12, 1e-12, *np.linspace(0.1, 1.0, 10)[:-1], 1.0 + 1e-12]
ZERO_ONE_COLORS = ["white", *plt.get_cmap("Greys")(np.linspace(0.12, 0.7, 10))]


def shade_zero_one(ax, points, zero_one):
    """Shade the 0-1 loss ``zero_one (n, n)`` over the plane grid ``points (n, n, 2)``.

    Returns the contour set, for :func:`zero_one_key`.
    """
    points, zero_one = to_numpy(points), to_numpy(zero_one)
    return ax.contourf(points[..., 0], points[..., 1], zero_one, levels=ZERO_ONE_LEVELS,
                       colors=[mcolors.to_hex(c) for c in ZERO_ONE_COLORS])


def zero_one_key(fig, shading, axes):
    """The key of :func:`shade_zero_one`'s grey scale, a colour bar beside ``axes``."""
    bar = fig.colorbar(shading, ax=axes, shrink=0.8, pad=0.02, ticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
    bar.set_label("0-1 loss")
    return bar


def level_lines(ax, points, loss, *, levels: int = 20, linewidths: float = 0.7):
    """Level lines of the loss ``loss (n, n)`` over the plane grid ``points (n, n, 2)``."""
    points = to_numpy(points)
    return ax.contour(points[..., 0], points[..., 1], to_numpy(loss), levels=levels, linewidths=linewidths)


def draw_plane(state: Mapping[str, np.ndarray], *, title: str = "", axes=None, key: bool = True):
    """One state of :func:`damlib.train.plane_states`.

    Left: loss level lines, 0-1 loss shading (:func:`shade_zero_one`, with its key when ``key``)
    and the trajectory; right: loss and 0-1 loss against the step. Draws on ``axes`` (two axes)
    or a new figure; returns the two axes.
    """
    if axes is None:
        _, axes = subplots(1, 2, width=7.0, height=3.0)
        axes = axes[0]
    ax, bx = axes
    shading = shade_zero_one(ax, state["points"], state["zero_one"])
    level_lines(ax, state["points"], state["loss"], linewidths=0.6)
    ax.plot(state["path"][:, 0], state["path"][:, 1], "o-", ms=2.5, color=COLORS[1])
    ax.set(xlabel="$g_1$", ylabel="$g_2$", title=title)
    ax.grid(False)
    if key:
        zero_one_key(ax.figure, shading, ax)
    t = np.arange(len(state["path_loss"]))
    bx.plot(t, state["path_loss"], label="loss")
    bx.plot(t, state["path_zero_one"], label="0-1 loss")
    bx.set(xlabel="step", title="training curves")
    bx.legend()
    return axes


def draw_figure7(top: Mapping, bottom: Mapping, *, lrs_top: Sequence[float], lrs_bottom: Sequence[float],
                 shown: str, triggers: str, baseline: float, title: str = ""):
    """The paper's Figure 7 (2 x 3 panels) from the curves that :func:`damlib.transformer.train`
    records (the margins of the drawn tokens and of the triggers).

    Parameters
    ----------
    top : mapping or None
        The run with ``W_O2`` alone: ``loss (S, R)``, ``WO2 (S, R, len(shown))`` and ``d``;
        ``None`` leaves the top row empty, saying so.
    bottom : mapping of int to mapping
        Per dimension ``d`` (two of them), the run of the three matrices: ``loss (S, R)``,
        ``WO2 (S, R, len(shown))``, ``WK2 (S, R, len(triggers))``.
    lrs_top, lrs_bottom : sequence of float
        The learning rates of the runs (``R`` each).
    shown, triggers : str
        The characters whose ``W_O2`` margins, and the triggers whose ``W_K2`` margins, are drawn.
    baseline : float
        The bigram baseline ``log V``, dotted on the loss panels.
    title : str
        A title over the figure (for example the sizes of a stored run).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = subplots(2, 3, width=7.0, height=5.4)
    if top is None:
        for ax in axes[0]:
            ax.text(0.5, 0.5, "not in the results store", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
    else:
        _draw_top(axes[0], top, lrs_top, shown, baseline)
    _draw_bottom(axes[1], bottom, lrs_bottom, shown, triggers, baseline)
    # the keys of the margins, under the figure: inside, they covered the curves
    tokens = axes[0, 1] if top is not None else axes[1, 1]
    figure_legend(fig, tokens, loc="outside lower left", ncol=len(shown),
                  title="token (b, c, e)" if top is not None else "token (e)")
    figure_legend(fig, axes[1, 2], loc="outside lower right", ncol=len(triggers), title="trigger (f)")
    label_panels(axes)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _draw_top(axes, top, lrs_top, shown, baseline):
    ax = axes[0]
    loss = to_numpy(top["loss"])
    for i, lr in enumerate(lrs_top):
        ax.plot(loss[:, i], color=COLORS[i], label=f"$\\eta$ = {lr:g}")
    ax.axhline(baseline, color="k", ls=":", lw=1)
    ax.set(title=f"only $W_O^2$ trained\nd = {top['d']}", xlabel="step", ylabel="training loss",
           ylim=(0, 2 * baseline))
    ax.legend()
    for ax, i in zip(axes[1:], (0, len(lrs_top) - 1)):
        m = to_numpy(top["WO2"][:, i])
        for j, c in enumerate(shown):
            ax.plot(m[:, j], color=COLORS[j], label=repr(c))
        ax.set(title=f"margins of $W_O^2$\n$\\eta$ = {lrs_top[i]:g}", xlabel="step", ylabel="margin $m_O$")


def _draw_bottom(axes, bottom, lrs_bottom, shown, triggers, baseline):
    dims = sorted(bottom)
    ax = axes[0]
    for d, style in zip(dims, ["--", "-"]):
        loss = to_numpy(bottom[d]["loss"])
        for i, lr in enumerate(lrs_bottom):
            ax.plot(loss[:, i], style, color=COLORS[i], label=f"$\\eta$ = {lr:g}" if d == dims[-1] else None)
    ax.axhline(baseline, color="k", ls=":", lw=1)
    ax.set(title=f"all three trained\nd = {dims[0]} (dashed), {dims[1]}", xlabel="step",
           ylabel="training loss", ylim=(0, 2 * baseline))
    ax.legend()
    big = bottom[dims[-1]]
    for ax, key, labels, what in [(axes[1], "WO2", shown, "$W_O^2$"), (axes[2], "WK2", triggers, "$W_K^2$")]:
        m = to_numpy(big[key][:, -1])
        for j, c in enumerate(labels):
            ax.plot(m[:, j], color=COLORS[j], label=repr(c))
        ax.axhline(0, color="k", lw=0.8)
        ax.set(title=f"margins of {what}\nd = {dims[-1]}, $\\eta$ = {lrs_bottom[-1]:g}", xlabel="step",
               ylabel="margin")
