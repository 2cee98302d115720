"""Which chapters book/_ext/parallel_execution.py executes before Sphinx reads them, in which order,
and in which kernel."""

import sys
from pathlib import Path
from types import SimpleNamespace

import jupytext
import pytest
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.basic import ProcessData
from myst_nb.core.config import NbParserConfig
from myst_nb.core.read import create_nb_reader
from myst_parser.config.main import MdParserConfig
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import parallel_execution  # noqa: E402

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def chapter(folder: Path, name: str, code: str) -> Path:
    path = folder / f"{name}.md"
    path.write_text(HEADER + f"# {name}\n\n```{{code-cell}} ipython3\n{code}\n```\n", encoding="utf8")
    return path


def env_for(folder: Path, **config) -> SimpleNamespace:
    nb_config = NbParserConfig(execution_mode="cache",
                               execution_cache_path=str(folder / ".jupyter_cache"), **config)
    return SimpleNamespace(mystnb_config=nb_config, myst_config=MdParserConfig(),
                           doc2path=lambda docname: folder / f"{docname}.md")


def cache_as_executed(env, path: Path, seconds: float) -> None:
    """Put ``path`` in the cache as if it had been executed in ``seconds``."""
    content = path.read_text(encoding="utf8")
    reader = create_nb_reader(str(path), env.myst_config, env.mystnb_config, content)
    cache = get_cache(env.mystnb_config.execution_cache_path)
    cache.cache_notebook_bundle(CacheBundleIn(reader.read(content), str(path),
                                              data={"execution_seconds": seconds}),
                                check_validity=False, overwrite=True)


def pending_names(env, docnames) -> list[str]:
    _, pending = parallel_execution._pending(None, env, docnames)
    return [Path(record.uri).stem for record, _ in pending]


def test_only_uncached_notebooks_run_longest_known_first(tmp_path):
    env = env_for(tmp_path)
    (tmp_path / "prose.md").write_text("# A page of prose\n\nNo code.\n", encoding="utf8")
    short, long_, done, new = (chapter(tmp_path, n, f"x = {i}")
                               for i, n in enumerate(("short", "long", "done", "new")))
    cache_as_executed(env, done, 5.0)
    # earlier versions of two chapters left their times; then their code changed
    cache_as_executed(env, short, 2.0)
    cache_as_executed(env, long_, 90.0)
    chapter(tmp_path, "short", "x = 'changed'")
    chapter(tmp_path, "long", "x = 'changed too'")
    names = pending_names(env, ["prose", "short", "long", "done", "new"])
    assert names == ["long", "short", "new"]     # done is cached, prose is no notebook
    # control: once a chapter's current code is cached, it is no longer pending
    cache_as_executed(env, tmp_path / "long.md", 1.0)
    assert pending_names(env, ["short", "long"]) == ["short"]


def test_excluded_and_non_cache_chapters_are_left_to_myst_nb(tmp_path):
    a = chapter(tmp_path, "a", "x = 1")
    chapter(tmp_path, "b", "x = 2")
    env = env_for(tmp_path, execution_excludepatterns=[str(a)])
    assert pending_names(env, ["a", "b"]) == ["b"]
    off = tmp_path / "off.md"
    off.write_text(HEADER.replace("kernelspec:", "mystnb:\n  execution_mode: 'off'\nkernelspec:")
                   + "# off\n\n```{code-cell} ipython3\nx = 3\n```\n", encoding="utf8")
    assert pending_names(env_for(tmp_path), ["off", "b"]) == ["b"]


def executed(path: Path, worker) -> tuple:
    """Execute the chapter at ``path`` with ``worker`` as the pool would; returns its result."""
    nb = jupytext.read(path)
    return worker.execute(SimpleNamespace(nb=nb, uri=str(path)), SimpleNamespace(timeout=120, allow_errors=False))


LEAKY = """import os, warnings, matplotlib, torch, numpy as np
import matplotlib.pyplot as plt
plt.plot([1, 2])
print(os.getpid(), torch.rand(1).item())
leaked = 1
matplotlib.rcParams["lines.linewidth"] = 9.0
torch.set_num_threads(3)
torch.set_default_dtype(torch.float64)
warnings.simplefilter("ignore")
np.set_printoptions(precision=2)
os.chdir("/")"""

CLEAN = """import os, warnings, matplotlib, torch, numpy as np
assert "leaked" not in globals(), "a name of the chapter before is still defined"
assert matplotlib.rcParams["lines.linewidth"] != 9.0
assert torch.get_num_threads() != 3 and torch.get_default_dtype() == torch.float32
assert ("ignore", None, Warning, None, 0) not in warnings.filters
assert np.get_printoptions()["precision"] == 8
assert os.getcwd() == {cwd!r}
import gc
assert gc.get_freeze_count() > 0, "the modules are not frozen out of the collections"
import matplotlib.pyplot as plt
plt.plot([1, 2])
print(os.getpid(), torch.rand(1).item())"""


def test_a_reused_kernel_is_reset_between_chapters(tmp_path):
    worker = parallel_execution.ReusedKernelWorker()
    try:
        first = executed(chapter(tmp_path, "first", LEAKY), worker)
        second = executed(chapter(tmp_path, "second", CLEAN.format(cwd=str(tmp_path))), worker)
        assert first.err is None and second.err is None, second.exc_string
        out = [r.nb.cells[-1].outputs[0]["text"].split() for r in (first, second)]
        # both show their figure (the inline backend still draws after a reset)
        assert all("image/png" in r.nb.cells[-1].outputs[-1].get("data", {}) for r in (first, second))
        assert out[0][0] == out[1][0]      # one kernel process for both
        assert out[0][1] == out[1][1]      # torch's global generator as a fresh kernel has it
        assert second.nb.cells[-1].execution_count == 1
        # control: the same chapter in the same kernel, without the reset, sees the leaks
        executed(chapter(tmp_path, "again", LEAKY), worker)
        nb = jupytext.read(chapter(tmp_path, "unreset", CLEAN.format(cwd=str(tmp_path))))
        client = NotebookClient(nb, km=parallel_execution._kernel, timeout=120)
        with pytest.raises(CellExecutionError, match="still defined"):
            client.execute()
        client.kc.stop_channels()
        # a chapter that fails takes its kernel with it: the next one gets a fresh kernel
        failing = executed(chapter(tmp_path, "failing", "raise RuntimeError('broken')"), worker)
        assert failing.err is not None and parallel_execution._kernel is None
        after = executed(chapter(tmp_path, "after", "import os\nprint(os.getpid())"), worker)
        assert after.err is None and after.nb.cells[-1].outputs[0]["text"].split()[0] != out[0][0]
    finally:
        parallel_execution._shutdown()


def test_each_chapter_connects_once_without_waiting_for_quiet(tmp_path, monkeypatch):
    """The client that resets the kernel executes the chapter: no client of its own for the notebook,
    and no ``wait_for_ready``, whose last step waits 0.2 s for IOPub to be quiet (twice a chapter
    before); the first output of a chapter still arrives."""
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.blocking.client import BlockingKernelClient

    waits = []

    def counted(wait_for_ready):
        def wrapper(self, *args, **kwargs):
            waits.append(self)
            return wait_for_ready(self, *args, **kwargs)
        return wrapper

    for cls in (AsyncKernelClient, BlockingKernelClient):
        monkeypatch.setattr(cls, "wait_for_ready", counted(cls.wait_for_ready))
    worker = parallel_execution.ReusedKernelWorker()
    try:
        for name in ("one", "two"):
            result = executed(chapter(tmp_path, name, f"print({name!r})"), worker)
            assert result.err is None and result.nb.cells[-1].outputs[0]["text"] == f"{name}\n"
    finally:
        parallel_execution._shutdown()
    assert waits == []


def test_a_chapter_executed_in_the_pool_is_found_in_the_cache(tmp_path):
    """myst-nb looks the chapter up by its code: the worker must store it under that key."""
    env = env_for(tmp_path)
    path = chapter(tmp_path, "one", "x = 1\nprint(x)")
    cache, pending = parallel_execution._pending(None, env, ["one"])
    (record, _), = pending
    try:
        status, _ = parallel_execution.ReusedKernelWorker()(ProcessData(record.pk, record.uri, cache, 120, False))
    finally:
        parallel_execution._shutdown()
    assert status == 0
    content = path.read_text(encoding="utf8")
    nb = create_nb_reader(str(path), env.myst_config, env.mystnb_config, content).read(content)
    cache.match_cache_notebook(nb)  # raises KeyError when the stored notebook has another key
    assert pending_names(env, ["one"]) == []
