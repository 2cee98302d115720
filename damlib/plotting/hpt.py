"""Drawing for the hpt chapters and their explorer: the loss against the learning rate with its
optimum marked, the loss against the step, and the uncentred-against-centred comparison.

A sweep is a :class:`damlib.denseam.History`; ``histories[i]`` is the sweep at the ``i``-th size.
The optimum is marked at ``(optimal_lr, best_loss)`` (:mod:`damlib.denseam.optimum`) everywhere,
so a chapter's figure and its explorer frame cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..denseam import History, best_loss, has_optimum, optimal_lr
from .style import COLORS, label_panels, size_colors, subplots, to_numpy

LR_LABEL = r"base learning rate $\eta$"


def mark_optimum(ax, history: History, color, *, ms: float = 8.0, **kw) -> None:
    """A cross at the sweep's optimum; nothing when every learning rate diverged."""
    if has_optimum(history):
        ax.plot(optimal_lr(history), best_loss(history), "x", ms=ms, color=color, **kw)


def transfer_curves(ax, histories: Sequence[History], labels: Sequence[str], *, ms: float = 3.0,
                    marker_size: float | None = 8.0, title: str = "") -> None:
    """Final loss per coordinate (mean over seeds) against the base learning rate, one colour per
    size (:func:`~damlib.plotting.size_colors`, darker = larger; ``histories`` smallest first), a
    cross at each optimum (``marker_size=None``: no crosses). Diverged rates are not drawn."""
    shades = size_colors(len(histories)) if histories else []
    for i, (label, h) in enumerate(zip(labels, histories)):
        color = shades[i]
        ax.loglog(to_numpy(h.lrs), to_numpy(h.final.mean(-1)), "o-", ms=ms, color=color, label=label)
        if marker_size is not None:
            mark_optimum(ax, h, color, ms=marker_size)
    ax.set(xlabel=LR_LABEL, ylabel="final loss / D", title=title)


def loss_curves(ax, histories: Sequence[History], i_lr: int, *, title: str = "") -> None:
    """Loss per coordinate (mean over seeds) against the step at learning rate index ``i_lr``, one
    colour per size as in :func:`transfer_curves`."""
    shades = size_colors(len(histories)) if histories else []
    for h, color in zip(histories, shades):
        ax.semilogy(to_numpy(h.steps), to_numpy(h.loss[:, i_lr].mean(-1)), color=color)
    ax.set(xlabel="step", ylabel="loss / D", title=title)


def centring_figure(runs: Mapping[bool, Sequence[History]], sizes: Sequence[int], i_lr: int, *,
                    title: str = "{}"):
    """Uncentred (a, b) against centred (c, d): final loss against the base learning rate (a, c)
    and loss against the step at learning rate index ``i_lr`` (b, d).

    Parameters
    ----------
    runs : mapping
        ``runs[centred]``: one sweep per size, for ``centred`` in ``(False, True)``.
    sizes : sequence of int
        ``D = K = B`` of each sweep, for the legend.
    i_lr : int
        Index of the learning rate of panels (b, d), the same in every sweep.
    title : str
        Title of panels (a, c), with ``{}`` standing for "uncentred" or "centred".

    Returns
    -------
    fig, axes
        The figure and its ``(1, 4)`` axes.
    """
    fig, axes = subplots(2, 2, width=7.0, height=5.0)
    axes = axes.reshape(1, 4)
    for k, centred in enumerate((False, True)):
        name = "centred" if centred else "uncentred"
        hs = runs[centred]
        transfer_curves(axes[0, 2 * k], hs, [f"D={D}" for D in sizes], marker_size=None,
                        title=title.format(name))
        loss_curves(axes[0, 2 * k + 1], hs, i_lr, title=f"{name}, $\\eta$ = {hs[0].lrs[i_lr]:.3g}")
    axes[0, 0].legend()
    label_panels(axes)
    return fig, axes


def draw_transfer(histories: Sequence[History], sizes: Sequence[int], index: int, *, title: str = "",
                  size_name: str = "K", ylim=None):
    """One frame of the transfer explorer: final loss (mean over seeds) against the base learning
    rate, size ``sizes[index]`` in colour with its optimum (cross), the other sizes in grey, and the
    smallest size's optimum as a dashed line.

    Parameters
    ----------
    histories : sequence of damlib.denseam.History
        ``histories[i]`` is the sweep at ``sizes[i]``.
    sizes : sequence of int
        The sizes, for the legend.
    index : int
        The size drawn in colour.
    title, size_name : str
        Panel title, and the name of the size (``"K"``, ``"D"``) in the legend.
    ylim : tuple of float, optional
        Vertical range (one per recipe keeps the frames of a recipe comparable).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = subplots(1, 1, width=4.6, height=3.2)
    ax = axes[0, 0]
    for i, h in enumerate(histories):
        if i != index:
            ax.loglog(to_numpy(h.lrs), to_numpy(h.final.mean(-1)), "-", color="0.8", lw=1)
    h = histories[index]
    ax.loglog(to_numpy(h.lrs), to_numpy(h.final.mean(-1)), "o-", ms=3, color=COLORS[1],
              label=f"{size_name} = {sizes[index]}")
    mark_optimum(ax, h, COLORS[1], ms=9, mew=2)
    if has_optimum(histories[0]):
        ax.axvline(optimal_lr(histories[0]), color="0.3", ls="--", lw=1,
                   label=f"optimum at {size_name} = {sizes[0]}")
    if ylim is not None:
        ax.set_ylim(ylim)
    ax.set(xlabel=LR_LABEL, ylabel="final loss / D", title=title)
    ax.legend(loc="upper left", fontsize=7)
    return fig



def transfer_panels(panels: Mapping[str, tuple], *, size_name: str = "D"):
    """One panel per recipe, side by side: final loss against the base learning rate with crosses
    at the optima, one colour per size. ``panels[title] = (sizes, histories, ...)`` as
    :func:`damlib.experiments.hpt.stored_sweeps` returns (no sizes: an empty panel).
    Returns the figure and its ``(1, len(panels))`` axes."""
    fig, axes = subplots(1, len(panels), width=min(7.0, 3.5 * len(panels)), height=3.0)
    for ax, (title, run) in zip(axes[0], panels.items()):
        sizes, histories = run[0], run[1]
        transfer_curves(ax, histories, [f"{size_name}={n}" for n in sizes], title=title)
        if histories:
            ax.legend(fontsize=7)
    label_panels(axes)
    return fig, axes
