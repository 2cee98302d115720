import matplotlib.pyplot as plt
import pytest
from ipywidgets import Image, SelectionSlider, Stack

from damlib import widgets


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


def test_live_explorer_redraws():
    box = widgets.live_explorer(_draw, {"a": [1, 2], "b": ["x"]})
    slider = box.children[0]
    slider.index = 1
    assert slider.value == 2


@pytest.mark.parametrize("grid", [{}, {"a": []}, [("a", [1])]])
def test_bad_grid(grid):
    with pytest.raises(ValueError, match="grid"):
        widgets.precomputed_explorer(_draw, grid)
