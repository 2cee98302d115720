"""ipywidgets explorers built on the same drawing functions as the book's figures.

A chapter writes one function ``draw(**params) -> matplotlib.figure.Figure`` and a grid of
parameter values, then offers it two ways:

- :func:`live_explorer`: sliders that call ``draw`` on demand. It needs a running kernel, so in
  the book its cell is tagged ``skip-execution`` and ``nbval-skip``.
- :func:`precomputed_explorer`: every frame of the grid drawn once at build time and stored in
  the page as widget state (one image per grid point, nested ``Stack`` widgets, and sliders
  linked to them in the browser with ``jslink``). Moving a slider in the static HTML switches
  frames without a kernel.

Compute the frames' data with one batched damlib call before drawing, so that the grid costs
one sweep, not one run per frame.

:func:`plane_explorer` is the first such explorer: the two-token landscape of Section 4.3 of
``gd`` with a descent trajectory on it, over the correlation ``alpha``, the frequency ``p1`` and
the learning rate: its states come from :func:`damlib.train.plane_states` (one batched sweep) and
are drawn by :func:`damlib.plotting.gd.draw_plane`, as the chapters' figures.
:func:`saddle_explorer` follows the copied memories of ``dam``
across the inverse temperature ``beta``, and :func:`transfer_explorer` the loss of ``hpt`` against
the learning rate across model sizes, both on the same pattern.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg

from . import dam, train
from . import denseam as dm
from .plotting import gd as gd_plots
from .plotting.dam import draw_saddle
from .plotting.hpt import draw_transfer
from .plotting.style import COLUMN_DPI


def _check_grid(grid: Mapping[str, Sequence]) -> dict[str, list]:
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty mapping of parameter name to values")
    out = {}
    for name, values in grid.items():
        values = list(values)
        if not values:
            raise ValueError(f"grid[{name!r}] must hold at least one value")
        out[name] = values
    return out


def _label(value) -> str:
    """A slider's text for a grid value; sliders show no maths, so ``$`` signs are dropped."""
    return f"{value:g}" if isinstance(value, float) else str(value).replace("$", "")


class _FrameCanvas(FigureCanvasAgg):
    """An Agg canvas that takes its renderer from ``renderers``, one per (width, height, dpi),
    shared by the frames of an explorer.

    A plain canvas makes a new renderer for every figure, and with it a new mathtext parser and text
    metrics cache: every tick label of every frame is parsed again (about a third of a frame's
    time). The frames of an explorer have the same size, so they can share renderers; the pixels
    are the same (``tests/test_widgets.py``)."""

    def __init__(self, figure, renderers: dict):
        super().__init__(figure)
        self._renderers = renderers

    def get_renderer(self):
        w, h = self.get_width_height(physical=True)
        key = (w, h, self.figure.dpi)
        if key not in self._renderers:
            self._renderers[key] = RendererAgg(w, h, self.figure.dpi)
        self.renderer = self._renderers[key]
        return self.renderer


def render_png(fig, dpi: int = COLUMN_DPI, *, renderers: dict | None = None, crop: bool = True) -> bytes:
    """PNG bytes of a matplotlib figure, which is then closed.

    ``crop``: cut the image to the drawn artists plus savefig's padding (bbox "tight", as the
    inline backend shows a figure: a 7-inch figure comes out about 683 px wide at 96 dpi);
    ``crop=False``: the figure's own size (exactly 672 px, the column), one pass over the figure
    fewer, for figures whose layout engine keeps every artist inside them. ``renderers``, a dict
    kept by the caller, lets figures of the same size share Agg renderers (:class:`_FrameCanvas`).
    """
    if renderers is not None:
        _FrameCanvas(fig, renderers)
    buffer = io.BytesIO()
    with matplotlib.rc_context({"savefig.bbox": "tight" if crop else "standard"}):
        fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def _sliders(grid: dict[str, list], initial: Mapping | None) -> list[widgets.SelectionSlider]:
    sliders = []
    for name, values in grid.items():
        labels = [_label(v) for v in values]
        start = 0
        if initial and name in initial:
            if initial[name] not in values:
                raise ValueError(f"initial[{name!r}] = {initial[name]!r} is not among the grid's values {labels}")
            start = values.index(initial[name])
        sliders.append(widgets.SelectionSlider(options=list(zip(labels, values)), index=start,
                                               description=name, continuous_update=False,
                                               layout=widgets.Layout(width="420px")))
    return sliders


def precomputed_explorer(draw: Callable[..., object], grid: Mapping[str, Sequence], *,
                         initial: Mapping | None = None, dpi: int = COLUMN_DPI) -> widgets.VBox:
    """Sliders over ``grid`` switching between frames drawn in advance; works without a kernel.

    ``draw(**params)`` is called once for every point of the grid (product of the values) and
    must return a matplotlib figure. ``initial`` names the starting value of some parameters.

    The frames keep the figure's size (:func:`render_png` with ``crop=False``): a figure of the
    column's width fits the column, every frame of the explorer has the same size, and the
    layout engine (constrained layout, under the book's style) keeps the drawing inside it.
    """
    grid = _check_grid(grid)
    names = list(grid)
    points = list(itertools.product(*(range(len(v)) for v in grid.values())))
    frames, renderers = {}, {}
    for point in points:
        params = {name: grid[name][i] for name, i in zip(names, point)}
        frames[point] = render_png(draw(**params), dpi=dpi, renderers=renderers, crop=False)

    sliders = _sliders(grid, initial)
    stacks_at_level: list[list[widgets.Stack]] = [[] for _ in names]

    def nest(level: int, prefix: tuple) -> widgets.Widget:
        if level == len(names):
            return widgets.Image(value=frames[prefix], format="png")
        stack = widgets.Stack([nest(level + 1, prefix + (i,)) for i in range(len(grid[names[level]]))],
                              selected_index=sliders[level].index)
        stacks_at_level[level].append(stack)
        return stack

    root = nest(0, ())
    for slider, stacks in zip(sliders, stacks_at_level):
        for stack in stacks:
            widgets.jslink((slider, "index"), (stack, "selected_index"))
    return widgets.VBox([*sliders, root])


def live_explorer(draw: Callable[..., object], grid: Mapping[str, Sequence], *,
                  initial: Mapping | None = None) -> widgets.VBox:
    """Sliders over ``grid`` that call ``draw`` on demand (needs a running kernel)."""
    grid = _check_grid(grid)
    sliders = _sliders(grid, initial)
    output = widgets.Output()

    def redraw(_change=None):
        params = {s.description: s.value for s in sliders}
        with output:
            output.clear_output(wait=True)
            display(draw(**params))
            plt.close("all")

    for slider in sliders:
        slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*sliders, output])


# --- The two-token plane of gd, Section 4.3 ------------------------------------------------------


def plane_explorer(alphas: Sequence[float], p1s: Sequence[float], lrs: Sequence[float], *, steps: int = 35,
                   resolution: int = 60, live: bool = False, initial: Mapping | None = None,
                   dpi: int = COLUMN_DPI) -> widgets.VBox:
    """Sliders over ``alpha``, ``p1`` and ``eta`` redrawing the plane and its GD trajectory.

    The states come from :func:`damlib.train.plane_states` and are drawn by
    :func:`damlib.plotting.gd.draw_plane`, the shading of the chapters' figures. ``live=False``
    precomputes every state in one batched call and works in the static pages; ``live=True``
    computes each state when a slider moves (needs a kernel).
    """
    def draw(alpha, p1, eta, states=None):
        states = states or train.plane_states([alpha], [p1], [eta], steps=steps, resolution=resolution)
        gd_plots.draw_plane(states[(alpha, p1, eta)], title=rf"$\alpha$={alpha:g}, $p_1$={p1:g}, $\eta$={eta:g}")
        return plt.gcf()

    grid = {"alpha": list(alphas), "p1": list(p1s), "eta": list(lrs)}
    if live:
        return live_explorer(draw, grid, initial=initial)
    states = train.plane_states(alphas, p1s, lrs, steps=steps, resolution=resolution)
    return precomputed_explorer(lambda **kw: draw(**kw, states=states), grid, initial=initial, dpi=dpi)


# --- dam: copied memories become saddles above a threshold in beta -------------------------------


def saddle_explorer(x: torch.Tensor, y: torch.Tensor, betas: Sequence[float], *, n_memories: int = 10,
                    steps: int, lr: float, seed: int = 0, models: dam.DAM | None = None,
                    states: Sequence[Mapping] | None = None, live: bool = False,
                    initial: Mapping | None = None, dpi: int = COLUMN_DPI) -> widgets.VBox:
    """A slider over ``beta`` showing which copied memories are saddles and how the worst one splits.

    The computation is :func:`damlib.dam.models_over_beta` and :func:`damlib.dam.saddle_states`, the
    drawing :func:`damlib.plotting.dam.draw_saddle`.

    ``live=False`` trains every ``beta`` as one batch (or reuses ``models``, a batch already trained
    over ``betas``, and ``states``, their :func:`damlib.dam.saddle_states`) and stores every frame in the
    page; ``live=True`` trains the chosen ``beta`` when
    the slider moves (needs a kernel).
    """
    def state_at(beta):
        return dam.saddle_states(dam.models_over_beta(x, y, [beta], n_memories=n_memories, steps=steps, lr=lr,
                                                      seed=seed), x, y)[0]

    grid = {"beta": [round(float(b), 2) for b in betas]}
    if live:
        return live_explorer(lambda beta: draw_saddle(state_at(beta)), grid, initial=initial)
    if models is None:
        models = dam.models_over_beta(x, y, betas, n_memories=n_memories, steps=steps, lr=lr, seed=seed)
    elif tuple(models.beta.shape) != (len(betas),):
        raise ValueError(f"models must be a batch over the {len(betas)} betas, got beta of shape "
                         f"{tuple(models.beta.shape)}")
    states = dict(zip(grid["beta"], states if states is not None else dam.saddle_states(models, x, y)))
    lam = np.concatenate([s["lam"] for s in states.values()])
    span = np.abs(lam).max() * 1.5
    ylim = (-span if lam.min() < 0 else -1e-3, span)
    return precomputed_explorer(lambda beta: draw_saddle(states[beta], ylim=ylim), grid, initial=initial, dpi=dpi)


# --- hpt: loss against learning rate across model sizes ------------------------------------------


def transfer_explorer(sizes: Sequence[int], recipes: Mapping[str, Callable[[int], dm.History]], *,
                      histories: Mapping[str, Sequence[dm.History]] | None = None, size_name: str = "K",
                      live: bool = False, initial: Mapping | None = None, dpi: int = COLUMN_DPI) -> widgets.VBox:
    """Sliders over the model size and the recipe, showing the loss against the learning rate
    (frames drawn by :func:`damlib.plotting.hpt.draw_transfer`, as in the chapters' figures).

    Parameters
    ----------
    sizes : sequence of int
        The model sizes of the size slider.
    recipes : mapping
        ``recipes[label](size)`` trains one batched sweep over learning rates and seeds at that size
        (:func:`damlib.denseam.sweep`) and returns its :class:`~damlib.denseam.History`.
    histories : mapping, optional
        ``histories[label][i]``: the sweep at ``sizes[i]``, reused instead of running the recipe.
    size_name : str
        Name of the size slider (``"K"``, ``"D"``).
    live : bool
        ``False``: run every recipe at every size (or reuse ``histories``) and store every frame in
        the page; ``True``: run a recipe when a slider asks for it (needs a kernel), keeping what
        it ran.
    initial : mapping, optional
        Initial slider values.
    dpi : int
        Resolution of the stored frames (default: 96, the page column's pixels per inch, so that
        a frame is shown at the size it was drawn).

    Returns
    -------
    ipywidgets.VBox
    """
    if not recipes:
        raise ValueError("recipes must name at least one sweep")
    sizes = list(sizes)
    slider_values = {size_name: sizes, "recipe": list(recipes)}
    if live:
        cache: dict[tuple[str, int], dm.History] = {}

        def draw_live(recipe, **size):
            n = size[size_name]
            for s in sizes:
                if (recipe, s) not in cache and (s == n or s == sizes[0]):
                    cache[(recipe, s)] = recipes[recipe](s)
            shown = [s for s in sizes if (recipe, s) in cache]
            return draw_transfer([cache[(recipe, s)] for s in shown], shown, shown.index(n), title=recipe,
                                 size_name=size_name)

        return live_explorer(draw_live, slider_values, initial=initial)
    if histories is None:
        histories = {label: [make(s) for s in sizes] for label, make in recipes.items()}
    for label in recipes:
        if len(histories.get(label, ())) != len(sizes):
            raise ValueError(f"histories[{label!r}] must hold one sweep per size ({len(sizes)})")
    ylims = {}  # one vertical range per recipe, so that frames of a recipe compare at a glance
    for label in recipes:
        finals = torch.cat([h.final.mean(-1) for h in histories[label]])
        finals = finals[torch.isfinite(finals)]
        ylims[label] = (float(finals.min()) / 1.3, float(finals.max()) * 1.3) if len(finals) else None

    def draw(recipe, **size):
        return draw_transfer(histories[recipe], sizes, sizes.index(size[size_name]), title=recipe,
                             size_name=size_name, ylim=ylims[recipe])

    return precomputed_explorer(draw, slider_values, initial=initial, dpi=dpi)
