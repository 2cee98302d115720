"""Fetch MathJax and the ipywidgets renderer into book/_vendor/, so the book reads offline.

By default the rendered pages load MathJax and the widget renderer from public CDNs. After this
script has run, the next build serves them from the book itself (book/_ext/offline_assets.py
notices the folder). Needs `npm` (it uses `npm pack`, so the configured registry is used).

    python scripts/fetch_offline_assets.py        # then: jupyter-book build . --all

The folder is assembled in a temporary directory and renamed into place, so an interrupted run
leaves either the old folder or the new one, never half of one.
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


def main() -> int:
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
        old = tmp / "old"
        if VENDOR.exists():
            VENDOR.rename(old)
        staged.rename(VENDOR)
    print(f"offline assets in {VENDOR}; rebuild the book with `jupyter-book build . --all`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
