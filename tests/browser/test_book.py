"""The built book, read in headless Chromium with the network cut: every page of the table of
contents typesets its maths, loads every image, and requests nothing beyond localhost; the
gallery shows a thumbnail per registered figure; each precomputed explorer shows another frame
after a slider moves; each chapter offers its executed notebook, outputs included; every link
leads to a page of the build, or to the papers and the libraries used; each registered figure
offers its data as an ``.npz`` whose arrays are those its description lists, and is numbered by
its paper ("hpt Fig. 16"), in its caption and in every reference to it; each chapter links
the API entry of every damlib function and class its code uses, and every such link resolves.

Run after a build (``jupyter-book build .``) with ``pytest tests/browser``; `.ci/run` does. It
skips, saying why, where no build or no Chromium is at hand.
"""

from __future__ import annotations

import io
import json
import re
import sys
import urllib.parse
import urllib.request

import numpy as np
import pytest
import yaml

from damlib.figures import FIGURES
from damlib.plotting import style

from .browser import ROOT, local_requests, open_page

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import api_links  # noqa: E402

TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
PAGES = [TOC["root"]] + [c["file"] for part in TOC["parts"] for c in part["chapters"]]

# Wait for MathJax (when the page loads it) to finish typesetting; report what is left raw.
MATHS = """
const done = arguments[arguments.length - 1];
const report = () => done({
  typeset: document.querySelectorAll('mjx-container').length,
  raw: Array.from(document.querySelectorAll('.math, span.math, div.math'))
            .filter(e => !e.querySelector('mjx-container')).length,
  mathjax: typeof window.MathJax === 'object' && !!window.MathJax.startup,
});
if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
  window.MathJax.startup.promise.then(report, report);
} else { setTimeout(report, 3000); }
"""

# Load every image now (the gallery's are lazy), then list those that did not load.
IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = 'eager'; });
const broken = () => images.filter(img => !(img.complete && img.naturalWidth > 0))
                           .map(img => (img.currentSrc || img.src || '').slice(0, 80));
const start = Date.now();
(function wait() {
  if (broken().length === 0 || Date.now() - start > 10000) { done(broken()); }
  else { setTimeout(wait, 200); }
})();
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_offline(browser, page):
    open_page(browser, page)
    maths = browser.execute_async_script(MATHS)
    has_maths = maths["raw"] + maths["typeset"] > 0
    assert not has_maths or (maths["mathjax"] and maths["raw"] == 0), (
        f"{page}: {maths['raw']} equations left untypeset (MathJax loaded: {maths['mathjax']})")
    broken = browser.execute_async_script(IMAGES)
    assert not broken, f"{page}: images that did not load: {broken}"
    outside = local_requests(browser, outside=True)
    assert not outside, f"{page}: requests beyond localhost: {outside[:5]}"


# {figure label: page} of every figure cell in the table of contents.
FIGURE_PAGES = {name: page for page in PAGES
                for name in re.findall(r"^\s+name: (fig-[\w-]+)$",
                                       (ROOT / f"{page}.md").read_text(encoding="utf-8"), re.M)}
DATA_LIMIT = 1 << 20  # bytes: a figure's data download stays small


@pytest.mark.parametrize("fig", FIGURES, ids=lambda f: f.label)
def test_figure_data_downloads(browser, fig):
    page = FIGURE_PAGES[fig.label]
    open_page(browser, page)
    links = browser.execute_script(
        "const f = document.getElementById(arguments[0]);"
        "return f ? Array.from(f.querySelectorAll('.figure-data a')).map(a => a.href) : null;",
        fig.label)
    assert links is not None, f"{page}: no figure {fig.label}"
    data = [h for h in links if h.endswith(f"/{fig.label}.npz")]
    text = [h for h in links if h.endswith(f"/{fig.label}.txt")]
    assert data and text, f"{page}: {fig.label} offers no data download and description: {links}"
    with urllib.request.urlopen(data[0], timeout=10) as response:
        raw = response.read()
    assert len(raw) < DATA_LIMIT, f"{fig.label}: data download of {len(raw)} bytes"
    with urllib.request.urlopen(text[0], timeout=10) as response:
        description = response.read().decode()
    assert fig.caption_label in description and fig.summary in description, description[:300]
    listed = dict(re.findall(r"^(\w+) (\[[\d, ]*\]):", description, re.M))
    with np.load(io.BytesIO(raw)) as arrays:
        stored = {name: str(list(arrays[name].shape)) for name in arrays.files}
    assert stored and stored == listed, (
        f"{fig.label}: arrays stored {sorted(stored)[:6]}..., described {sorted(listed)[:6]}...")


CAPTIONS = """
return Array.from(document.querySelectorAll('figure')).map(f => [f.id,
  (f.querySelector('.caption-number') || {textContent: ''}).textContent.trim()]);
"""
NUMREFS = """
return Array.from(document.querySelectorAll('a.reference span.std-numref'))
  .map(s => [s.parentElement.getAttribute('href').split('#').pop(), s.textContent.trim()]);
"""


@pytest.mark.parametrize("page", PAGES)
def test_figures_numbered_by_their_paper(browser, page):
    labels = {fig.label: fig.caption_label for fig in FIGURES}
    open_page(browser, page)
    captions = browser.execute_script(CAPTIONS)
    wrong = [(i, n) for i, n in captions if i in labels and n != labels[i]]
    assert not wrong, f"{page}: captions not numbered by their paper figure: {wrong}"
    bare = [(i, n) for i, n in captions if re.fullmatch(r"(Fig\.|Figure)\s*[\d.]+", n)]
    assert not bare, f"{page}: captions with a book-wide number: {bare}"
    refs = browser.execute_script(NUMREFS)
    wrong = [(i, t) for i, t in refs if i in labels and t != labels[i]]
    assert not wrong, f"{page}: references that do not read the paper figure: {wrong}"


API_LINKS = """
return Array.from(document.querySelectorAll('a[href*="api/"]')).map(a => a.getAttribute('href'));
"""
UNRESOLVED = """
return Array.from(document.querySelectorAll('code.xref')).filter(c => !c.closest('a'))
  .map(c => c.textContent.trim());
"""


USES = {p: api_links.used(api_links.chapter_code(ROOT / f"{p}.md")) for p in PAGES
        if "kernelspec:" in (ROOT / f"{p}.md").read_text(encoding="utf-8")[:800]}


@pytest.mark.parametrize("page", [p for p in USES if USES[p]])
def test_chapter_links_the_api_it_uses(browser, page):
    open_page(browser, page)
    linked = {href.split("#")[-1] for href in browser.execute_script(API_LINKS) if "#" in href}
    missing = [name for name in USES[page] if name not in linked]
    assert not missing, f"{page}: its code uses, its page does not link: {missing}"
    unresolved = browser.execute_script(UNRESOLVED)
    assert not unresolved, f"{page}: references to the API that lead nowhere: {unresolved}"


CHAPTERS = [p for p in PAGES if p.split("/")[1:2] in (["gd"], ["dam"], ["hpt"])]


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_downloads_as_executed_notebook(browser, page):
    open_page(browser, page)
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a')).filter(a => a.textContent.trim() === '.ipynb')"
        ".map(a => a.href);")
    assert links, f"{page}: the download menu offers no .ipynb"
    with urllib.request.urlopen(links[0], timeout=10) as response:
        notebook = json.loads(response.read())
    outputs = sum(len(c.get("outputs", [])) for c in notebook["cells"] if c["cell_type"] == "code")
    assert outputs > 0, f"{page}: the downloaded notebook carries no outputs"


# Every image a cell drew, with the dpi it was drawn at (figures: the inline backend's figure.dpi;
# explorer frames: COLUMN_DPI), its natural and its shown width in px.
CELL_IMAGES = """
return Array.from(document.querySelectorAll('.cell_output img')).map(img => ({
  src: (img.currentSrc || img.src || '').slice(-48),
  frame: !!img.closest('.widget-vbox, .jupyter-widgets'),
  linked: (img.closest('a.figure-full-size') || {}).href === img.src,
  natural: img.naturalWidth,
  shown: img.getBoundingClientRect().width,
}));
"""


@pytest.mark.parametrize("page", CHAPTERS)
def test_figures_fit_the_column(browser, page):
    """Every figure is drawn at most the column wide (COLUMN_WIDTH inches, plus WIDTH_TOLERANCE for
    what bbox "tight" adds), and shown so that text of MIN_FONT_PT lands at MIN_TEXT_PX or more;
    a click on a figure opens its full-size image (book/_static/figure-zoom.js)."""
    open_page(browser, page)
    browser.execute_async_script(IMAGES)
    limit = style.COLUMN_WIDTH + style.WIDTH_TOLERANCE
    wide, small, unlinked = [], [], []
    for img in browser.execute_script(CELL_IMAGES):
        if not img["natural"]:
            continue
        if not img["frame"] and not img["linked"]:
            unlinked.append(img["src"])
        dpi = style.COLUMN_DPI if img["frame"] else style.STYLE["figure.dpi"]
        inches = img["natural"] / dpi
        if inches > limit:
            wide.append(f"{img['src']}: {inches:.2f} in")
        text_px = style.MIN_FONT_PT / 72 * img["shown"] / inches
        if text_px < style.MIN_TEXT_PX - 0.05:
            small.append(f"{img['src']}: {text_px:.1f} px")
    assert not wide, f"{page}: figures drawn wider than {limit} inches: {wide}"
    assert not small, f"{page}: figures whose smallest text is shown below {style.MIN_TEXT_PX} px: {small}"
    assert not unlinked, f"{page}: figures that do not open their full-size image: {unlinked}"


# External links may go to the papers and to the projects the book is built with, nowhere else.
EXTERNAL_HOSTS = {"arxiv.org", "doi.org", "iopscience.iop.org", "jupyterbook.org", "www.sphinx-doc.org",
                  "pytorch.org", "github.com/facebookresearch", "github.com/RobinTher", "github.com/albietz",
                  "jupyter.org", "ipywidgets.readthedocs.io", "myst-nb.readthedocs.io"}
LINKS = "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);"


@pytest.mark.parametrize("page", PAGES)
def test_links_lead_somewhere(browser, page):
    open_page(browser, page)
    broken, foreign = [], []
    for href in sorted(set(browser.execute_script(LINKS))):
        url = urllib.parse.urlparse(href)
        if url.scheme in ("javascript", "mailto", "data") or not url.scheme:
            continue
        if url.hostname in ("localhost", "127.0.0.1"):
            try:
                urllib.request.urlopen(href.split("#")[0], timeout=10).close()
            except OSError as error:
                broken.append(f"{url.path} ({error})")
        else:
            where = url.hostname + "/" + url.path.strip("/").split("/")[0]
            if url.hostname not in EXTERNAL_HOSTS and where not in EXTERNAL_HOSTS:
                foreign.append(href)
    assert not broken, f"{page}: links to pages the build does not have: {broken}"
    assert not foreign, f"{page}: external links beyond the papers and the libraries used: {foreign}"


def test_gallery_shows_every_figure(browser):
    open_page(browser, "book/gallery")
    assert not browser.execute_async_script(IMAGES), "gallery: thumbnails that did not load"
    thumbs = browser.execute_script(
        "return Array.from(document.querySelectorAll('.figure-gallery img'))"
        ".map(img => img.complete && img.naturalWidth > 0);")
    assert len(thumbs) == len(FIGURES), f"gallery: {len(thumbs)} thumbnails for {len(FIGURES)} figures"
    assert all(thumbs), f"gallery: {thumbs.count(False)} thumbnails did not load"


# The frame an explorer shows: the one image of its widget area that is displayed.
VISIBLE_FRAME = """
const box = arguments[0];
const imgs = Array.from(box.querySelectorAll('img')).filter(i => i.offsetParent !== null);
return imgs.map(i => i.src.length + ':' + i.src.slice(-64));
"""


def _explorers(browser):
    """The outermost widget boxes of the page (an explorer: sliders above its frames)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('.widget-vbox'))"
        ".filter(v => !v.parentElement.closest('.widget-vbox'));")


EXPLORER_PAGES = [p for p in PAGES if p in {"book/gd/landscape", "book/dam/saddles", "book/hpt/k_only"}]


@pytest.mark.parametrize("page", EXPLORER_PAGES)
def test_explorer_slider_changes_frame(browser, page):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, page)
    WebDriverWait(browser, 30).until(lambda b: b.find_elements("css selector", ".noUi-handle"))
    views = [v for v in _explorers(browser) if v.find_elements("css selector", ".noUi-handle")]
    assert views, f"{page}: no explorer with a slider rendered"
    for view in views:
        before = browser.execute_script(VISIBLE_FRAME, view)
        assert len(before) == 1, f"{page}: an explorer shows {len(before)} frames, expected one"
        handle = view.find_elements("css selector", ".noUi-handle")[0]
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
        at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        handle.send_keys(Keys.ARROW_LEFT if at_end else Keys.ARROW_RIGHT)
        def moved(b, view=view, before=before):
            return b.execute_script(VISIBLE_FRAME, view) != before

        WebDriverWait(browser, 10).until(moved, message=f"{page}: the frame did not change after a slider moved")
