"""Fixtures of the browser tests: the built book served on localhost and one Chromium."""

from __future__ import annotations

import pytest

from .browser import HTML, Server, chromium, start_browser


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not (HTML / "index.html").is_file():
        pytest.skip(f"no built book at {HTML}: run `jupyter-book build .` first (.ci/run does)")
    if chromium() is None:
        pytest.skip("no Chromium and chromedriver: `apt-get install chromium chromium-driver` (.ci/run does)")
    server = Server(HTML)
    driver = start_browser(tmp_path_factory.mktemp("chromium"))
    driver.book_url = server.url
    yield driver
    driver.quit()
    server.close()
