"""Device discipline: find the tensors damlib creates without saying on which device.

A kernel whose inputs live on a GPU but which calls ``torch.zeros(n)`` builds that tensor on torch's
default device (the CPU), and fails or copies later. On a CPU-only machine such a call runs fine, so
:class:`FactoryAudit`, a torch function mode, records every factory call (``torch.zeros``, ``ones``,
``empty``, ``full``, ``arange``, ``tensor``, ``rand``, ``randn``, ``randint``, ``randperm``, ``eye``,
``linspace``, ``logspace``, and ``as_tensor`` of non-tensor data) made from damlib's own code without a
``device=`` argument. The unit tests run under it (``tests/conftest.py``); with ``DAMLIB_DEVICE_AUDIT=1``
in the environment, importing damlib installs it for the whole process in its raising form, so that a
notebook run at ci scale stops at the first such call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

FACTORIES = {
    torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.tensor, torch.rand, torch.randn,
    torch.randint, torch.randperm, torch.eye, torch.linspace, torch.logspace, torch.as_tensor,
}
_DAMLIB = str(Path(__file__).resolve().parent) + os.sep
_TORCH = str(Path(torch.__file__).resolve().parent) + os.sep


class DeviceDisciplineError(RuntimeError):
    """A damlib factory call without an explicit device."""


def _caller():
    """The first frame outside torch and this module: who called the factory."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith(_TORCH)
                                 or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    return frame


class FactoryAudit(TorchFunctionMode):
    """Record (or, with ``strict=True``, raise on) factory calls without ``device=`` made by damlib.

    ``calls`` lists ``(function, file, line)`` of each one seen.
    """

    def __init__(self, *, strict: bool = False):
        super().__init__()
        self.strict = strict
        self.calls: list[tuple[str, str, int]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs and not (
                func is torch.as_tensor and args and isinstance(args[0], torch.Tensor)):
            frame = _caller()
            path = str(Path(frame.f_code.co_filename).resolve()) if frame is not None else ""
            if path.startswith(_DAMLIB):
                call = (func.__name__, os.path.relpath(path, Path(_DAMLIB).parent), frame.f_lineno)
                self.calls.append(call)
                if self.strict:
                    raise DeviceDisciplineError(
                        f"torch.{call[0]} without device= at {call[1]}:{call[2]}: the tensor lands on torch's "
                        "default device, not the inputs' (pass device=...)")
        return func(*args, **kwargs)


def install() -> FactoryAudit:
    """Enter a strict :class:`FactoryAudit` for the rest of the process (``DAMLIB_DEVICE_AUDIT=1``)."""
    audit = FactoryAudit(strict=True)
    audit.__enter__()
    return audit
