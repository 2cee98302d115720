"""scripts/glue_values.py reads every glued value, displayed or not, under a checkout-independent name."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "glue_values.py"
spec = importlib.util.spec_from_file_location("glue_values", SCRIPT)
glue_values = importlib.util.module_from_spec(spec)
spec.loader.exec_module(glue_values)


def test_hidden_and_shown_glues_are_read():
    cells = [{"outputs": [
        {"metadata": {"scrapbook": {"name": "hidden", "mime_prefix": "application/papermill.record/"}},
         "data": {"application/papermill.record/text/plain": "1.2345"}},
        {"metadata": {"scrapbook": {"name": "shown", "mime_prefix": ""}}, "data": {"text/plain": ["'a\n", "b'"]}},
        {"metadata": {}, "data": {"text/plain": "not a glue"}},
    ]}]
    assert glue_values.notebook_glue(cells) == {"hidden": "1.2345", "shown": "'a b'"}


def test_chapter_name_is_the_same_in_every_checkout(tmp_path):
    assert glue_values.chapter_name(tmp_path / "copy" / "book" / "gd" / "particles.md") == "book/gd/particles"
    with pytest.raises(ValueError, match="chapter"):
        glue_values.chapter_name(tmp_path / "particles.md")


def test_a_build_is_read_from_its_execution_cache(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cell = nbformat.v4.new_code_cell("glue('v', 1.5)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "1.5"},
                                           metadata={"scrapbook": {"name": "v", "mime_prefix": ""}})]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    cache = get_cache(tmp_path / "_build" / ".jupyter_cache")
    cache.cache_notebook_bundle(CacheBundleIn(notebook, uri=str(tmp_path / "book" / "gd" / "x.md")),
                                check_validity=False)
    assert glue_values.built(tmp_path / "_build") == {"book/gd/x:v": "1.5"}
