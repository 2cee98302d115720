"""The von Mises-Fisher normaliser on the sphere of ``R^N`` and the Bessel functions it needs.

Every memory of :class:`~damlib.dam.DAM` carries the same normaliser ``Z(beta)``
(:func:`log_normaliser`); :func:`mean_overlap_factor` is the mean overlap of a vMF sample with its
mean direction, used by the saddle-point equations.
"""

from __future__ import annotations

import numpy as np
import scipy.special
import torch

from .. import checks


def _log_bessel_debye(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``log I_nu(x)`` by the uniform (Debye) expansion in ``1/nu``, three correction terms.

    Relative error about ``u_4 / nu^4``: below ``1e-10`` for ``nu >= 100``.
    """
    z = x / nu
    root = np.sqrt(1 + z * z)
    t = 1 / root
    eta = root + np.log(z / (1 + root))
    u1 = t * (3 - 5 * t**2) / 24
    u2 = t**2 * (81 - 462 * t**2 + 385 * t**4) / 1152
    u3 = t**3 * (30375 - 369603 * t**2 + 765765 * t**4 - 425425 * t**6) / 414720
    series = 1 + u1 / nu + u2 / nu**2 + u3 / nu**3
    return nu * eta - 0.5 * np.log(2 * np.pi * nu) - 0.5 * np.log(root) + np.log(series)


def log_bessel_i(nu: float, x) -> np.ndarray:
    """``log I_nu(x)`` for ``x > 0``, from ``scipy.special.ive`` (``I_nu(x) e^{-x}``).

    Where ``ive`` underflows (large ``nu``, small ``x``: for ``nu = 391``, any ``x`` below about
    40) the uniform asymptotic expansion takes over; there ``nu`` is large and it is accurate.
    """
    x = checks.real_tensor("x", x, dtype=torch.float64, device="cpu").numpy()
    if np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("x must be finite and positive for log I_nu(x)")
    checks.positive("nu", nu, allow_zero=True)
    scaled = scipy.special.ive(nu, x)
    out = np.empty_like(x)
    ok = scaled > 1e-250
    out[ok] = np.log(scaled[ok]) + x[ok]
    if np.any(~ok):
        if nu < 20:
            raise ValueError(f"log I_nu(x) underflows for nu={nu} at x={x[~ok].min()}")
        out[~ok] = _log_bessel_debye(float(nu), x[~ok])
    return out


def log_normaliser(beta, n_features: int) -> torch.Tensor:
    """``log Z(beta)``: the log normaliser of the von Mises-Fisher density on the sphere of ``R^N``.

    ``Z(beta) = int_{S^{N-1}} exp(beta w . x) dx = (2 pi)^{N/2} I_{N/2-1}(beta) / beta^{N/2-1}``
    (surface measure), independent of the unit vector ``w``. ``beta`` is a positive number or a
    tensor of them (any shape; the result has the same shape, float64).
    """
    checks.positive_int("n_features", n_features)
    if n_features < 2:
        raise ValueError(f"n_features must be at least 2 (a sphere), got {n_features}")
    b = checks.real_tensor("beta", beta, dtype=torch.float64)
    arr = b.detach().cpu().numpy()
    if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"beta must be finite and positive, got {beta!r}")
    nu = n_features / 2 - 1
    log_z = 0.5 * n_features * np.log(2 * np.pi) + log_bessel_i(nu, arr) - nu * np.log(arr)
    return torch.as_tensor(log_z, dtype=torch.float64, device=b.device)


def mean_overlap_factor(kappa, n_features: int) -> np.ndarray:
    """``I_{N/2}(kappa) / I_{N/2-1}(kappa)``: mean overlap of a vMF sample with its mean direction."""
    checks.positive_int("n_features", n_features)
    nu = n_features / 2 - 1
    k = checks.real_tensor("kappa", kappa, dtype=torch.float64, device="cpu").numpy()
    return np.exp(log_bessel_i(nu + 1, k) - log_bessel_i(nu, k))
