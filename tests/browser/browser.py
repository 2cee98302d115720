"""Headless Chromium on a book served from localhost, with every other host unreachable.

The browser resolves no name but ``localhost`` (``--host-resolver-rules``), and its network log
lists every request, so a test can assert that a page asked for nothing beyond the machine.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("DAMLIB_BOOK_HTML", ROOT / "_build" / "html"))
LOCAL = {"localhost", "127.0.0.1"}

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--window-size=1280,1600",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def chromium() -> tuple[str, str] | None:
    """Paths of Chromium and its driver, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


class Server:
    """A static HTTP server for ``folder`` on a free localhost port, in a background thread."""

    def __init__(self, folder: Path):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://localhost:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # the browser drops a connection when it leaves a page mid-transfer: not an error of the book
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports failures, not every request
        pass


def start_browser(user_data: Path):
    """A Selenium driver of headless Chromium that records its network requests."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def open_page(browser, page: str) -> None:
    """Load ``<page>.html`` of the served book and wait until its document has loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    local_requests(browser)  # forget the previous page's requests
    browser.get(browser.book_url + page + ".html")
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.readyState") == "complete")


def local_requests(browser, *, outside: bool = False) -> list[str]:
    """URLs requested since the last call: all of them, or only those beyond localhost."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    if outside:
        urls = [u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and urlparse(u).hostname not in LOCAL]
    return urls
