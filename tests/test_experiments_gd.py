import numpy as np
import pytest

from damlib import experiments, store
from damlib.experiments import gd


def small(part="bottom"):
    params = gd.figure7_params(f"{part}_d64")
    return {**params, "d": 8, "T": 20, "n_train": 12, "n_test": 6, "chunk": 5, "steps": 4,
            "checkpoint_every": 2}


def test_figure7_is_registered_with_json_params():
    experiment = experiments.get("gd_figure7")
    assert experiment.shards == ("bottom_d64", "bottom_d128", "top_d64")
    for shard in experiment.shards:
        params = experiment.shard_params(shard)
        assert params["T"] == 256 and params["d"] == int(shard.split("_d")[1])
    assert experiment.shard_params("top_d64")["part"] == "top"


def test_a_cut_off_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    params = small()
    monkeypatch.setenv("DAMLIB_RESULTS", str(tmp_path / "whole"))
    whole = gd.figure7_run(params)
    assert whole["loss"].shape == (5, 4) and whole["output_margins"].shape == (5, 4, 5)
    assert whole["induction_margins"].shape == (5, 4, 5) and whole["test_loss"].shape == (4,)

    monkeypatch.setenv("DAMLIB_RESULTS", str(tmp_path / "cut"))
    save = gd._save_atomic
    calls = []

    def cut_after_first(path, obj):
        calls.append(obj["state"].step)
        if len(calls) == 2:
            raise KeyboardInterrupt
        save(path, obj)

    monkeypatch.setattr(gd, "_save_atomic", cut_after_first)
    with pytest.raises(KeyboardInterrupt):
        gd.figure7_run(params)
    monkeypatch.setattr(gd, "_save_atomic", save)
    resumed = gd.figure7_run(params)
    assert calls == [2, 4]
    for name in ("loss", "output_margins", "induction_margins", "previous_token_margin", "test_loss"):
        np.testing.assert_allclose(resumed[name], whole[name], rtol=1e-6, atol=1e-6, err_msg=name)
    # the first steps alone are the cheap slice a chapter verifies
    first = gd.figure7_run(params, steps=1)
    np.testing.assert_allclose(first["loss"], whole["loss"][:2], rtol=1e-6)
    assert "test_loss" not in first


def test_the_stored_slice_verifies(tmp_path, monkeypatch):
    monkeypatch.setenv("DAMLIB_RESULTS", str(tmp_path))
    params = small("top")
    arrays = gd.figure7_run(params, resume=False)
    store.write("toy", "top", params, arrays, seconds=1.0, root=tmp_path)
    shard = store.read("toy", "top", params, root=tmp_path)
    slice_ = gd.figure7_run(params, steps=1)
    store.verify(shard, slice_, rtol=1e-5, atol=1e-5, select={k: np.s_[:2] for k in slice_})
    tampered = {k: v + 1.0 for k, v in slice_.items()}
    with pytest.raises(store.VerificationError):
        store.verify(shard, tampered, rtol=1e-5, atol=1e-5, select={k: np.s_[:2] for k in slice_})
