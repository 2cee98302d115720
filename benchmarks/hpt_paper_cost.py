"""What the `paper` scale of the hpt chapters costs: seconds per step of one transfer sweep at each paper size.

A transfer figure trains, for each size, one sweep of ``n_lr x seeds`` models (17 x 5 at paper scale) for
``steps`` steps (3,000). This script builds each paper-scale sweep of one recipe (the proportional sizes D = K
= B and the K-only widths), times ``--probe`` optimiser steps on every device of ``timing.devices()``, and
prints seconds per step, the hours one full sweep takes, and the GPU against CPU ratio where there is a GPU.

    python benchmarks/hpt_paper_cost.py [--probe 2] [--activation relu] [--optimizer sgd]
"""

from __future__ import annotations

import argparse
import os

import torch
from timing import devices, report_devices, seconds

from damlib import denseam as dm


def seconds_per_step(setup: dm.Setup, lrs: torch.Tensor, seeds: int, probe: int, device: torch.device) -> float:
    trainer = dm.Trainer(setup, lrs, seeds, device=device)
    stream = dm.batches(trainer.data, setup, probe + 1, generator=trainer.gen)
    trainer.step(*next(stream))                                   # warm-up step, not timed
    return seconds(lambda: [trainer.step(*b) for b in stream], device, warmup=False) / probe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", type=int, default=2, help="timed steps per sweep")
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--optimizer", default="sgd")
    args = ap.parse_args()
    os.environ["DAMLIB_SCALE"] = "paper"
    plan = dm.sweep_plan()
    lrs = plan.lrs(args.optimizer)
    print(f"paper grid: {plan.n_lr} learning rates x {plan.seeds} seeds x {plan.steps} steps per sweep; "
          f"{args.activation}, {args.optimizer}; threads={torch.get_num_threads()}")
    setups = ([dm.proportional(D, activation=args.activation, optimizer=args.optimizer) for D in plan.sizes]
              + [dm.k_only(K, activation=args.activation, optimizer=args.optimizer) for K in plan.widths])
    total = {d: 0.0 for d in devices()}
    for s in setups:
        times = {d: seconds_per_step(s, lrs, plan.seeds, args.probe, d) for d in devices()}
        print(f"{s.regime:12s} D={s.D:<5d} K={s.K:<6d} B={s.B:<5d}  "
              + "  ".join(f"{d.type}: {t:.3f} s/step = {t * plan.steps / 3600:.2f} h per sweep"
                          for d, t in times.items()))
        for d, t in times.items():
            total[d] += t * plan.steps
    print(f"\none recipe at all {len(setups)} sizes: "
          + ", ".join(f"{d.type} {t / 3600:.1f} h" for d, t in total.items()))
    report_devices("one recipe at all sizes", total)


if __name__ == "__main__":
    main()
