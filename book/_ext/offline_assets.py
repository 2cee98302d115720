"""Serve MathJax and the ipywidgets renderer from the book when ``book/_vendor/`` exists.

``scripts/fetch_offline_assets.py`` fills that folder. Without it, the build keeps the CDN
defaults of Sphinx and myst-nb, so the book builds either way.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

VENDOR = Path(__file__).resolve().parents[1] / "_vendor"
MATHJAX = "mathjax/tex-mml-chtml.js"
WIDGETS = {
    "require.js": {},
    "html-manager/embed-amd.js": {},
}

logger = logging.getLogger(__name__)


def _use_vendored_assets(app, config) -> None:
    if not (VENDOR / MATHJAX).is_file():
        logger.info("offline assets: book/_vendor/ not found, MathJax and widgets load from CDNs")
        return
    # The folder's contents are copied into _static/; paths below are relative to _static/.
    config.html_static_path = [*config.html_static_path, str(VENDOR)]
    config.mathjax_path = MATHJAX
    config.nb_ipywidgets_js = WIDGETS
    logger.info("offline assets: MathJax and the widget renderer served from book/_vendor/")


def setup(app):
    app.connect("config-inited", _use_vendored_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
