"""How close the two heaviest kernels come to the machine's matmul limit.

Usage: python benchmarks/kernel_limit.py [--sizes 64 128 256] [--steps 20] [--threads 0]

For the hpt sweep (ReLU, SGD, 13 learning rates x 3 seeds, D = K = B) at each size, and for one
full-batch step of the gd transformer (4 learning rates, d = 64, T = 32, 1,536 sequences in chunks
of 128, as in the book), it counts the floating-point operations of the work with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls only: what the limit is about; the achieved
rate is counted flops over wall time, whatever the nominal count), times the
work, and prints the achieved GFLOP/s against two limits measured in the same run: ``torch.bmm`` on
the batch of shapes the counter saw most (flop-weighted), and one square ``torch.mm`` of about the
same flop count. On the GPU (when torch sees one) the same is printed for the GPU.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from timing import devices, seconds
from torch.utils.flop_counter import FlopCounterMode

import damlib
from damlib import denseam as dm
from damlib import transformer as tf
from damlib.data import load_shakespeare_table


def counted(fn) -> tuple[int, Counter]:
    """Matmul flops of one call of ``fn`` and the flops per (op, shapes) that made them."""
    by_shape: Counter = Counter()
    with FlopCounterMode(display=False) as counter:
        fn()
    total = counter.get_total_flops()
    for op, flops in counter.get_flop_counts()["Global"].items():
        by_shape[str(op)] += flops
    return total, by_shape


def bmm_limit(batch: int, m: int, k: int, n: int, device: torch.device, dtype=torch.float32) -> float:
    """GFLOP/s of ``torch.bmm`` on ``(batch, m, k) @ (batch, k, n)``."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(batch, m, k, generator=gen, device=device, dtype=dtype)
    b = torch.randn(batch, k, n, generator=gen, device=device, dtype=dtype)
    t = seconds(lambda: torch.bmm(a, b), device, repeat=20)
    return 2 * batch * m * k * n / t / 1e9


def mm_limit(device: torch.device, side: int = 2048, dtype=torch.float32) -> float:
    """GFLOP/s of one large square ``torch.mm`` (the machine's matmul peak, near enough)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(side, side, generator=gen, device=device, dtype=dtype)
    t = seconds(lambda: a @ a, device, repeat=10)
    return 2 * side**3 / t / 1e9


def report(what: str, flops: int, t: float, limits: dict[str, float]) -> None:
    achieved = flops / t / 1e9
    parts = "  ".join(f"{achieved / g:5.0%} of {name} ({g:.0f} GFLOP/s)" for name, g in limits.items())
    print(f"{what:34s} {achieved:7.1f} GFLOP/s  {parts}")


def hpt_sweep(D: int, steps: int, device: torch.device):
    setup = dm.proportional(D, activation="relu", optimizer="sgd")
    lrs = dm.sweep_plan().lrs("sgd")
    seeds = 3

    def work():
        return dm.sweep(setup, lrs, seeds=seeds, steps=steps, log_every=steps, progress=False, device=device)

    runs = len(lrs) * seeds
    # the matmuls of one model-step: forward and backward of x W^T and of the read-out (12 K D B)
    shapes = (runs, setup.B, setup.D, setup.K)
    return work, shapes


def transformer_step(device: torch.device):
    table = load_shakespeare_table()
    task = tf.make_task(5, table)
    gen = damlib.generator(0, device)
    seqs = tf.sample_sequences(task, 1536, 32, generator=gen)
    frozen = tf.init_frozen(len(table.vocab), 64, 32, generator=gen)
    params = tf.init_params(frozen, 4, generator=gen)

    def work():
        return tf.loss_and_gradient(frozen, params, seqs, chunk=128)

    return work, (4 * 128, 32, 64, 32)   # the attention products: (R B, T, d) @ (R B, d, T)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for device in devices():
        peak = mm_limit(device)
        print(f"device={device} threads={torch.get_num_threads()}")
        for D in args.sizes:
            work, (runs, B, Dm, K) = hpt_sweep(D, args.steps, device)
            work()                                              # warm-up
            flops, _ = counted(work)
            t = seconds(work, device, warmup=False)
            limits = {"bmm": bmm_limit(runs, B, Dm, K, device), "mm": peak}
            report(f"hpt sweep D=K=B={D} ({runs} runs)", flops, t, limits)
            nominal = 12 * K * Dm * B * runs * args.steps
            print(f"  counted {flops / nominal:.2f} x 12 K D B per model-step (the forward and "
                  "backward of both matmuls, loss evaluations aside)")
        work, (batch, m, k, n) = transformer_step(device)
        work()
        flops, by_shape = counted(work)
        t = seconds(work, device, warmup=False)
        limits = {"bmm": bmm_limit(batch, m, k, n, device), "mm": peak}
        report("transformer full-batch step", flops, t, limits)
        top = ", ".join(f"{op} {f / flops:.0%}" for op, f in by_shape.most_common(3))
        print(f"  transformer flops by op: {top}")


if __name__ == "__main__":
    main()
