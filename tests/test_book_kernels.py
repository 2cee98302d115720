"""The book's kernels run over encrypted transport and do not warn about plain TCP
(book/_ext/encrypted_kernels.py, scripts/glue_values.py)."""

import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_cache.executors.utils import single_nb_execution
from jupyter_client.manager import KernelManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "book" / "_ext"))
import encrypted_kernels  # noqa: E402

WARNING = "Kernel is running over TCP without encryption"


def run_like_the_build(tmp_path):
    """One notebook executed as the build executes chapters (jupyter-cache, then nbclient)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1 + 1 == 2")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    result = single_nb_execution(nb, cwd=str(tmp_path), timeout=120, allow_errors=False)
    assert result.err is None


@pytest.mark.parametrize("encrypted", [False, True])
def test_build_kernels_do_not_warn_about_plain_tcp(tmp_path, capfd, monkeypatch, encrypted):
    monkeypatch.setattr(KernelManager.transport_encryption, "default_value", "disabled")
    if encrypted:
        assert encrypted_kernels.encrypt_kernels()
    run_like_the_build(tmp_path)
    logged = capfd.readouterr().err
    assert (WARNING in logged) is not encrypted  # the control (plain TCP) does warn
