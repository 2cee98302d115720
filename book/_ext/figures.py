"""Generate the figure index and the gallery from ``damlib.figures.FIGURES``.

Two directives, each replaced once every chapter has been read:

``figure-index``
    a table: paper, paper figure, what it shows, and a link to the book figure and its chapter;
``figure-gallery``
    a thumbnail of every figure with its paper number and summary, linking to its chapter.

A registered figure that no chapter defines is reported as a warning, so ``-W`` builds fail.

Figure numbers are the papers' own: a registered figure's caption number, and every
``{numref}`` to it, read its paper key and number ("hpt Fig. 16"), not a count through the book
(which would collide with the papers' numbers); a figure that is not registered is numbered
"Book figure 1, 2, ..." among the unregistered ones.
"""

from __future__ import annotations

import html
import os

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.osutil import relative_uri

from damlib.figures import FIGURES, PAPERS

logger = logging.getLogger(__name__)


class figure_listing(nodes.General, nodes.Element):
    """Placeholder, filled in at ``doctree-resolved``."""


class FigureIndex(SphinxDirective):
    def run(self):
        return [figure_listing(kind="index")]


class FigureGallery(SphinxDirective):
    def run(self):
        return [figure_listing(kind="gallery")]


def _paper_numbers(app, env):
    """Replace the book-wide figure numbers (run after Sphinx assigns them) by the papers'."""
    registered = {fig.label: fig.caption_label for fig in FIGURES}
    unregistered = 0
    for numbers in env.toc_fignumbers.values():
        figures = numbers.get("figure", {})
        for figure_id in figures:
            if figure_id in registered:
                figures[figure_id] = (registered[figure_id],)
            else:
                unregistered += 1
                figures[figure_id] = (f"Book figure {unregistered}",)
    return []


def _whole_label(app, config):
    # A figure's number is its whole caption label, as _paper_numbers writes it.
    config.numfig_format = {**config.numfig_format, "figure": "%s"}


def _locate(app, label):
    """(docname, anchor, figure number, image node) of a figure label, or None."""
    env = app.env
    found = env.get_domain("std").labels.get(label)
    if found is None:
        return None
    docname, anchor, _title = found
    number = env.toc_fignumbers.get(docname, {}).get("figure", {}).get(anchor)
    doctree = env.get_doctree(docname)
    image = None
    for fig in doctree.findall(nodes.figure):
        if anchor in fig["ids"]:
            image = next(iter(fig.findall(nodes.image)), None)
            break
    return docname, anchor, number, image


def _image_src(app, fromdoc, image):
    if image is None or image["uri"] not in app.env.images:
        return None
    imgdir = relative_uri(app.builder.get_target_uri(fromdoc), app.builder.imagedir)
    return f"{imgdir}/{app.env.images[image['uri']][1]}"


def _entries(app, fromdoc):
    for fig in FIGURES:
        where = _locate(app, fig.label)
        if where is None:
            logger.warning(f"figure {fig.label!r} ({fig.paper} {fig.number}) is registered in "
                           "damlib.figures but no chapter defines it", location=fromdoc)
            continue
        docname, anchor, number, image = where
        href = f"{app.builder.get_relative_uri(fromdoc, docname)}#{anchor}"
        title = app.env.titles[docname].astext()
        book_number = ".".join(map(str, number)) if number else "figure"
        yield fig, href, title, book_number, _image_src(app, fromdoc, image)


def _index_html(entries):
    rows = "".join(
        f"<tr><td><code>{fig.paper}</code></td><td>{html.escape(fig.number)}</td>"
        f"<td>{html.escape(fig.summary)}</td>"
        f'<td><a href="{href}">{book_number}</a> in <a href="{href.split("#")[0]}">'
        f"{html.escape(title)}</a></td></tr>"
        for fig, href, title, book_number, _src in entries
    )
    return ('<table class="table figure-index"><thead><tr><th>paper</th><th>figure</th>'
            f"<th>what it shows</th><th>in this book</th></tr></thead><tbody>{rows}</tbody></table>")


def _gallery_html(entries):
    cards = []
    for fig, href, title, book_number, src in entries:
        thumb = f'<img src="{src}" alt="{html.escape(fig.summary)}" loading="lazy">' if src else ""
        cards.append(
            f'<a class="gallery-card" href="{href}">{thumb}'
            f'<span class="gallery-title">{html.escape(PAPERS[fig.paper])}, {html.escape(fig.number)}</span>'
            f'<span class="gallery-summary">{html.escape(fig.summary)}</span>'
            f'<span class="gallery-where">{book_number}, {html.escape(title)}</span></a>'
        )
    return f'<div class="figure-gallery">{"".join(cards)}</div>'


def _fill(app, doctree, fromdoc):
    for node in list(doctree.findall(figure_listing)):
        entries = list(_entries(app, fromdoc))
        markup = _index_html(entries) if node["kind"] == "index" else _gallery_html(entries)
        node.replace_self(nodes.raw("", markup, format="html"))


CSS = """
.figure-gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 1rem; }
.gallery-card { display: flex; flex-direction: column; border: 1px solid var(--pst-color-border);
  border-radius: 6px; padding: .5rem; text-decoration: none !important; color: inherit !important; }
.gallery-card:hover { box-shadow: 0 2px 8px rgba(0,0,0,.15); }
.gallery-card img { width: 100%; height: 140px; object-fit: contain; background: white; }
.gallery-title { font-weight: bold; margin-top: .4rem; font-size: .9rem; }
.gallery-summary, .gallery-where { font-size: .8rem; }
.gallery-where { color: var(--pst-color-text-muted); }
"""


def _add_css(app, pagename, templatename, context, doctree):
    if doctree is not None and "figure-gallery" in str(context.get("body", "")):
        context["body"] = f"<style>{CSS}</style>" + context["body"]


def setup(app):
    # The chapters' kernels inherit the build's environment: no progress bars in the pages.
    os.environ["DAMLIB_PROGRESS"] = "0"
    app.connect("config-inited", _whole_label, priority=900)  # after Sphinx's defaults (800)
    app.connect("env-get-updated", _paper_numbers, priority=900)
    app.add_node(figure_listing)
    app.add_directive("figure-index", FigureIndex)
    app.add_directive("figure-gallery", FigureGallery)
    app.connect("doctree-resolved", _fill)
    app.connect("html-page-context", _add_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
