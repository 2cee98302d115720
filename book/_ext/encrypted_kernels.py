"""The chapters' kernels run over encrypted transport, so ipykernel has nothing to warn about.

A kernel started over plain TCP logs "Kernel is running over TCP without encryption" to the
build's log, once per chapter. jupyter_client can provision CurveZMQ keys for a kernel whose
kernelspec declares support (ipykernel's does), but only when its kernel manager asks for it
(``transport_encryption``, ``"disabled"`` by default), and the build's kernel managers are made
by jupyter-cache and nbclient with no configuration passed through. So this extension makes
``"auto"`` the default of every kernel manager of the build process: the kernels run encrypted,
and a kernel whose kernelspec declares no encryption starts as before.
"""

from __future__ import annotations

import zmq
from jupyter_client.manager import KernelManager

POLICY = "auto"


def encrypt_kernels() -> bool:
    """Make CurveZMQ provisioning the default of this process's kernel managers, when pyzmq has it."""
    if not zmq.has("curve"):
        return False
    KernelManager.transport_encryption.default_value = POLICY
    return True


def setup(app):
    encrypt_kernels()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
