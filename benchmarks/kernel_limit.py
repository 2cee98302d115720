"""How close the two heaviest kernels come to the machine's matmul limit.

Usage: python benchmarks/kernel_limit.py [--sizes 64 128 256] [--steps 20] [--threads 0] [--rounds 5]

For the hpt sweep (ReLU, SGD, 13 learning rates x 3 seeds, D = K = B) at each size, and for one
full-batch step of the gd transformer (4 learning rates, d = 64, T = 32, 1,536 sequences in chunks
of 128, as in the book), it counts the floating-point operations of the work with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls only: what the limit is about; the achieved
rate is counted flops over wall time, whatever the nominal count), times the work, and prints the
achieved GFLOP/s against two limits measured in the same run: ``torch.bmm`` on the work's
typical batch of shapes (the hpt step's ``(R, B, D) @ (R, D, K)``; for the transformer the
attention products of one part of 32 sequences, ``(R 32, T, d) @ (R 32, d, T)``), and one
2048 x 2048 ``torch.mm``. Each is the best of ``--rounds`` timings taken in turn. On the GPU
(when torch sees one) the same is printed for the GPU.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from timing import devices, seconds, threads_option, use_threads
from torch.utils.flop_counter import FlopCounterMode

import damlib
from damlib import denseam as dm
from damlib import transformer as tf
from damlib.data import load_shakespeare_table


# torch's counter knows baddbmm but not its in-place form, which the hpt step uses for one of its
# five matmuls (the gradient of W accumulates into the first product): count it with the same formula
def _baddbmm_flops(self_shape, a_shape, b_shape, out_shape=None, **kwargs) -> int:
    (batch, m, k), n = a_shape, b_shape[-1]
    return 2 * batch * m * k * n


IN_PLACE = {torch.ops.aten.baddbmm_: _baddbmm_flops}


def counted(fn) -> tuple[int, Counter]:
    """Matmul flops of one call of ``fn`` and the flops per (op, shapes) that made them."""
    by_shape: Counter = Counter()
    with FlopCounterMode(display=False, custom_mapping=IN_PLACE) as counter:
        fn()
    total = counter.get_total_flops()
    for op, flops in counter.get_flop_counts()["Global"].items():
        by_shape[str(op)] += flops
    return total, by_shape


def bmm_work(batch: int, m: int, k: int, n: int, device: torch.device, dtype=torch.float32):
    """``torch.bmm`` on ``(batch, m, k) @ (batch, k, n)``, as a call and its flops."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(batch, m, k, generator=gen, device=device, dtype=dtype)
    b = torch.randn(batch, k, n, generator=gen, device=device, dtype=dtype)
    return (lambda: torch.bmm(a, b)), 2 * batch * m * k * n


def mm_work(device: torch.device, side: int = 2048, dtype=torch.float32):
    """One large square ``torch.mm`` (the machine's matmul peak, near enough), as a call and its flops."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(side, side, generator=gen, device=device, dtype=dtype)
    return (lambda: a @ a), 2 * side**3


def best_rates(works: dict[str, tuple], device: torch.device, rounds: int) -> dict[str, float]:
    """GFLOP/s of each ``name: (call, flops, calls per timing)``, each the best of ``rounds`` timings
    taken in turn: on a shared machine the quickest time is the least disturbed, and alternating
    the works exposes them to the same disturbances."""
    best = dict.fromkeys(works, float("inf"))
    for _ in range(rounds):
        for name, (fn, _, repeat) in works.items():
            best[name] = min(best[name], seconds(fn, device, repeat=repeat, warmup=False))
    return {name: flops / best[name] / 1e9 for name, (_, flops, _) in works.items()}


def report(what: str, rates: dict[str, float]) -> None:
    """Print the achieved rate of ``what`` (``rates["work"]``) as a fraction of the others."""
    achieved = rates.pop("work")
    parts = "  ".join(f"{achieved / g:5.0%} of {name} ({g:.0f} GFLOP/s)" for name, g in rates.items())
    print(f"{what:34s} {achieved:7.1f} GFLOP/s  {parts}")


def hpt_sweep(D: int, steps: int, device: torch.device, *, drop: bool = False, optimizer: str = "sgd"):
    """The sweep (ReLU, 13 learning rates x 3 seeds, D = K = B, final loss only) as a call, and its
    bmm shapes. Without ``drop`` every run is computed to the end, the diverged ones too: the
    kernel on the full batch; with it, as in the book, the diverged runs are dropped from the batch
    (the same numbers, less work)."""
    setup = dm.proportional(D, activation="relu", optimizer=optimizer)
    lrs = dm.sweep_plan().lrs(optimizer)
    seeds = 3

    def work():
        trainer = dm.Trainer(setup, lrs, seeds, device=device)
        return trainer.run(steps, log_every=steps, progress=False, **({} if drop else {"drop_every": None}))

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

    return work, (4 * 32, 32, 64, 32)    # the attention products of a part: (R B, T, d) @ (R B, d, T)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--steps", type=int, default=20)
    threads_option(ap)
    ap.add_argument("--rounds", type=int, default=5, help="timings of each work; the best is kept")
    args = ap.parse_args()
    use_threads(args.threads)
    for device in devices():
        mm = (*mm_work(device), 5)
        print(f"device={device} threads={torch.get_num_threads()} (best of {args.rounds} timings each)")
        for D in args.sizes:
            work, (runs, B, Dm, K) = hpt_sweep(D, args.steps, device)
            work()                                              # warm-up
            flops, _ = counted(work)
            rates = best_rates({"work": (work, flops, 1), "bmm": (*bmm_work(runs, B, Dm, K, device), 20),
                                "mm": mm}, device, args.rounds)
            report(f"hpt sweep D=K=B={D} ({runs} runs)", rates)
            nominal = 12 * K * Dm * B * runs * args.steps
            print(f"  counted {flops / nominal:.2f} x 12 K D B per model-step (the forward and "
                  "backward of both matmuls, loss evaluations aside)")
            dropping, _ = hpt_sweep(D, args.steps, device, drop=True)
            dropping()
            kept, _ = counted(dropping)
            times = {name: min(seconds(fn, device, repeat=1, warmup=False) for _ in range(args.rounds))
                     for name, fn in (("all", work), ("drop", dropping))}
            print(f"  diverged runs dropped (as in the book): {1 - kept / flops:.0%} of the matmul flops "
                  f"skipped, {times['all'] / times['drop']:.2f}x faster")
        work, (batch, m, k, n) = transformer_step(device)
        work()
        flops, by_shape = counted(work)
        rates = best_rates({"work": (work, flops, 1), "bmm": (*bmm_work(batch, m, k, n, device), 20),
                            "mm": mm}, device, args.rounds)
        report("transformer full-batch step", rates)
        top = ", ".join(f"{op} {f / flops:.0%}" for op, f in by_shape.most_common(3))
        print(f"  transformer flops by op: {top}")

if __name__ == "__main__":
    main()
