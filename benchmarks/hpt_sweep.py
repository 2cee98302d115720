"""One learning-rate transfer sweep of DenseAMs: batched (one tensor program) against one model at a time.

Usage: python benchmarks/hpt_sweep.py [--D 32] [--lrs 13] [--seeds 3] [--steps 200] [--threads 1]

Both sides train the same models (same Setup, learning rates, steps) on the same device; the looped side
builds one single-run Sweep per (learning rate, seed). Prints both wall times and their ratio.
"""

from __future__ import annotations

import argparse
import time

import torch
from tqdm.auto import tqdm

import damlib
from damlib import denseam as dm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--D", type=int, default=32)
    ap.add_argument("--lrs", type=int, default=13)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = damlib.device()
    setup = dm.proportional(args.D, activation=args.activation, optimizer=args.optimizer)
    lrs = torch.logspace(-3, 0, args.lrs) if args.optimizer == "sgd" else torch.logspace(-4, -0.5, args.lrs)
    runs = args.lrs * args.seeds
    print(f"device={dev} threads={torch.get_num_threads()} {setup}\n{runs} runs x {args.steps} steps")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    dm.sweep(setup, lrs[:2], seeds=1, steps=5, progress=False)          # warm-up
    sync()
    t0 = time.perf_counter()
    batched = dm.sweep(setup, lrs, seeds=args.seeds, steps=args.steps, progress=False)
    sync()
    t_batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    looped = []
    for lr in tqdm(lrs.tolist(), desc="one at a time"):
        for s in range(args.seeds):
            looped.append(dm.sweep(setup, [lr], seeds=1, seed=s, steps=args.steps, progress=False).final)
    sync()
    t_loop = time.perf_counter() - t0
    print(f"batched: {t_batched:.2f} s   one at a time: {t_loop:.2f} s   ratio: {t_loop / t_batched:.1f}x")
    print(f"optimal base lr (batched sweep): {dm.optimal_lr(batched):.4g}")


if __name__ == "__main__":
    main()
