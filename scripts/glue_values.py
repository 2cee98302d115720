"""Print every glued value of the book's chapters, one ``<part>/<chapter>:<name><TAB>value`` line each.

From a build, it reads the executed notebooks that ``jupyter-book build`` leaves in
``_build/jupyter_execute``; given chapters (``.md`` files), it executes them itself, each in its own
folder, at the scale ``DAMLIB_SCALE`` names. Two runs compare with ``diff``: a refactor that
changes no number leaves no line different::

    python scripts/glue_values.py --build _build > before.tsv
    DAMLIB_SCALE=ci python scripts/glue_values.py book/hpt/*.md > after.tsv
    diff before.tsv after.tsv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def notebook_glue(cells) -> dict[str, str]:
    """``{name: text/plain value}`` of every glue output in a notebook's cells."""
    values = {}
    for cell in cells:
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("scrapbook", {})
            name = record.get("name")
            if name is not None:
                # glue(..., display=False) stores its value under a prefixed mime type
                mime = record.get("mime_prefix", "") + "text/plain"
                text = out.get("data", {}).get(mime, "")
                values[name] = "".join(text).replace("\n", " ")
    return values


def chapter_name(chapter: Path) -> str:
    """``book/<part>/<chapter>`` of a chapter file, from whichever checkout it lies in."""
    parts = chapter.resolve().with_suffix("").parts
    if "book" not in parts:
        raise ValueError(f"chapter must lie in a book/ folder, got {chapter}")
    start = len(parts) - 1 - parts[::-1].index("book")
    return "/".join(parts[start:])


def built(build: Path) -> dict[str, str]:
    """Glue values of every chapter executed by a book build in ``build``.

    The book executes through jupyter-cache (``execute_notebooks: cache``), so the executed
    notebooks are read from ``build/.jupyter_cache``; a build without a cache (``execute_notebooks:
    force``) leaves them in ``build/jupyter_execute`` instead.
    """
    values = {}
    cache_root = build / ".jupyter_cache"
    if cache_root.is_dir():
        from jupyter_cache import get_cache

        cache = get_cache(cache_root)
        for record in cache.list_cache_records():
            cells = cache.get_cache_bundle(record.pk).nb.cells
            chapter = chapter_name(Path(record.uri))
            values.update({f"{chapter}:{k}": v for k, v in notebook_glue(cells).items()})
        return dict(sorted(values.items()))
    root = build / "jupyter_execute"
    for nb in sorted(root.rglob("*.ipynb")):
        chapter = nb.relative_to(root).with_suffix("").as_posix()
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        values.update({f"{chapter}:{k}": v for k, v in notebook_glue(cells).items()})
    return values


def executed(chapter: Path, timeout: int = 3600) -> dict[str, str]:
    """Execute one Jupytext chapter in its folder and return its glue values."""
    import jupytext
    import nbclient

    notebook = jupytext.read(chapter)
    # transport_encryption: the kernel runs over CurveZMQ, so it does not warn about plain TCP
    nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(chapter.parent)}}
                            ).execute(transport_encryption="auto")
    name = chapter_name(chapter)
    return {f"{name}:{k}": v for k, v in notebook_glue(notebook.cells).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", type=Path, nargs="*", help="chapters to execute")
    parser.add_argument("--build", type=Path, help="read a finished build instead (e.g. _build)")
    args = parser.parse_args()
    if args.build is not None:
        values = built(args.build)
    else:
        values = {}
        for chapter in args.chapters:
            values.update(executed(chapter))
    for key, value in values.items():
        print(f"{key}\t{value}", flush=True)


if __name__ == "__main__":
    main()
