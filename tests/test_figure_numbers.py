"""The book's figure numbers are the papers' (book/_ext/figures.py), never a book-wide count."""

import sys
import types
from pathlib import Path

from damlib.figures import FIGURES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "book" / "_ext"))
import figures as figures_ext  # noqa: E402


def test_registered_figures_read_their_paper_number():
    first, second = FIGURES[0], FIGURES[-1]
    env = types.SimpleNamespace(toc_fignumbers={
        "book/a": {"figure": {first.label: (1,), "fig-other": (2,)}, "table": {"tab": (1,)}},
        "book/b": {"figure": {second.label: (3,), "fig-more": (4,)}},
    })
    assert figures_ext._paper_numbers(None, env) == []
    numbers = env.toc_fignumbers
    assert numbers["book/a"]["figure"][first.label] == (first.caption_label,)
    assert numbers["book/b"]["figure"][second.label] == (second.caption_label,)
    # unregistered figures are counted among themselves, and say that they are the book's
    assert numbers["book/a"]["figure"]["fig-other"] == ("Book figure 1",)
    assert numbers["book/b"]["figure"]["fig-more"] == ("Book figure 2",)
    assert numbers["book/a"]["table"] == {"tab": (1,)}
    assert first.caption_label == f"{first.paper} {first.number}"
