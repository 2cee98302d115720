"""Run-time configuration: device, run scale, seeding.

Two environment variables steer every notebook and script:

``DAMLIB_DEVICE``
    ``cpu``, ``cuda`` or ``cuda:N``. Unset: CUDA when available, else the CPU.
``DAMLIB_SCALE``
    ``ci`` (seconds per notebook, used by the tests), ``book`` (the default: the
    rendered book on a laptop CPU in minutes) or ``paper`` (the papers' own sizes).
"""

from __future__ import annotations

import os
import re
from typing import TypeVar

import torch

SCALES = ("ci", "book", "paper")
DEFAULT_SCALE = "book"

T = TypeVar("T")


def device() -> torch.device:
    """The torch device every experiment runs on.

    ``DAMLIB_DEVICE`` overrides the automatic choice (CUDA when present, else CPU).
    """
    name = os.environ.get("DAMLIB_DEVICE", "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ValueError(
            f"DAMLIB_DEVICE must be 'cpu', 'cuda' or 'cuda:N', got {name!r}"
        )
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"DAMLIB_DEVICE={name!r} but this torch build sees no CUDA device "
            "(install a CUDA build of torch, or unset DAMLIB_DEVICE)"
        )
    return torch.device(name)


def scale() -> str:
    """The run scale named by ``DAMLIB_SCALE``: one of ``ci``, ``book``, ``paper``."""
    name = os.environ.get("DAMLIB_SCALE", "").strip() or DEFAULT_SCALE
    if name not in SCALES:
        raise ValueError(
            f"DAMLIB_SCALE must be one of {', '.join(SCALES)}, got {name!r}"
        )
    return name


def by_scale(*, ci: T, book: T, paper: T) -> T:
    """Pick the value for the current run scale.

    A notebook's parameters cell states all three, so a reader sees what ran
    and what the paper ran::

        steps = by_scale(ci=20, book=200, paper=1000)
    """
    return {"ci": ci, "book": book, "paper": paper}[scale()]


def generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A torch random generator seeded with ``seed``, on ``device``.

    Every random draw in damlib takes an explicit generator, so one experiment
    gives the same numbers on every run on the same machine.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    gen = torch.Generator(device=torch.device("cpu") if device is None else device)
    gen.manual_seed(seed)
    return gen
