"""The chapters read at page width: no code line of a code cell is wider than the column."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", re.S | re.M)
COLUMN = 88  # characters of code the page column shows without scrolling


def code_lines(text: str):
    """``(line number, line)`` of every line of the chapter's code cells, their options included
    (a figure caption in the options is shown as prose, but its source lines are what a reader of
    the chapter's source and the notebook sees)."""
    for match in CELL.finditer(text):
        first = text.count("\n", 0, match.start(1)) + 1
        for j, line in enumerate(match.group(1).splitlines()):
            yield first + j, line


def test_code_lines_fit_the_column():
    wide = [f"{path.relative_to(BOOK.parent)}:{n} ({len(line)} characters)"
            for path in sorted(BOOK.rglob("*.md"))
            if not any(part.startswith((".", "_")) for part in path.relative_to(BOOK).parts)
            for n, line in code_lines(path.read_text(encoding="utf-8")) if len(line) > COLUMN]
    assert not wide, f"code lines wider than the {COLUMN}-character column: {wide}"


@pytest.mark.parametrize("line, wide", [("x = 1", False), ("y = " + "1 + " * 30 + "1", True)])
def test_the_check_sees_a_wide_line(line, wide):
    text = "```{code-cell} ipython3\n" + line + "\n```\n"
    assert any(len(code) > COLUMN for _, code in code_lines(text)) == wide


def test_captions_wrap_to_the_column_keeping_their_words():
    sys.path.insert(0, str(BOOK.parent / "scripts"))
    from format_chapters import wrap_captions

    words = " ".join(f"word{i}" for i in range(30))
    options = ("---\nmystnb:\n  figure:\n    caption: |\n      " + words
               + " with $a + b = c$ maths and {glue:text}`name:.2f`.\n\n      Second.\n"
               "    name: fig-x\n---\n")
    wrapped = wrap_captions(options)
    text = "```{code-cell} ipython3\n" + wrapped + "x = 1\n```\n"
    assert max(len(line) for _, line in code_lines(text)) <= COLUMN
    # control: the same caption unwrapped is seen as too wide
    assert max(len(line) for _, line in code_lines(text.replace(wrapped, options))) > COLUMN
    assert " ".join(wrapped.split()) == " ".join(options.split())    # the same words
    assert "$a + b = c$" in wrapped and "\n\n      Second." in wrapped
    assert wrapped.endswith("    name: fig-x\n---\n")
