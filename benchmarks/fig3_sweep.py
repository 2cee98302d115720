"""Time Figure 3's sweep of the `gd` book two ways: damlib's batched sweep, and one run at a time.

Figure 3 of Cabannes, Simsek and Bietti (2024) runs 1,000 independent two-token memories
(10 frequencies p1 x 10 learning rates x 10 correlations), each 1,000 steps of gradient descent
from W0 = 0, and records the first step at which both tokens are classified.

- batched: ``damlib.train.first_perfect_step`` advances all runs together, one tensor program.
- looped: what a plain script does: for each grid point, a ``W`` parameter, ``torch.optim.SGD``,
  and 1,000 steps of forward, backward and optimiser step, checking accuracy at each step.

Both must give the same step counts; the script prints both times and their ratio, then the batched
sweep's time on the CPU and on the GPU (when torch sees one).
Run: ``python benchmarks/fig3_sweep.py [--runs K]`` (``--runs`` times the loop on the first K
grid points only and extrapolates, for a quick look; the default loops over all 1,000).
"""

from __future__ import annotations

import argparse
import time

import torch
from timing import devices, report_devices, seconds, timed
from tqdm.auto import tqdm

import damlib
from damlib import memory as am
from damlib import train


def grid(dtype, device):
    p1 = torch.sigmoid(torch.logspace(-0.5, 0.5, 10, dtype=torch.float64))
    lrs = torch.logspace(-1, 1, 10, dtype=torch.float64)
    alphas = torch.linspace(0.5, 1, 10, dtype=torch.float64)
    P1, LR, AL = torch.meshgrid(p1, lrs, alphas, indexing="ij")
    E = am.correlated_pair(AL.to(device, dtype))                           # (10, 10, 10, 2, 2)
    p = torch.stack([P1, 1 - P1], -1).to(device, dtype)                    # (10, 10, 10, 2)
    return E, p, LR.to(device, dtype)


def looped_run(E, p, lr, steps, targets, U):
    """One run, the plain way: a parameter, an optimiser, a Python loop over steps."""
    W = torch.nn.Parameter(torch.zeros(2, 2, dtype=E.dtype, device=E.device))
    opt = torch.optim.SGD([W], lr=lr)
    first = -1
    for t in range(steps + 1):
        scores = E @ W @ U.T
        if first < 0 and bool((am.margins(scores.detach(), targets) > 0).all()):
            first = t
        if t == steps:
            break
        loss = (p * torch.nn.functional.cross_entropy(scores, targets, reduction="none")).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="grid points to loop over (1..1000)")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype, device = torch.float64, damlib.device()
    E, p, lr = grid(dtype, device)
    targets = torch.arange(2, device=device)
    U = torch.eye(2, dtype=dtype, device=device)

    def batched_on(dev):
        E, p, lr = grid(dtype, dev)
        return lambda: train.first_perfect_step(E, p, torch.arange(2, device=dev), lr=lr, steps=args.steps)

    train.first_perfect_step(E[:1, :1, :1], p[:1, :1, :1], targets, lr=lr[:1, :1, :1], steps=5)  # warm-up
    t_batched, batched = timed(batched_on(device), device, warmup=False)

    flat_E, flat_p, flat_lr = E.reshape(-1, 2, 2), p.reshape(-1, 2), lr.reshape(-1)
    runs = min(max(args.runs, 1), flat_E.shape[0])
    start = time.perf_counter()
    looped = [looped_run(flat_E[i], flat_p[i], float(flat_lr[i]), args.steps, targets, U)
              for i in tqdm(range(runs), desc="looped runs")]
    t_looped = (time.perf_counter() - start) * flat_E.shape[0] / runs

    same = torch.tensor(looped, device=device) == batched.reshape(-1)[:runs]
    print(f"device: {device}, runs: {flat_E.shape[0]} x {args.steps} steps (looped over {runs}"
          f"{'' if runs == flat_E.shape[0] else ', time extrapolated'})")
    print(f"batched damlib sweep : {t_batched:8.2f} s")
    print(f"looped torch.optim   : {t_looped:8.2f} s")
    print(f"speed-up             : {t_looped / t_batched:8.1f}x")
    print(f"same step counts     : {int(same.sum())}/{runs}")
    if not bool(same.all()):
        bad = (~same).nonzero().flatten()[:5].tolist()
        raise SystemExit(f"step counts differ at runs {bad}")
    report_devices("batched sweep", {d: seconds(batched_on(d), d) for d in devices()})


if __name__ == "__main__":
    main()
