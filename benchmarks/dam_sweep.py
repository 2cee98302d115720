"""Batched against looped: a sweep over beta of the vMF dense associative memory (damlib.dam).

Trains ``B`` models (one per beta) for a few Adam steps, once as one batch (leading axis) and once
one model after the other, and prints the two wall times and their ratio, then the batched time on the
CPU and on the GPU (when torch sees one). Not run by the tests.

    python benchmarks/dam_sweep.py [--betas 12] [--memories 10] [--digits 2000] [--steps 50]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from timing import devices, report_devices, seconds, timed
from tqdm.auto import tqdm

import damlib
from damlib import dam, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", type=int, default=12)
    parser.add_argument("--memories", type=int, default=10)
    parser.add_argument("--digits", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    device = damlib.device()
    digits = data.load_mnist()

    def problem(dev):
        x = data.centre_and_normalise(digits.train_x[: args.digits]).to(dev)
        y = digits.train_y[: args.digits].to(dev)
        betas = torch.tensor(np.geomspace(1.0, 12.0, args.betas), dtype=x.dtype, device=dev)
        start = dam.init_from_data(x, y, args.memories, 10, betas, generator=damlib.generator(0),
                                   batch=(args.betas,))
        return start, x, y

    def batched(start, x, y):
        return lambda: dam.train(start, x, y, steps=args.steps, lr=0.02).model

    def looped(start, x, y):
        return lambda: torch.stack([
            dam.train(dam.DAM(start.w[b], start.logits[b], start.beta[b]), x, y, steps=args.steps, lr=0.02).model.w
            for b in tqdm(range(args.betas), desc="looped")])

    problem_here = problem(device)
    t_batched, trained = timed(batched(*problem_here), device, warmup=False)
    t_looped, looped_w = timed(looped(*problem_here), device, warmup=False)
    gap = (looped_w - trained.w).abs().max().item()
    print(f"device {device}, {args.betas} models x {args.memories} memories, {args.digits} digits, "
          f"{args.steps} steps")
    print(f"batched {t_batched:.2f} s, looped {t_looped:.2f} s, ratio {t_looped / t_batched:.2f}; "
          f"largest difference of the memories {gap:.1e}")
    report_devices("batched sweep", {d: seconds(batched(*problem(d)), d) for d in devices()})


if __name__ == "__main__":
    main()
