"""The hpt step's matmuls in the trainer's operand layout against the layouts it does not use.

Usage: python benchmarks/hpt_layouts.py [--runs 39] [--lrs 13] [--threads 1] [--rounds 7]

The trainer (``damlib.denseam.model._loss_and_grads``) keeps ``W`` as ``(R, K, D)`` and reads it
transposed where a product needs ``W^T``. For the book's two kinds of shape (K-only: D = B = 32,
K = 1,024; proportional: D = K = B = 64 and 128), this times, for ``R`` runs, each kind of product
of the step three ways:

- ``trainer``: as the step computes it;
- ``W^T stored``: with the weights stored transposed, ``(R, D, K)``, and the gradient of ``W``
  formed transposed to match;
- ``grouped``: the runs that share a mini-batch (``--lrs`` learning rates of one seed) as one
  GEMM, ``x (B, D) @ [W_1^T ... W_n^T]``, for the pre-activations only (the other products have a
  different operand per run).

Each line gives the GFLOP/s, the alternative's speed against the trainer's, and whether the two
results are equal bit for bit. Last, the same ``torch.bmm`` on ``--lrs`` runs, whose operands stay
in the cache from one call to the next, against ``--runs`` runs, whose operands do not: the gap is
what streaming the batch from memory costs. Each time is the best of ``--rounds``
timings, the two of a comparison taken in turn.
"""

from __future__ import annotations

import argparse

import torch
from timing import devices, seconds, threads_option, use_threads

SHAPES = {"K-only": (32, 32, 1024), "D = 64": (64, 64, 64), "D = 128": (128, 128, 128)}  # (B, D, K)


def best(fns, device, rounds: int) -> list[float]:
    """The best of ``rounds`` mean times (10 calls each, in seconds) of each of ``fns``, timed in
    turn within every round, so that the machine's drifts of speed fall on all of them alike."""
    times = [[seconds(fn, device, repeat=10) for fn in fns] for _ in range(rounds)]
    return [min(column) for column in zip(*times)]


def products(R: int, n: int, B: int, D: int, K: int, device) -> dict[str, tuple]:
    """``name: (flops, trainer's call, alternative's call, (trainer's result, alternative's) as
    the same array)`` for each product compared."""
    gen = torch.Generator(device=device).manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device)

    W, x, a = randn(R, K, D), randn(R, B, D), randn(R, B, K)
    WT = W.transpose(1, 2).contiguous()                      # the same weights stored (R, D, K)
    group = W[:n].reshape(n * K, D)                          # n runs of one mini-batch
    flops, grouped_flops = 2 * R * B * D * K, 2 * n * B * D * K
    return {
        "h = x W^T": (flops, lambda: torch.bmm(x, W.transpose(1, 2)), lambda: torch.bmm(x, WT),
                      lambda t, u: (t, u)),
        "x_hat = a W": (flops, lambda: torch.bmm(a, W), lambda: torch.bmm(a, WT.transpose(1, 2)),
                        lambda t, u: (t, u)),
        "grad W = a^T x": (flops, lambda: torch.bmm(a.transpose(1, 2), x),
                           lambda: torch.bmm(x.transpose(1, 2), a), lambda t, u: (t, u.transpose(1, 2))),
        "h, grouped": (grouped_flops, lambda: torch.bmm(x[0].expand(n, B, D), W[:n].transpose(1, 2)),
                       lambda: x[0] @ group.T, lambda t, u: (t, u.view(B, n, K).transpose(0, 1))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=39, help="runs of the sweep (13 learning rates x 3 seeds)")
    ap.add_argument("--lrs", type=int, default=13, help="runs that share a mini-batch (one seed's)")
    ap.add_argument("--rounds", type=int, default=7)
    threads_option(ap, default=1)
    args = ap.parse_args()
    use_threads(args.threads)
    print(f"{args.runs} runs, {args.lrs} per mini-batch, {torch.get_num_threads()} thread(s)")
    for device in devices():
        print(f"--- {device.type}")
        for label, (B, D, K) in SHAPES.items():
            print(f"{label} (B, D, K) = ({B}, {D}, {K}):")
            for name, (flops, trainer, other, pair) in products(args.runs, args.lrs, B, D, K, device).items():
                t_trainer, t_other = best([trainer, other], device, args.rounds)
                same = torch.equal(*pair(trainer(), other()))
                alternative = "grouped" if "grouped" in name else "W^T stored"
                print(f"  {name:15s} trainer {flops / t_trainer / 1e9:6.1f} GFLOP/s   {alternative} "
                      f"{flops / t_other / 1e9:6.1f} GFLOP/s ({t_trainer / t_other:4.2f}x)   "
                      f"bit-equal: {same}")
            gen = torch.Generator(device=device).manual_seed(1)
            calls, flops = [], []
            for R in (args.lrs, args.runs):
                x = torch.randn(R, B, D, generator=gen, device=device)
                W = torch.randn(R, D, K, generator=gen, device=device)
                calls.append(lambda x=x, W=W: torch.bmm(x, W))
                flops.append(2 * R * B * D * K)
            rates = [f / t / 1e9 for f, t in zip(flops, best(calls, device, args.rounds))]
            print(f"  bmm in cache ({args.lrs} runs) {rates[0]:6.1f} GFLOP/s, streamed ({args.runs} runs) "
                  f"{rates[1]:6.1f} GFLOP/s ({rates[0] / rates[1]:4.2f}x)")


if __name__ == "__main__":
    main()
