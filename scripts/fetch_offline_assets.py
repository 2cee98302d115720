"""Fetch MathJax and the ipywidgets renderer into book/_vendor/, so the book reads offline.

By default the rendered pages load MathJax and the widget renderer from public CDNs. After this
script has run, the next build serves them from the book itself (book/_ext/offline_assets.py
notices the folder). Needs `npm` (it uses `npm pack`, so the configured registry is used).

    python scripts/fetch_offline_assets.py        # then: jupyter-book build . --all

The folder is assembled in a temporary directory and swapped into place (:func:`swap_folder`), so
a failed or interrupted run leaves the old folder or the new one, never half of one and never none.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "book" / "_vendor"

# package -> (files or folders inside the package to keep, destination inside _vendor)
PACKAGES = {
    "mathjax@3.2.2": ("es5", "mathjax"),
    "requirejs@2.3.8": ("require.js", "require.js"),
    "@jupyter-widgets/html-manager@1.0.15": ("dist", "html-manager"),
}
SKIP_SUFFIXES = (".map",)


def _pack(spec: str, workdir: Path) -> Path:
    """Download the npm tarball of ``spec`` into ``workdir`` and return its path."""
    out = subprocess.run(["npm", "pack", spec, "--silent"], cwd=workdir, check=True,
                         capture_output=True, text=True)
    return workdir / out.stdout.strip().splitlines()[-1]


def _aside(target: Path) -> Path:
    return target.with_name(target.name + ".old")


def recover(target: Path) -> None:
    """Put back a folder that a killed :func:`swap_folder` left aside (``<target>.old``)."""
    old = _aside(target)
    if old.is_dir() and not target.exists():
        old.rename(target)


def swap_folder(new: Path, target: Path) -> None:
    """Move the folder ``new`` to ``target``, replacing the folder there.

    Two renames on one file system: the old folder aside to ``<target>.old``, the new one into
    place. A failure of the second puts the old folder back before the error propagates; a process
    killed between them leaves it at ``<target>.old``, which :func:`recover` (run first by this
    function and by :func:`main`) puts back. The old folder is removed only once the new one is in place.
    """
    recover(target)
    old = _aside(target)
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        if old.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def main() -> int:
    recover(VENDOR)
    if shutil.which("npm") is None:
        print("npm is needed to fetch the offline assets", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(dir=VENDOR.parent) as tmp:
        tmp = Path(tmp)
        staged = tmp / "_vendor"
        staged.mkdir()
        for spec, (inside, dest) in PACKAGES.items():
            print(f"fetching {spec}")
            with tarfile.open(_pack(spec, tmp)) as tar:
                tar.extractall(tmp / "x", filter="data")
            source = tmp / "x" / "package" / inside
            if source.is_dir():
                shutil.copytree(source, staged / dest,
                                ignore=lambda _d, names: [n for n in names if n.endswith(SKIP_SUFFIXES)])
            else:
                shutil.copy2(source, staged / dest)
            shutil.rmtree(tmp / "x")
        (staged / "VERSIONS.txt").write_text("\n".join(PACKAGES) + "\n")
        swap_folder(staged, VENDOR)
    print(f"offline assets in {VENDOR}; rebuild the book with `jupyter-book build . --all`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
