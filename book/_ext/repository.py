"""The book's repository button, from one setting.

``repository_url`` in ``html_theme_options`` (``_config.yml``, under ``sphinx: config:``) is the
public URL of the book's repository. Empty, the default, means the book has no public repository:
no repository button, and no link to a place that does not exist. Set to a real URL
(``https://github.com/OWNER/REPO``), the header shows the button.
"""

from __future__ import annotations

import re

from sphinx.errors import ConfigError

URL = re.compile(r"https?://[^/\s]+/[^/\s]+/[^/\s]+/?")


def repository_options(options: dict) -> dict:
    """The theme options with the repository button on exactly when ``repository_url`` is set."""
    options = dict(options)
    url = str(options.get("repository_url") or "").strip()
    if url and not URL.fullmatch(url):
        raise ConfigError(
            f"html_theme_options.repository_url must be empty or https://HOST/OWNER/REPO, got {url!r}")
    options["repository_url"] = url
    options["use_repository_button"] = bool(url)
    return options


def _configure(app, config) -> None:
    config.html_theme_options = repository_options(config.html_theme_options)


def setup(app):
    app.connect("config-inited", _configure)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
