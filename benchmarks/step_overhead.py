"""What a step of the hpt sweep costs besides its arithmetic: the per-step fixed cost.

Usage: python benchmarks/step_overhead.py [--sizes 2 16 32 64 128] [--steps 200] [--threads 1]

A batched sweep (ReLU, 13 learning rates x 3 seeds, D = K = B, every run computed) issues the
same few dozen torch calls per step whatever its size, so at D = 2, where the arithmetic is
negligible, its time per step is the fixed cost of those calls (Python, dispatch, allocation of
the small per-run tensors). For each size and for SGD and Adam it prints the time per step and
the share of it that this fixed cost would be, ``t(smallest) / t(D)``: the part that batching
more work into one call (several sweeps of one size, several steps) could save at most.
"""

from __future__ import annotations

import argparse

import torch
from kernel_limit import hpt_sweep
from timing import devices, seconds, threads_option, use_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 16, 32, 64, 128])
    ap.add_argument("--steps", type=int, default=200)
    threads_option(ap, default=1)  # the book's chapters use one
    ap.add_argument("--rounds", type=int, default=3, help="timings of each sweep; the best is kept")
    args = ap.parse_args()
    use_threads(args.threads)
    for device in devices():
        print(f"{device}, {torch.get_num_threads()} threads, {args.steps} steps, 39 runs:")
        for optimizer in ("sgd", "adam"):
            per_step = {}
            for D in args.sizes:
                work, _ = hpt_sweep(D, args.steps, device, optimizer=optimizer)
                per_step[D] = min(seconds(work, device) for _ in range(args.rounds)) / args.steps
            fixed = per_step[min(args.sizes)]
            for D, t in per_step.items():
                print(f"  {optimizer:4s} D = {D:4d}: {t * 1e3:7.3f} ms a step, fixed cost {fixed / t:6.1%} of it")


if __name__ == "__main__":
    main()
