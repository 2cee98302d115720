"""Offer the data behind each figure: a ``.npz`` of the arrays it draws and a description.

In a chapter's kernel every displayed matplotlib figure carries what it draws under the mime
type ``damlib.plotting.figure_data.MIME`` (myst-nb shows the PNG; its warning that it cannot
render that one mime type is filtered, exactly that message). For each
figure cell of a page (``mystnb: figure: name: <label>``) this extension reads that output from
the executed notebook (``<outdir>/../jupyter_execute``), writes ``_figure_data/<label>.npz``
and ``_figure_data/<label>.txt`` (which paper figure, the page, the run scale, one line per
array) into the HTML output, and adds the two links under the figure's caption. A registered
figure (``damlib.figures.FIGURES``) whose cell displayed no such data is a build warning.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import numpy as np
from docutils import nodes
from sphinx.util import logging as sphinx_logging
from sphinx.util.osutil import relative_uri

from damlib.figures import PAPERS, by_label
from damlib.plotting.figure_data import MIME, arrays

logger = sphinx_logging.getLogger(__name__)
FOLDER = "_figure_data"

CONVENTIONS = (
    "Load with numpy.load(). Every array is stored whole, as the figure draws it (nothing is "
    "downsampled; float64 values that are exact in float32 are stored as float32). An array "
    "is named <panel>_<kind><k>_<field>: the panel letter of the figure (ax<i> where the panel "
    "has no letter), what is drawn (line, hline, vline, scatter, errorbar, bar, image, mesh, "
    "contour, contourf, area, segments) and its field. Contours, filled areas and segments are "
    "stored as their drawn paths, one (n, 2) array of x, y rows with a row of NaN between "
    "pieces; the grid a contour was computed from is not stored."
)


def _figure_outputs(notebook: Path) -> dict[str, list[dict]]:
    """{figure label: [figure data of each figure the cell displayed]} of an executed notebook."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = {}
    for cell in cells:
        label = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name")
        if cell["cell_type"] == "code" and label:
            found[label] = [o["data"][MIME] for o in cell.get("outputs", [])
                            if MIME in o.get("data", {})]
    return found


def _write(app, label: str, payloads: list[dict], docname: str) -> tuple[int, int]:
    """Write ``<label>.npz`` and ``<label>.txt``; return (npz bytes, number of arrays)."""
    out, lines = {}, []
    for i, payload in enumerate(payloads):
        named, described = arrays(payload)
        prefix = f"fig{i}_" if len(payloads) > 1 else ""
        out.update({prefix + k: v for k, v in named.items()})
        lines += [prefix + line for line in described]
    fig = by_label().get(label)
    what = (f"{fig.caption_label} of {PAPERS[fig.paper]}: {fig.summary}" if fig
            else "a figure of this book not registered as a paper figure")
    scales = sorted({p["scale"] for p in payloads})
    header = [
        f"{label}.npz: the data of {what}.",
        f"Drawn on the page '{app.env.titles[docname].astext()}' ({docname}), "
        f"computed at run scale {', '.join(scales)} (DAMLIB_SCALE).",
        "", CONVENTIONS, "", f"Arrays ({len(out)}):",
    ]
    folder = Path(app.outdir) / FOLDER
    folder.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **out)
    for name, content in ((f"{label}.npz", buffer.getvalue()),
                          (f"{label}.txt", "\n".join(header + lines).encode() + b"\n")):
        temporary = folder / f".{name}.tmp"
        temporary.write_bytes(content)
        os.replace(temporary, folder / name)
    return len(buffer.getvalue()), len(out)


def _attach(app, doctree, docname) -> None:
    if app.builder.format != "html":
        return
    notebook = Path(app.outdir).parent / "jupyter_execute" / f"{docname}.ipynb"
    outputs = _figure_outputs(notebook) if notebook.is_file() else {}
    registered = by_label()
    page = app.builder.get_target_uri(docname)
    for figure in doctree.findall(nodes.figure):
        label = next((i for i in figure["ids"] if i in outputs), None)
        if label is None or not outputs[label]:
            missing = [i for i in figure["ids"] if i in registered]
            if missing:
                logger.warning(f"figure {missing[0]!r} displayed no figure data ({MIME}): "
                               "is it drawn with matplotlib after importing damlib.plotting?",
                               location=docname)
            continue
        size, count = _write(app, label, outputs[label], docname)
        base = relative_uri(page, f"{FOLDER}/{label}")
        markup = (f'<p class="figure-data"><a href="{base}.npz" download>Download the data</a> '
                  f"(.npz, {count} arrays, {size / 1024:.0f} kB) and "
                  f'<a href="{base}.txt">what it holds</a>.</p>')
        figure += nodes.legend("", nodes.raw("", markup, format="html"))


class _SkipOwnMime(logging.Filter):
    """myst-nb warns of each output mime type it cannot render; this one it is meant to skip."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"unknown output mime type: {MIME}" not in record.getMessage()


def _quiet_myst_nb(app, env, docnames) -> None:
    # myst-nb logs a page's warnings through the logger "sphinx.mystnb-<docname>"
    for docname in docnames:
        logging.getLogger(f"sphinx.mystnb-{docname}").addFilter(_SkipOwnMime())


def setup(app):
    app.connect("env-before-read-docs", _quiet_myst_nb)
    app.connect("doctree-resolved", _attach)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
