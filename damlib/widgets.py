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
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display


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
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_png(fig, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure, which is then closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def _sliders(grid: dict[str, list], initial: Mapping | None) -> list[widgets.SelectionSlider]:
    sliders = []
    for name, values in grid.items():
        labels = [_label(v) for v in values]
        start = values.index(initial[name]) if initial and name in initial else 0
        sliders.append(widgets.SelectionSlider(options=list(zip(labels, values)), index=start,
                                               description=name, continuous_update=False,
                                               layout=widgets.Layout(width="420px")))
    return sliders


def precomputed_explorer(draw: Callable[..., object], grid: Mapping[str, Sequence], *,
                         initial: Mapping | None = None, dpi: int = 90) -> widgets.VBox:
    """Sliders over ``grid`` switching between frames drawn in advance; works without a kernel.

    ``draw(**params)`` is called once for every point of the grid (product of the values) and
    must return a matplotlib figure. ``initial`` names the starting value of some parameters.
    """
    grid = _check_grid(grid)
    names = list(grid)
    points = list(itertools.product(*(range(len(v)) for v in grid.values())))
    frames = {}
    for point in points:
        params = {name: grid[name][i] for name, i in zip(names, point)}
        frames[point] = render_png(draw(**params), dpi=dpi)

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
