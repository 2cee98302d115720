"""The registry of regenerated paper figures: one entry per figure of the book.

The book's figure index (``book/intro.md``) and its gallery (``book/gallery.md``) are generated
from this list at build time by ``book/_ext/figures.py``; a figure named here and missing from the
build is a build warning (an error in CI), and ``tests/test_figures.py`` checks that every entry
has a figure cell in a chapter of the table of contents, and every figure cell an entry.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPERS = {
    "gd": "Cabannes, Şimşek, Bietti (2024)",
    "dam": "Thériault, Tantari (2026)",
    "hpt": "Holtzman, Krotov, Hanin (2026)",
}


@dataclass(frozen=True)
class PaperFigure:
    """One regenerated figure.

    ``paper``: key of :data:`PAPERS`; ``number``: what the paper calls it ("Fig. 3",
    "Thm 1"); ``label``: the book figure's name (``mystnb: figure: name:``); ``summary``: one
    line of what it shows.
    """

    paper: str
    number: str
    label: str
    summary: str


FIGURES: tuple[PaperFigure, ...] = (
    PaperFigure("gd", "Thm 1", "fig-gd-particles",
                "Scores of W and the free particles coincide under GD and SGD"),
)


def by_label() -> dict[str, PaperFigure]:
    """The registry keyed by figure label."""
    return {fig.label: fig for fig in FIGURES}
