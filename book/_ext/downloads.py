"""Offer each executed chapter as a notebook: the page's download menu gains ``.ipynb``.

myst-nb writes every chapter it executes, with its outputs, to ``<outdir>/../jupyter_execute``;
this extension copies those notebooks next to the page sources in the HTML output
(``_sources/<chapter>.ipynb``) and tells the theme, which then lists the file in the page's
download menu beside the MyST source.

When a chapter's outputs come from the execution cache, myst-nb (1.4) writes that notebook
without them (it writes the notebook it read, not the one merged with the cache); this extension
then merges the cached outputs into it, so the executed notebook carries its outputs either way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat


def _executed(app) -> Path:
    return Path(app.outdir).parent / "jupyter_execute"


def _complete_from_cache(app, doctree) -> None:
    path = _executed(app) / f"{app.env.docname}.ipynb"
    config = app.env.mystnb_config  # as myst-nb resolved it (the cache path within the build)
    if config.execution_mode != "cache" or not path.is_file():
        return
    notebook = nbformat.read(path, as_version=4)
    if any(cell.get("outputs") for cell in notebook.cells):
        return
    from jupyter_cache import get_cache

    cache = get_cache(config.execution_cache_path)
    try:
        _, merged = cache.merge_match_into_notebook(notebook)
    except KeyError:  # not in the cache: executed without outputs
        return
    temporary = path.with_name(f".{path.name}.tmp")
    nbformat.write(merged, temporary)
    os.replace(temporary, path)


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
    app.connect("doctree-read", _complete_from_cache)
    # before the theme builds its header buttons (priority 501)
    app.connect("html-page-context", _offer_notebook, priority=500)
    app.connect("build-finished", _copy_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
