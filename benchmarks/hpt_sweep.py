"""One learning-rate transfer sweep of DenseAMs: batched (one tensor program) against one model at a time.

Usage: python benchmarks/hpt_sweep.py [--D 32] [--lrs 13] [--seeds 3] [--steps 200] [--threads 1]

Both sides train the same models (same Setup, learning rates, steps) on the same device; the looped side
builds one single-run Sweep per (learning rate, seed). Prints both wall times and their ratio, then the
batched sweep's time on the CPU and on the GPU (when torch sees one) and their ratio.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
from timing import devices, report_devices, seconds, threads_option, timed, use_threads
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
    threads_option(ap)
    args = ap.parse_args()
    use_threads(args.threads)
    dev = damlib.device()
    setup = dm.proportional(args.D, activation=args.activation, optimizer=args.optimizer)
    lrs = replace(dm.sweep_plan(), n_lr=args.lrs).lrs(args.optimizer)
    runs = args.lrs * args.seeds
    print(f"device={dev} threads={torch.get_num_threads()} {setup}\n{runs} runs x {args.steps} steps")

    def batched(device=dev):
        return dm.sweep(setup, lrs, seeds=args.seeds, steps=args.steps, progress=False, device=device)

    def looped():
        for lr in tqdm(lrs.tolist(), desc="one at a time"):
            for s in range(args.seeds):
                dm.sweep(setup, [lr], seeds=1, seed=s, steps=args.steps, progress=False)

    dm.sweep(setup, lrs[:2], seeds=1, steps=5, progress=False)          # warm-up
    t_batched, history = timed(batched, dev, warmup=False)
    t_loop = seconds(looped, dev, warmup=False)
    print(f"batched: {t_batched:.2f} s   one at a time: {t_loop:.2f} s   ratio: {t_loop / t_batched:.1f}x")
    print(f"optimal base lr (batched sweep): {dm.optimal_lr(history):.4g}")
    report_devices("batched sweep", {d: seconds(lambda d=d: batched(d), d) for d in devices()})


if __name__ == "__main__":
    main()
