import math

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch

from damlib import dam

F64 = torch.float64


def _sphere_data(n, N, C, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N, dtype=F64, generator=g)
    x = x / x.norm(dim=1, keepdim=True)
    y = torch.randint(C, (n,), generator=g)
    return x, y


def _model(P, N, C, beta=3.0, seed=1, purity=1.0, batch=()):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(*batch, P, N, dtype=F64, generator=g)
    return dam.make_model(w, (torch.arange(P) % C).expand(*batch, P), C, beta, purity=purity)


# ---------------------------------------------------------------------------------- normaliser


def _log_z_quadrature(beta, N):
    """log int_{S^{N-1}} exp(beta w.x) dx = log |S^{N-2}| + log int_0^pi exp(beta cos t) sin^{N-2} t dt."""
    log_area = math.log(2) + (N - 1) / 2 * math.log(math.pi) - math.lgamma((N - 1) / 2)

    def log_f(t):
        return beta * math.cos(t) + (N - 2) * math.log(math.sin(t))

    grid = np.linspace(1e-9, math.pi - 1e-9, 20001)
    peak = max(log_f(t) for t in grid)
    val, _ = scipy.integrate.quad(
        lambda t: math.exp(log_f(t) - peak),
        0,
        math.pi,
        limit=500,
        epsabs=0,
        epsrel=1e-13,
        points=[grid[np.argmax([log_f(t) for t in grid])]],
    )
    return log_area + peak + math.log(val)


@pytest.mark.parametrize("beta", [0.5, 5.0, 50.0, 500.0, 5000.0])
def test_log_normaliser_mnist_dimension(beta):
    N = 784
    got = dam.log_normaliser(beta, N).item()
    nu = N / 2 - 1
    exact = float(
        N / 2 * mpmath.log(2 * mpmath.pi) + mpmath.log(mpmath.besseli(nu, beta)) - nu * mpmath.log(beta)
    )
    assert got == pytest.approx(exact, rel=1e-12, abs=1e-9)
    assert got == pytest.approx(_log_z_quadrature(beta, N), rel=1e-10, abs=1e-8)


def test_log_normaliser_branches_agree_where_both_finite():
    # where scipy's ive is representable both branches exist: they must agree
    nu = 391.0
    x = np.array([100.0, 200.0, 1000.0, 1e4])
    assert np.all(scipy.special.ive(nu, x) > 1e-250)
    direct = np.log(scipy.special.ive(nu, x)) + x
    np.testing.assert_allclose(dam._log_bessel_debye(nu, x), direct, rtol=1e-13)


def test_log_normaliser_closed_forms_and_batch():
    beta = torch.tensor([[0.3, 2.0], [10.0, 80.0]], dtype=F64)
    # circle: 2 pi I_0(beta); sphere S^2: 4 pi sinh(beta) / beta
    circle = torch.log(2 * math.pi * torch.special.i0(beta))
    torch.testing.assert_close(dam.log_normaliser(beta, 2), circle, rtol=1e-12, atol=0)
    s2 = torch.log(4 * math.pi * torch.sinh(beta) / beta)
    torch.testing.assert_close(dam.log_normaliser(beta, 3), s2, rtol=1e-12, atol=0)
    assert dam.log_normaliser(beta, 784).shape == (2, 2)


def test_log_normaliser_bad_input():
    with pytest.raises(ValueError, match="beta"):
        dam.log_normaliser(0.0, 784)
    with pytest.raises(ValueError, match="beta"):
        dam.log_normaliser(torch.tensor([1.0, float("nan")]), 784)
    with pytest.raises(ValueError, match="n_features"):
        dam.log_normaliser(1.0, 1)


def test_log_likelihood_is_a_density_on_the_circle():
    # N = 2: integrate P(x, y) over the circle and the classes numerically
    model = _model(3, 2, 2, beta=4.0, purity=0.8)
    t = torch.linspace(0, 2 * math.pi, 4001, dtype=F64)[:-1]
    x = torch.stack([t.cos(), t.sin()], 1)
    total = 0.0
    for k in range(2):
        y = torch.full((len(t),), k)
        per_point = dam.log_terms(model, x).logsumexp(-2)[:, k] - dam.log_normaliser(model.beta, 2)
        torch.testing.assert_close(dam.log_likelihood(model, x, y), per_point.mean())
        total += per_point.exp().mean().item() * 2 * math.pi
    assert total == pytest.approx(1.0, rel=1e-10)


# ---------------------------------------------------------------------------------- loss and gradients


def test_loss_against_direct_log_sum_exp():
    x, y = _sphere_data(30, 7, 3)
    model = _model(5, 7, 3, purity=0.7, batch=(2,))
    T = dam.log_terms(model, x)  # (2, n, P, C)
    assert T.shape == (2, 30, 5, 3)
    log_post = T.logsumexp(-2) - T.logsumexp((-2, -1)).unsqueeze(-1)
    torch.testing.assert_close(dam.class_log_posterior(model, x), log_post)
    q = dam.targets(y, 3, 0.1)
    torch.testing.assert_close(dam.loss(model, x, y), -(q * log_post).sum(-1).mean(-1))
    acc = (log_post.argmax(-1) == y).double().mean(-1)
    torch.testing.assert_close(dam.accuracy(model, x, y), acc)


@pytest.mark.parametrize("purity", [1.0, 0.6])
def test_gradient_against_autograd(purity):
    x, y = _sphere_data(40, 6, 3)
    model = _model(4, 6, 3, purity=purity, batch=(2,))
    w = model.w.clone().requires_grad_(True)
    a = model.logits.clone().requires_grad_(True)
    dam.loss(dam.DAM(w, a, model.beta), x, y).sum().backward()
    gw, ga = dam.gradient(model, x, y)
    assert gw.shape == (2, 4, 6) and ga.shape == (2, 4, 3)
    torch.testing.assert_close(gw, dam.project(model.w, w.grad), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(ga, dam._finite_part(a.grad), rtol=1e-10, atol=1e-14)
    assert torch.allclose((gw * model.w).sum(-1), torch.zeros(2, 4, dtype=F64), atol=1e-15)
    c = dam.residuals(model, x, y)
    torch.testing.assert_close(c, dam._score_grad(model, x, y, 0.1).sum(-1))
    assert bool((dam.gradient_scale(model, x, y) > dam.gradient_norm((gw, ga))).all())


def test_bad_model_and_data():
    x, y = _sphere_data(10, 5, 2)
    model = _model(2, 5, 2)
    with pytest.raises(ValueError, match="x must have shape"):
        dam.loss(model, x[:, :4], y)
    with pytest.raises(ValueError, match="y must hold indices"):
        dam.loss(model, x, y + 5)
    with pytest.raises(ValueError, match="smoothing"):
        dam.loss(model, x, y, smoothing=1.0)
    with pytest.raises(ValueError, match="beta"):
        dam.DAM(model.w, model.logits, torch.tensor(-1.0, dtype=F64))
    with pytest.raises(ValueError, match="logits"):
        dam.DAM(model.w, model.logits[:1], model.beta)
    with pytest.raises(ValueError, match="every class"):
        dam.make_model(torch.randn(2, 5), torch.tensor([0, 0]), 2, 1.0)
    with pytest.raises(ValueError, match="purity"):
        dam.make_model(torch.randn(2, 5), torch.tensor([0, 1]), 2, 1.0, purity=0.0)
    with pytest.raises(ValueError, match="n_memories"):
        dam.init_from_data(x, y, 0, 2, 1.0, generator=torch.Generator())


def test_init_from_data_is_stratified_and_batched():
    x, y = _sphere_data(50, 5, 3)
    model = dam.init_from_data(
        x, y, 7, 3, torch.tensor([1.0, 2.0], dtype=F64), generator=torch.Generator(), batch=(2,)
    )
    assert model.w.shape == (2, 7, 5) and model.beta.shape == (2,)
    assert torch.equal(model.logits.argmax(-1)[0], torch.arange(7) % 3)
    torch.testing.assert_close(model.class_weights.sum((-2, -1)), torch.ones(2, dtype=F64))


# ---------------------------------------------------------------------------------- training


def test_train_lowers_the_loss_and_keeps_memories_on_the_sphere():
    x, y = _sphere_data(60, 6, 3)
    model = _model(6, 6, 3, batch=(3,))
    trained = dam.train(
        model, x, y, steps=60, lr=0.05, batch_size=20, generator=torch.Generator().manual_seed(0)
    ).model
    assert bool((dam.loss(trained, x, y) < dam.loss(model, x, y)).all())
    torch.testing.assert_close(trained.w.norm(dim=-1), torch.ones(3, 6, dtype=F64))
    assert bool(torch.isneginf(trained.logits).eq(torch.isneginf(model.logits)).all())  # purity kept
    hist = dam.train(model, x, y, steps=10, lr=0.05, eval_every=5, eval_data=(x, y))
    assert hist.step == [5, 10] and hist.accuracy[0].shape == (3,)
    assert hist.state.step == 10 and hist.state.work == 10 * 6 * 60 and hist.state.history is hist
    with pytest.raises(ValueError, match="generator"):
        dam.train(model, x, y, steps=5, lr=0.1, batch_size=5)
    with pytest.raises(ValueError, match="lr"):
        dam.train(model, x, y, steps=5, lr=-1.0)
    with pytest.raises(ValueError, match="eval_data"):
        dam.train(model, x, y, steps=5, lr=0.1, eval_every=2)
    only_loss = dam.train(model, x, y, steps=10, lr=0.05, eval_every=5, record=("loss",))
    assert only_loss.accuracy == [] and len(only_loss.loss) == 2
    torch.testing.assert_close(only_loss.loss[-1], hist.loss[-1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="record"):
        dam.train(model, x, y, steps=5, lr=0.1, eval_every=2, record=("energy",))
    with pytest.raises(ValueError, match="eval_every"):
        dam.train(model, x, y, steps=5, lr=0.1, eval_every=0, eval_data=(x, y))
    bad = dam.DAM(model.w, model.logits.clone().fill_(float("nan")), model.beta)
    with pytest.raises(ValueError, match="logits"):  # NaN in the start is bad input, not a divergence
        dam.train(bad, x, y, steps=3, lr=0.1)


def test_train_is_riemannian_adam():
    x, y = _sphere_data(40, 6, 3)
    model = _model(4, 6, 3, purity=0.7, batch=(2,))
    w, a = model.w.clone(), model.logits.clone()
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.05
    mw, vw, ma, va = (torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(a), torch.zeros_like(a))
    for t in range(1, 16):
        gw, ga = dam.gradient(dam.DAM(w, a, model.beta), x, y)
        mw, vw = b1 * mw + (1 - b1) * gw, b2 * vw + (1 - b2) * gw**2
        ma, va = b1 * ma + (1 - b1) * ga, b2 * va + (1 - b2) * ga**2
        c1, c2 = 1 - b1**t, 1 - b2**t
        w = dam._normalise(w - lr * dam.project(w, (mw / c1) / ((vw / c2).sqrt() + eps)))
        a = a - lr * (ma / c1) / ((va / c2).sqrt() + eps)
    got = dam.train(model, x, y, steps=15, lr=lr).model
    torch.testing.assert_close(got.w, w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got.logits, a, rtol=1e-12, atol=1e-14)


def test_train_resumes_from_its_state():
    x, y = _sphere_data(60, 6, 3)
    model = _model(6, 6, 3)
    first = dam.train(model, x, y, steps=10, lr=0.05, eval_every=5, eval_data=(x, y))
    more = dam.train(first.model, x, y, steps=10, lr=0.05, eval_every=5, eval_data=(x, y), resume=first.state)
    assert more.step == [5, 10, 15, 20] and more.work == [5 * 6 * 60 * k for k in (1, 2, 3, 4)]
    assert more.loss[:2] == first.loss and more.seconds[:2] == first.seconds
    assert more.seconds[2] >= first.state.seconds and more.state.step == 20
    # the moments restart: a resumed run is not the 20-step run
    whole = dam.train(model, x, y, steps=20, lr=0.05)
    assert not torch.allclose(whole.model.w, more.model.w)


def test_single_model_functions_refuse_a_batch():
    x, y = _sphere_data(20, 5, 2)
    batch = _model(2, 5, 2, batch=(2,))
    calls = {
        "polish": lambda: dam.polish(batch, x, y),
        "newton_polish": lambda: dam.newton_polish(batch, x, y),
        "tangent_hessian": lambda: dam.tangent_hessian(batch, x, y),
        "saddle_point_iteration": lambda: dam.saddle_point_iteration(batch, x, y),
        "grow_by_splitting": lambda: dam.grow_by_splitting(
            batch, x, y, p_max=4, stage_steps=2, total_steps=4, lr=0.1, eps=0.1,
            generator=torch.Generator(), eval_every=2, eval_data=(x, y)),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=f"{name} takes a single model"):
            call()


def test_polish_reaches_round_off():
    x, y = _sphere_data(40, 5, 2, seed=3)
    model = dam.polish(_model(2, 5, 2, beta=2.0), x, y, max_iter=300)
    model = dam.newton_polish(model, x, y, steps=3)
    rel = dam.gradient_norm(dam.gradient(model, x, y)) / dam.gradient_scale(model, x, y)
    assert rel.item() < 1e-13
    with pytest.raises(ValueError, match="single model"):
        dam.polish(_model(2, 5, 2, batch=(2,)), x, y)


def test_newton_hessian_products_equal_forward_over_reverse():
    """newton_polish's Hessian-vector products (double backward through the kept gradient graph)
    equal torch.func's forward-over-reverse products, the direct definition, to round-off."""
    from damlib.dam.model import DAM, _loss, _normalise
    from damlib.dam.optimise import _gradient_and_hvp

    x, y = _sphere_data(40, 5, 2, seed=3)
    model = _model(3, 5, 2, beta=2.0)
    n_w = model.w.numel()

    def f(theta):
        return _loss(DAM._unchecked(_normalise(theta[:n_w].reshape(3, 5)), theta[n_w:].reshape(3, 2),
                                    model.beta), x, y, 0.1)

    theta = torch.cat([model.w.flatten(), torch.randn(6, dtype=F64, generator=torch.Generator().manual_seed(0))])
    g, hvp = _gradient_and_hvp(f, theta)
    torch.testing.assert_close(g, torch.func.grad(f)(theta), rtol=1e-13, atol=1e-15)
    for seed in range(3):
        p = torch.randn(theta.shape, dtype=F64, generator=torch.Generator().manual_seed(seed + 1))
        ref = torch.func.jvp(torch.func.grad(f), (theta,), (p,))[1]
        torch.testing.assert_close(hvp(p), ref, rtol=1e-11, atol=1e-13)
    # control: the products of another point differ
    _, other = _gradient_and_hvp(f, theta + 0.1)
    assert not torch.allclose(other(p), ref, rtol=1e-3)


# ---------------------------------------------------------------------------------- copying and splitting


def test_copy_keeps_the_mixture_and_halves_the_copied_gradients():
    x, y = _sphere_data(30, 6, 3)
    model = _model(4, 6, 3, purity=0.7, batch=(2,))
    big = dam.copy_memories(model, [1, 3])
    assert big.w.shape == (2, 6, 6)
    torch.testing.assert_close(dam.class_log_posterior(big, x), dam.class_log_posterior(model, x))
    torch.testing.assert_close(dam.log_likelihood(big, x, y), dam.log_likelihood(model, x, y))
    gw, ga = dam.gradient(model, x, y)
    bw, ba = dam.gradient(big, x, y)
    torch.testing.assert_close(bw[:, [0, 2]], gw[:, [0, 2]])
    torch.testing.assert_close(bw[:, [1, 3]], gw[:, [1, 3]] / 2)
    torch.testing.assert_close(bw[:, [4, 5]], gw[:, [1, 3]] / 2)
    torch.testing.assert_close(ba[:, [4, 5]], ga[:, [1, 3]] / 2)
    for bad in ([], [4], [1, 1], [-1]):
        with pytest.raises(ValueError, match="index"):
            dam.copy_memories(model, bad)


def test_split_moves_the_copies_apart_on_the_sphere():
    x, y = _sphere_data(30, 6, 3)
    model = _model(3, 6, 3)
    u = torch.randn(1, 6, dtype=F64)
    split = dam.split_memories(model, [2], u, eps=0.1)
    torch.testing.assert_close(split.w.norm(dim=-1), torch.ones(4, dtype=F64))
    gap = (split.w[2] - split.w[3]).norm().item()
    assert 0.19 < gap < 0.2
    copy = dam.split_memories(model, [2], u, eps=0.0)
    torch.testing.assert_close(copy.w, dam.copy_memories(model, [2]).w)
    with pytest.raises(ValueError, match="directions"):
        dam.split_memories(model, [2], torch.randn(2, 6, dtype=F64), eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        dam.split_memories(model, [2], u, eps=-0.1)
    with pytest.raises(ValueError, match="tangent"):
        dam.split_memories(model, [2], model.w[2:3], eps=0.1)


def test_splitting_matrix_is_the_antisymmetric_hessian_block():
    x, y = _sphere_data(40, 5, 2, seed=2)
    model = dam.newton_polish(dam.polish(_model(2, 5, 2, beta=4.0), x, y, max_iter=300), x, y, steps=2)
    big = dam.copy_memories(model, [1])
    H, bases = dam.tangent_hessian(big, x, y)
    N = 5
    assert H.shape == (3 * (N - 1) + 3 * 1, 3 * (N - 1) + 3 * 1)  # one finite logit per memory
    S = dam.splitting_matrix(model, x, y)[1]
    assert torch.equal(bases[1], bases[2])  # the copy sits on the original
    # (delta, -delta) / sqrt(2) on the two copies, delta = B z
    Q = torch.zeros(H.shape[0], N - 1, dtype=F64)
    Q[1 * (N - 1) : 2 * (N - 1)] = torch.eye(N - 1, dtype=F64) / math.sqrt(2)
    Q[2 * (N - 1) : 3 * (N - 1)] = -torch.eye(N - 1, dtype=F64) / math.sqrt(2)
    block = Q.T @ H @ Q
    torch.testing.assert_close(block, bases[1].T @ S @ bases[1] / 2, rtol=1e-8, atol=1e-12)
    # the smallest eigenvalue: from the matrix, matrix-free, and of the whole Hessian
    vals, vecs = dam.splitting_eigen(model, x, y)
    assert vals.shape == (2,) and vecs.shape == (2, N)
    assert vals[1].item() == pytest.approx(torch.linalg.eigvalsh(block)[0].item() * 2, rel=1e-8)
    approx, dirs = dam.splitting_directions(
        model, x, y, iters=500, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(approx, vals, rtol=1e-6, atol=1e-10)
    h_min = torch.linalg.eigvalsh(H)[0].item()
    h_a_min = torch.linalg.eigvalsh(dam.tangent_hessian(model, x, y)[0])[0].item()
    assert h_min == pytest.approx(min(h_a_min, vals[1].item() / 2, 0.0), abs=1e-10)


def test_splitting_matrix_projection_is_the_explicit_one():
    """The rank-two projection of ``splitting_matrix`` equals ``P S P`` with ``P = I - w w^T``
    formed explicitly, over a batch of models; the normal direction has eigenvalue 0."""
    x, y = _sphere_data(40, 5, 2, seed=2)
    models = _model(3, 5, 2, beta=torch.tensor([1.0, 4.0], dtype=F64), batch=(2,))
    S = dam.splitting_matrix(models, x, y)                                     # (2, 3, N, N)
    c = dam.residuals(models, x, y, smoothing=0.1)
    beta = models.beta[:, None, None, None]
    lam = beta * (c * torch.einsum("bpd,nd->bnp", models.w, x)).sum(-2)[..., None, None]
    eye = torch.eye(5, dtype=F64)
    raw = beta**2 * torch.einsum("bnp,ni,nj->bpij", c, x, x) - lam * eye
    proj = eye - models.w.unsqueeze(-1) * models.w.unsqueeze(-2)
    torch.testing.assert_close(S, proj @ raw @ proj, rtol=1e-12, atol=1e-14)
    assert (S @ models.w.unsqueeze(-1)).abs().max() < 1e-13
    assert not torch.allclose(S, raw, atol=1e-6)                               # control: P matters


def test_splitting_matrices_batched_path_equals_the_per_memory_one():
    """The batched tensor path of the splitting matrices and eigenpairs (taken on a GPU) equals the
    CPU path's symmetric rank-k updates, memory by memory, in float64 and float32."""
    from damlib.dam import splitting

    for dtype, tol in ((F64, 1e-12), (torch.float32, 1e-5)):
        x, y = _sphere_data(60, 6, 3, seed=5)
        x = x.to(dtype)
        models = _model(4, 6, 3, beta=torch.tensor([1.5, 6.0], dtype=F64), batch=(2,)).to(dtype)
        c, lam = splitting._splitting_parts(models, x, y, 0.1)
        assert bool((c > 0).any()) and bool((c < 0).any())            # both rank-k updates are used
        batched = splitting._batched_matrices(models, c, lam, x)
        per_memory = dam.splitting_matrix(models, x, y)
        torch.testing.assert_close(per_memory, batched, rtol=tol, atol=tol)
        shift = batched.abs().sum(-1).amax(-1)[..., None, None] + 1.0
        vals, vecs = splitting._lowest_eigenpair(batched + shift * models.w.unsqueeze(-1) * models.w.unsqueeze(-2))
        cpu_vals, cpu_vecs = dam.splitting_eigen(models, x, y)
        torch.testing.assert_close(cpu_vals, vals, rtol=tol, atol=tol)
        torch.testing.assert_close(cpu_vecs, vecs, rtol=100 * tol, atol=100 * tol)
        # control: without the projection the batched matrices are other matrices
        raw = models.beta[..., None, None, None] ** 2 * torch.einsum("bnp,ni,nj->bpij", c, x, x)
        assert not torch.allclose(per_memory, raw, atol=1e-3)


def test_lowest_eigenpair_is_the_full_decompositions_first():
    """On a CPU the smallest eigenpair comes from LAPACK's selected-pair driver: it equals the first
    pair of the full torch.linalg.eigh, over a batch, its vector signed (largest entry positive)."""
    from damlib.dam.splitting import _lowest_eigenpair

    g = torch.Generator().manual_seed(7)
    A = torch.randn(2, 3, 30, 30, generator=g, dtype=F64)
    S = A + A.transpose(-1, -2)
    vals, vecs = _lowest_eigenpair(S)
    ref_vals, ref_vecs = torch.linalg.eigh(S)
    torch.testing.assert_close(vals, ref_vals[..., 0], rtol=1e-12, atol=1e-12)
    ref = ref_vecs[..., :, 0]
    ref = ref * torch.sign(ref.gather(-1, ref.abs().argmax(-1, keepdim=True)))
    torch.testing.assert_close(vecs, ref, rtol=1e-8, atol=1e-10)
    assert bool((vecs.gather(-1, vecs.abs().argmax(-1, keepdim=True)) > 0).all())
    only, none = _lowest_eigenpair(S, vectors=False)
    assert none is None and only.shape == (2, 3)
    torch.testing.assert_close(only, vals, rtol=1e-12, atol=1e-12)
    # control: the second pair is another one
    assert not torch.allclose(vals, ref_vals[..., 1], rtol=1e-3)


def test_splitting_lowers_the_loss_at_second_order():
    x, y = _sphere_data(40, 5, 2, seed=4)
    model = dam.newton_polish(dam.polish(_model(2, 5, 2, beta=6.0), x, y, max_iter=300), x, y, steps=2)
    vals, vecs = dam.splitting_eigen(model, x, y)
    mu = int(vals.argmin())
    base = dam.loss(model, x, y).item()
    eps = 1e-3
    split = dam.split_memories(model, [mu], vecs[mu : mu + 1], eps=eps)
    change = dam.loss(split, x, y).item() - base
    assert change == pytest.approx(eps**2 * vals[mu].item() / 2, rel=1e-2)


def test_grow_by_splitting_doubles_to_p_max_and_counts_its_work():
    x, y = _sphere_data(60, 5, 2, seed=5)
    gen = torch.Generator().manual_seed(0)
    hist = dam.grow_by_splitting(
        _model(2, 5, 2), x, y, p_max=7, stage_steps=4, total_steps=20, lr=0.05, eps=0.05, batch_size=10,
        split_batch=30, split_iters=3, generator=gen, eval_every=2, eval_data=(x, y))
    assert hist.model.n_memories == 7 and hist.splits == [4, 8]  # P: 2 -> 4 -> 7 (topped up)
    assert hist.step == list(range(2, 21, 2))
    assert all(b >= a for a, b in zip(hist.seconds, hist.seconds[1:]))
    # work: 4 steps at each of P = 2, 4, then 12 at P = 7, on 10 digits; splits: 3 passes over 30 digits
    assert hist.work[-1] == 10 * (4 * 2 + 4 * 4 + 12 * 7) + 3 * 30 * (2 + 4)
    scratch = dam.train(_model(7, 5, 2), x, y, steps=20, lr=0.05, batch_size=10, generator=gen, eval_every=5,
                        eval_data=(x, y))
    assert scratch.work == [5 * 7 * 10 * k for k in (1, 2, 3, 4)]
    reach = dam.time_to_reach(scratch, float(scratch.accuracy[1]), measure="work")
    assert reach <= scratch.work[1]
    assert np.isnan(dam.time_to_reach(scratch, 1.5))
    with pytest.raises(ValueError, match="p_max"):
        dam.grow_by_splitting(_model(4, 5, 2), x, y, p_max=3, stage_steps=4, total_steps=8, lr=0.05, eps=0.05,
                              generator=gen, eval_every=2, eval_data=(x, y))
    with pytest.raises(ValueError, match="measure"):
        dam.time_to_reach(scratch, 0.5, measure="flops")
    with pytest.raises(ValueError, match="window"):
        dam.time_to_reach(scratch, 0.5, window=9)


# ---------------------------------------------------------------------------------- Krotov-Hopfield


def test_krotov_hopfield_shapes_and_training():
    x, y = _sphere_data(50, 8, 3)
    v = x.float().clamp(-1, 1)
    xi = dam.train_kh(
        v,
        y,
        3,
        n_memories=6,
        power=3,
        temperature=1.0,
        steps=20,
        lr=0.01,
        batch_size=10,
        generator=torch.Generator().manual_seed(0),
    )
    assert xi.shape == (6, 11) and float(xi.abs().max()) <= 1
    out = dam.kh_outputs(xi, v, power=3, temperature=1.0)
    assert out.shape == (50, 3) and float(out.abs().max()) <= 1
    with pytest.raises(ValueError, match="memories"):
        dam.kh_outputs(xi[:, :8], v, power=3, temperature=1.0)
    with pytest.raises(ValueError, match="power"):
        dam.kh_outputs(xi, v, power=0, temperature=1.0)


# ---------------------------------------------------------------------------------- saddle-point equations


def test_saddle_point_iteration_reaches_a_stationary_point_of_the_likelihood():
    x, y = _sphere_data(60, 5, 2, seed=5)
    model = _model(4, 5, 2, beta=3.0)
    fixed, changes = dam.saddle_point_iteration(model, x, y, max_iter=2000, tol=1e-13)
    assert changes[-1] < 1e-13 and len(changes) < 2000
    torch.testing.assert_close(fixed.class_weights.sum(), torch.tensor(1.0, dtype=F64))
    w = fixed.w.clone().requires_grad_(True)
    a = fixed.logits.clone().requires_grad_(True)
    dam.log_likelihood(dam.DAM(w, a, fixed.beta), x, y).backward()
    assert dam.project(fixed.w, w.grad).abs().max().item() < 1e-10
    assert dam._finite_part(a.grad).abs().max().item() < 1e-10
    with pytest.raises(ValueError, match="max_iter"):
        dam.saddle_point_iteration(model, x, y, max_iter=0)


def test_mean_overlap_factor():
    # N = 3: coth(k) - 1/k
    k = np.array([0.5, 2.0, 10.0])
    np.testing.assert_allclose(dam.mean_overlap_factor(k, 3), 1 / np.tanh(k) - 1 / k, rtol=1e-12)
    assert np.all(np.diff(dam.mean_overlap_factor(np.array([1.0, 10.0, 100.0, 1000.0]), 784)) > 0)


# ---------------------------------------------------------------------------------- the authors' protocol


def test_smd_step_is_heavy_ball_on_the_sphere():
    from damlib.dam import protocol

    x, y = _sphere_data(30, 6, 3)
    model = _model(3, 6, 3)
    opt = protocol.SMD(model, lr=0.1, momentum=0.9)
    gw, ga, gb = protocol.gradient_with_beta(model, x, y)
    # beta's gradient against autograd
    beta = model.beta.clone().requires_grad_(True)
    dam.loss(dam.DAM(model.w, model.logits, beta), x, y).backward()
    assert gb.item() == pytest.approx(beta.grad.item(), rel=1e-10)
    one = opt.step(model, x, y)
    torch.testing.assert_close(one.w, dam._normalise(model.w - 0.01 * gw))
    torch.testing.assert_close(one.beta, model.beta - 0.01 * gb)
    assert bool((one.logits.amax(-1) == 0).all())                 # each memory's largest weight is 1
    assert bool(torch.isneginf(one.logits).eq(torch.isneginf(model.logits)).all())
    two = opt.step(one, x, y)
    gw1 = dam.gradient(one, x, y)[0]
    torch.testing.assert_close(two.w, dam._normalise(one.w + 0.1 * (0.9 * -0.1 * gw - 0.1 * gw1)))


def test_authors_run_grows_stops_early_and_counts():
    from damlib.dam import protocol

    x, y = _sphere_data(120, 6, 3, seed=7)
    start = protocol.random_start(3, 6, 3, 2.0, generator=torch.Generator().manual_seed(0), dtype=F64)
    run = protocol.authors_run(start, x, y, p_max=9, stage_epochs=3, batch_size=20, val_fraction=0.25,
                               patience=1, max_eigval=1e9, split_iters=4,
                               generator=torch.Generator().manual_seed(1))
    assert run.model.n_memories == 9 and len(run.splits) == 2      # 3 -> 6 -> 9
    assert run.epochs == list(range(1, len(run.epochs) + 1))
    assert np.all(np.diff(run.seconds) >= 0) and np.all(np.diff(run.work) > 0)
    assert np.isfinite(run.val_loss).all() and run.ended_by in ("early stopping", "epochs")
    # without validation every stage runs its epochs; max_splits = 0 is the run without splitting
    flat = protocol.authors_run(start, x, y, p_max=9, stage_epochs=4, max_splits=0, batch_size=20,
                                generator=torch.Generator().manual_seed(1))
    assert flat.model.n_memories == 3 and flat.epochs[-1] == 4 and flat.ended_by == "epochs"
    assert flat.work[-1] == 4 * 120 * 3
    with pytest.raises(ValueError, match="val_fraction"):
        protocol.authors_run(start, x, y, p_max=9, stage_epochs=2, batch_size=20, val_fraction=1.0,
                             generator=torch.Generator())
    with pytest.raises(ValueError, match="authors_run takes a single model"):
        protocol.authors_run(_model(3, 6, 3, batch=(2,)), x, y, p_max=9, stage_epochs=2, batch_size=20,
                             generator=torch.Generator())


def test_dam_experiments_run_at_tiny_size():
    from damlib import experiments
    from damlib.experiments import dam as ex

    assert {"dam_split_small", "dam_split_speedup"} <= set(experiments.REGISTRY)
    x, y = _sphere_data(200, 16, 10, seed=3)
    digits = dam.SphereDigits(x.float(), y, x[:50].float(), y[:50], x, x[:50], "test")
    small = {**ex.small_params("seed=0"), "p0": 10, "p_max": 40, "stage_epochs": 2, "batch_size": 50,
             "max_eigval": 1e9}
    out = ex.run_small(small, digits=digits)
    assert out["split_memories"][-1] == 40 and out["nosplit_memories"][-1] == 10
    assert out["scratch_memories"][-1] == 40
    assert out["split_epochs"][-1] == out["nosplit_epochs"][-1] == out["scratch_epochs"][-1]
    assert ex.small_slice(small, digits=digits)["check_loss"] == out["check_loss"]
    speed = {**ex.speedup_params("seed=1"), "p_maxes": [20], "stage_epochs": 2, "batch_size": 40}
    out = ex.run_speedup(speed, digits=digits)
    assert out["split_20_memories"][-1] <= 20 and out["scratch_20_memories"][0] == 20
    assert out["scratch_20_wall"] > 0 and 0 <= out["split_20_test_accuracy"] <= 1


# ---------------------------------------------------------------------------------- prototypes


def test_neighbour_purity_counts_the_class_of_the_nearest_digits():
    x, y = _sphere_data(40, 6, 2, seed=8)
    # a memory at a digit: its nearest digit is itself
    purity = dam.neighbour_purity(x[:3], y[:3], x, y, k=1)
    torch.testing.assert_close(purity, torch.ones(3, dtype=F64))
    wrong = dam.neighbour_purity(x[:3], 1 - y[:3], x, y, k=1)
    torch.testing.assert_close(wrong, torch.zeros(3, dtype=F64))
    k5 = dam.neighbour_purity(x[:1], y[:1], x, y, k=5)
    nearest = (x[:1] @ x.T).topk(5).indices[0]
    assert k5.item() == pytest.approx((y[nearest] == y[0]).double().mean().item())
    with pytest.raises(ValueError, match="k="):
        dam.neighbour_purity(x[:1], y[:1], x, y, k=41)
    with pytest.raises(ValueError, match="labels"):
        dam.neighbour_purity(x[:2], y[:1], x, y)


def test_kh_winning_share_sums_to_one_and_finds_idle_memories():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(30, 8, generator=g) * 2 - 1
    xi = torch.zeros(3, 8 + 2)
    xi[0, :8] = v[:15].mean(0)
    xi[1, :8] = v[15:].mean(0)
    # memory 2 stays at zero: its term is 0, never the largest
    share = dam.kh_winning_share(xi, v, power=10, temperature=1.0)
    assert share.sum().item() == pytest.approx(1.0) and share[2].item() == 0.0
    torch.testing.assert_close(dam.kh_initial(4, 10, generator=torch.Generator().manual_seed(1)),
                               (0.3 * torch.randn(4, 10, generator=torch.Generator().manual_seed(1)) - 0.1)
                               .clamp(-1, 1))
