"""Speed of one full-batch gradient step of the induction-head transformer (damlib.transformer).

Compares, in one run and on one device:
  * a batched learning-rate sweep (R runs on a leading axis) against R single runs in a loop;
  * the gradient accumulated over chunks against the one-shot gradient (and the loop with chunks).
Prints seconds per step and the ratios, then the chunked batched step on the CPU and on the GPU (when
torch sees one). Usage: python benchmarks/transformer_sweep.py [--d 64 --T 32 --n 1024]
"""

from __future__ import annotations

import argparse

import torch
from timing import devices, report_devices, seconds

import damlib
from damlib import transformer as tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--T", type=int, default=32)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dev = damlib.device()
    task = tf.make_task(5)

    def problem(device):
        gen = damlib.generator(0, device)
        seqs = tf.sample_sequences(task, args.n, args.T, generator=gen)
        frozen = tf.init_frozen(65, args.d, args.T, generator=gen)
        return frozen, tf.init_params(frozen, args.runs, generator=gen), seqs

    frozen, params, seqs = problem(dev)
    singles = [{k: v[r:r + 1] for k, v in params.items()} for r in range(args.runs)]

    def time_it(fn, device=dev):
        return seconds(fn, device, repeat=args.repeat)

    batched = time_it(lambda: tf.loss_and_gradient(frozen, params, seqs))
    looped = time_it(lambda: [tf.loss_and_gradient(frozen, p, seqs) for p in singles])
    chunked = time_it(lambda: tf.loss_and_gradient(frozen, params, seqs, chunk=args.chunk))
    looped_chunked = time_it(lambda: [tf.loss_and_gradient(frozen, p, seqs, chunk=args.chunk) for p in singles])
    print(f"device={dev} d={args.d} T={args.T} n={args.n} runs={args.runs} threads={torch.get_num_threads()}")
    print(f"batched sweep  {batched:.3f} s/step")
    print(f"looped runs    {looped:.3f} s/step   (looped / batched = {looped / batched:.2f})")
    print(f"chunks of {args.chunk:<4} {chunked:.3f} s/step   (chunked / one-shot = {chunked / batched:.2f})")
    print(f"looped, chunks {looped_chunked:.3f} s/step   (looped / batched, both chunked = "
          f"{looped_chunked / chunked:.2f})")

    def chunked_on(device):
        frozen, params, seqs = problem(device)
        return time_it(lambda: tf.loss_and_gradient(frozen, params, seqs, chunk=args.chunk), device)

    report_devices(f"batched step in chunks of {args.chunk}, s/step,", {d: chunked_on(d) for d in devices()})


if __name__ == "__main__":
    main()
