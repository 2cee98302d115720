import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from ipywidgets import Image, SelectionSlider, Stack

from damlib import widgets
from damlib.plotting.dam import draw_saddle


def _draw(a, b):
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title(f"{a}-{b}")
    return fig


def test_precomputed_explorer_holds_every_frame():
    calls = []

    def draw(a, b):
        calls.append((a, b))
        return _draw(a, b)

    box = widgets.precomputed_explorer(draw, {"a": [1.0, 2.0], "b": ["x", "y", "z"]}, initial={"b": "y"})
    sliders = [w for w in box.children if isinstance(w, SelectionSlider)]
    assert [s.description for s in sliders] == ["a", "b"] and sliders[1].index == 1
    assert sorted(calls) == sorted((a, b) for a in (1.0, 2.0) for b in "xyz")
    root = box.children[-1]
    assert isinstance(root, Stack) and len(root.children) == 2
    inner = root.children[1]
    assert isinstance(inner, Stack) and inner.selected_index == 1
    assert all(isinstance(img, Image) and bytes(img.value).startswith(b"\x89PNG") for img in inner.children)
    # frames differ: the title names the grid point
    assert bytes(inner.children[0].value) != bytes(inner.children[2].value)


def _log_frame(i):
    """A frame with mathtext tick labels (log axes) and title, as the hpt explorers draw."""
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.loglog([1e-3, 1e-2, 1e-1, 1], np.array([4.0, 2.0, 1.0, 3.0]) * (1 + 0.1 * i), "o-")
    ax.set(title=f"ReLU$^2$, frame {i}", xlabel=r"$\eta$")
    return fig


def test_shared_renderers_draw_the_same_pixels():
    before = set(plt.get_fignums())
    alone = [widgets.render_png(_log_frame(i % 3)) for i in range(6)]
    renderers = {}
    shared = [widgets.render_png(_log_frame(i % 3), renderers=renderers) for i in range(6)]
    assert shared == alone
    # the six frames shared one renderer per size drawn (two: the crop measures the figure
    # first), not one or two each
    assert 1 <= len(renderers) <= 2
    assert set(plt.get_fignums()) == before  # every frame's figure is closed
    # control: the comparison sees a change of data
    assert alone[0] != alone[1]


def test_live_explorer_redraws():
    box = widgets.live_explorer(_draw, {"a": [1, 2], "b": ["x"]})
    slider = box.children[0]
    slider.index = 1
    assert slider.value == 2


def test_initial_outside_grid():
    with pytest.raises(ValueError, match="initial"):
        widgets.live_explorer(_draw, {"a": [1, 2]}, initial={"a": 3})


@pytest.mark.parametrize("grid", [{}, {"a": []}, [("a", [1])]])
def test_bad_grid(grid):
    with pytest.raises(ValueError, match="grid"):
        widgets.precomputed_explorer(_draw, grid)


def test_plane_explorer_static_and_live():
    box = widgets.plane_explorer([0.5], [0.6, 0.75], [1.0], steps=3, resolution=6)
    assert [w.description for w in box.children[:3]] == ["alpha", "p1", "eta"]
    live = widgets.plane_explorer([0.5], [0.6, 0.75], [1.0], steps=3, resolution=6, live=True)
    live.children[1].index = 1
    plt.close("all")


def _tiny_digits(n=60, side=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, side * side, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True), torch.arange(n) % 10


def test_saddle_states_match_the_splitting_eigenvalues():
    from damlib import dam

    x, y = _tiny_digits()
    models = dam.models_over_beta(x, y, [1.0, 8.0], steps=20, lr=0.05)
    states = dam.saddle_states(models, x, y)
    vals, _ = dam.splitting_eigen(models, x, y, vectors=False)
    for b, state in enumerate(states):
        np.testing.assert_allclose(state["lam"], vals[b].numpy() / 2, rtol=1e-10)
        assert state["worst"] == int(vals[b].argmin())
        # the direction is a unit tangent vector at the worst memory
        assert abs(np.linalg.norm(state["u"]) - 1) < 1e-10 and abs(state["u"] @ state["w"]) < 1e-10
    fig = draw_saddle(states[-1])
    assert len(fig.axes) == 5
    plt.close("all")
    box = widgets.saddle_explorer(x, y, [1.0, 8.0], steps=20, lr=0.05, models=models)
    assert isinstance(box.children[-1], Stack) and len(box.children[-1].children) == 2
    again = widgets.saddle_explorer(x, y, [1.0, 8.0], steps=20, lr=0.05, models=models, states=states)
    assert bytes(again.children[-1].children[1].value) == bytes(box.children[-1].children[1].value)
    with pytest.raises(ValueError, match="models"):
        widgets.saddle_explorer(x, y, [1.0, 2.0, 8.0], steps=20, lr=0.05, models=models)
    with pytest.raises(ValueError, match="betas"):
        dam.models_over_beta(x, y, [], steps=1, lr=0.1)


def test_transfer_explorer_static_and_live():
    from damlib import denseam as dm
    from damlib.plotting import hpt as hpt_plots

    calls = []

    def make(D):
        calls.append(D)
        return dm.sweep(dm.proportional(D), [0.01, 0.1], seeds=1, steps=3, progress=False)

    box = widgets.transfer_explorer([4, 8], {"linear": make}, size_name="D")
    assert sorted(calls) == [4, 8]
    assert [w.description for w in box.children[:2]] == ["D", "recipe"]
    live = widgets.transfer_explorer([4, 8], {"linear": make}, size_name="D", live=True)
    assert calls[2:] == [4]                       # the first frame needs the smallest size only
    live.children[0].index = 1
    assert calls[3:] == [8]
    plt.close("all")
    diverged = make(4)
    diverged.loss[:] = float("inf")
    fig = hpt_plots.draw_transfer([diverged, diverged], [4, 8], 1)   # no optimum to mark: no error
    assert len(fig.axes[0].lines) == 2
    plt.close("all")
    alive = make(8)
    fig = hpt_plots.draw_transfer([alive, alive], [4, 8], 1)           # a cross and the dashed line
    assert len(fig.axes[0].lines) == 4
    fig, axes = hpt_plots.centring_figure({False: [diverged, alive], True: [alive, alive]}, [4, 8], 0)
    assert [len(ax.lines) for ax in axes[0]] == [2, 2, 2, 2]       # crosses are not drawn there
    plt.close("all")
    with pytest.raises(ValueError, match="recipes"):
        widgets.transfer_explorer([4], {})
    with pytest.raises(ValueError, match="histories"):
        widgets.transfer_explorer([4, 8], {"linear": make}, histories={"linear": []})


def _inside(fig) -> bool:
    """Whether every drawn artist of ``fig`` lies inside the figure (nothing cut when uncropped)."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    w, h = fig.get_size_inches()
    return box.x0 >= -1e-9 and box.y0 >= -1e-9 and box.x1 <= w + 1e-9 and box.y1 <= h + 1e-9


def _book_frames():
    """One frame of each of the book's explorers, drawn under the book's style."""
    from damlib import dam, train
    from damlib import denseam as dm
    from damlib.plotting import gd as gd_plots
    from damlib.plotting import hpt as hpt_plots

    state = train.plane_states([0.5], [0.75], [1.0], steps=3, resolution=6)[(0.5, 0.75, 1.0)]
    gd_plots.draw_plane(state, title=r"$\alpha$=0.5, $p_1$=0.75, $\eta$=1")
    yield "plane", plt.gcf()
    x, y = _tiny_digits()
    models = dam.models_over_beta(x, y, [1.0, 8.0], steps=20, lr=0.05)
    yield "saddle", draw_saddle(dam.saddle_states(models, x, y)[-1])
    sweeps = [dm.sweep(dm.proportional(D), [0.01, 0.1], seeds=1, steps=3, progress=False) for D in (4, 8)]
    yield "transfer", hpt_plots.draw_transfer(sweeps, [4, 8], 1, title="ReLU$^2$, SGD, proportional scales")


def test_explorer_frames_keep_the_figure_size_and_lose_nothing():
    from PIL import Image as PILImage

    from damlib.plotting import use_style
    from damlib.plotting.style import COLUMN_DPI

    with matplotlib.rc_context():
        use_style()
        for name, fig in _book_frames():
            assert _inside(fig), f"the {name} explorer draws outside its figure: an uncropped frame cuts it"
            size = fig.get_size_inches() * COLUMN_DPI
            got = PILImage.open(io.BytesIO(widgets.render_png(fig, crop=False))).size
            assert all(abs(g - s) < 1 for g, s in zip(got, size)), (name, got, size)   # to the pixel
        # control: a legend put outside the axes is outside the figure, and the check sees it
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1], label="a long legend entry")
        ax.legend(loc="upper left", bbox_to_anchor=(1.05, 1.0))
        fig.set_layout_engine("none")
        assert not _inside(fig)
        cropped = PILImage.open(io.BytesIO(widgets.render_png(fig))).size
        assert cropped[0] > 3 * COLUMN_DPI          # the crop keeps the legend, the figure size would not
