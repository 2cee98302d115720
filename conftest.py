"""Let nbval run the book's Jupytext notebooks (MyST ``.md``) without writing ``.ipynb`` files.

Each ``book/**/*.md`` file whose front matter declares a Jupytext kernelspec is
read in memory with jupytext and handed to nbval's own collector, so a failing
cell is reported as ``book/<part>/<chapter>.md::Cell N``. The notebooks run at
``DAMLIB_SCALE=ci`` unless the caller set another scale.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import jupytext
import nbval.plugin

BOOK = Path(__file__).parent / "book"


def pytest_configure(config):
    os.environ.setdefault("DAMLIB_SCALE", "ci")


def _is_notebook(path: Path) -> bool:
    if path.suffix != ".md" or BOOK not in path.parents:
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("---") and "jupytext:" in head and "kernelspec:" in head


class JupytextNotebook(nbval.plugin.IPyNbFile):
    """nbval's notebook collector, reading the notebook with jupytext."""

    def collect(self):
        notebook = jupytext.read(self.path)
        with mock.patch.object(nbval.plugin.nbformat, "read", return_value=notebook):
            yield from super().collect()


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and _is_notebook(file_path):
        return JupytextNotebook.from_parent(parent, path=file_path)
    return None
