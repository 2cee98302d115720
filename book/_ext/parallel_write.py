"""Write the HTML pages in several processes once every page is read.

jupyter-book 1.x builds with Sphinx's serial writer (its command line has no ``-j``), so after the
chapters are executed and read, the pages are written one at a time on one core (a third of it the
theme's navigation of each page), while the other core has nothing left to do.
At ``env-updated`` (after reading, before Sphinx decides how to write) this extension asks for
``parallel_write_jobs`` writer processes (default: the number of CPU cores). Reading stays serial:
chapters are executed by ``parallel_execution``, and Sphinx's parallel reader would fork the
process that waits for them. Sphinx still checks that every extension is safe for parallel
writing and writes serially, with a warning, when one is not. The pages are the same either way
(``tests/test_parallel_write.py``).
"""

from __future__ import annotations

import os


def _ask_for_writers(app, env) -> list[str]:
    jobs = app.config.parallel_write_jobs or os.cpu_count() or 1
    if app.parallel <= 1 and jobs > 1:
        # Sphinx forks parallel - 1 writers; the main process resolves the doctrees they write
        app.parallel = jobs + 1
    return []                                   # no page to read again


def setup(app):
    app.add_config_value("parallel_write_jobs", 0, "env", [int])
    app.connect("env-updated", _ask_for_writers)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
