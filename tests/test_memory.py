import math

import pytest
import torch

from damlib import config
from damlib import memory as am

pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def problem(memory_problem):
    """The shared small problem (tests/conftest.py) and a random weight matrix ``W (4, 4)``."""
    E = memory_problem[0]
    return *memory_problem, torch.randn(E.shape[1], E.shape[1], generator=config.generator(1))


def test_sphere_embeddings_unit_rows():
    E = am.sphere_embeddings(5, 3, generator=config.generator(1))
    assert E.shape == (5, 3) and E.dtype == torch.float64
    torch.testing.assert_close(E.norm(dim=1), torch.ones(5))


def test_correlated_pair():
    E = am.correlated_pair(0.3)
    torch.testing.assert_close(E.norm(dim=-1), torch.ones(2))
    assert math.isclose(float(E[0] @ E[1]), 0.3)
    batch = am.correlated_pair(torch.tensor([-0.5, 0.0, 0.95]))
    assert batch.shape == (3, 2, 2)
    torch.testing.assert_close((batch[:, 0] * batch[:, 1]).sum(-1), torch.tensor([-0.5, 0.0, 0.95]))
    with pytest.raises(ValueError, match="alpha"):
        am.correlated_pair(1.5)


def test_frequencies():
    torch.testing.assert_close(am.uniform_frequencies(4), torch.full((4,), 0.25))
    p = am.zipf_frequencies(3, 1.0)
    torch.testing.assert_close(p, torch.tensor([1, 1 / 2, 1 / 3]) / (11 / 6))
    torch.testing.assert_close(am.zipf_frequencies(3, 0.0), am.uniform_frequencies(3))
    with pytest.raises(ValueError, match="exponent"):
        am.zipf_frequencies(3, -1.0)
    with pytest.raises(ValueError, match="n must be"):
        am.uniform_frequencies(0)


def test_minibatch_frequencies():
    p = am.zipf_frequencies(4)
    rows = am.minibatch_frequencies(p, 10, 2000, generator=config.generator(0))
    assert rows.shape == (2000, 4)
    torch.testing.assert_close(rows.sum(1), torch.ones(2000))
    # multiples of 1/batch_size, and unbiased
    torch.testing.assert_close(rows * 10, (rows * 10).round())
    assert torch.allclose(rows.mean(0), p, atol=0.02)
    with pytest.raises(ValueError, match="p must sum to one"):
        am.minibatch_frequencies(torch.tensor([0.5, 0.2]), 10, 5, generator=config.generator(0))


def test_scores_loss_margins_against_direct(problem):
    E, U, p, targets, W = problem
    S = am.scores(W, E, U)
    direct = torch.tensor([[float(E[x] @ W @ U[y]) for y in range(3)] for x in range(7)])
    torch.testing.assert_close(S, direct)
    ce = sum(float(p[x]) * (math.log(sum(math.exp(v) for v in direct[x])) - float(direct[x, targets[x]]))
             for x in range(7))
    assert math.isclose(float(am.loss(W, E, U, p, targets)), ce, rel_tol=1e-12)
    m = am.margins(S, targets)
    for x in range(7):
        others = [float(direct[x, y]) for y in range(3) if y != targets[x]]
        assert math.isclose(float(m[x]), float(direct[x, targets[x]]) - max(others), rel_tol=1e-12)
    err = sum(float(p[x]) for x in range(7) if m[x] <= 0)
    assert math.isclose(float(am.zero_one_loss(S, p, targets)), err, abs_tol=1e-15)


def test_gradient_equals_autograd(problem):
    E, U, p, targets, W = problem
    W = W.clone().requires_grad_(True)
    am.loss(W, E, U, p, targets).backward()
    torch.testing.assert_close(am.gradient(W.detach(), E, U, p, targets), W.grad, rtol=0, atol=1e-14)


def test_batched_matches_single(problem):
    E, U, p, targets, W = problem
    Ws = torch.stack([W, 2 * W, -W])
    assert am.loss(Ws, E, U, p, targets).shape == (3,)
    torch.testing.assert_close(am.gradient(Ws, E, U, p, targets)[1], am.gradient(2 * W, E, U, p, targets))
    lrs = torch.tensor([0.1, 1.0, 3.0])
    traj = am.descend(torch.zeros(3, 4, 4), E, U, p, targets, lr=lrs, steps=5)
    assert traj.shape == (6, 3, 4, 4)
    one = am.descend(torch.zeros(4, 4), E, U, p, targets, lr=1.0, steps=5)
    torch.testing.assert_close(traj[:, 1], one)


def test_particles_track_descent(problem):
    """Theorem 1: the particles evolve without W and match the scores of W."""
    E, U, p, targets, W = problem
    alpha, beta = am.couplings(E, U)
    rows = am.minibatch_frequencies(p, 3, 40, generator=config.generator(2))
    for weights in (p, rows):
        Ws = am.descend(W, E, U, weights, targets, lr=2.0, steps=40)
        S = am.evolve_particles(am.scores(W, E, U), alpha, beta, weights, targets, lr=2.0, steps=40)
        torch.testing.assert_close(am.scores(Ws, E, U), S, rtol=0, atol=1e-12)


def test_one_step_decreases_loss(problem):
    E, U, p, targets, W = problem
    traj = am.descend(W, E, U, p, targets, lr=0.1, steps=1)
    assert am.loss(traj[1], E, U, p, targets) < am.loss(traj[0], E, U, p, targets)


def test_bad_input(problem):
    E, U, p, targets, W = problem
    with pytest.raises(ValueError, match="p must sum to one"):
        am.loss(W, E, U, p * 2, targets)
    with pytest.raises(ValueError, match="non-negative"):
        am.loss(W, E, U, torch.tensor([1.5, -0.5, 0, 0, 0, 0, 0.0]), targets)
    with pytest.raises(ValueError, match=r"p must have shape"):
        am.loss(W, E, U, p[:3], targets)
    with pytest.raises(ValueError, match="W must have shape"):
        am.scores(torch.zeros(3, 4), E, U)
    with pytest.raises(ValueError, match="targets"):
        am.loss(W, E, U, p, targets + 5)
    with pytest.raises(ValueError, match="targets"):
        am.loss(W, E, U, p, targets.double())
    with pytest.raises(ValueError, match="lr"):
        am.descend(W, E, U, p, targets, lr=-1.0, steps=3)
    with pytest.raises(ValueError, match="steps"):
        am.descend(W, E, U, p, targets, lr=1.0, steps=0)
    with pytest.raises(ValueError, match=r"p must have shape \(7,\) or \(steps, 7\)"):
        am.descend(W, E, U, torch.full((2, 7), 1 / 7), targets, lr=1.0, steps=3)
    alpha, beta = am.couplings(E, U)
    with pytest.raises(ValueError, match="alpha"):
        am.evolve_particles(am.scores(W, E, U), alpha[:3], beta, p, targets, lr=1.0, steps=3)


def test_descend_runs_a_batch_of_learning_rates(problem):
    # a batch of rates used to run every step and then fail in torch.stack
    E, U, p, targets, W = problem
    lrs = torch.tensor([0.1, 0.5, 2.0], dtype=W.dtype)
    path = am.descend(W, E, U, p, targets, lr=lrs, steps=4)
    assert path.shape == (5, 3, *W.shape)
    for i, lr in enumerate(lrs.tolist()):
        torch.testing.assert_close(path[:, i], am.descend(W, E, U, p, targets, lr=lr, steps=4))


def test_non_finite_start_is_bad_input_not_divergence(problem):
    E, U, p, targets, W = problem
    W = W.clone()
    W[0, 0] = math.inf
    with pytest.raises(ValueError, match="W0"):
        am.descend(W, E, U, p, targets, lr=1.0, steps=3)


def test_hessian_matches_autograd(problem):
    E, U, p, targets, W = problem
    H = am.hessian(W, E, U, p, targets)
    d = W.shape[0]
    Ha = torch.autograd.functional.hessian(lambda w: am.loss(w.reshape(d, d), E, U, p, targets),
                                           W.reshape(-1))
    torch.testing.assert_close(H, Ha)
    Wb = torch.stack([W, 2 * W])
    Hb = am.hessian(Wb, E, U, p, targets)
    assert Hb.shape == (2, d * d, d * d)
    torch.testing.assert_close(Hb[1], am.hessian(2 * W, E, U, p, targets))
    torch.testing.assert_close(am.sharpness(Wb, E, U, p, targets), torch.linalg.eigvalsh(Hb)[:, -1])
    with pytest.raises(ValueError, match="p"):
        am.hessian(W, E, U, p[:-1], targets)


def test_plane_round_trip_and_margins():
    g = torch.tensor([[0.3, -2.0], [1.0, 4.0]])
    W = am.plane_to_matrix(g)
    assert W.shape == (2, 2, 2)
    torch.testing.assert_close(am.matrix_to_plane(W), g)
    E = am.correlated_pair(0.5)
    targets = torch.arange(2)
    m = am.margins(am.scores(W, E, torch.eye(2)), targets)
    torch.testing.assert_close(m, torch.stack([g @ E[0], -(g @ E[1])], -1))
    with pytest.raises(ValueError, match="W"):
        am.matrix_to_plane(torch.zeros(2, 3))


def test_plane_grid_and_landscape():
    g = am.plane_grid((-1, 1), (-2, 2), 5)
    assert g.shape == (5, 5, 2)
    torch.testing.assert_close(g[0, :, 0], torch.linspace(-1, 1, 5))
    torch.testing.assert_close(g[:, 0, 1], torch.linspace(-2, 2, 5))
    E, p, targets = am.correlated_pair(0.5), torch.tensor([0.75, 0.25]), torch.arange(2)
    out = am.landscape(g, E, p, targets, fields=("loss", "zero_one", "sharpness"))
    W = am.plane_to_matrix(g)
    torch.testing.assert_close(out["loss"], am.loss(W, E, torch.eye(2), p, targets))
    torch.testing.assert_close(out["sharpness"], am.sharpness(W, E, torch.eye(2), p, targets))
    assert out["zero_one"].shape == (5, 5)
    # several problems at once: E (B, N, 2) against g (n, n, 1, 2)
    Eb = am.correlated_pair(torch.tensor([0.0, 0.5]))
    outb = am.landscape(g.unsqueeze(-2), Eb, p, targets)
    torch.testing.assert_close(outb["loss"][..., 1], out["loss"])
    with pytest.raises(ValueError, match="fields"):
        am.landscape(g, E, p, targets, fields=("hessian",))
    with pytest.raises(ValueError, match="g0_range"):
        am.plane_grid((1, -1), (0, 1), 4)
    with pytest.raises(ValueError, match="n must"):
        am.plane_grid((-1, 1), (0, 1), 0)


def test_orthogonal_flow_margin_solves_the_ode():
    import numpy as np

    t = np.array([0.0, 0.5, 3.0, 50.0, 1e4, 1e9])
    for M in (2, 5):
        m = am.orthogonal_flow_margin(t, 0.3, M)
        np.testing.assert_allclose(np.exp(m) + (M - 1) * m, 0.3 * M * t + 1, rtol=1e-12)
        assert np.all(np.diff(m) > 0) and m[0] == pytest.approx(0.0, abs=1e-14)
    assert am.orthogonal_flow_margin(100.0, 0.5, 2, m0=-1.0) < am.orthogonal_flow_margin(100.0, 0.5, 2)
    with pytest.raises(ValueError, match="n_classes"):
        am.orthogonal_flow_margin(1.0, 0.5, 1)
    with pytest.raises(ValueError, match="p must"):
        am.orthogonal_flow_margin(1.0, 0.0, 2)
    with pytest.raises(ValueError, match="t must"):
        am.orthogonal_flow_margin(-1.0, 0.5, 2)


def test_orthogonal_descent_loss_bound():
    import numpy as np

    b = am.orthogonal_descent_loss_bound(np.arange(5), 0.5, 3, 2.0)
    assert b[0] == pytest.approx(np.log(3)) and np.all(np.diff(b) < 0)
    with pytest.raises(ValueError, match="lr"):
        am.orthogonal_descent_loss_bound(1, 0.5, 3, 0.0)


def test_plane_best_zero_one():
    # three tokens on a line through the origin: classes 0, 1, 0 at angles 0, 90, 180 degrees
    E = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    p = torch.tensor([0.5, 0.3, 0.2])
    targets = torch.tensor([0, 1, 0])
    best, g = am.plane_best_zero_one(E, p, targets, directions=360)
    # tokens 0 and 2 are opposite with the same class: one of them is always wrong
    assert float(best) == pytest.approx(0.2)
    assert g.shape == (2,)
    m = am.margins(am.scores(am.plane_to_matrix(g), E, torch.eye(2)), targets)
    assert bool(m[0] > 0) and bool(m[1] > 0)
    Eb = torch.stack([E, torch.tensor([[1.0, 0.0], [-1.0, 0.1], [0.6, 0.8]])])
    bestb, gb = am.plane_best_zero_one(Eb, p, targets, directions=360)
    assert bestb.shape == (2,) and gb.shape == (2, 2) and float(bestb[1]) == 0.0
    with pytest.raises(ValueError, match="directions"):
        am.plane_best_zero_one(E, p, targets, directions=0)


def test_plane_gradient_hessian_against_autograd():
    E = am.sphere_embeddings(5, 2, generator=config.generator(4))
    p, targets = am.zipf_frequencies(5), torch.arange(5) % 2
    g = torch.tensor([0.3, -1.2])
    grad, H = am.plane_gradient_hessian(g, E, p, targets)

    def f(h):
        return am.loss(am.plane_to_matrix(h), E, torch.eye(2), p, targets)

    torch.testing.assert_close(grad, torch.func.grad(f)(g))
    torch.testing.assert_close(H, torch.autograd.functional.hessian(f, g))


def test_plane_minimiser_finds_stationary_point_or_reports_separable():
    E = torch.stack([am.sphere_embeddings(7, 2, generator=config.generator(s)) for s in range(6)])
    p, targets = am.zipf_frequencies(7), torch.arange(7) % 2
    g, gnorm = am.plane_minimiser(E, p, targets, iterations=40)
    best, _ = am.plane_best_zero_one(E, p, targets)
    inseparable = best > 0
    assert bool(inseparable.any())
    assert bool((gnorm[inseparable] < 1e-10).all())
    # a stationary point of a convex function is its minimiser: no neighbour is lower
    U = torch.eye(2)
    for i in inseparable.nonzero().flatten().tolist():
        here = am.loss(am.plane_to_matrix(g[i]), E[i], U, p, targets)
        for dg in torch.eye(2) * 1e-3:
            assert am.loss(am.plane_to_matrix(g[i] + dg), E[i], U, p, targets) >= here
    with pytest.raises(ValueError, match="iterations"):
        am.plane_minimiser(E, p, targets, iterations=0)


def test_plane_functions_reject_bad_shapes():
    with pytest.raises(ValueError, match="g must"):
        am.plane_to_matrix(torch.tensor(1.0))
    p, targets = torch.tensor([0.5, 0.5]), torch.arange(2)
    with pytest.raises(ValueError, match="W must"):
        am.plane_gradient_hessian(torch.zeros(3), torch.eye(2), p, targets)
    with pytest.raises(ValueError, match="E must"):
        am.plane_minimiser(torch.ones(2, 3), p, targets)
    with pytest.raises(ValueError, match="E must"):
        am.plane_best_zero_one(torch.ones(2, 3), p, targets)


def test_smoothness_bounds_the_plane_hessian():
    """lambda = (1/2) max eig E^T diag(p) E: the Hessian in g, sum_x p_x s(1 - s) e_x e_x^T, is
    at most lambda / 2 (reached at g = 0), and a step on W moves g by twice the step, so GD on W
    is stable below 2 / lambda."""
    E = am.correlated_pair(torch.tensor([0.0, 0.95], dtype=torch.float64))          # (2, 2, 2)
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    lam = am.smoothness(E, p)
    assert lam.shape == (2,)
    assert torch.allclose(lam[0], torch.tensor(0.375, dtype=torch.float64))        # p_max / 2
    gen = torch.Generator().manual_seed(0)
    for b in range(2):
        for g in [torch.zeros(2, dtype=torch.float64), torch.randn(2, generator=gen, dtype=torch.float64)]:
            _, H = am.plane_gradient_hessian(g, E[b], p, torch.arange(2))
            top = float(torch.linalg.eigvalsh(H)[-1])
            assert top <= float(lam[b]) / 2 + 1e-12
            if not bool(g.any()):
                assert abs(top - float(lam[b]) / 2) < 1e-12
    with pytest.raises(ValueError, match="p"):
        am.smoothness(E[0], torch.ones(3, dtype=torch.float64) / 3)
