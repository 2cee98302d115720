"""The chapters read at page width: no code line of a code cell is wider than the column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", re.S | re.M)
COLUMN = 88  # characters of code the page column shows without scrolling


def code_lines(text: str):
    """``(line number, line)`` of every code line of the chapter's code cells (options excluded)."""
    for match in CELL.finditer(text):
        lines = match.group(1).splitlines()
        first = text.count("\n", 0, match.start(1)) + 1
        i = 0
        if lines and lines[0] == "---":  # a yaml block of cell options
            i = lines.index("---", 1) + 1
        while i < len(lines) and lines[i].startswith(":"):  # short-form cell options
            i += 1
        for j in range(i, len(lines)):
            yield first + j, lines[j]


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
