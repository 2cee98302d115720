"""What the benchmarks share: the wall time of a call on a device, and the GPU-against-CPU comparison.

Every benchmark times its batched computation once per device of :func:`devices` (the CPU, and the
first CUDA device when torch sees one) and prints the ratio with :func:`report_devices`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def sync(device: torch.device) -> None:
    """Wait for the queued work of ``device`` (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device, *, repeat: int = 1, warmup: bool = True) -> tuple[float, T]:
    """Mean wall time in seconds of ``fn()`` over ``repeat`` calls on ``device`` (one untimed call first),
    and what the last call returned."""
    if warmup:
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    sync(device)
    return (time.perf_counter() - start) / repeat, out


def seconds(fn: Callable[[], object], device: torch.device, *, repeat: int = 1, warmup: bool = True) -> float:
    """Mean wall time in seconds of ``fn()`` (see :func:`timed`)."""
    return timed(fn, device, repeat=repeat, warmup=warmup)[0]


def threads_option(ap, default: int = 0) -> None:
    """Add the benchmarks' ``--threads`` option to the parser ``ap``; :func:`use_threads` applies it."""
    ap.add_argument("--threads", type=int, default=default, help="torch CPU threads (0: torch's default)")


def use_threads(threads: int) -> None:
    """Set torch's CPU threads to ``threads`` (0 keeps torch's default)."""
    if threads:
        torch.set_num_threads(threads)


def devices() -> list[torch.device]:
    """The devices to compare: the CPU, and ``cuda`` when this torch build sees a GPU."""
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def report_devices(what: str, times: dict[torch.device, float]) -> None:
    """Print the time of ``what`` on each device and the CPU/GPU ratio, or say that no GPU was there."""
    for dev, t in times.items():
        print(f"{what} on {dev.type:4s}: {t:9.3f} s")
    gpu = [t for dev, t in times.items() if dev.type == "cuda"]
    cpu = times.get(torch.device("cpu"))
    if gpu and cpu is not None:
        print(f"GPU against CPU: {cpu / gpu[0]:.1f}x")
    else:
        print("GPU against CPU: not measured (torch sees no CUDA device)")
