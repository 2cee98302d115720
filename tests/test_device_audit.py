"""The device-discipline audit: it catches a damlib factory call without device= (the control, planted in a
file under damlib/), ignores calls that pass a device and calls from outside damlib, and a run of
representative calls of every module under it records nothing. Every other unit test also runs under it
(tests/conftest.py), so a new kernel that allocates on torch's default device fails there too."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import damlib
from damlib import config, dam, data, train
from damlib import denseam as dm
from damlib import memory as am
from damlib import transformer as tf
from damlib.device_audit import DeviceDisciplineError, FactoryAudit

PLANTED = str(Path(damlib.__file__).parent / "planted_kernel.py")  # never written: only a frame's name


def _planted(source: str):
    """Run ``source`` as if it were a line of a damlib module."""
    exec(compile(source, PLANTED, "exec"), {"torch": torch})


@pytest.mark.no_device_audit
def test_the_audit_catches_a_planted_call_without_device():
    with FactoryAudit() as audit:
        _planted("x = torch.zeros(3)\ny = torch.arange(4, dtype=torch.long)")
    assert [c[0] for c in audit.calls] == ["zeros", "arange"]
    assert all(c[1].endswith("planted_kernel.py") for c in audit.calls)
    with pytest.raises(DeviceDisciplineError, match="torch.zeros without device="):
        with FactoryAudit(strict=True):
            _planted("torch.zeros(3)")


@pytest.mark.no_device_audit
def test_the_audit_ignores_explicit_devices_and_callers_outside_damlib():
    with FactoryAudit() as audit:
        _planted("x = torch.zeros(3, device='cpu')\ny = torch.as_tensor(x)")
        torch.zeros(3)  # the test's own call
    assert audit.calls == []


@pytest.mark.no_device_audit
def test_representative_calls_of_every_module_pass_the_audit():
    gen = config.generator(0)
    with FactoryAudit() as audit:
        E = am.sphere_embeddings(5, 3, generator=gen)
        U = am.sphere_embeddings(2, 3, generator=gen)
        p, y = am.zipf_frequencies(5), torch.tensor([0, 1, 0, 1, 1])
        am.descend(torch.zeros(3, 3, dtype=torch.float64), E, U, p, y, lr=0.1, steps=2)
        am.minibatch_frequencies(p, 3, 2, generator=gen)
        am.plane_minimiser(am.correlated_pair(0.3), torch.tensor([0.6, 0.4], dtype=torch.float64),
                           torch.tensor([0, 1]), iterations=2)
        train.sweep(torch.zeros(3, 3, dtype=torch.float64), E, U, p, y, lr=[0.1, 0.2], steps=3,
                    record=("loss", "zero_one", "sharpness"), batch_size=2, generator=config.generator(1))
        train.first_perfect_step(E, p, y, lr=0.5, steps=3)
        train.plane_states([0.2], [0.6], [0.5], steps=2, resolution=3, device="cpu")
        task = tf.make_task(3)
        frozen = tf.init_frozen(65, 4, 10, generator=gen)
        seqs = tf.sample_sequences(task, 6, 10, generator=gen)
        params = tf.init_params(frozen, 2, generator=gen)
        tf.train(frozen, params, seqs, lr=0.1, steps=2, record=tf.RECORDS, progress=False)
        data.load_shakespeare_table().decode([1, 2])
        data.coarse_mnist(torch.rand(4, 784, generator=gen), 4)
        x = torch.nn.functional.normalize(torch.randn(20, 4, generator=gen, dtype=torch.float64), dim=-1)
        yd = torch.arange(20) % 2
        model = dam.init_from_data(x, yd, 4, 2, 2.0, generator=gen)
        dam.train(model, x, yd, steps=3, lr=0.01, batch_size=5, generator=gen, eval_every=2, eval_data=(x, yd))
        dam.grow_by_splitting(model, x, yd, p_max=6, stage_steps=2, total_steps=4, lr=0.01, eps=0.1,
                              generator=gen, eval_every=2, eval_data=(x, yd), progress=False)
        dam.splitting_eigen(model, x, yd)
        dam.saddle_point_iteration(model, x, yd, max_iter=3)
        dam.train_kh(torch.rand(10, 4, generator=gen), torch.arange(10) % 2, 2, n_memories=3, power=2,
                     temperature=1.0, steps=2, lr=0.01, batch_size=4, generator=gen)
        h = dm.sweep(dm.proportional(8), [0.01, 30.0], seeds=2, steps=4, record=dm.RECORDS, device="cpu")
        dm.transfer([h, h])
        dm.first_updates(dm.proportional(8), 0.01, seeds=2, steps=2, device="cpu")
    assert audit.calls == [], sorted(set(audit.calls))


@pytest.mark.no_device_audit
def test_the_environment_switch_makes_the_audit_strict_in_a_notebook_kernel():
    code = ("import torch, damlib\n"
            "exec(compile('torch.zeros(2)', damlib.__file__.replace('__init__.py', 'p.py'), 'exec'))")
    env = {**__import__("os").environ, "DAMLIB_DEVICE_AUDIT": "1"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "DeviceDisciplineError" in run.stderr
