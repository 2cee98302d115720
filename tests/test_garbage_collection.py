"""book/_ext/garbage_collection.py: the build's process makes few full collections."""

import gc
from pathlib import Path

import pytest
from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parent.parent
EXT = str(ROOT / "book" / "_ext")


def build(tmp_path: Path, name: str, **overrides) -> None:
    src = tmp_path / name
    src.mkdir()
    (src / "conf.py").write_text(f"import sys\nsys.path.insert(0, {EXT!r})\nextensions = ['garbage_collection']\n")
    (src / "index.rst").write_text("Index\n=====\n\nText.\n")
    out = src / "_build"
    Sphinx(str(src), str(src), str(out), str(out / ".doctrees"), "html", status=None, warning=None,
           freshenv=True, confoverrides=overrides).build()


@pytest.fixture
def python_default():
    """Python's default thresholds during the test, the process's own after it."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_full_collections_are_rare_in_the_build(tmp_path, python_default):
    build(tmp_path, "default")
    assert gc.get_threshold() == (700, 10, 10_000)
    # control: 0 leaves Python's setting
    gc.set_threshold(700, 10, 10)
    build(tmp_path, "off", garbage_collection_full_every=0)
    assert gc.get_threshold() == (700, 10, 10)
