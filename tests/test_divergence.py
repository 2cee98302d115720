"""Every training loop raises DivergenceError with the step at which the run blew up, not the step at which
it was noticed (a checkpoint, the end of a stage, max_iter); each run here is built to blow up at a
known step, computed independently of the loop's own watch."""

import math

import pytest
import torch

from damlib import DivergenceError, config, dam, train
from damlib import denseam as dm
from damlib import memory as am
from damlib.dam import protocol

F64 = torch.float64


def _latent_blowup(k: int, steps: int):
    """Token 0 is right by a margin of 1000 (its residual is exactly zero in float64), token 1 is not:
    frequency rows on token 0 leave W unchanged, the first row on token 1 (row ``k - 1``) sends
    ``W - lr * grad`` past the largest float, so ``W_k`` is the first non-finite matrix."""
    E = 10 * torch.eye(2, dtype=F64)
    U = torch.eye(2, dtype=F64)
    W0 = torch.tensor([[100.0, 0.0], [0.0, 0.0]], dtype=F64)
    targets = torch.tensor([0, 1])
    rows = torch.zeros(steps, 2, dtype=F64)
    rows[:, 0] = 1.0
    rows[k - 1:] = torch.tensor([0.0, 1.0], dtype=F64)
    return W0, E, U, rows, targets


def test_descend_names_the_step_it_blew_up_in():
    W0, E, U, rows, targets = _latent_blowup(k=4, steps=10)
    # the construction: three steps change nothing, the fourth overflows
    assert bool(torch.isfinite(am.descend(W0, E, U, rows[:3], targets, lr=1e308, steps=3)).all())
    with pytest.raises(DivergenceError) as err:
        am.descend(W0, E, U, rows, targets, lr=1e308, steps=10)
    assert err.value.step == 4 and err.value.what == "matrix W"


def test_evolve_particles_names_the_step_it_blew_up_in():
    W0, E, U, rows, targets = _latent_blowup(k=6, steps=9)
    alpha, beta = am.couplings(E, U)
    with pytest.raises(DivergenceError) as err:
        am.evolve_particles(am.scores(W0, E, U), alpha, beta, rows, targets, lr=1e308, steps=9)
    assert err.value.step == 6


@pytest.mark.parametrize("block", [1, 3, None])
def test_sgd_sweep_names_the_step_of_the_first_bad_draw(monkeypatch, block):
    """Also when sweep watches W for blocks of ``block`` steps at once (None: one block)."""
    if block is not None:
        monkeypatch.setattr(train, "_BLOCK_ELEMENTS", block * 4)   # W and the scores: 2 x 2
    W0, E, U, _, targets = _latent_blowup(k=1, steps=1)
    p = torch.tensor([0.9, 0.1], dtype=F64)
    steps = 40
    # the loop draws one token per step from p; the first draw of token 1 blows W up
    reference = config.generator(3)
    draws = [int(torch.multinomial(p[None], 1, replacement=True, generator=reference)) for _ in range(steps)]
    expected = draws.index(1) + 1
    assert 1 < expected < steps
    with pytest.raises(DivergenceError) as err:
        train.sweep(W0, E, U, p, targets, lr=1e308, steps=steps, record=("loss",), batch_size=1,
                    generator=config.generator(3))
    assert err.value.step == expected


def test_sweep_refuses_infinite_scores_of_a_finite_matrix():
    # W0 is finite but its scores overflow: the recorded loss would be NaN; step 0 is named
    W0 = torch.tensor([[1e308, 0.0], [0.0, 0.0]], dtype=F64)
    E, U = 10 * torch.eye(2, dtype=F64), torch.eye(2, dtype=F64)
    p = torch.tensor([0.5, 0.5], dtype=F64)
    with pytest.raises(DivergenceError) as err:
        train.sweep(W0, E, U, p, torch.tensor([0, 1]), lr=0.1, steps=5)
    assert err.value.step == 0 and err.value.what == "scores"


def _dam_problem():
    gen = config.generator(0)
    x = torch.nn.functional.normalize(torch.randn(30, 5, generator=gen, dtype=F64), dim=-1)
    y = torch.arange(30) % 3
    return dam.init_from_data(x, y, 6, 3, 2.0, generator=config.generator(1)), x, y


def test_dam_train_names_the_step_not_the_checkpoint():
    model, x, y = _dam_problem()
    # an Adam step of 1e308 per coordinate overflows the memories' norm at once
    with pytest.raises(DivergenceError) as err:
        dam.train(model, x, y, steps=50, lr=1e308, eval_every=50, eval_data=(x, y))
    assert err.value.step == 1
    resumed = dam.TrainState(step=10)
    with pytest.raises(DivergenceError) as err:
        dam.train(model, x, y, steps=50, lr=1e308, eval_every=25, eval_data=(x, y), resume=resumed)
    assert err.value.step == 11


def test_grow_by_splitting_names_the_step_not_the_stage_end():
    model, x, y = _dam_problem()
    with pytest.raises(DivergenceError) as err:
        dam.grow_by_splitting(model, x, y, p_max=12, stage_steps=20, total_steps=60, lr=1e308, eps=0.1,
                              generator=config.generator(2), eval_every=10, eval_data=(x, y))
    assert err.value.step == 1


def test_polishers_name_the_evaluation_not_max_iter():
    model, x, y = _dam_problem()
    single = dam.DAM(model.w.float(), model.logits.float(), torch.tensor(3e38))
    xf = x.float()
    with pytest.raises(DivergenceError) as err:
        dam.polish(single, xf, y, max_iter=500)
    assert err.value.step < 500
    with pytest.raises(DivergenceError) as err:
        dam.newton_polish(single, xf, y, steps=4, cg_iters=5)
    assert err.value.step == 1


def test_krotov_hopfield_names_the_step():
    gen = config.generator(0)
    v = torch.rand(20, 6, generator=gen) * 2 - 1
    y = torch.arange(20) % 2
    # a temperature of 1e-30 overflows F(z) = relu(z / T)^3 in float32: inf - inf at the first step
    with pytest.raises(DivergenceError) as err:
        dam.train_kh(v, y, 2, n_memories=4, power=3, temperature=1e-30, steps=30, lr=0.01, batch_size=5,
                     generator=config.generator(1))
    assert err.value.step == 1


def test_authors_protocol_names_the_optimiser_step():
    model, x, y = _dam_problem()
    single = dam.DAM(model.w[:3], model.logits[:3], model.beta)
    with pytest.raises(DivergenceError) as err:
        protocol.authors_run(single, x, y, p_max=3, stage_epochs=3, batch_size=10, lr=1e308,
                             generator=config.generator(0))
    assert err.value.step == 1


def _hpt_setup():
    return dm.proportional(8, optimizer="sgd", activation="relu")


def test_denseam_raise_names_the_step_not_the_log_point():
    setup, lrs, steps = _hpt_setup(), [0.3, 30.0], 40
    masked = dm.Trainer(setup, lrs, 2, seed=0, device="cpu").run(steps, log_every=steps)
    first = masked.first_divergence
    assert masked.n_diverged > 0 and 1 < first < steps  # a mid-run blow-up, logged only at the end
    with pytest.raises(DivergenceError) as err:
        dm.Trainer(setup, lrs, 2, seed=0, device="cpu").run(steps, log_every=steps, diverged="raise")
    assert err.value.step == first


def test_denseam_sweep_says_which_runs_it_kept_diverged():
    h = dm.sweep(_hpt_setup(), [0.3, 30.0], seeds=2, steps=40, device="cpu")
    assert h.n_diverged == int((h.diverged >= 0).sum()) > 0
    assert bool(torch.isinf(h.final[h.diverged >= 0]).all())
    assert h.first_divergence == int(h.diverged[h.diverged >= 0].min())
    calm = dm.sweep(_hpt_setup(), [0.01], seeds=2, steps=5, device="cpu")
    assert calm.n_diverged == 0 and calm.first_divergence is None


def test_first_updates_raises_instead_of_returning_inf():
    # one step of 1e30 leaves finite weights but sends the outputs past the largest float32
    with pytest.raises(DivergenceError) as err:
        dm.first_updates(_hpt_setup(), 1e30, seeds=2, steps=3, device="cpu")
    assert err.value.step == 1 and err.value.what == "outputs"
    kept = dm.first_updates(_hpt_setup(), 1e30, seeds=2, steps=3, device="cpu", diverged="mask")
    assert kept["diverged"].tolist() != [-1, -1] and int(kept["diverged"].max()) <= 3
    assert math.isfinite(float(dm.first_updates(_hpt_setup(), 0.01, seeds=2, steps=2, device="cpu")["output"].max()))
