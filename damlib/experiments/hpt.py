"""Stored runs of the hpt chapters: learning-rate sweeps at sizes the book build cannot afford.

Each shard is one size of one recipe: one batched sweep (:func:`damlib.denseam.sweep`) over a
fixed learning-rate grid. It stores the grid, the final loss per coordinate and the loss after
the first ``check_steps`` steps ``(n_lr, seeds)`` (the cheap slice a chapter recomputes at build,
:func:`early_losses`), and the step at which each run diverged.

- ``hpt_k_only``: the K-only regime (Fig. 16), ReLU^2 with SGD at D = B = 32, N = 128, under
  Table 1 (``table1``) and under the proportional regime's scales (``proportional``, the control),
  to K = 16384.
- ``hpt_adam_centring``: the proportional regime with Adam (Figs. 10, 11, 13), ReLU and softmax,
  centred and uncentred, D = K = B = 64 to 512, N = 4D.

The parameters of a shard depend on its name alone (never on ``DAMLIB_SCALE``), so a chapter and
the command that made the shard agree on them.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import denseam as dm
from .. import store
from . import Experiment, read, register

CHECK_STEPS = 10          # the cheap slice: the loss after the first steps
STEPS = 500               # the book scale's training length
# the book's grids (logspace(-3, 0, 13) for SGD, logspace(-4, -0.5, 13) for Adam), cut to the
# points around the optima and the stability edges, to keep the large shards affordable
SGD_LRS = [float(x) for x in torch.logspace(-3.0, 0.0, 13, device="cpu")[3:]]
ADAM_LRS = [float(x) for x in torch.logspace(-4.0, -0.5, 13, device="cpu")[5:12]]

K_ONLY_WIDTHS = (1024, 2048, 4096, 8192, 16384)
K_ONLY_RECIPES = {"table1": False, "proportional": True}        # recipe: naive
ADAM_SIZES = (64, 128, 256, 512)
ADAM_RECIPES = {f"{act}_{name}": (act, centred) for act in ("relu", "softmax")
                for name, centred in (("centred", True), ("uncentred", False))}


def k_only_shard(recipe: str, K: int) -> str:
    """The shard name of one recipe of ``hpt_k_only`` at width ``K``."""
    return f"{recipe}_K={K}"


def adam_shard(recipe: str, D: int) -> str:
    """The shard name of one recipe of ``hpt_adam_centring`` at size ``D`` (= K = B)."""
    return f"{recipe}_D={D}"


def _split(shard: str) -> tuple[str, int]:
    recipe, size = shard.rsplit("_", 1)
    return recipe, int(size.split("=", 1)[1])


def k_only_params(shard: str) -> dict:
    """Every parameter of one ``hpt_k_only`` shard: ReLU^2 with SGD in the K-only regime."""
    recipe, K = _split(shard)
    D = dm.DEFAULTS.k_only_d
    return {"recipe": recipe, "regime": "k_only", "D": D, "K": K, "B": D,
            "N": round(dm.DEFAULTS.n_over_d * D), "activation": "relu", "p": 2.0, "centred": True,
            "optimizer": "sgd", "naive": K_ONLY_RECIPES[recipe], "noise": dm.DEFAULTS.noise,
            "lrs": SGD_LRS, "seeds": 1, "steps": STEPS, "seed": 0, "check_steps": CHECK_STEPS}


def adam_params(shard: str) -> dict:
    """Every parameter of one ``hpt_adam_centring`` shard: Adam in the proportional regime."""
    recipe, D = _split(shard)
    activation, centred = ADAM_RECIPES[recipe]
    return {"recipe": recipe, "regime": "proportional", "D": D, "K": D, "B": D,
            "N": round(dm.DEFAULTS.n_over_d * D), "activation": activation, "p": 1.0,
            "centred": centred, "optimizer": "adam", "naive": False, "noise": dm.DEFAULTS.noise,
            "lrs": ADAM_LRS, "seeds": 1, "steps": STEPS, "seed": 0, "check_steps": CHECK_STEPS}


def setup_of(params: dict) -> dm.Setup:
    """The :class:`~damlib.denseam.Setup` a shard trains."""
    return dm.Setup(params["D"], params["K"], params["B"], params["N"], activation=params["activation"],
                    p=params["p"], centred=params["centred"], optimizer=params["optimizer"],
                    regime=params["regime"], naive=params["naive"], noise=params["noise"])


def _trainer(params: dict, device=None) -> dm.Trainer:
    return dm.Trainer(setup_of(params), params["lrs"], params["seeds"], seed=params["seed"],
                      device=device)


def early_losses(params: dict, device=None) -> np.ndarray:
    """The loss per coordinate after the first ``check_steps`` steps ``(n_lr, seeds)``: the slice
    of a shard that a chapter recomputes at build (the same draws as the stored run)."""
    trainer = _trainer(params, device)
    return trainer.run(params["check_steps"], log_every=params["check_steps"]).final.numpy()


def run_sweep(params: dict) -> dict:
    """Train one shard: the first ``check_steps`` steps, then the rest, on one trainer (the same
    random draws as one run of ``steps`` steps), logging only at those two points."""
    trainer = _trainer(params)
    early = trainer.run(params["check_steps"], log_every=params["check_steps"])
    rest = params["steps"] - params["check_steps"]
    late = trainer.run(rest, log_every=rest)
    return {"lrs": np.asarray(params["lrs"]), "early": early.final.numpy(),
            "final": late.final.numpy(), "diverged": late.diverged.numpy()}


def history_of(shard) -> dm.History:
    """A stored shard as a :class:`~damlib.denseam.History` of its final losses (one log point),
    so that :func:`damlib.denseam.optimal_lr` and the drawing functions read it like a sweep."""
    params = shard.params
    final = torch.as_tensor(shard.arrays["final"], dtype=torch.float32, device="cpu")
    return dm.History(setup_of(params), torch.as_tensor(shard.arrays["lrs"], dtype=torch.float32, device="cpu"),
                      torch.tensor([params["steps"]], device="cpu"), final[None],
                      diverged=torch.as_tensor(shard.arrays["diverged"], device="cpu"))


def stored_sweeps(name: str, shards: dict[int, str]) -> tuple[list[int], list[dm.History], list]:
    """The stored shards among ``shards`` (size -> shard name), smallest size first.

    Returns ``(sizes, histories, found)``: the sizes whose shard is stored, each as a
    :class:`~damlib.denseam.History` (:func:`history_of`), and the shards themselves. A stale or
    corrupt shard raises (see :func:`damlib.store.read`): the build stops with the command to rerun.
    """
    sizes, histories, found = [], [], []
    for size in sorted(shards):
        shard = read(name, shards[size])
        if shard is not None:
            sizes.append(size)
            histories.append(history_of(shard))
            found.append(shard)
    return sizes, histories, found


def verify_first_steps(shard, *, rtol: float = 1e-4, atol: float = 1e-6) -> float:
    """Recompute the first ``check_steps`` steps of a stored shard and check them against it
    (:func:`damlib.store.verify`); returns the largest deviation of the loss per coordinate."""
    return store.verify(shard, {"early": early_losses(shard.params)}, rtol=rtol, atol=atol)["early"]


def about(found: list) -> str:
    """One sentence for a stored-run caption: how many shards, their total wall time, and how the
    longest was made (:func:`damlib.store.describe`)."""
    seconds = [float(shard.meta.get("seconds", 0)) for shard in found]
    longest = found[seconds.index(max(seconds))]
    return (f"{len(found)} stored shards, {store.duration(sum(seconds))} of computation in all; the "
            f"longest, {longest.shard}: " + store.describe(longest))


def centring_from_store(activation: str, *, criterion: float = 1.5) -> dict:
    """The stored Adam sweeps of one activation, centred and uncentred, read, verified and compared.

    Parameters
    ----------
    activation : {"relu", "softmax"}
        Which recipes of ``hpt_adam_centring``.
    criterion : float
        A recipe transfers when its optimal base rate moves by less than this factor over the sizes.

    Returns
    -------
    dict
        ``runs[centred] = (sizes, histories, shards)`` as :func:`stored_sweeps` (on the sizes both
        recipes store), ``panels`` the same by title for :func:`damlib.plotting.hpt.transfer_panels`;
        ``present``: both
        recipes stored at two sizes or more; and when present: ``factor[centred]`` (transfer factor
        over the stored sizes), ``sizes`` (those of the centred recipe), ``deviation`` (the largest
        deviation of the recomputed first steps of the smallest size, :func:`verify_first_steps`),
        ``visible`` (centred passes and uncentred fails the criterion) and ``text`` (a paragraph
        for the page saying all this, with :func:`about`); when absent, ``text`` says so.
    """
    runs = {}
    for centred in (False, True):
        recipe = f"{activation}_{'centred' if centred else 'uncentred'}"
        runs[centred] = stored_sweeps("hpt_adam_centring", {D: adam_shard(recipe, D) for D in ADAM_SIZES})
    common = sorted(set(runs[False][0]) & set(runs[True][0]))        # compare on the same sizes
    runs = {c: tuple(list(x) for x in zip(*[(D, h, f) for D, h, f in zip(*runs[c]) if D in common]))
            or ([], [], []) for c in runs}
    panels = {"uncentred": runs[False], "centred": runs[True]}
    if len(common) < 2:
        missing = adam_shard(f"{activation}_uncentred", ADAM_SIZES[-1])
        return {"runs": runs, "panels": panels, "present": False,
                "text": store.absent("hpt_adam_centring", missing)}
    factor = {c: dm.transfer_factor(hs) for c, (_, hs, _) in runs.items()}
    deviation = max(verify_first_steps(found[0]) for _, _, found in runs.values())
    sizes = runs[True][0]
    visible = factor[True] < criterion <= factor[False]
    verdict = ("centring is needed there: the centred model passes the criterion and the uncentred one fails it"
               if visible else
               "the uncentred model passes the criterion too, so the claim that centring is needed for "
               "transfer is not visible at these sizes either" if factor[False] < criterion else
               "neither passes the criterion")
    text = (f"Over the stored sizes D = K = B = {sizes[0]} to {sizes[-1]} (one seed, {len(ADAM_LRS)} rates, "
            f"{STEPS} steps), the optimal "
            f"Adam rate moves by a factor {factor[True]:.2f} centred and {factor[False]:.2f} uncentred "
            f"(criterion: below {criterion:g}): {verdict}. The recomputed first {CHECK_STEPS} steps of "
            f"D = {sizes[0]} agree with the stored ones within {deviation:.1e} (tolerance: relative 1e-4). "
            + about(runs[True][2] + runs[False][2]))
    return {"runs": runs, "panels": panels, "present": True, "factor": factor, "sizes": sizes,
            "deviation": deviation, "visible": visible, "text": text}


def k_only_from_store(*, criterion: float = 2.0) -> dict:
    """The stored K-only sweeps, Table 1 against the proportional scales, read, verified, compared.

    Parameters
    ----------
    criterion : float
        A recipe transfers when its optimal base rate moves by less than this factor over the widths.

    Returns
    -------
    dict
        ``runs[recipe] = (widths, histories, shards)`` for ``recipe`` in ``K_ONLY_RECIPES`` (as
        :func:`stored_sweeps`, on the widths both store), ``panels`` the same by title;
        ``present``; and when present:
        ``factor``, ``pinned`` (widths whose best rate is the stability edge), ``best`` (lowest
        final loss per width), ``deviation`` (recomputed first steps of the smallest width),
        ``visible`` (Table 1 passes and the control fails) and ``text``; when absent, ``text``
        says so.
    """
    runs = {r: stored_sweeps("hpt_k_only", {K: k_only_shard(r, K) for K in K_ONLY_WIDTHS})
            for r in K_ONLY_RECIPES}
    common = sorted(set.intersection(*(set(widths) for widths, _, _ in runs.values())))
    runs = {r: tuple(list(x) for x in zip(*[(K, h, f) for K, h, f in zip(*v) if K in common]))
            or ([], [], []) for r, v in runs.items()}
    panels = {"Table 1": runs["table1"], "proportional scales": runs["proportional"]}
    if len(common) < 2:
        return {"runs": runs, "panels": panels, "present": False,
                "text": store.absent("hpt_k_only", k_only_shard("proportional", K_ONLY_WIDTHS[-1]))}
    factor = {r: dm.transfer_factor(hs) for r, (_, hs, _) in runs.items()}
    pinned = {r: sum(dm.pinned_at_edge(h) for h in hs) for r, (_, hs, _) in runs.items()}
    best = {r: [dm.best_loss(h) for h in hs] for r, (_, hs, _) in runs.items()}
    deviation = max(verify_first_steps(found[0]) for _, _, found in runs.values())
    visible = factor["table1"] < criterion <= factor["proportional"]
    verdict = ("the control fails the criterion there" if visible else
               "the control passes it too, so the transfer criterion does not separate the two even at "
               "these widths" if factor["proportional"] < criterion else "Table 1 fails it too")
    text = (f"Over the stored widths K = {common[0]} to {common[-1]} the optimum of the Table 1 row moves by "
            f"a factor {factor['table1']:.2f} and the control's by {factor['proportional']:.2f} (criterion: "
            f"below {criterion:g}): {verdict}. The control's best rate is the stability edge of the grid at "
            f"{pinned['proportional']} of {len(common)} widths (Table 1: {pinned['table1']}). What does separate "
            f"them is the loss itself: the control's lowest loss "
            f"goes from {best['proportional'][0]:.3f} to {best['proportional'][-1]:.3f} as K grows, Table 1's "
            f"from {best['table1'][0]:.3f} to {best['table1'][-1]:.3f}. The recomputed first {CHECK_STEPS} "
            f"steps of K = {common[0]} agree with the stored ones within {deviation:.1e} (tolerance: "
            f"relative 1e-4). " + about(runs["table1"][2] + runs["proportional"][2]))
    return {"runs": runs, "panels": panels, "present": True, "factor": factor, "pinned": pinned,
            "best": best, "deviation": deviation, "visible": visible, "text": text}


K_ONLY = register(Experiment(
    "hpt_k_only",
    tuple(k_only_shard(r, K) for r in K_ONLY_RECIPES for K in K_ONLY_WIDTHS),
    k_only_params, run_sweep,
    "K-only regime, ReLU^2 with SGD at D = B = 32: Table 1 against the proportional scales, K to 16384"))

ADAM_CENTRING = register(Experiment(
    "hpt_adam_centring",
    tuple(adam_shard(r, D) for r in ADAM_RECIPES for D in ADAM_SIZES),
    adam_params, run_sweep,
    "proportional regime with Adam, ReLU and softmax, centred and uncentred, D = K = B to 512"))
