"""Execute the chapters that need it side by side, one kernel per CPU core, before Sphinx reads them.

myst-nb's ``cache`` mode executes a chapter when Sphinx reads it, one chapter at a time, and most
chapters run their small tensors on one thread: a serial build leaves all cores but one idle. At
``env-before-read-docs`` this extension finds the chapters about to be read whose code is not yet
in the execution cache, and executes them in a pool of ``parallel_execution_jobs`` processes
(default: the number of CPU cores), longest first where an earlier execution of the chapter left
its time in the cache. Each result goes to the cache that myst-nb reads, so when Sphinx then reads
the chapter, myst-nb takes its outputs from there (and the status page shows each chapter's time).

The cores are shared out: unless ``OMP_NUM_THREADS`` is set, each kernel's torch starts with
``cores // jobs`` threads (a chapter that sets its own thread count keeps it), so that two chapters
do not each spin two threads on two cores.

A chapter that fails here is not cached; myst-nb then executes it again as it would without this
extension, and reports the error with its traceback. ``parallel_execution_jobs = 1`` turns the
extension off.
"""

from __future__ import annotations

import fnmatch
import multiprocessing
import os
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _pending(app, env, docnames):
    """``(cache, [(record, expected seconds)])`` of the chapters to execute."""
    from jupyter_cache import get_cache
    from myst_nb.core.read import create_nb_reader

    config = env.mystnb_config
    cache = get_cache(config.execution_cache_path)
    pending = []
    for docname in sorted(docnames):
        path = Path(env.doc2path(docname))
        if any(fnmatch.fnmatch(str(path), pat) for pat in config.execution_excludepatterns):
            continue
        content = path.read_text(encoding="utf8")
        reader = create_nb_reader(str(path), env.myst_config, config, content)
        if reader is None:                                  # a page of prose
            continue
        notebook = reader.read(content)
        mode = notebook.metadata.get(config.metadata_key, {}).get("execution_mode", "cache")
        if mode != "cache":
            continue
        try:
            cache.match_cache_notebook(notebook)
            continue                                        # already executed with this code
        except KeyError:
            pass
        record = cache.add_nb_to_project(str(path), read_data=reader.read_fmt)
        earlier = [r.data.get("execution_seconds") or 0.0 for r in cache.list_cache_records()
                   if r.uri == str(path)]
        pending.append((record, max(earlier, default=0.0)))
    return cache, sorted(pending, key=lambda item: -item[1])


def _share_cores(threads: int) -> None:
    """Pool initialiser: the kernels a worker starts inherit its environment."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def _execute(app, env, docnames) -> None:
    jobs = app.config.parallel_execution_jobs or os.cpu_count() or 1
    if env.mystnb_config.execution_mode != "cache" or jobs <= 1:
        return
    from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

    cache, pending = _pending(app, env, docnames)
    if len(pending) < 2:                                    # nothing to run side by side
        return
    config = env.mystnb_config
    work = [ProcessData(record.pk, record.uri, cache, config.execution_timeout,
                        config.execution_allow_errors) for record, _ in pending]
    jobs = min(jobs, len(work))
    logger.info(f"executing {len(work)} chapters in {jobs} processes")
    failed = []
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with multiprocessing.Pool(jobs, initializer=_share_cores, initargs=(threads,)) as pool:
        for status, uri in pool.imap_unordered(ExecutionWorkerLocalMProc(), work, chunksize=1):
            name = os.path.relpath(uri, app.srcdir)
            if status == 0:
                logger.info(f"executed {name}")
            else:
                failed.append(name)
    if failed:
        logger.info(f"not cached, to be executed again as Sphinx reads them: {', '.join(failed)}")


def setup(app):
    app.add_config_value("parallel_execution_jobs", 0, "env", [int])
    # after myst-nb has resolved its configuration (builder-inited)
    app.connect("env-before-read-docs", _execute)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
