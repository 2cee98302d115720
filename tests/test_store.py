"""The results store (damlib.store) and its experiments registry and command line."""

import datetime
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import damlib
from damlib import experiments, store
from damlib.experiments.__main__ import main

REPOSITORY_RESULTS = Path(damlib.__file__).resolve().parent.parent / "results"

SIZES = {"small": 3, "large": 5}


def toy_params(shard):
    return {"n": SIZES[shard], "steps": 20, "lr": 0.1, "seed": 0, "widths": (1, 2)}


def toy_run(params):
    """Gradient descent on a random positive-definite quadratic: the loss curve and the final point."""
    gen = torch.Generator().manual_seed(params["seed"])
    a = torch.randn(params["n"], params["n"], generator=gen, dtype=torch.float64)
    hessian = a @ a.T / params["n"] + torch.eye(params["n"], dtype=torch.float64)
    x = torch.randn(params["n"], generator=gen, dtype=torch.float64)
    losses = []
    for _ in range(params["steps"]):
        losses.append(0.5 * x @ hessian @ x)
        x = x - params["lr"] * hessian @ x
    return {"loss": torch.stack(losses), "x": x}


@pytest.fixture
def toy():
    calls = []

    def run(params):
        calls.append(params)
        return toy_run(params)

    experiments.register(experiments.Experiment(
        "toy", ("small", "large"), toy_params, run, description="a quadratic, for the tests"))
    yield calls  # the parameters of every run, in order
    experiments.REGISTRY.remove("toy")


def write_toy(root, shard="small", params=None, arrays=None, seconds=1.5):
    params = toy_params(shard) if params is None else params
    return store.write("toy", shard, params, toy_run(params) if arrays is None else arrays,
                       seconds=seconds, root=root)


def leftovers(root):
    return sorted(p.name for p in Path(root).rglob("*") if p.name.endswith(".tmp"))


def test_round_trip(tmp_path):
    npz = write_toy(tmp_path)
    assert npz == tmp_path / "toy" / "small.npz" and npz.with_suffix(".json").exists()
    shard = store.read("toy", "small", toy_params("small"), root=tmp_path)
    expected = toy_run(toy_params("small"))
    assert sorted(shard.arrays) == ["loss", "x"]
    for name, value in expected.items():
        np.testing.assert_array_equal(shard.arrays[name], value.numpy())
    meta = shard.meta
    assert (meta["experiment"], meta["shard"]) == ("toy", "small")
    assert meta["params"] == {"n": 3, "steps": 20, "lr": 0.1, "seed": 0, "widths": [1, 2]}
    assert meta["damlib"] == damlib.__version__ and meta["torch"] == torch.__version__
    assert "commit" in meta and meta["device"] == str(damlib.device())
    assert meta["threads"] == torch.get_num_threads() and meta["seconds"] == 1.5
    assert datetime.datetime.fromisoformat(meta["date"]).tzinfo is not None
    assert meta["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert meta["arrays"]["loss"] == {"shape": [20], "dtype": "float64"}
    assert shard.command.startswith(f"DAMLIB_RESULTS={tmp_path.resolve()} python -m damlib.experiments run toy small")
    assert leftovers(tmp_path) == []


def test_stored_files_take_the_umask_not_the_temporary_file_mode(tmp_path):
    """The files are written to private temporary files (0600) and renamed: they must still end
    with the mode a plain ``open()`` would give them."""
    umask = os.umask(0o022)
    try:
        npz = write_toy(tmp_path)
    finally:
        os.umask(umask)
    for path in (npz, npz.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_identical_arrays_give_identical_files(tmp_path):
    first = write_toy(tmp_path).read_bytes()
    assert write_toy(tmp_path, seconds=9.0).read_bytes() == first


def test_absent_shard_reads_as_none(tmp_path):
    assert store.read("toy", "small", toy_params("small"), root=tmp_path) is None
    # arrays without metadata are a write that never finished: not present
    write_toy(tmp_path)
    (tmp_path / "toy" / "small.json").unlink()
    assert store.read("toy", "small", toy_params("small"), root=tmp_path) is None
    assert "python -m damlib.experiments run toy small" in store.absent("toy", "small")


def test_parameters_compare_after_a_json_round_trip(tmp_path):
    write_toy(tmp_path)
    same = dict(toy_params("small"), n=np.int64(3), steps=20.0, widths=[1.0, 2], lr=np.float64(0.1))
    assert store.read("toy", "small", same, root=tmp_path) is not None


def test_stale_parameters_refused_with_the_command(tmp_path):
    write_toy(tmp_path)
    changed = dict(toy_params("small"), steps=30, extra="new")
    del changed["seed"]
    with pytest.raises(store.StaleShard) as caught:
        store.read("toy", "small", changed, root=tmp_path)
    error = caught.value
    assert set(error.differences) == {"steps", "extra", "seed"}
    assert error.differences["steps"] == (20, 30)
    message = str(error)
    assert "steps: stored 20, now 30" in message and "seed: stored 0, now null" in message
    assert error.command in message and "python -m damlib.experiments run toy small" in error.command
    assert isinstance(error, ValueError)


def test_failed_write_leaves_previous_shard_intact(tmp_path, monkeypatch):
    write_toy(tmp_path)
    before = store.read("toy", "small", toy_params("small"), root=tmp_path).arrays
    real_replace = os.replace
    for failing in (1, 2):  # the arrays' rename, then the metadata's rename
        calls = []

        def replace(src, dst, failing=failing, calls=calls):
            calls.append(dst)
            if len(calls) == failing:
                raise OSError("disk full (simulated)")
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(OSError, match="simulated"):
            write_toy(tmp_path, params=dict(toy_params("small"), lr=0.2))
        monkeypatch.setattr(os, "replace", real_replace)
        after = store.read("toy", "small", toy_params("small"), root=tmp_path)
        for name in before:
            np.testing.assert_array_equal(after.arrays[name], before[name])
        assert leftovers(tmp_path) == []


def test_failed_first_write_leaves_nothing_readable(tmp_path, monkeypatch):
    real = np.lib.format.write_array
    written = []

    def write_array(*args, **kwargs):
        if written:
            raise OSError("killed mid-write (simulated)")
        written.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    with pytest.raises(OSError, match="simulated"):
        write_toy(tmp_path)
    monkeypatch.setattr(np.lib.format, "write_array", real)

    real_replace = os.replace
    renames = []

    def replace(src, dst):
        renames.append(dst)
        if len(renames) == 2:
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        write_toy(tmp_path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.read("toy", "small", toy_params("small"), root=tmp_path) is None
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []


def test_a_process_killed_between_the_renames_reads_as_corrupt(tmp_path):
    """Only a kill between the two renames can leave new arrays under old metadata: they read as
    corrupt (and the command recomputes them), never as the old run."""
    write_toy(tmp_path)
    old_meta = (tmp_path / "toy" / "small.json").read_text()
    write_toy(tmp_path, params=dict(toy_params("small"), lr=0.2))
    (tmp_path / "toy" / "small.json").write_text(old_meta)
    with pytest.raises(store.CorruptShard, match="python -m damlib.experiments run toy small"):
        store.read("toy", "small", toy_params("small"), root=tmp_path)


def test_tampered_value_is_corrupt(tmp_path):
    npz = write_toy(tmp_path)
    with np.load(npz) as archive:
        arrays = {name: archive[name].copy() for name in archive.files}
    arrays["loss"][3] *= 1.01
    np.savez(npz, **arrays)
    with pytest.raises(store.CorruptShard, match="do not match their checksum") as caught:
        store.read("toy", "small", toy_params("small"), root=tmp_path)
    assert "run toy small" in caught.value.command
    npz.unlink()
    with pytest.raises(store.CorruptShard, match="missing"):
        store.read("toy", "small", toy_params("small"), root=tmp_path)


def test_verify_passes_within_and_fails_beyond_tolerance(tmp_path):
    write_toy(tmp_path)
    shard = store.read("toy", "small", toy_params("small"), root=tmp_path)
    recomputed = toy_run(toy_params("small"))
    assert store.verify(shard, recomputed, rtol=0, atol=0) == {"loss": 0.0, "x": 0.0}

    nudged = dict(recomputed, x=recomputed["x"] + 1e-9)
    deviation = store.verify(shard, nudged, rtol=0, atol=1e-8)["x"]
    assert 0.5e-9 < deviation < 2e-9

    off = dict(recomputed, loss=recomputed["loss"].clone())
    off["loss"][5] += 1e-3
    with pytest.raises(store.VerificationError) as caught:
        store.verify(shard, off, rtol=1e-6, atol=1e-8)
    error = caught.value
    assert error.array == "loss" and error.deviation == pytest.approx(1e-3, rel=1e-6)
    assert error.tolerance == pytest.approx(1e-8 + 1e-6 * abs(float(recomputed["loss"][5])))
    assert "'loss'" in str(error) and "index (5,)" in str(error) and "toy small" in str(error)


def test_verify_is_nan_aware_and_takes_slices(tmp_path):
    stored = {"curve": np.array([[1.0, np.nan, np.inf], [2.0, 3.0, 4.0]])}
    write_toy(tmp_path, arrays=stored)
    shard = store.read("toy", "small", toy_params("small"), root=tmp_path)
    assert store.verify(shard, {"curve": torch.tensor(stored["curve"])}, rtol=0, atol=0) == {"curve": 0.0}
    for wrong in ([1.0, 0.0, np.inf], [1.0, np.nan, -np.inf], [np.nan, np.nan, np.inf]):
        bad = stored["curve"].copy()
        bad[0] = wrong
        with pytest.raises(store.VerificationError, match="'curve'"):
            store.verify(shard, {"curve": bad}, rtol=1e-3, atol=1e-3)
    assert store.verify(shard, {"curve": [3.0, 4.0]}, rtol=0, atol=0, select={"curve": np.s_[1, 1:]})
    with pytest.raises(store.VerificationError, match="shape"):
        store.verify(shard, {"curve": [3.0, 4.0]}, rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not store"):
        store.verify(shard, {"other": [1.0]}, rtol=0, atol=0)


def test_bad_input_names_the_argument(tmp_path):
    with pytest.raises(ValueError, match="shard"):
        store.write("toy", "../escape", {}, {"a": [1]}, seconds=1, root=tmp_path)
    with pytest.raises(ValueError, match="params\\['f'\\]"):
        store.write("toy", "small", {"f": object()}, {"a": [1]}, seconds=1, root=tmp_path)
    with pytest.raises(ValueError, match="arrays\\['a'\\]"):
        store.write("toy", "small", {}, {"a": np.array(["text"])}, seconds=1, root=tmp_path)
    with pytest.raises(ValueError, match="seconds"):
        store.write("toy", "small", {}, {"a": [1]}, seconds=-1, root=tmp_path)
    assert leftovers(tmp_path) == [] and not (tmp_path / "toy" / "small.json").exists()


def test_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DAMLIB_RESULTS", str(tmp_path))
    assert store.write("toy", "small", toy_params("small"), {"a": [1.0]}, seconds=0).parent == tmp_path / "toy"
    monkeypatch.delenv("DAMLIB_RESULTS")
    assert store.default_root() == REPOSITORY_RESULTS


def test_describe_names_device_time_and_command(tmp_path):
    write_toy(tmp_path, seconds=150)
    sentence = store.describe(store.read("toy", "small", toy_params("small"), root=tmp_path))
    assert str(damlib.device()) in sentence and "2.5 min" in sentence and "torch thread" in sentence
    assert "`DAMLIB_RESULTS=" in sentence and "run toy small`" in sentence


def test_run_shard_skips_up_to_date_and_recomputes(tmp_path, toy):
    shard, ran = experiments.run_shard("toy", "small", root=tmp_path)
    assert ran and len(toy) == 1 and shard.meta["seconds"] > 0
    np.testing.assert_array_equal(shard.arrays["x"], toy_run(toy_params("small"))["x"].numpy())
    assert experiments.run_shard("toy", "small", root=tmp_path)[1] is False and len(toy) == 1
    assert experiments.run_shard("toy", "small", root=tmp_path, force=True)[1] and len(toy) == 2
    # a stale shard is recomputed without --force
    write_toy(tmp_path, params=dict(toy_params("small"), steps=3))
    assert experiments.state("toy", "small", root=tmp_path) == ("stale", "differs in steps")
    assert experiments.run_shard("toy", "small", root=tmp_path)[1] and len(toy) == 3
    assert experiments.read("toy", "small", root=tmp_path).params["steps"] == 20
    with pytest.raises(ValueError, match="shard must be one of small, large"):
        experiments.run_shard("toy", "huge", root=tmp_path)
    with pytest.raises(ValueError, match="registered experiment"):
        experiments.get("no_such_experiment")


def test_register_refuses_a_name_taken_by_another_module(toy):
    def run(params):
        return {}

    run.__module__ = "somewhere.else"
    with pytest.raises(ValueError, match="already registered"):
        experiments.register(experiments.Experiment("toy", ("a",), toy_params, run))
    with pytest.raises(ValueError, match="shards"):
        experiments.Experiment("other", ("a", "a"), toy_params, toy_run)


def test_command_line_list_and_run(tmp_path, monkeypatch, capsys, toy):
    monkeypatch.setenv("DAMLIB_RESULTS", str(tmp_path))
    monkeypatch.setenv("DAMLIB_PROGRESS", "0")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "toy: a quadratic, for the tests" in out and "small  absent" in out

    assert main(["run", "toy", "small", "--threads", "1"]) == 0
    assert "toy/small: computed" in capsys.readouterr().out
    assert main(["run", "toy"]) == 0
    out = capsys.readouterr().out
    assert "toy/small: up to date" in out and "toy/large: computed" in out
    assert len(toy) == 2

    write_toy(tmp_path, params=dict(toy_params("large"), lr=0.3), shard="large")
    (tmp_path / "toy" / "small.npz").write_bytes(b"not an archive")
    main(["list"])
    out = capsys.readouterr().out
    assert "small  corrupt" in out and "large  stale (differs in lr)" in out

    assert main(["run", "toy", "huge"]) == 2
    assert "shard must be one of" in capsys.readouterr().err


def test_command_line_runs_as_a_module(tmp_path):
    env = dict(os.environ, DAMLIB_RESULTS=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "damlib.experiments", "list"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"results store: {tmp_path}" in done.stdout


def test_committed_store_is_small_and_intact():
    """The committed results/ stays small, every shard matches its checksum and its registered
    definition (so a tampered committed value fails), and no shard is left without an experiment."""
    files = [p for p in REPOSITORY_RESULTS.rglob("*") if p.is_file()] if REPOSITORY_RESULTS.exists() else []
    assert sum(p.stat().st_size for p in files) < 50e6
    for experiment, shard in store.stored(root=REPOSITORY_RESULTS):
        assert experiment in experiments.REGISTRY, f"results/{experiment} belongs to no registered experiment"
        assert shard in experiments.get(experiment).shards, f"results/{experiment}/{shard} is not a shard of it"
        assert experiments.read(experiment, shard, root=REPOSITORY_RESULTS) is not None
        meta = json.loads((REPOSITORY_RESULTS / experiment / f"{shard}.json").read_text())
        assert meta["command"] == store.rerun_command(experiment, shard)


def test_part_modules_are_discovered_on_first_use(tmp_path, monkeypatch):
    (tmp_path / "zz_part.py").write_text(
        "from damlib.experiments import Experiment, register\n"
        "register(Experiment('zz_found', ('one',), lambda shard: {}, lambda params: {'a': [1.0]}))\n")
    (tmp_path / "_private.py").write_text("raise RuntimeError('a private module is not a part')\n")
    monkeypatch.setattr(experiments, "__path__", [*experiments.__path__, str(tmp_path)])
    monkeypatch.setattr(experiments.REGISTRY, "_discovered", False)
    monkeypatch.delitem(sys.modules, "damlib.experiments.zz_part", raising=False)
    try:
        assert "zz_found" in experiments.REGISTRY
        assert experiments.get("zz_found").shards == ("one",)
    finally:
        experiments.REGISTRY.remove("zz_found")
        sys.modules.pop("damlib.experiments.zz_part", None)
