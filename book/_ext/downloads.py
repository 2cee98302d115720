"""Offer each executed chapter as a notebook: the page's download menu gains ``.ipynb``.

myst-nb writes every chapter it executes, with its outputs, to ``<outdir>/../jupyter_execute``;
this extension copies those notebooks next to the page sources in the HTML output
(``_sources/<chapter>.ipynb``) and tells the theme, which then lists the file in the page's
download menu beside the MyST source.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def _executed(app) -> Path:
    return Path(app.outdir).parent / "jupyter_execute"


def _offer_notebook(app, pagename, templatename, context, doctree) -> None:
    if (_executed(app) / f"{pagename}.ipynb").is_file():
        context["ipynb_source"] = f"{pagename}.ipynb"


def _copy_notebooks(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = _executed(app)
    for notebook in source.rglob("*.ipynb"):
        target = Path(app.outdir) / "_sources" / notebook.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebook, target)


def setup(app):
    # before the theme builds its header buttons (priority 501)
    app.connect("html-page-context", _offer_notebook, priority=500)
    app.connect("build-finished", _copy_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
