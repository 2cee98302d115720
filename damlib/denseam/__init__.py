"""``hpt``: the DenseAM denoiser of Holtzman, Krotov and Hanin (2026), its parameterisations, and
learning-rate sweeps of it run as one batched tensor program.

============  ==========================================================================
``table``     Table 1 as data: each scale and learning-rate factor a monomial in ``D, K, B, N``
``model``     the denoiser (activations, centring, forward pass, loss, Gram spectrum, participation)
``training``  a model size and recipe (:class:`Setup`), its data stream, the batched trainer and
              :func:`sweep`, which returns a :class:`History`
``optimum``   reading a sweep: optimal learning rate, loss there, stability edge, transfer factor
``settings``  the hpt chapters' shared choices: data defaults and the sweep plan at each run scale
============  ==========================================================================

Every public name is re-exported here, so ``from damlib import denseam as dm`` reaches them all.
"""

from .model import Params, activate, centre, forward, gram_eigenvalues, init_params, mse, participation, relu_power_norm
from .optimum import (
    Transfer,
    best_loss,
    has_optimum,
    max_stable,
    nearest_lr_index,
    optimal_lr,
    pinned_at_edge,
    transfer,
    transfer_factor,
)
from .settings import DEFAULTS, Defaults, SweepPlan, sweep_plan
from .table import (
                      ACTIVATIONS,
                      DIMS,
                      NAIVE,
                      OPTIMIZERS,
                      REGIMES,
                      SOFTMAX_SGD,
                      TABLE1,
                      Monomial,
                      Parameterisation,
                      Scales,
                      parameterisation,
)
from .training import (
                      RECORDS,
                      History,
                      Setup,
                      Trainer,
                      batches,
                      first_updates,
                      gaussian_data,
                      k_only,
                      proportional,
                      sweep,
)

__all__ = [
    "ACTIVATIONS", "DEFAULTS", "DIMS", "NAIVE", "OPTIMIZERS", "RECORDS", "REGIMES", "SOFTMAX_SGD", "TABLE1",
    "Defaults", "History", "Monomial", "Parameterisation", "Params", "Scales", "Setup", "SweepPlan",
    "Trainer", "Transfer", "activate", "batches", "best_loss", "centre", "first_updates", "forward",
    "gaussian_data", "gram_eigenvalues", "has_optimum", "init_params", "k_only", "max_stable", "mse",
    "nearest_lr_index", "optimal_lr", "parameterisation", "participation", "pinned_at_edge",
    "proportional", "relu_power_norm", "sweep", "sweep_plan", "transfer",
    "transfer_factor",
]
