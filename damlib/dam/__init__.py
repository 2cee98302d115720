"""The von Mises-Fisher dense associative memory of Theriault and Tantari, one concern per module.

====================  ===========================================================================
``vmf``               the vMF normaliser ``log Z(beta)`` and the Bessel functions behind it
``model``             :class:`DAM`, its loss, class posterior, likelihood, gradients and Hessian
``optimise``          :func:`train` (batched Riemannian Adam) and its result :class:`History`;
                      the L-BFGS and Newton-CG polishers
``splitting``         copying and splitting memories, the splitting matrices, growth by splitting
``saddles``           models over a grid of ``beta`` and where their copied points are saddles
``speedup``           splitting against training from scratch: the book's measure
``saddle_point``      the saddle-point equations of the slides, iterated
``krotov_hopfield``   the Krotov-Hopfield (2016) memory, for comparison
``prototypes``        whether memories are prototypes of their class (both models)
``protocol``          the authors' splitting protocol: their optimiser, early stopping, measure
``digits``            MNIST on the sphere, as the chapters load it
====================  ===========================================================================

Every public name is importable from ``damlib.dam`` itself (``from damlib import dam; dam.train``);
so are the few private helpers that tests and chapters reach for (``_finite_part``...).
"""

from .digits import SphereDigits, load_digits
from .krotov_hopfield import kh_initial, kh_outputs, train_kh
from .model import (
    DAM,
    accuracy,
    check_single,
    class_log_posterior,
    gradient,
    gradient_norm,
    gradient_scale,
    init_from_data,
    log_likelihood,
    log_terms,
    loss,
    make_model,
    project,
    replace_beta,
    residuals,
    tangent_hessian,
    targets,
)
from .model import _check_data as _check_data
from .model import _finite_part as _finite_part
from .model import _normalise as _normalise
from .model import _score_grad as _score_grad
from .optimise import History, TrainState, newton_polish, polish, smoothed_accuracy, time_to_reach, train
from .prototypes import kh_winning_share, neighbour_purity
from .saddle_point import saddle_point_iteration
from .saddles import models_over_beta, saddle_states
from .speedup import Race, race, smoothed_curve
from .splitting import (
    LOG2,
    copy_memories,
    grow_by_splitting,
    split_memories,
    splitting_apply,
    splitting_directions,
    splitting_eigen,
    splitting_matrix,
)
from .vmf import _log_bessel_debye as _log_bessel_debye
from .vmf import log_bessel_i, log_normaliser, mean_overlap_factor

__all__ = [
    "DAM", "History", "LOG2", "Race", "SphereDigits", "TrainState", "accuracy", "check_single",
    "class_log_posterior", "copy_memories", "gradient", "gradient_norm", "gradient_scale",
    "grow_by_splitting", "init_from_data", "kh_initial", "kh_outputs", "kh_winning_share", "load_digits",
    "log_bessel_i", "log_likelihood", "log_normaliser", "log_terms", "loss", "make_model",
    "mean_overlap_factor", "models_over_beta", "neighbour_purity", "newton_polish", "polish",
    "project", "race", "replace_beta", "residuals", "saddle_point_iteration", "saddle_states",
    "smoothed_accuracy", "smoothed_curve", "split_memories", "splitting_apply",
    "splitting_directions", "splitting_eigen", "splitting_matrix", "tangent_hessian", "targets",
    "time_to_reach", "train", "train_kh",
]
