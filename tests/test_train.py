import pytest
import torch

from damlib import DivergenceError, checks, config, train
from damlib import memory as am

pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def problem(memory_problem):
    return memory_problem


def test_sweep_matches_memory_descend_per_run(problem):
    E, U, p, targets = problem
    lrs = torch.tensor([0.1, 1.0, 5.0])
    W0 = torch.zeros(4, 4)
    run = train.sweep(W0, E, U, p, targets, lr=lrs, steps=7, record=("W", "loss", "margins", "zero_one"))
    assert run["W"].shape == (8, 3, 4, 4) and run["loss"].shape == (8, 3)
    assert run["margins"].shape == (8, 3, len(targets))
    for i, lr in enumerate(lrs.tolist()):
        path = am.descend(W0, E, U, p, targets, lr=lr, steps=7)
        torch.testing.assert_close(run["W"][:, i], path)
        S = am.scores(path, E, U)
        torch.testing.assert_close(run["loss"][:, i], am.loss_from_scores(S, p, targets))
        torch.testing.assert_close(run["margins"][:, i], am.margins(S, targets))
        torch.testing.assert_close(run["zero_one"][:, i], am.zero_one_loss(S, p, targets))
    torch.testing.assert_close(run.W, run["W"][-1])


def test_sweep_batched_embeddings_and_frequencies_and_padding(problem):
    E, U, p, targets = problem
    # two problems: E and a copy padded with zero columns (d = 4 -> 6); same scores, same runs
    Ep = torch.cat([E, torch.zeros(len(E), 2)], -1)
    Up = torch.cat([U, torch.zeros(len(U), 2)], -1)
    p2 = torch.stack([p, am.uniform_frequencies(len(E))])
    run = train.sweep(torch.zeros(6, 6), Ep, Up, p2, targets, lr=2.0, steps=5, record=("scores",))
    for i in range(2):
        S = am.scores(am.descend(torch.zeros(4, 4), E, U, p2[i], targets, lr=2.0, steps=5), E, U)
        torch.testing.assert_close(run["scores"][:, i], S)


def test_sweep_records_only_requested_steps(problem):
    E, U, p, targets = problem
    run = train.sweep(torch.zeros(4, 4), E, U, p, targets, lr=1.0, steps=20, record=("loss",),
                      at=[0, 5, 20, 5])
    assert run.steps.tolist() == [0, 5, 20] and run["loss"].shape == (3,)
    full = train.sweep(torch.zeros(4, 4), E, U, p, targets, lr=1.0, steps=20)
    torch.testing.assert_close(run["loss"], full["loss"][[0, 5, 20]])


def test_first_perfect_step_is_first_step_with_all_margins_positive():
    E = am.correlated_pair(torch.tensor([0.5, 0.9, 1.0]))
    p = torch.tensor([0.8, 0.2])
    targets = torch.arange(2)
    first = train.first_perfect_step(E, p, targets, lr=torch.tensor([1.0, 1.0, 1.0]), steps=300)
    for i in range(3):
        S = am.scores(am.descend(torch.zeros(2, 2), E[i], torch.eye(2), p, targets, lr=1.0, steps=300),
                      E[i], torch.eye(2))
        ok = (am.margins(S, targets) > 0).all(-1)
        expected = int(ok.nonzero()[0]) if ok.any() else -1
        assert int(first[i]) == expected
    assert int(first[2]) == -1  # alpha = 1: identical embeddings, opposite classes


def test_sweep_sgd_uses_minibatches_and_true_loss(problem):
    E, U, p, targets = problem
    gen = config.generator(0)
    run = train.sweep(torch.zeros(4, 4), E, U, p, targets, lr=torch.tensor([0.5, 0.5]), steps=30,
                      record=("W", "loss"), batch_size=3, generator=gen)
    # the two runs share lr and start but draw different batches
    assert not torch.allclose(run["W"][-1, 0], run["W"][-1, 1])
    S = am.scores(run["W"], E, U)
    torch.testing.assert_close(run["loss"], am.loss_from_scores(S, p, targets))
    again = train.sweep(torch.zeros(4, 4), E, U, p, targets, lr=torch.tensor([0.5, 0.5]), steps=30,
                        record=("W",), batch_size=3, generator=config.generator(0))
    torch.testing.assert_close(again["W"], run["W"])


def test_sweep_sharpness_matches_memory(problem):
    E, U, p, targets = problem
    run = train.sweep(torch.zeros(4, 4), E, U, p, targets, lr=1.0, steps=3, record=("W", "sharpness"))
    torch.testing.assert_close(run["sharpness"], am.sharpness(run["W"], E, U, p, targets))


def test_sweep_refuses_a_non_finite_start(problem):
    E, U, p, targets = problem
    with pytest.raises(ValueError, match="W0"):
        train.sweep(torch.full((4, 4), float("nan")), E, U, p, targets, lr=1.0, steps=3, record=())


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(lr=-1.0), "lr"),
        (dict(lr=float("inf")), "lr"),
        (dict(steps=0), "steps"),
        (dict(record=("loss", "nope")), "record"),
        (dict(record="loss"), "record"),
        (dict(at=[0, 99]), "at"),
        (dict(batch_size=0), "batch_size"),
        (dict(p=torch.tensor([0.5, 0.5, 0.1, 0, 0, 0])), "p"),
        (dict(targets=torch.tensor([0, 1, 2, 3, 0, 1])), "targets"),
        (dict(W0=torch.zeros(3, 4)), "W0"),
        (dict(lr=torch.ones(5)), "broadcast"),
    ],
)
def test_sweep_bad_input(problem, change, match):
    E, U, p, targets = problem
    kwargs = dict(W0=torch.zeros(4, 4), E=E, U=U, p=p, targets=targets, lr=1.0, steps=3)
    kwargs.update(change)
    if "lr" in change and isinstance(change["lr"], torch.Tensor):
        kwargs["W0"] = torch.zeros(2, 4, 4)
    with pytest.raises(ValueError, match=match):
        train.sweep(kwargs.pop("W0"), kwargs.pop("E"), kwargs.pop("U"), kwargs.pop("p"),
                    kwargs.pop("targets"), **kwargs)


def test_plane_picture_matches_plane_descent():
    E = am.correlated_pair(0.95)
    p = torch.tensor([0.75, 0.25])
    targets = torch.arange(2)
    out = train.plane_picture(E, p, targets, lr=torch.tensor([10.0, 1.0]), steps=12, resolution=9,
                              g0_range=(-1, 8), g1_range=(-17, 10), fields=("loss", "zero_one", "sharpness"))
    assert out["points"].shape == (9, 9, 2) and out["loss"].shape == (9, 9) and out["sharpness"].shape == (9, 9)
    assert out["path"].shape == (13, 2, 2) and out["path_loss"].shape == (13, 2)
    # GD on W restricted to the plane is GD on g with twice the step
    g = torch.zeros(2)
    for _ in range(12):
        m = torch.stack([E[0] @ g, -(E[1] @ g)])
        g = g + 2 * 10.0 * (p[0] * torch.sigmoid(-m[0]) * E[0] - p[1] * torch.sigmoid(-m[1]) * E[1])
    torch.testing.assert_close(out["path"][-1, 0], g)
    W = am.plane_to_matrix(out["points"])
    torch.testing.assert_close(out["loss"], am.loss(W, E, torch.eye(2), p, targets))
    with pytest.raises(ValueError, match="E"):
        train.plane_picture(torch.ones(2, 3), p, targets, lr=1.0, steps=2)


def test_plane_states_match_single_runs():
    states = train.plane_states([0.5, 0.95], [0.75], [1.0, 10.0], steps=6, resolution=9)
    assert len(states) == 4
    E = am.correlated_pair(0.95)
    p, targets = torch.tensor([0.75, 0.25], dtype=torch.float64), torch.arange(2)
    state = states[(0.95, 0.75, 10.0)]
    single = train.plane_picture(E, p, targets, lr=10.0, steps=6, resolution=2)
    torch.testing.assert_close(torch.as_tensor(state["path"]), single["path"][:, 0], rtol=0, atol=1e-12)
    loss = am.landscape(torch.as_tensor(state["points"]), E, p, targets)["loss"]
    torch.testing.assert_close(torch.as_tensor(state["loss"]), loss, rtol=1e-12, atol=0)
    # the window holds the whole trajectory
    points = state["points"]
    assert points[..., 0].min() <= state["path"][:, 0].min()
    assert points[..., 1].max() >= state["path"][:, 1].max()
    with pytest.raises(ValueError, match="alpha"):
        train.plane_states([2.0], [0.5], [1.0])
    with pytest.raises(ValueError, match="p1s"):
        train.plane_states([0.5], [1.0], [1.0])
    with pytest.raises(ValueError, match="lrs"):
        train.plane_states([0.5], [0.5], [])


def test_first_perfect_step_bad_input():
    E = am.correlated_pair(0.5)
    with pytest.raises(ValueError, match="p"):
        train.first_perfect_step(E, torch.tensor([0.7, 0.7]), torch.arange(2), lr=1.0, steps=3)
    with pytest.raises(ValueError, match="steps"):
        train.first_perfect_step(E, torch.tensor([0.5, 0.5]), torch.arange(2), lr=1.0, steps=0)
    with pytest.raises(ValueError, match="lr"):
        train.first_perfect_step(E, torch.tensor([0.5, 0.5]), torch.arange(2), lr=-2.0, steps=3)


@pytest.mark.parametrize("block", [1, 7, None])
def test_block_checks_find_the_per_step_first_perfect_step(monkeypatch, block):
    """sweep checks its scores for blocks of steps at once; the first perfect step is the one of a
    check after every step, whatever the block (1: per step; 7: blocks that do not divide the
    300 steps; the default: one block)."""
    E = am.correlated_pair(torch.tensor([0.5, 0.7, 0.9, 1.0]))
    p, targets = torch.tensor([0.8, 0.2]), torch.arange(2)
    if block is not None:
        monkeypatch.setattr(train, "_BLOCK_ELEMENTS", block * 4 * 2 * 2)   # the scores: (4, 2, 2)
    first = train.first_perfect_step(E, p, targets, lr=torch.ones(4), steps=300)
    expected = []
    for i in range(4):
        S = am.scores(am.descend(torch.zeros(2, 2), E[i], torch.eye(2), p, targets, lr=1.0, steps=300),
                      E[i], torch.eye(2))
        ok = (am.margins(S, targets) > 0).all(-1)
        expected.append(int(ok.nonzero()[0]) if ok.any() else -1)
    assert first.tolist() == expected
    assert len(set(expected)) > 2 and expected[-1] == -1   # control: the runs differ, one never gets there


def test_watch_of_a_block_of_steps_is_the_watch_of_each_step():
    values = torch.ones(9, 3)
    values[5, 1] = float("inf")
    values[7, 0] = float("nan")
    per_step, block = checks.Watch(), checks.Watch()
    for t in range(9):
        per_step.see(10 + t, values[t], "x")
    block.see_steps(10, values[:4], "x")
    block.see_steps(14, values[4:], "x")
    for watch in (per_step, block):
        with pytest.raises(DivergenceError) as err:
            watch.check()
        assert err.value.step == 15
    # control: the same blocks without the bad entries pass
    clean = checks.Watch()
    clean.see_steps(10, torch.ones(4, 3), "x")
    clean.check()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_watch_sees_a_single_bad_entry(dtype, bad):
    big = torch.finfo(dtype).max
    watch = checks.Watch()
    x = torch.rand(50, 40, dtype=dtype, generator=torch.Generator().manual_seed(0))
    x[0, 0], x[1, 0] = big, -big                       # the largest finite entries of both signs
    watch.see(1, x, "x")
    watch.check()                                      # control: finite, however large
    x[17, 3] = bad
    watch.see(2, x, "x")
    with pytest.raises(DivergenceError) as err:
        watch.check()
    assert err.value.step == 2
