"""The figure registry, the chapters and the table of contents agree."""

from collections import Counter
from pathlib import Path

import jupytext
import yaml

from damlib.figures import FIGURES, PAPERS

ROOT = Path(__file__).resolve().parents[1]


def _toc_files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for value in node.values():
            yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def _book_figures():
    """{figure name: chapter} for every figure cell of every chapter in the table of contents."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = {}
    for name in [toc["root"], *_toc_files(toc["parts"])]:
        path = ROOT / f"{name}.md"
        assert path.is_file(), f"_toc.yml names {name}, which does not exist"
        for cell in jupytext.read(path).cells:
            figure = cell.metadata.get("mystnb", {}).get("figure", {})
            if "name" in figure:
                assert figure["name"] not in found, f"figure {figure['name']} defined twice"
                found[figure["name"]] = name
    return found


def test_registry_entries_are_well_formed():
    labels = Counter(fig.label for fig in FIGURES)
    assert not [label for label, n in labels.items() if n > 1], "duplicate labels in the registry"
    for fig in FIGURES:
        assert fig.paper in PAPERS and fig.label.startswith(f"fig-{fig.paper}-") and fig.summary


def test_every_registered_figure_is_in_a_chapter():
    book = _book_figures()
    missing = [fig.label for fig in FIGURES if fig.label not in book]
    assert not missing, f"registered in damlib.figures but in no chapter of _toc.yml: {missing}"


def test_every_chapter_figure_is_registered():
    registered = {fig.label for fig in FIGURES}
    unregistered = sorted(set(_book_figures()) - registered)
    assert not unregistered, f"figure cells missing from damlib.figures.FIGURES: {unregistered}"
