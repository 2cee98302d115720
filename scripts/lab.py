"""Open the book's chapters in JupyterLab, each ``.md`` chapter as a notebook on a double click.

Writes JupyterLab's settings override (the document manager's default viewer for Markdown and
MyST files is Jupytext's notebook; no news fetched) into the JupyterLab of this environment, then starts
JupyterLab at the repository's top level. Arguments after the script's own go to JupyterLab::

    python scripts/lab.py                       # the book at the default (book) scale
    DAMLIB_SCALE=ci python scripts/lab.py       # every chapter in seconds
    python scripts/lab.py --no-browser --port 8899

A scale can also be chosen inside a notebook, before its first ``import damlib``:
``%env DAMLIB_SCALE=paper``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Chapters open as notebooks; no news is fetched (the book reads offline).
OVERRIDES = {
    "@jupyterlab/docmanager-extension:plugin": {
        "defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
}


def overrides_file() -> Path:
    """JupyterLab's ``overrides.json`` of this environment (its application settings)."""
    from jupyterlab.commands import get_app_dir

    return Path(get_app_dir()) / "settings" / "overrides.json"


def write_overrides(path: Path | None = None) -> Path:
    """Merge :data:`OVERRIDES` into ``overrides.json``, atomically, keeping other settings."""
    path = path or overrides_file()
    settings = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for plugin, values in OVERRIDES.items():
        settings.setdefault(plugin, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False,
                                     encoding="utf-8") as tmp:
        json.dump(settings, tmp, indent=2)
    os.replace(tmp.name, path)
    return path


def main(argv: list[str]) -> None:
    write_overrides()
    os.chdir(ROOT)
    os.execvp(sys.executable, [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
