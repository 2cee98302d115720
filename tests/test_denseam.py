import math

import pytest
import torch

from damlib import DivergenceError
from damlib import denseam as dm


def _params(R=3, K=5, D=4, seed=0, dtype=torch.float64):
    return dm.init_params(R, K, D, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_monomial_and_table_rows():
    m = dm.Monomial.of(2.0, D=-0.5, B=1)
    assert m({"D": 16, "K": 3, "B": 8, "N": 1}) == pytest.approx(2.0 * 8 / 4)
    assert str(dm.Monomial.of()) == "1"
    with pytest.raises(ValueError, match="exponents"):
        dm.Monomial.of(X=1)
    dims = dict(D=64, K=128, B=32, N=256)
    sc = dm.parameterisation("proportional", "relu", "sgd").scales(**dims)
    assert (sc.s_in, sc.s_out, sc.lr_W, sc.lr_b, sc.lr_c) == pytest.approx((1 / 8, 128**-0.5, 32, 1, 1))
    lin = dm.parameterisation("proportional", "linear", "sgd")
    assert lin is dm.parameterisation("proportional", "relu", "sgd")
    sc = dm.parameterisation("k_only", "relu", "sgd").scales(**dims)
    assert (sc.s_out, sc.lr_W, sc.lr_b) == pytest.approx((1 / 128, 128, 128))
    sc = dm.parameterisation("proportional", "softmax", "adam").scales(**dims)
    assert (sc.s_out, sc.lr_W, sc.lr_b) == pytest.approx((8.0, 1.0, 0.0))
    assert dm.parameterisation("k_only", "relu", "adam").scales(**dims).lr_W == 1
    assert dm.parameterisation("proportional", "softmax", "sgd").source.startswith("not in Table 1")
    assert dm.parameterisation("proportional", "relu", "sgd", naive=True).scales(**dims).lr_W == 1
    for key, row in dm.TABLE1.items():
        assert row.s_in({"D": 4, "K": 1, "B": 1, "N": 1}) == 0.5, key


def test_parameterisation_bad_input():
    with pytest.raises(ValueError, match="regime"):
        dm.parameterisation("width", "relu", "sgd")
    with pytest.raises(ValueError, match="activation"):
        dm.parameterisation("proportional", "tanh", "sgd")
    with pytest.raises(ValueError, match="optimizer"):
        dm.parameterisation("proportional", "relu", "lbfgs")
    with pytest.raises(ValueError, match="K"):
        dm.TABLE1[("proportional", "elementwise", "sgd")].scales(D=4, K=0, B=1, N=1)


def test_relu_power_norm_unit_second_moment():
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for p in (1, 2, 3.5):
        phi = dm.activate(z, "relu", p)
        assert phi.pow(2).mean().item() == pytest.approx(1.0, rel=0.03)
    assert dm.relu_power_norm(1) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match="p"):
        dm.relu_power_norm(0)


def test_activations_and_centre():
    h = torch.randn(2, 3, 6, dtype=torch.float64)
    torch.testing.assert_close(dm.activate(h, "linear"), h)
    torch.testing.assert_close(dm.activate(h, "softmax").sum(-1), torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="activation"):
        dm.activate(h, "gelu")
    W = torch.randn(2, 5, 4, dtype=torch.float64)
    C = torch.eye(5, dtype=torch.float64) - torch.ones(5, 5, dtype=torch.float64) / 5
    torch.testing.assert_close(dm.centre(W), C @ W)
    with pytest.raises(ValueError, match="W"):
        dm.centre(torch.ones(3))


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("activation", ["linear", "relu", "softmax"])
def test_forward_matches_direct_formula(activation, centred):
    pr = _params()
    pr.b.normal_()
    pr.c.normal_()
    x = torch.randn(3, 7, 4, dtype=torch.float64)
    x_hat, h, a = dm.forward(pr, x, s_in=0.5, s_out=0.3, activation=activation, p=2.0, centred=centred)
    assert x_hat.shape == (3, 7, 4) and h.shape == a.shape == (3, 7, 5)
    for r in range(3):
        W = pr.W[r]
        Wc = (torch.eye(5, dtype=W.dtype) - 1 / 5) @ W if centred else W
        hr = 0.5 * x[r] @ Wc.T + pr.b[r]
        ar = {"linear": hr, "relu": torch.relu(hr) ** 2 / dm.relu_power_norm(2),
              "softmax": torch.softmax(hr, -1)}[activation]
        torch.testing.assert_close(x_hat[r], 0.3 * ar @ Wc + pr.c[r])
    # shared inputs (B, D) broadcast over runs
    x_hat2, _, _ = dm.forward(pr, x[0], s_in=0.5, s_out=0.3, activation=activation, centred=centred)
    x_hat1, _, _ = dm.forward(pr, x[0].expand(3, 7, 4), s_in=0.5, s_out=0.3, activation=activation,
                              centred=centred)
    torch.testing.assert_close(x_hat2, x_hat1)


def test_forward_bad_input():
    pr = _params()
    with pytest.raises(ValueError, match="x"):
        dm.forward(pr, torch.randn(7, 3, dtype=torch.float64), s_in=1, s_out=1)
    with pytest.raises(ValueError, match="x"):
        dm.forward(pr, torch.randn(2, 7, 4, dtype=torch.float64), s_in=1, s_out=1)
    with pytest.raises(ValueError, match="runs"):
        dm.init_params(0, 3, 3)


def test_centred_gradient_is_projected_and_loss_invariant():
    """App. B.5: the centred loss is invariant under W -> W + 1 v^T, its gradient lies in range(C)."""
    pr = _params(R=1)
    x = torch.randn(1, 6, 4, dtype=torch.float64)
    W = pr.W.clone().requires_grad_(True)
    x_hat, _, _ = dm.forward(dm.Params(W, pr.b, pr.c), x + 0.1, s_in=0.5, s_out=0.4, activation="relu")
    loss = dm.mse(x_hat, x).sum()
    (g,) = torch.autograd.grad(loss, W)
    torch.testing.assert_close(g.sum(-2), torch.zeros(1, 4, dtype=torch.float64))
    shifted = dm.Params(pr.W + torch.randn(1, 1, 4, dtype=torch.float64), pr.b, pr.c)
    x_hat2, _, _ = dm.forward(shifted, x + 0.1, s_in=0.5, s_out=0.4, activation="relu")
    torch.testing.assert_close(dm.mse(x_hat2, x).sum(), loss.detach())


@pytest.mark.parametrize("activation,p", [("linear", 1.0), ("relu", 1.0), ("relu", 0.5), ("relu", 2.0),
                                          ("relu", 3.0), ("softmax", 1.0)])
@pytest.mark.parametrize("centred", [True, False])
def test_closed_form_gradients_equal_autograd(activation, p, centred):
    """The training step's closed-form loss and gradients (the fast path) against autograd through
    :func:`forward` and :func:`mse` (the reference path), with per-seed clean targets broadcast."""
    from damlib.denseam.model import _loss_and_grads

    gen = torch.Generator().manual_seed(1)
    pr = _params(R=6, K=7, D=5, seed=2)
    pr.b.normal_(generator=gen)
    pr.c.normal_(generator=gen)
    clean = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)       # S = 3 sets, R = 2 S runs
    noisy = (clean + 0.5 * torch.randn(clean.shape, generator=gen, dtype=torch.float64)).repeat(2, 1, 1)
    kw = dict(s_in=0.7, s_out=1.3, activation=activation, p=p, centred=centred)
    ref = [t.clone().requires_grad_(True) for t in pr.tensors()]
    x_hat, h, _ = dm.forward(dm.Params(*ref), noisy, **kw)
    assert bool((h < 0).any()) and bool((h > 0).any())
    ref_loss = dm.mse(x_hat, clean.repeat(2, 1, 1))
    ref_grads = torch.autograd.grad(ref_loss.sum(), ref)
    loss, grads = _loss_and_grads(pr, noisy, clean, **kw)
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    # control: the gradient of the other centring differs from the reference
    _, other = _loss_and_grads(pr, noisy, clean, **{**kw, "centred": not centred})
    assert not torch.allclose(other[0], ref_grads[0], rtol=1e-3, atol=1e-6)
    # the workspace path (the trainer's) is bit for bit the same, on first use and on reuse
    work: dict = {}
    for _ in range(2):
        w_loss, w_grads = _loss_and_grads(pr, noisy, clean, **kw, work=work)
        assert torch.equal(w_loss, loss) and all(map(torch.equal, w_grads, grads))
    # control: the buffers are reused, so the returned W gradient is overwritten by the next call
    kept = w_grads[0].clone()
    _loss_and_grads(pr, noisy.flip(0), clean, **kw, work=work)
    assert w_grads[0] is work["gW"] and not torch.equal(w_grads[0], kept)


def test_gram_and_participation():
    a = torch.rand(2, 20, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ev = dm.gram_eigenvalues(a, centred=False)
    direct = torch.linalg.eigvalsh(a[0] @ a[0].T / 40).flip(0)[:2]
    torch.testing.assert_close(ev[0], direct)
    ac = a - a.mean(-1, keepdim=True)
    evc = dm.gram_eigenvalues(a, centred=True)
    torch.testing.assert_close(evc[1], torch.linalg.eigvalsh(ac[1] @ ac[1].T / 40).flip(0)[:2])
    # uniform entries (mean 1/2, variance 1/12): the mean makes a spike of about B / 4 = 5, far above the
    # bulk edge (1/12) (1 + sqrt(B/K))^2 = 0.24; centring removes it
    assert (ev[:, 0] > 10 * ev[:, 1]).all() and (evc[:, 0] < 2 * evc[:, 1]).all(), (ev, evc)
    s = torch.softmax(torch.zeros(1, 2, 8, dtype=torch.float64), -1)
    torch.testing.assert_close(dm.participation(s), torch.tensor([8.0], dtype=torch.float64))


def test_setup_and_helpers():
    s = dm.proportional(16, activation="relu")
    assert (s.D, s.K, s.B, s.N) == (16, 16, 16, 64)
    assert dm.k_only(64).D == dm.DEFAULTS.k_only_d and dm.k_only(64).K == 64
    with pytest.raises(ValueError, match="activation"):
        dm.Setup(4, 4, 4, 4, activation="tanh")
    with pytest.raises(ValueError, match="noise"):
        dm.Setup(4, 4, 4, 4, noise=-1.0)
    with pytest.raises(ValueError, match="B"):
        dm.Setup(4, 4, 0, 4)


def _reference(trainer, W0, setup, stream, r, opt_name):
    """Train run r of a sweep alone, with torch.optim, on the same mini-batches."""
    sc = setup.scales()
    s = int(trainer.seed_of_run[r])
    lr = float(trainer.lrs[r // trainer.seeds])
    W = W0[s].clone()[None].requires_grad_(True)
    b = torch.zeros(1, setup.K, dtype=W.dtype, requires_grad=True)
    c = torch.zeros(1, setup.D, dtype=W.dtype, requires_grad=True)
    groups = [{"params": [W], "lr": lr * sc.lr_W}, {"params": [b], "lr": lr * sc.lr_b},
              {"params": [c], "lr": lr * sc.lr_c}]
    opt = torch.optim.Adam(groups, betas=dm.DEFAULTS.betas, eps=dm.DEFAULTS.eps) if opt_name == "adam" \
        else torch.optim.SGD(groups)
    for clean, noisy in stream:
        opt.zero_grad()
        x_hat, _, _ = dm.forward(dm.Params(W, b, c), noisy[s][None], s_in=sc.s_in, s_out=sc.s_out,
                                 activation=setup.activation, p=setup.p, centred=setup.centred)
        dm.mse(x_hat, clean[s][None]).sum().backward()
        opt.step()
    return W.detach()[0], b.detach()[0], c.detach()[0]



@pytest.mark.parametrize("opt_name,activation,centred", [("sgd", "relu", True), ("sgd", "linear", False),
                                                          ("adam", "relu", True), ("adam", "softmax", True)])
def test_batched_sweep_equals_one_by_one(opt_name, activation, centred):
    setup = dm.Setup(6, 8, 5, 20, activation=activation, p=2.0, centred=centred, optimizer=opt_name)
    lrs = [0.003, 0.01, 0.03]
    trainer = dm.Trainer(setup, lrs, 2, seed=3, dtype=torch.float64, device="cpu")
    W0 = trainer.params.W[:2].clone()             # runs 0, 1 are seeds 0, 1
    stream = list(dm.batches(trainer.data, setup, 12, generator=trainer.gen))
    hist = trainer.run(12, batch_stream=iter(stream), progress=False)
    assert hist.loss.shape == (hist.steps.numel(), 3, 2)
    assert bool((hist.diverged == -1).all())
    for r in range(trainer.R):
        W, b, c = _reference(trainer, W0, setup, stream, r, opt_name)
        torch.testing.assert_close(trainer.params.W[r], W, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(trainer.params.b[r], b, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(trainer.params.c[r], c, rtol=1e-9, atol=1e-10)


def test_sweep_masks_or_raises_on_divergence():
    setup = dm.proportional(8, activation="linear")
    hist = dm.sweep(setup, [0.01, 1e3], seeds=2, steps=30, dtype=torch.float64, device="cpu", progress=False,
                    record=("gram", "update", "hidden", "dout"))
    assert torch.isfinite(hist.final[0]).all() and torch.isinf(hist.final[1]).all()
    assert (hist.diverged[1] > 0).all() and (hist.diverged[0] == -1).all()
    assert set(hist.records) == {"gram1", "gram2", "update", "hidden", "dout"}
    assert (hist.records["dout"][0] == 0).all() and (hist.records["dout"][1:, 0] > 0).all()
    assert dm.optimal_lr(hist) == pytest.approx(0.01)
    trainer = dm.Trainer(setup, [1e3], 1, dtype=torch.float64, device="cpu")
    with pytest.raises(DivergenceError) as err:
        trainer.run(30, diverged="raise", progress=False)
    assert err.value.step >= 1


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_parking_at_log_points_only_changes_no_live_run(optimizer):
    """Trainer.run parks the runs that died at its log points only; every number of the live
    runs, and each divergence step, equals a loop that parks after every step."""
    setup = dm.proportional(8, activation="relu", optimizer=optimizer)
    lrs = [0.01, 0.3, 30.0, 3e3] if optimizer == "sgd" else [1e-3, 0.3, 30.0, 3e3]
    lazy = dm.Trainer(setup, lrs, 2, seed=4, device="cpu")
    eager = dm.Trainer(setup, lrs, 2, seed=4, device="cpu")
    stream = list(dm.batches(lazy.data, setup, 40, generator=lazy.gen))
    hist = lazy.run(40, log_every=8, batch_stream=iter(stream), progress=False)
    losses = [eager.evaluate()["loss"]]
    for t, (clean, noisy) in enumerate(stream, 1):
        eager.step(clean, noisy)                                      # parks every step
        if t % 8 == 0:
            losses.append(eager.evaluate()["loss"])
    assert hist.n_diverged > 0 and bool((hist.diverged == -1).any())
    assert torch.equal(hist.loss, torch.stack(losses).reshape(hist.loss.shape))
    assert torch.equal(lazy.died, eager.died)
    for a, b in zip(lazy.params.tensors(), eager.params.tensors(), strict=True):
        assert torch.equal(a, b)                                      # both parked at the end
    # control: parking is deferred, so the equality above is not vacuous: a run that died
    # between log points keeps its diverged weights until it is parked
    lazy2 = dm.Trainer(setup, lrs, 2, seed=4, device="cpu")
    for clean, noisy in stream[:7]:
        lazy2.step(clean, noisy, park=False)
    dead = lazy2.died >= 0
    assert bool(dead.any()) and bool((lazy2.params.W[dead] != 0).any())
    lazy2._park()
    assert bool((lazy2.params.W[dead] == 0).all())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_dropping_the_diverged_runs_changes_no_number(optimizer, monkeypatch):
    """Trainer.run stops computing the runs that diverged (every drop_every steps): every loss,
    record, divergence step and final parameter equals, bit for bit, the run that computes them all;
    after the run every run is back in its row, the dropped ones parked."""
    from damlib.denseam import model, training

    setup = dm.proportional(8, activation="relu", optimizer=optimizer, centred=False)
    lrs = [0.01, 0.3, 30.0, 3e3] if optimizer == "sgd" else [1e-3, 0.03, 3.0, 300.0]
    record = ("gram", "k_eff", "update", "hidden", "dout")
    rows = []
    step = model._loss_and_grads

    def counting(params, *args, **kwargs):
        rows.append(params.W.shape[0])
        return step(params, *args, **kwargs)

    monkeypatch.setattr(training, "_loss_and_grads", counting)
    runs = {}
    for every in (None, 3):
        trainer = dm.Trainer(setup, lrs, 3, seed=2, device="cpu")
        runs[every] = (trainer.run(40, log_every=7, record=record, progress=False, drop_every=every), trainer)
    (full, t_full), (dropped, t_drop) = runs[None], runs[3]
    assert 0 < full.n_diverged < 12
    assert torch.equal(full.diverged, dropped.diverged) and torch.equal(full.steps, dropped.steps)
    assert torch.equal(full.loss, dropped.loss)
    for k in full.records:
        assert torch.equal(full.records[k].nan_to_num(nan=-1.0), dropped.records[k].nan_to_num(nan=-1.0)), k
    for a, b in zip(t_full.params.tensors(), t_drop.params.tensors(), strict=True):
        assert a.shape[0] == 12 and torch.equal(a, b)
    assert torch.equal(t_full.died, t_drop.died) and torch.equal(t_full.alive, t_drop.alive)
    # control: the second run did drop rows (the first computed all 12 at every step)
    first = len(rows) // 2
    assert set(rows[:first]) == {12} and min(rows[first:]) == 12 - full.n_diverged


def test_sweep_bad_input():
    setup = dm.proportional(4)
    with pytest.raises(ValueError, match="lrs"):
        dm.Trainer(setup, [0.1, -1.0], 1, device="cpu")
    with pytest.raises(ValueError, match="lrs"):
        dm.Trainer(setup, [], 1, device="cpu")
    with pytest.raises(ValueError, match="seeds"):
        dm.Trainer(setup, [0.1], 0, device="cpu")
    with pytest.raises(ValueError, match="setup"):
        dm.Trainer("big", [0.1], 1, device="cpu")
    with pytest.raises(ValueError, match="data"):
        dm.Trainer(setup, [0.1], 1, data=torch.zeros(3, 4), device="cpu")
    trainer = dm.Trainer(setup, [0.1], 1, device="cpu")
    with pytest.raises(ValueError, match="record"):
        trainer.evaluate(["nonsense"])
    with pytest.raises(ValueError, match="diverged"):
        trainer.run(2, diverged="ignore", progress=False)
    with pytest.raises(ValueError, match="lr"):
        dm.first_updates(setup, -0.1)


def test_first_updates_and_transfer_factor():
    setup = dm.proportional(8, activation="relu")
    up = dm.first_updates(setup, 0.05, seeds=2, steps=2, dtype=torch.float64, device="cpu")
    assert up["hidden"].shape == up["output"].shape == (2, 2)
    assert (up["hidden"] > 0).all() and (up["output"] > 0).all()
    lrs = torch.tensor([0.01, 0.1])
    h = dm.History(setup, lrs, torch.tensor([0]), torch.tensor([[[1.0], [0.5]]]))
    h2 = dm.History(setup, lrs, torch.tensor([0]), torch.tensor([[[0.2], [0.5]]]))
    assert dm.optimal_lr(h) == pytest.approx(0.1) and dm.transfer_factor([h, h2]) == pytest.approx(10.0)


def test_optimal_lr_refines_a_parabola():
    setup = dm.proportional(4)
    lrs = torch.logspace(-3, 0, 7, dtype=torch.float64)
    x_star = math.log(0.0123)
    loss = torch.exp(0.3 * (lrs.log() - x_star) ** 2 + 1.0)      # log-loss is a parabola in log lr
    h = dm.History(setup, lrs, torch.tensor([0]), loss[None, :, None])
    assert dm.optimal_lr(h) == pytest.approx(0.0123, rel=1e-6)
    loss[-2:] = float("inf")
    dead = dm.History(setup, lrs, torch.tensor([0]), torch.full((1, 7, 1), float("inf")))
    with pytest.raises(ValueError, match="diverged"):
        dm.optimal_lr(dead)
    assert not dm.has_optimum(dead) and dm.has_optimum(h)
    assert dm.transfer_factor([h, dead]) == math.inf and dm.transfer_factor([h, h]) == pytest.approx(1.0)
    summary = dm.transfer([h, dead])
    assert summary.optimum[0] == pytest.approx(0.0123, rel=1e-6) and math.isnan(summary.optimum[1])
    assert summary.factor == math.inf and summary.best_loss[1] == math.inf
    assert summary.max_stable[0] == pytest.approx(float(lrs[-3])) and math.isnan(summary.max_stable[1])
    assert "factor inf" in str(summary)


def test_data_stream_shapes():
    setup = dm.proportional(4)
    gen = torch.Generator().manual_seed(0)
    data = dm.gaussian_data(setup, 3, generator=gen)
    clean, noisy = next(dm.batches(data, setup, 1, generator=gen))
    assert clean.shape == noisy.shape == (3, setup.B, setup.D)
    # every clean point is a row of its own data set
    assert all(any(torch.equal(row, d) for d in data[s]) for s in range(3) for row in clean[s])


def test_sweep_plan(monkeypatch):
    monkeypatch.setenv("DAMLIB_SCALE", "ci")
    plan = dm.sweep_plan()
    assert plan.lrs("sgd").shape == (plan.n_lr,) and float(plan.lrs("adam")[0]) == pytest.approx(1e-4)
    assert plan.lr_step("sgd") == pytest.approx(10 ** (3 / (plan.n_lr - 1)))
    with pytest.raises(ValueError, match="optimizer"):
        plan.lrs("rmsprop")


def test_trainer_starts_from_init_params():
    setup = dm.proportional(4)
    trainer = dm.Trainer(setup, [0.01, 0.02], 3, seed=5, dtype=torch.float64, device="cpu")
    gen = torch.Generator().manual_seed(5)
    dm.gaussian_data(setup, 3, generator=gen, dtype=torch.float64)
    per_seed = dm.init_params(3, setup.K, setup.D, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(trainer.params.W, per_seed.W.repeat(2, 1, 1))
    assert trainer.params.W.data_ptr() != per_seed.W.data_ptr()
    assert (trainer.params.b == 0).all() and (trainer.params.c == 0).all()


def test_best_loss_and_max_stable():
    setup = dm.proportional(4)
    lrs = torch.tensor([0.01, 0.1, 1.0])
    loss = torch.tensor([[[0.5, 0.7], [0.2, 0.4], [0.1, float("inf")]]])      # (1 log point, 3 lrs, 2 seeds)
    h = dm.History(setup, lrs, torch.tensor([0]), loss)
    assert dm.best_loss(h) == pytest.approx(0.3) and dm.max_stable(h) == pytest.approx(0.1)
    assert h["loss"] is h.loss
    dead = dm.History(setup, lrs, torch.tensor([0]), torch.full((1, 3, 2), float("inf")))
    assert dm.best_loss(dead) == math.inf and math.isnan(dm.max_stable(dead))


def test_denoise():
    setup = dm.proportional(4)
    trainer = dm.Trainer(setup, [0.01, 0.02], 1, dtype=torch.float64, device="cpu")
    x = torch.randn(3, 4, dtype=torch.float64)
    once = trainer.denoise(x)
    torch.testing.assert_close(once, trainer._forward(x)[0])
    torch.testing.assert_close(trainer.denoise(x, 2), trainer._forward(once)[0])
    with pytest.raises(ValueError, match="iterations"):
        trainer.denoise(x, 0)


def test_pinned_at_edge():
    setup = dm.proportional(4)
    lrs = torch.tensor([0.01, 0.1, 1.0])
    inf = float("inf")
    interior = dm.History(setup, lrs, torch.tensor([0]), torch.tensor([[[0.5], [0.2], [0.4]]]))
    edge = dm.History(setup, lrs, torch.tensor([0]), torch.tensor([[[0.5], [0.25], [inf]]]))
    assert not dm.pinned_at_edge(interior) and dm.pinned_at_edge(edge)
    dead = dm.History(setup, lrs, torch.tensor([0]), torch.full((1, 3, 1), inf))
    assert not dm.pinned_at_edge(dead)


def test_setup_takes_a_row_of_its_own():
    zero = dm.Monomial.of(0.0)
    row = dm.Parameterisation(dm.Monomial.of(D=-0.5), dm.Monomial.of(K=-0.5), zero, zero, zero, "frozen")
    setup = dm.proportional(8, table_row=row)
    assert setup.row is row and setup.scales().lr_W == 0
    up = dm.first_updates(setup, 0.1, seeds=1, steps=1, dtype=torch.float64, device="cpu")
    assert (up["hidden"] == 0).all() and (up["output"] == 0).all()       # nothing trains
    with pytest.raises(ValueError, match="table_row"):
        dm.proportional(8, table_row="mine")


def test_nearest_lr_index():
    lrs = torch.logspace(-3, 0, 7)
    assert dm.nearest_lr_index(lrs, 0.0123) == 2 and dm.nearest_lr_index(lrs, 5.0) == 6


@pytest.mark.parametrize("activation,p", [("linear", 1.0), ("relu", 1.0), ("relu", 2.0), ("softmax", 1.0)])
def test_evaluation_workspace_is_the_plain_computation(activation, p):
    """Trainer.evaluate writes into a workspace kept between calls; its loss, K_eff, hidden RMS and
    Gram spectrum are bit for bit those of the public forward, mse and participation."""
    setup = dm.proportional(8, activation=activation, p=p, optimizer="sgd")
    trainer = dm.Trainer(setup, [0.01, 0.1], 2, seed=3, device="cpu")
    stream = list(dm.batches(trainer.data, setup, 3, generator=trainer.gen))
    record = ("gram", "k_eff", "hidden")
    seen = []
    for clean, noisy in stream:
        trainer.step(clean, noisy)
        got = trainer.evaluate(record)
        sc = setup.scales()
        x_hat, h, a = dm.forward(trainer.params, trainer.per_run(trainer.eval_noisy), s_in=sc.s_in,
                                 s_out=sc.s_out, activation=activation, p=p, centred=setup.centred)
        top = dm.gram_eigenvalues(a[:, : setup.B], centred=setup.centred)
        want = {"loss": dm.mse(x_hat, trainer.per_run(trainer.eval_clean)) / setup.D,
                "k_eff": dm.participation(a), "hidden": h.pow(2).mean((-1, -2)).sqrt(),
                "gram1": top[:, 0], "gram2": top[:, 1]}
        for name, value in want.items():
            assert torch.equal(got[name], value), name
        seen.append(got["loss"])
    # control: the same buffers give new numbers after each step (the workspace is rewritten)
    assert not torch.equal(seen[0], seen[-1])
