import matplotlib.pyplot as plt
import numpy as np
import torch

from damlib import train
from damlib.plotting import gd as gd_plots


def test_zero_one_shading_has_one_scale():
    """White for exactly zero, one grey per tenth, darker for more loss, whatever the values."""
    assert gd_plots.ZERO_ONE_LEVELS[0] < 0 < gd_plots.ZERO_ONE_LEVELS[1] < 1e-9
    assert len(gd_plots.ZERO_ONE_COLORS) == len(gd_plots.ZERO_ONE_LEVELS) - 1
    brightness = [np.mean(np.asarray(plt.matplotlib.colors.to_rgb(c))) for c in gd_plots.ZERO_ONE_COLORS]
    assert brightness[0] == 1.0 and all(a > b for a, b in zip(brightness, brightness[1:]))
    points = np.stack(np.meshgrid(np.linspace(0, 1, 5), np.linspace(0, 1, 5)), -1)
    fig, ax = plt.subplots()
    shading = gd_plots.shade_zero_one(ax, points, np.full((5, 5), 0.25))
    assert list(shading.levels) == gd_plots.ZERO_ONE_LEVELS
    key = gd_plots.zero_one_key(fig, shading, ax)
    assert key.ax.get_ylabel() == "0-1 loss"
    plt.close("all")


def test_draw_plane_draws_a_state():
    state = train.plane_states([0.95], [0.75], [10.0], steps=6, resolution=9)[(0.95, 0.75, 10.0)]
    ax, bx = gd_plots.draw_plane(state)
    assert len(bx.lines) == 2 and len(bx.lines[0].get_xdata()) == 7
    assert len(ax.figure.axes) == 3  # the two panels and the key
    plt.close("all")


def test_draw_figure7_draws_every_panel():
    S, R = 4, 2
    top = {"loss": torch.rand(S, R), "WO2": torch.randn(S, R, 3), "d": 8}
    bottom = {d: {"loss": torch.rand(S, R), "WO2": torch.randn(S, R, 3), "WK2": torch.randn(S, R, 2)} for d in (8, 16)}
    fig = gd_plots.draw_figure7(top, bottom, lrs_top=[1.0, 2.0], lrs_bottom=[1.0, 2.0], shown="abc",
                                triggers="xy", baseline=4.17, title="sizes")
    assert len(fig.axes) == 6 and len(fig.axes[3].lines) == 2 * R + 1
    plt.close("all")
