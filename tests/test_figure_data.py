"""The data a displayed figure carries: every array it draws comes back whole."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from damlib.plotting import label_panels  # noqa: E402
from damlib.plotting.figure_data import MIME, arrays, figure_data, register  # noqa: E402


@pytest.fixture
def drawn():
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 1.0, 7)
    y = rng.standard_normal(7)
    image = rng.standard_normal((4, 5))
    fig, axes = plt.subplots(1, 3)
    axes[0].plot(x, y, label="loss")
    axes[0].axhline(0.25)
    axes[0].set(title="lines", xlabel="step", ylabel="loss")
    axes[1].imshow(image)
    axes[1].scatter(x, y, c=x)
    axes[2].errorbar(x, y, yerr=0.1 + x, label="mean")
    axes[2].bar([1, 2], [3.0, 4.0])
    axes[2].contour(image, levels=[0.0, 0.5])
    axes[2].fill_between(x, y, y + 1.0)
    label_panels(axes)
    yield fig, dict(x=x, y=y, image=image)
    plt.close(fig)


def test_arrays_round_trip(drawn):
    fig, v = drawn
    data = json.loads(json.dumps(figure_data(fig)))  # as it travels in a notebook
    out, lines = arrays(data)
    assert np.array_equal(out["a_line0_x"], v["x"]) and np.array_equal(out["a_line0_y"], v["y"])
    assert np.array_equal(out["a_hline0_y"], [0.25])
    assert np.array_equal(out["b_image0_values"], v["image"])
    assert np.array_equal(out["b_scatter0_offsets"], np.column_stack([v["x"], v["y"]]))
    assert np.array_equal(out["b_scatter0_values"], v["x"])
    assert np.allclose(out["c_errorbar0_yerr_high"] - v["y"], 0.1 + v["x"])
    assert np.array_equal(out["c_bar0_height"], [3.0, 4.0])
    assert np.array_equal(out["c_contour0_levels"], [0.0, 0.5])
    assert out["c_area0_paths"].shape[1] == 2
    assert len(lines) == len(out) and all(line.split(" ")[0] in out for line in lines)
    assert any("panel a 'lines', line, 'loss', x (step)" in line for line in lines)


def test_displayed_figure_carries_its_data(drawn):
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    shell = InteractiveShell.instance()
    set_matplotlib_formats("png")
    assert register(shell)
    fig, v = drawn
    bundle, _ = shell.display_formatter.format(fig)
    assert "image/png" in bundle and MIME in bundle
    out, _ = arrays(bundle[MIME])
    assert np.array_equal(out["a_line0_y"], v["y"])
