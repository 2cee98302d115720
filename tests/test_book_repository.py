"""The book's repository button comes from one setting, empty by default (book/_ext/repository.py)."""

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "book" / "_ext"
sys.path.insert(0, str(EXT))
import repository  # noqa: E402

BUTTON = "source-repository-button"


def build_page(tmp_path, url):
    """A one-page Sphinx build with the book's theme and the extension; its HTML."""
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    src.mkdir(parents=True)
    (src / "index.rst").write_text("A page\n======\n\nText.\n")
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(EXT)!r})\n"
        "extensions = ['repository']\nhtml_theme = 'sphinx_book_theme'\n"
        f"html_theme_options = {{'repository_url': {url!r}, 'use_download_button': True}}\n")
    assert build_main(["-q", "-b", "html", str(src), str(tmp_path / "out")]) == 0
    return (tmp_path / "out" / "index.html").read_text()


def book_theme_options():
    """The theme options of the book as configured in _config.yml (what the build hands Sphinx)."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["html_theme_options"]


def test_the_book_has_no_repository_by_default():
    options = repository.repository_options(book_theme_options())
    assert options["repository_url"] == "" and options["use_repository_button"] is False
    assert "github.com/damlib" not in (ROOT / "_config.yml").read_text()


def test_button_exactly_when_a_url_is_set(tmp_path):
    assert BUTTON not in build_page(tmp_path / "empty", "")
    page = build_page(tmp_path / "set", "https://github.com/owner/repo")
    assert BUTTON in page and "https://github.com/owner/repo" in page


def test_a_malformed_url_is_refused():
    from sphinx.errors import ConfigError

    with pytest.raises(ConfigError, match="repository_url"):
        repository.repository_options({"repository_url": "github.com/x"})
