"""The book's figure convention: figures at most the page column wide (672 px at a 1280 px window,
COLUMN_WIDTH inches), and no text below MIN_TEXT_PX there."""

import re
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from damlib.plotting import gd as gd_plots
from damlib.plotting import hpt as hpt_plots
from damlib.plotting import style
from damlib.plotting.dam import draw_saddle

ROOT = Path(__file__).resolve().parents[1]
LIMIT = style.COLUMN_WIDTH + style.WIDTH_TOLERANCE


@pytest.fixture(autouse=True)
def book_style():
    with mpl.rc_context():
        style.use_style()
        yield
    plt.close("all")


def test_text_at_least_nine_px_at_the_column():
    # a font of p points in a figure drawn LIMIT inches wide and shown 672 px wide
    assert style.MIN_FONT_PT * style.COLUMN_PX / (72 * LIMIT) == pytest.approx(style.MIN_TEXT_PX)
    base = style.STYLE["font.size"]
    scale = mpl.font_manager.font_scalings
    for key, value in style.STYLE.items():
        if key.endswith(("size", "fontsize")) and key != "figure.figsize":
            points = base * scale[value] if isinstance(value, str) else value
            assert points >= style.MIN_FONT_PT, f"{key} = {value} is below {style.MIN_FONT_PT:.2f} pt"
    assert style.STYLE["figure.figsize"][0] <= style.COLUMN_WIDTH


FONTSIZE = re.compile(r"(?:fontsize|labelsize|size)\s*=\s*([0-9.]+)")


def test_no_explicit_font_below_the_limit():
    sources = [*ROOT.glob("book/*/*.md"), *ROOT.glob("damlib/**/*.py")]
    small = [f"{path.relative_to(ROOT)}: {m.group(0)}" for path in sources
             for m in FONTSIZE.finditer(path.read_text(encoding="utf-8"))
             if "fontsize" in m.group(0) and float(m.group(1)) < style.MIN_FONT_PT]
    assert not small, f"text below {style.MIN_TEXT_PX} px at the column: {small}"
    # chapters size figures through damlib.plotting (subplots, figure), which refuse wider ones
    direct = [str(p.relative_to(ROOT)) for p in ROOT.glob("book/*/*.md")
              if re.search(r"figsize\s*=|plt\.(?:figure|subplots)\(", p.read_text(encoding="utf-8"))]
    assert not direct, f"figures sized past the column check: {direct}"


def test_wider_than_the_column_is_refused():
    fig, axes = style.subplots(1, 2, width=style.COLUMN_WIDTH)
    assert fig.get_figwidth() == style.COLUMN_WIDTH and axes.shape == (1, 2)
    with pytest.raises(ValueError, match="width"):
        style.subplots(1, 4, width=10.0)
    with pytest.raises(ValueError, match="width"):
        style.figure(style.COLUMN_WIDTH + 0.5, 2.0)


def test_drawn_width_catches_planted_wide_figures():
    """The control of the width check: a 9-inch figure, and a column-wide one with a note beside
    it (bbox "tight" widens the image), are both too wide; the column-wide one without it is not."""
    fig, ax = plt.subplots(figsize=(9.0, 2.0))
    ax.plot([0, 1], label="a line")
    assert style.drawn_width(fig) > LIMIT
    fig, axes = style.subplots(1, 1)
    ax = axes[0, 0]
    ax.plot([0, 1], label="a line with a long label")
    assert style.drawn_width(fig) <= LIMIT
    fig.text(1.02, 0.5, "a note beside the figure", ha="left")
    assert style.drawn_width(fig) > LIMIT


def test_size_colors_are_ordered():
    colors = style.size_colors(5)
    lightness = [np.mean(mpl.colors.to_rgb(c)) for c in colors]
    assert all(a > b for a, b in zip(lightness, lightness[1:]))  # larger size, darker
    assert len(style.size_colors(1)) == 1
    with pytest.raises(ValueError, match="n"):
        style.size_colors(0)


def _sweeps():
    from damlib import denseam as dm

    return [dm.sweep(dm.proportional(D), [0.01, 0.1], seeds=1, steps=3, progress=False) for D in (4, 8)]


def _figures():
    """One figure of each drawing function of damlib.plotting, on small inputs."""
    from damlib import train

    state = train.plane_states([0.95], [0.75], [10.0], steps=4, resolution=7)[(0.95, 0.75, 10.0)]
    yield "draw_plane", gd_plots.draw_plane(state)[0].figure
    S, R = 4, 2
    top = {"loss": torch.rand(S, R), "WO2": torch.randn(S, R, 3), "d": 8}
    bottom = {d: {"loss": torch.rand(S, R), "WO2": torch.randn(S, R, 3), "WK2": torch.randn(S, R, 2)}
              for d in (8, 16)}
    yield "draw_figure7", gd_plots.draw_figure7(top, bottom, lrs_top=[1.0, 2.0], lrs_bottom=[1.0, 2.0],
                                                shown="abc", triggers="xy", baseline=4.17, title="sizes")
    rng = np.random.default_rng(0)
    saddle = {"lam": rng.normal(size=10), "labels": np.arange(10), "beta": 2.0,
              "w": rng.normal(size=784), "u": rng.normal(size=784)}
    yield "draw_saddle", draw_saddle(saddle)
    hs = _sweeps()
    yield "draw_transfer", hpt_plots.draw_transfer(hs, [4, 8], 1, title="linear")
    yield "centring_figure", hpt_plots.centring_figure({False: hs, True: hs}, [4, 8], 0)[0]
    panels = {name: ([4, 8], hs) for name in ("Table 1", "muP", "SP")}
    yield "transfer_panels", hpt_plots.transfer_panels(panels)[0]


def test_drawing_functions_fit_the_column():
    widths = {name: style.drawn_width(fig) for name, fig in _figures()}
    assert len(widths) == 6
    wide = {name: round(w, 2) for name, w in widths.items() if w > LIMIT}
    assert not wide, f"drawn wider than {LIMIT} inches: {wide}"
