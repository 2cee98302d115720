"""Write the API reference pages, ``book/api/<module>.md``: one per module or package of damlib.

Each page documents its module from the docstrings (Sphinx autodoc, numpydoc style through
napoleon); a package's page holds its submodules too. ``tests/test_api_pages.py`` fails when the
committed pages or the table of contents fall behind the package, so after adding a module run::

    python scripts/api_pages.py

and list any new page under the API reference part of ``_toc.yml``.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import damlib

API = Path(__file__).resolve().parent.parent / "book" / "api"


def modules() -> dict[str, list[str]]:
    """``{top-level module: [it and its submodules]}`` of damlib, in import order."""
    tree: dict[str, list[str]] = {}
    for info in pkgutil.walk_packages(damlib.__path__, "damlib."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue  # __main__ and private modules
        importlib.import_module(info.name)
        tree.setdefault(".".join(info.name.split(".")[:2]), []).append(info.name)
    return tree


def page(top: str, names: list[str]) -> str:
    """The MyST source of one module's page."""
    lines = [f"# `{top}`", ""]
    for name in names:
        if name != top:
            lines += [f"## `{name}`", ""]
        # autodoc emits reStructuredText, so MyST pages run it inside eval-rst
        lines += ["```{eval-rst}", f".. automodule:: {name}", "   :members:", "   :ignore-module-all:",
                  "```", ""]
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    """Every API page's path and text."""
    return {API / f"{top.split('.')[1]}.md": page(top, names) for top, names in modules().items()}


def main() -> None:
    for path, text in pages().items():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        print(path.relative_to(API.parent.parent))


if __name__ == "__main__":
    main()
