"""One progress-bar convention for every long loop of damlib.

A bar shows in Jupyter and in scripts and leaves no trace when it ends. The book build sets
``DAMLIB_PROGRESS=0`` (``book/_ext/figures.py``) so that executed pages carry no hidden widget;
a caller may force either way with ``progress=True`` or ``False``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tqdm.auto import tqdm


def enabled(progress: bool | None = None) -> bool:
    """Whether to draw a bar: ``progress`` when given, else ``DAMLIB_PROGRESS`` (default on)."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("DAMLIB_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def bar(iterable: Iterable, *, total: int | None = None, desc: str | None = None,
        progress: bool | None = None):
    """``iterable`` wrapped in a transient tqdm bar, or returned as it is when bars are off."""
    if not enabled(progress):
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False)
