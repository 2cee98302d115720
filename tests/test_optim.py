"""The batched optimisers against torch.optim, one run at a time."""

import pytest
import torch

from damlib import dam
from damlib.optim import BatchedAdam, BatchedSGD


def _quadratic_grads(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 2 * (p - target) * torch.arange(1, p.shape[-1] + 1, dtype=p.dtype)


def _torch_runs(optimiser, p0, target, lrs, steps):
    """Each run alone with a torch.optim optimiser: the reference."""
    out = []
    for r, lr in enumerate(lrs):
        p = p0[r].clone().requires_grad_(True)
        opt = optimiser([p], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            p.grad = _quadratic_grads(p.detach(), target[r])
            opt.step()
        out.append(p.detach())
    return torch.stack(out)


def test_batched_adam_and_sgd_match_torch_optim_run_by_run():
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    target = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    lrs = [1e-3, 1e-2, 0.1, 0.5]
    for batched, reference in ((BatchedAdam, torch.optim.Adam), (BatchedSGD, torch.optim.SGD)):
        p = p0.clone()
        opt = batched([p], [torch.tensor(lrs, dtype=torch.float64)])
        for _ in range(50):
            opt.step([_quadratic_grads(p, target)])
        torch.testing.assert_close(p, _torch_runs(reference, p0, target, lrs, 50), rtol=1e-12, atol=1e-12)


def test_batched_adam_reset_forgets_only_the_dead_runs():
    p = torch.ones(3, 2, dtype=torch.float64)
    opt = BatchedAdam([p], [torch.full((3,), 0.1, dtype=torch.float64)])
    opt.step([torch.ones_like(p)])
    opt.reset(torch.tensor([False, True, False]))
    assert bool((opt.m[0][1] == 0).all()) and bool((opt.v[0][1] == 0).all())
    assert bool((opt.m[0][[0, 2]] != 0).all())


def test_krotov_hopfield_training_is_torch_adam_with_clipping():
    g = torch.Generator().manual_seed(3)
    v = torch.rand(40, 6, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.randint(3, (40,), generator=g)
    kw = dict(n_memories=5, power=3, temperature=1.0, loss_power=2, steps=30, lr=0.01, batch_size=8)
    xi = dam.train_kh(v, y, 3, **kw, generator=torch.Generator().manual_seed(7))

    gen = torch.Generator().manual_seed(7)  # the same draws, the steps written with torch.optim.Adam
    ref = dam.kh_initial(5, 9, generator=gen, dtype=v.dtype).requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.01)
    tgt = 2 * torch.nn.functional.one_hot(y, 3).to(v.dtype) - 1
    for _ in range(30):
        idx = torch.randint(len(v), (8,), generator=gen)
        out = dam.kh_outputs(ref, v[idx], power=3, temperature=1.0)
        opt.zero_grad()
        ((out - tgt[idx]) ** 4).sum(-1).mean().backward()
        opt.step()
        with torch.no_grad():
            ref.clamp_(-1, 1)
    torch.testing.assert_close(xi, ref.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("opt", [BatchedSGD, BatchedAdam])
def test_step_without_deltas_is_the_same_step(opt):
    """``deltas=False`` (no temporary per parameter) moves the parameters exactly as ``deltas=True``
    does: recording the updates must not move a trajectory."""
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(4, 6, 3, generator=gen)
    lrs = [torch.tensor([0.1, 0.01, 1.0, 0.3])]
    a, b = p0.clone(), p0.clone()
    oa, ob = opt([a], lrs), opt([b], lrs)
    for _ in range(5):
        g = torch.randn(p0.shape, generator=gen)
        d = oa.step([g])
        assert ob.step([g], deltas=False) is None
        assert d[0].shape == p0.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, p0)
