"""book/_ext/parallel_write.py: Sphinx writes the pages in several processes, and the same pages."""

import sys
from pathlib import Path

from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parent.parent
EXT = str(ROOT / "book" / "_ext")


def build(tmp_path: Path, name: str, jobs: int):
    src = tmp_path / "src"
    if not src.exists():
        src.mkdir()
        (src / "conf.py").write_text(f"import sys\nsys.path.insert(0, {EXT!r})\nextensions = ['parallel_write']\n")
        pages = [f"page{i}" for i in range(6)]
        (src / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   " + "\n   ".join(pages) + "\n")
        for i, page in enumerate(pages):
            (src / f"{page}.rst").write_text(f"Page {i}\n======\n\nText {i}, see :doc:`page{(i + 1) % 6}`.\n")
    out = tmp_path / name
    app = Sphinx(str(src), str(src), str(out), str(out / ".doctrees"), "html", status=None, warning=None,
                 freshenv=True, confoverrides={"parallel_write_jobs": jobs})
    app.build()
    return app, {p.relative_to(out): p.read_bytes() for p in out.glob("*.html")}


def test_pages_are_written_in_parallel_and_the_same(tmp_path):
    sys.modules.pop("parallel_write", None)
    parallel, pages = build(tmp_path, "parallel", 2)
    serial, serial_pages = build(tmp_path, "serial", 1)
    assert parallel.builder.parallel_ok and parallel.parallel == 3
    # control: one job leaves Sphinx's serial writer
    assert not serial.builder.parallel_ok and serial.parallel <= 1
    assert {"index.html", *(f"page{i}.html" for i in range(6))} <= {str(p) for p in pages}
    assert pages == serial_pages
