"""scripts/fetch_offline_assets.py swaps book/_vendor so that a failure never leaves it missing."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fetch_offline_assets.py"
spec = importlib.util.spec_from_file_location("fetch_offline_assets", SCRIPT)
fetch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fetch)


def folder(path, text):
    path.mkdir(parents=True)
    (path / "mathjax.js").write_text(text)
    return path


def test_swap_replaces_the_folder(tmp_path):
    target = folder(tmp_path / "_vendor", "old")
    fetch.swap_folder(folder(tmp_path / "staged", "new"), target)
    assert (target / "mathjax.js").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_vendor"]
    fetch.swap_folder(folder(tmp_path / "staged", "first"), tmp_path / "fresh")
    assert (tmp_path / "fresh" / "mathjax.js").read_text() == "first"


def test_a_failure_between_the_renames_keeps_the_old_folder(tmp_path, monkeypatch):
    target = folder(tmp_path / "_vendor", "old")
    staged = folder(tmp_path / "staged", "new")
    real_rename = Path.rename
    calls = []

    def rename(self, dest):
        calls.append(dest)
        if len(calls) == 2:  # the new folder into place
            raise OSError("interrupted (simulated)")
        return real_rename(self, dest)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        fetch.swap_folder(staged, target)
    assert (target / "mathjax.js").read_text() == "old"
    assert not (tmp_path / "_vendor.old").exists()


def test_a_kill_between_the_renames_is_recovered(tmp_path):
    folder(tmp_path / "_vendor.old", "old")  # what a process killed after the first rename leaves
    target = tmp_path / "_vendor"
    fetch.recover(target)
    assert (target / "mathjax.js").read_text() == "old" and not (tmp_path / "_vendor.old").exists()
