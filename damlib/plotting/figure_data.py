"""The data a figure draws, carried in the notebook output next to its image.

:func:`register` (called when :mod:`damlib.plotting` is imported in an IPython kernel) adds a
display formatter for matplotlib figures under the mime type :data:`MIME`. Every displayed
figure then also carries :func:`figure_data`: per axes its title and axis labels, and the arrays
of what it draws (lines, scatter points, images, meshes, bars, error bars, filled areas, contour
levels), every array whole, as drawn. Front ends that do not know the mime type ignore it
(JupyterLab and myst-nb show the PNG as before); the book's ``figure_data`` extension turns it
into a ``.npz`` download under each figure. :func:`arrays` decodes it into named arrays and one
line of description per array.
"""

from __future__ import annotations

import base64
import re
import zlib

import numpy as np
from matplotlib.collections import Collection, LineCollection, PathCollection, QuadMesh
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

MIME = "application/vnd.damlib.figure-data+json"


def _encode(values) -> dict:
    array = np.ascontiguousarray(np.ma.filled(np.ma.asarray(values, dtype=float), np.nan))
    if array.dtype == np.float64 and np.array_equal(array, array.astype(np.float32), equal_nan=True):
        array = array.astype(np.float32)  # exact: no value changes
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "data": base64.b64encode(zlib.compress(array.tobytes(), 6)).decode("ascii")}


def _decode(encoded: dict) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(encoded["data"]))
    return np.frombuffer(raw, dtype=np.dtype(encoded["dtype"])).reshape(encoded["shape"])


def _paths(paths) -> np.ndarray:
    """Vertices of several paths in one (n, 2) array, a row of NaN between paths."""
    pieces = []
    for path in paths:
        for vertices, _code in path.iter_segments(simplify=False, curves=False):
            pieces.append(np.asarray(vertices, dtype=float).reshape(1, 2))
        pieces.append(np.full((1, 2), np.nan))
    return np.concatenate(pieces[:-1]) if pieces else np.empty((0, 2))


def _label(artist) -> str:
    label = artist.get_label() or ""
    return "" if label.startswith("_") else label


def _panel_name(ax, index: int) -> str:
    for text in ax.texts:
        letter = re.fullmatch(r"\(([a-z])\)", text.get_text())
        if letter:
            return letter.group(1)
    return f"ax{index}"


def _errorbar(container) -> dict:
    data_line, _caps, bars = container
    item = {"kind": "errorbar", "label": _label(container)}
    if data_line is not None:
        item.update(x=_encode(data_line.get_xydata()[:, 0]), y=_encode(data_line.get_xydata()[:, 1]))
    axes = ("x",) * container.has_xerr + ("y",) * container.has_yerr
    for collection, axis in zip(bars, axes):
        segments = collection.get_segments()
        item[f"{axis}err_low"] = _encode([s[:, "xy".index(axis)].min() for s in segments])
        item[f"{axis}err_high"] = _encode([s[:, "xy".index(axis)].max() for s in segments])
    return item


def _bars(container) -> dict:
    rects = container.patches
    return {"kind": "bar", "label": _label(container),
            "x": _encode([r.get_x() for r in rects]), "bottom": _encode([r.get_y() for r in rects]),
            "width": _encode([r.get_width() for r in rects]),
            "height": _encode([r.get_height() for r in rects])}


def _line(ax, line) -> dict | None:
    transform = line.get_transform()
    if transform is ax.get_yaxis_transform(which="grid"):
        return {"kind": "hline", "label": _label(line), "y": _encode(line.get_ydata()[:1])}
    if transform is ax.get_xaxis_transform(which="grid"):
        return {"kind": "vline", "label": _label(line), "x": _encode(line.get_xdata()[:1])}
    if not transform.contains_branch(ax.transData):
        return None
    xy = line.get_xydata()  # in data units (categorical or dates converted)
    return {"kind": "line", "label": _label(line), "x": _encode(xy[:, 0]), "y": _encode(xy[:, 1])}


def _collection(collection) -> dict | None:
    item = {"label": _label(collection)}
    if hasattr(collection, "levels"):  # a contour set (a Collection since matplotlib 3.8)
        item.update(kind="contourf" if collection.filled else "contour",
                    levels=_encode(collection.levels),
                    paths=_encode(_paths(collection.get_paths())))
    elif isinstance(collection, QuadMesh):
        item.update(kind="mesh", coordinates=_encode(collection.get_coordinates()),
                    values=_encode(collection.get_array()))
    elif isinstance(collection, PathCollection):
        item.update(kind="scatter", offsets=_encode(collection.get_offsets()))
        if collection.get_array() is not None:
            item["values"] = _encode(collection.get_array())
    elif isinstance(collection, LineCollection):
        item.update(kind="segments", paths=_encode(_paths(collection.get_paths())))
    elif isinstance(collection, Collection) and collection.get_paths():
        item.update(kind="area", paths=_encode(_paths(collection.get_paths())))
    else:
        return None
    return item


def _axes(ax, index: int) -> dict:
    items, used = [], set()
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            items.append(_errorbar(container))
            used.update(id(a) for a in container.get_children())
        elif isinstance(container, BarContainer):
            items.append(_bars(container))
    for line in ax.lines:
        if id(line) not in used and (item := _line(ax, line)) is not None:
            items.append(item)
    for collection in ax.collections:
        if id(collection) not in used and (item := _collection(collection)) is not None:
            items.append(item)
    for image in ax.get_images():
        items.append({"kind": "image", "label": _label(image), "values": _encode(image.get_array()),
                      "extent": _encode(image.get_extent())})
    return {"name": _panel_name(ax, index), "title": ax.get_title(), "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel(), "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
            "items": items}


def figure_data(fig: Figure) -> dict:
    """What ``fig`` draws, as a JSON-able dict (arrays compressed, every value kept).

    Returns
    -------
    dict
        ``{"suptitle": str, "scale": str, "axes": [{"name", "title", "xlabel", "ylabel",
        "xscale", "yscale", "items": [{"kind", "label", <array fields>}]}]}``; ``name`` is the
        panel letter drawn by :func:`~damlib.plotting.style.label_panels` (else ``ax<i>``), colour
        bars and axes that draw nothing are left out. Decode with :func:`arrays`.
    """
    from damlib.config import scale

    axes = [_axes(ax, i) for i, ax in enumerate(fig.axes) if not hasattr(ax, "_colorbar")]
    suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    return {"suptitle": suptitle, "scale": scale(), "axes": [a for a in axes if a["items"]]}


def _meaning(field: str, ax: dict) -> str:
    x, y = ax["xlabel"] or "x", ax["ylabel"] or "y"
    if field in ("offsets", "paths", "coordinates"):
        return f"columns: {x}; {y}"
    return {"x": x, "y": y}.get(field[:1], "") if field != "values" else "colour values"


def arrays(data: dict) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays of :func:`figure_data`'s ``data``, named, and one description line per array.

    Names read ``<panel>_<kind><k>_<field>`` (``a_line0_x``, ``b_image0_values``); a
    description line names the array, its shape, what it is (panel title, axis labels, legend
    label). Ragged paths (contours, filled areas, segments) are one ``(n, 2)`` array of x, y
    with a row of NaN between pieces.
    """
    out, lines = {}, []
    for ax in data["axes"]:
        counts: dict[str, int] = {}
        where = f"panel {ax['name']}" + (f" '{ax['title']}'" if ax["title"] else "")
        for item in ax["items"]:
            k = counts[item["kind"]] = counts.get(item["kind"], -1) + 1
            for field, value in item.items():
                if not isinstance(value, dict):
                    continue
                name = f"{ax['name']}_{item['kind']}{k}_{field}"
                out[name] = _decode(value)
                meaning = _meaning(field, ax)
                label = f", '{item['label']}'" if item["label"] else ""
                lines.append(f"{name} {list(out[name].shape)}: {where}, {item['kind']}{label}, "
                             f"{field}" + (f" ({meaning})" if meaning else ""))
    return out, lines


def register(shell=None) -> bool:
    """Display matplotlib figures with their data under :data:`MIME` in an IPython shell.

    Returns False outside IPython (nothing to do), True once the formatter is in place.
    """
    try:
        from IPython import get_ipython
        from IPython.core.formatters import JSONFormatter, catch_format_error
        from traitlets import Unicode
    except ImportError:
        return False
    shell = shell or get_ipython()
    if shell is None:
        return False

    class FigureDataFormatter(JSONFormatter):
        # Figures are recognised here rather than through ``for_type``: matplotlib's inline
        # backend drops every formatter's Figure entry when it is (re)configured.
        format_type = Unicode(MIME)

        @catch_format_error
        def __call__(self, obj):
            return figure_data(obj) if self.enabled and isinstance(obj, Figure) else None

    formatters = shell.display_formatter.formatters
    if not isinstance(formatters.get(MIME), JSONFormatter):
        formatters[MIME] = FigureDataFormatter(parent=shell.display_formatter)
    return True
