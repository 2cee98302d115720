import numpy as np
import pytest
import torch

from damlib import denseam as dm
from damlib import experiments, store
from damlib.experiments import hpt


def test_shard_params_are_fixed_by_the_name(monkeypatch):
    for name in ("hpt_k_only", "hpt_adam_centring"):
        experiment = experiments.get(name)
        monkeypatch.setenv("DAMLIB_SCALE", "ci")
        at_ci = [experiment.shard_params(s) for s in experiment.shards]
        monkeypatch.setenv("DAMLIB_SCALE", "book")
        assert at_ci == [experiment.shard_params(s) for s in experiment.shards]
    params = hpt.k_only_params("proportional_K=2048")
    assert params["K"] == 2048 and params["naive"] and params["D"] == dm.DEFAULTS.k_only_d
    params = hpt.adam_params("softmax_uncentred_D=256")
    assert (params["activation"], params["centred"], params["K"], params["N"]) == ("softmax", False, 256, 1024)
    with pytest.raises(ValueError, match="shard"):
        experiments.get("hpt_k_only").shard_params("table1_K=3")


def test_a_shard_is_one_sweep_and_its_first_steps_recompute(tmp_path):
    params = {**hpt.k_only_params("table1_K=1024"), "K": 64, "steps": 30, "check_steps": 5,
              "lrs": hpt.SGD_LRS[:3] + [1e3]}
    arrays = hpt.run_sweep(params)
    whole = dm.sweep(hpt.setup_of(params), params["lrs"], seeds=1, steps=30, log_every=30, device="cpu")
    np.testing.assert_allclose(arrays["final"], whole.final.numpy(), rtol=1e-5)
    assert np.isinf(arrays["final"][-1]).all() and (arrays["diverged"][-1] > 0).all()
    np.testing.assert_allclose(hpt.early_losses(params, device="cpu"), arrays["early"], rtol=1e-6)
    store.write("hpt_toy", "K=64", params, arrays, seconds=1.0, root=tmp_path)
    shard = store.read("hpt_toy", "K=64", params, root=tmp_path)
    history = hpt.history_of(shard)
    assert dm.optimal_lr(history) == pytest.approx(dm.optimal_lr(whole), rel=1e-5)
    tampered = {"early": arrays["early"] * 1.01}
    with pytest.raises(store.VerificationError, match="early"):
        store.verify(shard, tampered, rtol=1e-4, atol=0)
    assert torch.isfinite(history.final[:-1]).all()
