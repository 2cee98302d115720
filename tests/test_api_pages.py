"""The API reference keeps up with the package: a page per module, each in the table of contents,
and a docstring on every public function and class."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import api_pages  # noqa: E402


def test_pages_match_the_package():
    stale = [p.name for p, text in api_pages.pages().items()
             if not p.is_file() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"API pages behind the package: {stale}; run `python scripts/api_pages.py`"


def test_every_page_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    listed = {c["file"] for part in toc["parts"] for c in part["chapters"]}
    missing = [p.stem for p in api_pages.pages() if f"book/api/{p.stem}" not in listed]
    assert not missing, f"API pages missing from _toc.yml: {missing}"


def test_every_public_object_has_a_docstring():
    undocumented = []
    for names in api_pages.modules().values():
        for name in names:
            module = importlib.import_module(name)
            for attr, obj in vars(module).items():
                if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                    continue
                if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
                    undocumented.append(f"{name}.{attr}")
    assert not undocumented, f"public objects without a docstring: {undocumented}"
