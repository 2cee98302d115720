"""ipywidgets explorers built on the same functions as the book's figures.

:func:`plane_explorer` redraws the two-token landscape of Section 4.3 and a descent trajectory
on it when the sliders for the correlation ``alpha``, the frequency ``p_1`` and the learning
rate move. Its drawing, :func:`draw_plane`, is what a static page shows for fixed values.
"""

from __future__ import annotations

import numpy as np
import torch

from . import memory as am
from . import train
from .plotting import COLORS, subplots, to_numpy


def two_token_problem(alpha: float, p1: float, *, dtype=torch.float64):
    """Section 4.2's problem: ``E (2, 2)`` with correlation ``alpha``, ``p = (p1, 1 - p1)``, ``f(x) = x``."""
    if not 0 < p1 < 1:
        raise ValueError(f"p1 must lie in (0, 1), got {p1!r}")
    E = am.correlated_pair(alpha, dtype=dtype)
    p = torch.tensor([p1, 1 - p1], dtype=dtype)
    return E, p, torch.arange(2)


def draw_plane(alpha: float, p1: float, lr: float, *, steps: int = 35, g0_range=(-1.0, 8.0),
               g1_range=(-17.0, 10.0), n: int = 60, axes=None):
    """Loss level lines, 0-1 loss shading and the GD trajectory from ``g = 0`` (left), and the
    loss and 0-1 loss against the step (right). The window grows to hold the whole trajectory.
    Returns the two axes."""
    E, p, targets = two_token_problem(alpha, p1)
    path = train.plane_picture(E, p, targets, lr=lr, steps=steps, n=2)["path"][:, 0]
    lo, hi = path.amin(0).tolist(), path.amax(0).tolist()
    pad = [0.05 * (b - a) + 0.5 for a, b in zip(lo, hi, strict=True)]
    g0_range = (min(g0_range[0], lo[0] - pad[0]), max(g0_range[1], hi[0] + pad[0]))
    g1_range = (min(g1_range[0], lo[1] - pad[1]), max(g1_range[1], hi[1] + pad[1]))
    pic = train.plane_picture(E, p, targets, lr=lr, steps=steps, g0_range=g0_range,
                              g1_range=g1_range, n=n)
    if axes is None:
        _, axes = subplots(1, 2, width=8.0, height=3.2)
        axes = axes[0]
    ax, bx = axes
    ax.clear()
    bx.clear()
    g = to_numpy(pic["g"])
    ax.contourf(g[..., 0], g[..., 1], to_numpy(pic["zero_one"]), levels=[-0.01, 0.01, 0.5, 1.01],
                colors=["white", "#dddddd", "#aaaaaa"])
    ax.contour(g[..., 0], g[..., 1], to_numpy(pic["loss"]), levels=20, linewidths=0.6)
    path = to_numpy(pic["path"][:, 0])
    ax.plot(path[:, 0], path[:, 1], "o-", ms=2.5, color=COLORS[1])
    ax.set(xlabel="$g_1$", ylabel="$g_2$", title=rf"$\alpha$={alpha:.2f}, $p_1$={p1:.2f}, $\eta$={lr:g}")
    t = np.arange(steps + 1)
    bx.plot(t, to_numpy(pic["path_loss"][:, 0]), label="loss")
    bx.plot(t, to_numpy(pic["path_zero_one"][:, 0]), label="0-1 loss")
    bx.set(xlabel="step", title="training curves")
    bx.legend()
    return axes


def plane_explorer(steps: int = 35):
    """Sliders for ``alpha``, ``p_1`` and ``eta`` redrawing :func:`draw_plane` (needs a live kernel)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(alpha, p1, log10_lr):
        draw_plane(alpha, p1, 10.0**log10_lr, steps=steps)
        plt.show()

    return widgets.interactive(
        show,
        alpha=widgets.FloatSlider(value=0.95, min=-0.95, max=0.99, step=0.01, description="alpha"),
        p1=widgets.FloatSlider(value=0.75, min=0.05, max=0.95, step=0.01, description="p1"),
        log10_lr=widgets.FloatSlider(value=1.0, min=-1.0, max=1.5, step=0.05, description="log10 eta"),
    )
