"""Execute the chapters that need it side by side, one kernel per CPU core, while Sphinx reads.

myst-nb's ``cache`` mode executes a chapter when Sphinx reads it, one chapter at a time, and most
chapters run their small tensors on one thread: a serial build leaves all cores but one idle. At
``env-before-read-docs`` this extension finds the chapters about to be read whose code is not yet
in the execution cache, and starts them in a pool of ``parallel_execution_jobs`` processes
(default: the number of CPU cores), longest first where an earlier execution of the chapter left
its time in the cache (else in the order Sphinx reads them). Sphinx goes on reading the other pages
(the API reference, the prose); at ``source-read`` of a chapter of the pool it waits for that
chapter. Each result goes to the cache that myst-nb reads, so myst-nb then takes the chapter's
outputs from there (and the status page shows each chapter's time).

The cores are shared out: unless ``OMP_NUM_THREADS`` is set, each kernel's torch starts with
``cores // jobs`` threads (a chapter that sets its own thread count keeps it), so that two chapters
do not each spin two threads on two cores.

Each process keeps one kernel for the chapters it executes, as sphinx-gallery runs its examples
in one interpreter: starting a kernel and importing torch, matplotlib and damlib again took about
3.5 s per chapter. Between two chapters the kernel is put back as a fresh one finds itself
(:data:`RESET`): its namespace, output history and execution count are reset, its figures closed,
and what a chapter may set process-wide (matplotlib's rcParams, torch's thread count, default dtype,
gradient mode and global generator, the warning filters, numpy's print options, the working
directory) is restored to what it was before the first chapter. What is then alive, the modules
imported so far and their state, is frozen out of the garbage collector's passes (``gc.freeze``):
every full collection of a chapter traversed it again, about a second of each chapter. One
client does the reset and then executes the chapter, and it connects without ``wait_for_ready``'s
last step, a wait for IOPub to be quiet for 0.2 s (a client for each took 0.4 s of every chapter;
one takes 0.03 s). Nothing else is shared: damlib keeps no caches. A kernel that dies, or whose
chapter fails, is replaced; ``parallel_execution_reuse_kernels = False`` starts a fresh kernel for
every chapter.

A chapter that fails here is not cached; myst-nb then executes it again as it would without this
extension, and reports the error with its traceback. ``parallel_execution_jobs = 1`` turns the
extension off.
"""

from __future__ import annotations

import fnmatch
import multiprocessing
import multiprocessing.util
import os
import time
import traceback
from pathlib import Path
from queue import Empty

from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData
from jupyter_cache.executors.utils import ExecutionResult
from jupyter_cache.utils import Timer
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
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
    """Pool initialiser: the kernels a worker starts inherit its environment, and the worker's
    kernel is shut down when the worker ends."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    multiprocessing.util.Finalize(None, _shutdown, exitpriority=10)


# Run in the kernel, in globals of its own (the reset empties the user namespace), before every
# chapter: the first time it records the kernel's process-wide state, then it restores it.
RESET = """
import gc, os, sys, types, warnings
import matplotlib, matplotlib.pyplot, numpy, torch
start = sys.modules.get("_chapter_start")
if start is None:
    start = sys.modules["_chapter_start"] = types.ModuleType("_chapter_start")
    # not the two the kernel's matplotlib integration sets when a chapter first draws: restoring
    # "interactive" to its value before that would stop the inline backend showing figures
    start.rc = {k: v for k, v in matplotlib.rcParams.items() if k not in ("backend", "interactive")}
    start.threads, start.dtype = torch.get_num_threads(), torch.get_default_dtype()
    start.rng = torch.random.get_rng_state()
    start.filters, start.printoptions = list(warnings.filters), numpy.get_printoptions()
else:
    matplotlib.pyplot.close("all")
    get_ipython().reset(new_session=True)
    matplotlib.rcParams.update(start.rc)
    torch.set_num_threads(start.threads)
    torch.set_default_dtype(start.dtype)
    torch.set_grad_enabled(True)
    torch.random.set_rng_state(start.rng)
    warnings.resetwarnings()   # also forgets which warnings were shown once
    warnings.filters[:] = start.filters
    numpy.set_printoptions(**start.printoptions)
gc.collect()   # the previous chapter's garbage first: only what is alive is frozen (see above)
gc.freeze()
"""

_kernel: AsyncKernelManager | None = None  # this worker's kernel, kept between chapters


def _shutdown() -> None:
    """Stop this process's kernel (the next chapter starts a fresh one)."""
    global _kernel
    if _kernel is not None and run_sync(_kernel.is_alive)():
        run_sync(_kernel.shutdown_kernel)(now=True)
    _kernel = None


def _kernel_for(name: str, cwd: str) -> AsyncKernelManager:
    """This process's kernel ``name``, started (in ``cwd``) if there is none, or replaced if it died
    or is another kernel."""
    global _kernel
    if _kernel is None or _kernel.kernel_name != name or not run_sync(_kernel.is_alive)():
        _shutdown()
        _kernel = AsyncKernelManager(kernel_name=name)
        run_sync(_kernel.start_kernel)(cwd=cwd)
    return _kernel


async def _connect_and_reset(client, cwd: str, timeout: float = 60) -> None:
    """Wait until the kernel answers ``client`` on both channels, then reset it for a chapter in
    ``cwd`` (:data:`RESET`).

    The wait is the client's ``wait_for_ready`` without its last step, which waits for IOPub to be
    quiet for 0.2 s: nothing is there to flush, since every message of another request is told
    apart by its parent (``execute_interactive`` and the notebook client both skip them)."""
    deadline = time.monotonic() + timeout
    while True:
        client.kernel_info()
        try:
            reply = await client.shell_channel.get_msg(timeout=1)
            if reply["msg_type"] == "kernel_info_reply":
                await client.iopub_channel.get_msg(timeout=0.2)   # IOPub connected: its status
                break
        except Empty:
            pass
        if not await client.is_alive():
            raise RuntimeError("the kernel died before it answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the kernel did not answer in {timeout} s")
    code = RESET + f"os.chdir({cwd!r})\n"
    reply = await client.execute_interactive(f"exec({code!r}, {{}})", silent=True,
                                             store_history=False, timeout=timeout)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"resetting the kernel failed: {reply['content'].get('evalue')}")


class ReusedKernelWorker(ExecutionWorkerLocalMProc):
    """jupyter-cache's worker, executing in this process's kernel (:func:`_kernel_for`), reset
    first (:func:`_connect_and_reset`); the chapter's time excludes the kernel's start and reset.

    :meth:`execute` is jupyter-cache's ``single_nb_execution`` (the notebook's own limits, the timer,
    the cell errors) with the kernel passed in; it is written out because a client given a kernel it
    does not own leaves its channels, heartbeat thread included, open after the notebook, and
    ``single_nb_execution`` gives no handle on its client to close them. The notebook client is
    given the client that reset the kernel, so that each chapter connects once."""

    def execute(self, project_nb, data):
        nb, cwd = project_nb.nb, str(Path(project_nb.uri).parent)
        meta = nb.metadata.get("execution", {})               # a chapter's own limits, as jupyter-cache
        kernel = _kernel_for(nb.metadata.get("kernelspec", {}).get("name", "python3"), cwd)
        kc = kernel.client()
        kc.allow_stdin = False                                # as the notebook client sets its own
        kc.start_channels()
        error = exc_string = None
        timer, failed = Timer(), True
        try:
            run_sync(_connect_and_reset)(kc, cwd)
            client = NotebookClient(nb, km=kernel, resources={"metadata": {"path": cwd}},
                                    timeout=meta.get("timeout", data.timeout),
                                    allow_errors=meta.get("allow_errors", data.allow_errors),
                                    record_timing=False)   # cell timings would change the cache's key
            client.kc = kc                                    # it then starts no client of its own
            with timer:
                client.execute()
            failed = False
        except (CellExecutionError, CellTimeoutError) as err:
            error, exc_string = err, traceback.format_exc()
        finally:
            kc.stop_channels()
            if failed:
                _shutdown()   # a failed chapter may leave its kernel busy or broken: not reused
        return ExecutionResult(nb, cwd, timer.last_split, error, exc_string)


def _execute(app, env, docnames) -> None:
    """Start the chapters that need it in a pool of processes, and return: Sphinx reads the other
    pages meanwhile, and waits for a chapter only when it comes to read it (:func:`_wait_for`)."""
    jobs = app.config.parallel_execution_jobs or os.cpu_count() or 1
    if env.mystnb_config.execution_mode != "cache" or jobs <= 1:
        return
    cache, pending = _pending(app, env, docnames)
    if len(pending) < 2:                                    # nothing to run side by side
        return
    config = env.mystnb_config
    jobs = min(jobs, len(pending))
    logger.info(f"executing {len(pending)} chapters in {jobs} processes while Sphinx reads the other pages")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = multiprocessing.Pool(jobs, initializer=_share_cores, initargs=(threads,))
    worker = ReusedKernelWorker() if app.config.parallel_execution_reuse_kernels else ExecutionWorkerLocalMProc()
    app._chapters_running = {
        env.path2doc(record.uri): pool.apply_async(worker, (ProcessData(
            record.pk, record.uri, cache, config.execution_timeout, config.execution_allow_errors),))
        for record, _ in pending}
    app._chapter_pool = pool
    pool.close()                                            # no more work; joined by _finish


def _wait_for(app, docname, source) -> None:
    """At ``source-read``: if ``docname`` is a chapter of the pool, wait until it is executed."""
    result = getattr(app, "_chapters_running", {}).pop(docname, None)
    if result is None:
        return
    status, uri = result.get()
    name = os.path.relpath(uri, app.srcdir)
    if status == 0:
        logger.info(f"executed {name}")
    else:
        logger.info(f"{name} failed in the pool, not cached: myst-nb executes it again as Sphinx reads it")
    if not app._chapters_running:
        _finish(app)


def _finish(app, *_) -> None:
    """Join the pool (at the last chapter, or at ``build-finished``, stopping what is left)."""
    pool = getattr(app, "_chapter_pool", None)
    if pool is None:
        return
    if getattr(app, "_chapters_running", None):             # the build stopped before reading them
        pool.terminate()
    pool.join()
    app._chapter_pool = None


def setup(app):
    app.add_config_value("parallel_execution_jobs", 0, "env", [int])
    app.add_config_value("parallel_execution_reuse_kernels", True, "env", [bool])
    # after myst-nb has resolved its configuration (builder-inited)
    app.connect("env-before-read-docs", _execute)
    app.connect("source-read", _wait_for)
    app.connect("build-finished", _finish)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
