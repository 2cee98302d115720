"""The library's contract on bad input, table-driven: every public function of every module has rows of
bad calls (wrong shapes and dtypes, NaN and inf in data, non-positive sizes, empty tensors, probabilities
that do not sum to one, out-of-range or float indices, missing generators, lists and strings where tensors
belong), and each must raise a ValueError whose message names the argument.

A public function without a row (or an entry in EXEMPT, with its reason) fails ``test_every_public_function
_has_rows``, so a new function cannot skip the contract.
"""

import importlib
import inspect
import math

import pytest
import torch

from damlib import checks, claims, config, dam, data, store, train
from damlib import denseam as dm
from damlib import experiments as ex
from damlib import memory as am
from damlib import transformer as tf
from damlib.dam import protocol

F64 = torch.float64
NAN = float("nan")

MODULES = ["damlib.checks", "damlib.claims", "damlib.config", "damlib.memory", "damlib.train", "damlib.transformer",
           "damlib.data", "damlib.dam", "damlib.dam.protocol", "damlib.denseam", "damlib.store", "damlib.experiments"]

# Public functions whose arguments cannot be bad (none) or that only read the environment.
EXEMPT = {
    "damlib.config.device": "no argument: DAMLIB_DEVICE is checked (tests/test_config.py)",
    "damlib.config.scale": "no argument: DAMLIB_SCALE is checked (tests/test_config.py)",
    "damlib.store.default_root": "no argument",
    "damlib.store.stored": "only a root folder, any path is valid (an absent one holds nothing)",
    "damlib.checks.finite": "raises DivergenceError by design (its own test below)",
    "damlib.checks.DivergenceError": "the error itself",
    "damlib.config.by_scale": "keyword-only arguments, which Python itself checks",
}
# Result and data containers: built by the functions whose rows are above, not called with user input.
CONTAINERS = {
    "damlib.train.Sweep", "damlib.transformer.Frozen", "damlib.transformer.Run", "damlib.transformer.Sequences",
    "damlib.transformer.State", "damlib.transformer.Task", "damlib.dam.History", "damlib.dam.Race",
    "damlib.dam.SphereDigits", "damlib.dam.TrainState", "damlib.dam.protocol.Run", "damlib.denseam.Defaults",
    "damlib.denseam.History", "damlib.denseam.Params", "damlib.denseam.Scales", "damlib.denseam.SweepPlan",
    "damlib.denseam.Transfer", "damlib.store.Shard", "damlib.store.CorruptShard", "damlib.store.StaleShard",
    "damlib.store.StoreError", "damlib.store.VerificationError", "damlib.experiments.Experiment",
    "damlib.claims.ClaimsFrame",
}
EXEMPT.update({name: "a result or data container" for name in CONTAINERS})


def _gen(seed=0):
    return config.generator(seed)


def _with_nan(t):
    t = t.clone()
    t.view(-1)[0] = NAN
    return t


# --- shared inputs ----------------------------------------------------------------------------------------
E = am.sphere_embeddings(5, 3, generator=_gen(0))
U = am.sphere_embeddings(2, 3, generator=_gen(1))
P = am.zipf_frequencies(5)
Y = torch.tensor([0, 1, 0, 1, 1])
W = torch.zeros(3, 3, dtype=F64)
S = am.scores(W, E, U)
E2 = am.correlated_pair(0.3)
P2 = torch.tensor([0.7, 0.3], dtype=F64)
Y2 = torch.tensor([0, 1])

TASK = tf.make_task(3)
FROZEN = tf.init_frozen(65, 4, 12, generator=_gen(2), dtype=F64)
PARAMS = tf.init_params(FROZEN, 2, generator=_gen(3))
SEQS = tf.sample_sequences(TASK, 8, 12, generator=_gen(4))
TABLE = data.load_shakespeare_table()

XD = torch.nn.functional.normalize(torch.randn(20, 4, generator=_gen(5), dtype=F64), dim=-1)
YD = torch.arange(20) % 2
MODEL = dam.init_from_data(XD, YD, 4, 2, 2.0, generator=_gen(6))
MB = dam.init_from_data(XD, YD, 4, 2, torch.tensor([1.0, 2.0], dtype=F64), generator=_gen(6), batch=(2,))
HIST = dam.train(MODEL, XD, YD, steps=4, lr=0.01, eval_every=2, eval_data=(XD, YD))
KH = dam.kh_initial(3, 6, generator=_gen(7), dtype=F64)
VKH = torch.rand(10, 4, generator=_gen(8), dtype=F64)

SETUP = dm.proportional(8)
DMP = dm.init_params(2, SETUP.K, SETUP.D, generator=_gen(9))
DMH = dm.sweep(SETUP, [0.01, 0.1], steps=3, device="cpu")
ACT = torch.rand(2, 3, 4)


def rows():
    """``{qualified name: [(argument, call), ...]}``."""
    R: dict[str, list] = {}

    def row(name, arg, call):
        R.setdefault(name, []).append((arg, call))

    # checks
    c = "damlib.checks."
    row(c + "number", "v", lambda: checks.number("v", "1"))
    row(c + "number", "v", lambda: checks.number("v", True))
    row(c + "positive", "v", lambda: checks.positive("v", -1))
    row(c + "positive", "v", lambda: checks.positive("v", NAN))
    row(c + "real_tensor", "v", lambda: checks.real_tensor("v", ["a"]))
    row(c + "in_range", "v", lambda: checks.in_range("v", 2.0, 0, 1))
    row(c + "in_range", "v", lambda: checks.in_range("v", torch.tensor([0.5, NAN]), 0, 1))
    row(c + "positive_int", "n", lambda: checks.positive_int("n", 1.0))
    row(c + "positive_int", "n", lambda: checks.positive_int("n", True))
    row(c + "tensor", "x", lambda: checks.tensor("x", [1.0]))
    row(c + "tensor", "x", lambda: checks.tensor("x", torch.zeros(0)))
    row(c + "shape", "x", lambda: checks.shape("x", torch.zeros(2, 3), (4,)))
    row(c + "shape", "x", lambda: checks.shape("x", torch.zeros(2, 3, dtype=torch.long), (3,)))
    row(c + "finite_data", "x", lambda: checks.finite_data("x", torch.tensor([1.0, math.inf])))
    row(c + "indices", "i", lambda: checks.indices("i", [1.5], 3))
    row(c + "indices", "i", lambda: checks.indices("i", torch.tensor([True]), 3))
    row(c + "indices", "i", lambda: checks.indices("i", [-1], 3))
    row(c + "probabilities", "p", lambda: checks.probabilities("p", torch.tensor([0.5, 0.6])))
    row(c + "probabilities", "p", lambda: checks.probabilities("p", torch.tensor([1.5, -0.5])))
    row(c + "generator", "g", lambda: checks.generator("g", None))
    row(c + "choice", "c", lambda: checks.choice("c", "z", ("a", "b")))
    row(c + "Watch", "device", lambda: checks.Watch("nowhere"))

    # claims
    row("damlib.claims.Claims", "claim", lambda: claims.Claims().add("", "above 1", 2.0, True))
    row("damlib.claims.Claims", "criterion", lambda: claims.Claims().add("it grows", None, 2.0, True))
    row("damlib.claims.Claims", "control_fails", lambda: claims.Claims().add("it grows", "above 1", 2.0, True,
                                                                             control_fails=True))

    # config
    row("damlib.config.generator", "seed", lambda: config.generator(-1))
    row("damlib.config.generator", "seed", lambda: config.generator(1.5))

    # memory
    m = "damlib.memory."
    row(m + "sphere_embeddings", "generator", lambda: am.sphere_embeddings(3, 2))
    row(m + "sphere_embeddings", "n", lambda: am.sphere_embeddings(0, 2, generator=_gen()))
    row(m + "correlated_pair", "alpha", lambda: am.correlated_pair(1.5))
    row(m + "correlated_pair", "alpha", lambda: am.correlated_pair("a"))
    row(m + "uniform_frequencies", "n", lambda: am.uniform_frequencies(0))
    row(m + "zipf_frequencies", "exponent", lambda: am.zipf_frequencies(4, -1.0))
    row(m + "minibatch_frequencies", "generator", lambda: am.minibatch_frequencies(P, 3, 2))
    row(m + "minibatch_frequencies", "p", lambda: am.minibatch_frequencies(P * 2, 3, 2, generator=_gen()))
    row(m + "check_problem", "targets", lambda: am.check_problem(E, U, P, Y.double()))
    row(m + "check_problem", "E", lambda: am.check_problem(_with_nan(E), U, P, Y))
    row(m + "check_targets", "targets", lambda: am.check_targets(torch.tensor([0, 5]), 2, 2))
    row(m + "scores", "W", lambda: am.scores(torch.zeros(2, 3, dtype=F64), E, U))
    row(m + "scores", "W", lambda: am.scores(_with_nan(W), E, U))
    row(m + "loss_from_scores", "p", lambda: am.loss_from_scores(S, P * 3.6, Y))
    row(m + "loss_from_scores", "targets", lambda: am.loss_from_scores(S, P, torch.tensor([0, 1, 0, 1, 9])))
    row(m + "loss_from_scores", "S", lambda: am.loss_from_scores(_with_nan(S), P, Y))
    row(m + "loss", "p", lambda: am.loss(W, E, U, -P, Y))
    row(m + "loss", "targets", lambda: am.loss(W, E, U, P, [0, 1, 0, 1, 1]))
    row(m + "residuals", "targets", lambda: am.residuals(S, Y[:3]))
    row(m + "gradient", "W", lambda: am.gradient(W, E[:, :2], U, P, Y))
    row(m + "gradient", "E", lambda: am.gradient(W, _with_nan(E), U, P, Y))
    row(m + "margins", "targets", lambda: am.margins(S, -Y))
    row(m + "zero_one_loss", "p", lambda: am.zero_one_loss(S, -P, Y))
    row(m + "couplings", "E", lambda: am.couplings(_with_nan(E), U))
    row(m + "descend", "W0", lambda: am.descend(_with_nan(W), E, U, P, Y, lr=0.1, steps=2))
    row(m + "descend", "lr", lambda: am.descend(W, E, U, P, Y, lr=-1.0, steps=2))
    row(m + "descend", "steps", lambda: am.descend(W, E, U, P, Y, lr=0.1, steps=0))
    I2, I4 = torch.eye(2, dtype=F64), torch.eye(4, dtype=F64)
    row(m + "evolve_particles", "alpha", lambda: am.evolve_particles(S, I4, I2, P, Y, lr=0.1, steps=2))
    row(m + "evolve_particles", "S0", lambda: am.evolve_particles(_with_nan(S), I4, I2, P, Y, lr=0.1, steps=2))
    row(m + "hessian", "p", lambda: am.hessian(W, E, U, P[:4], Y))
    row(m + "sharpness", "targets", lambda: am.sharpness(W, E, U, P, Y[:2]))
    row(m + "smoothness", "p", lambda: am.smoothness(E2, torch.tensor([0.5, 0.6], dtype=F64)))
    row(m + "plane_to_matrix", "g", lambda: am.plane_to_matrix(torch.tensor([NAN, 1.0])))
    row(m + "matrix_to_plane", "W", lambda: am.matrix_to_plane(torch.zeros(2, 3)))
    row(m + "plane_grid", "g0_range", lambda: am.plane_grid((1.0, 0.0), (0.0, 1.0), 4))
    row(m + "plane_grid", "g0_range", lambda: am.plane_grid("ab", (0.0, 1.0), 4))
    row(m + "plane_grid", "n", lambda: am.plane_grid((0.0, 1.0), (0.0, 1.0), 0))
    row(m + "landscape", "fields", lambda: am.landscape(torch.zeros(2, dtype=F64), E2, P2, Y2, fields=("height",)))
    row(m + "landscape", "g", lambda: am.landscape(torch.tensor([NAN, 0.0], dtype=F64), E2, P2, Y2))
    row(m + "orthogonal_flow_margin", "n_classes", lambda: am.orthogonal_flow_margin(1.0, 0.5, 1))
    row(m + "orthogonal_flow_margin", "p", lambda: am.orthogonal_flow_margin(1.0, NAN, 2))
    row(m + "orthogonal_descent_loss_bound", "lr", lambda: am.orthogonal_descent_loss_bound(1.0, 0.5, 2, NAN))
    row(m + "plane_best_zero_one", "directions", lambda: am.plane_best_zero_one(E2, P2, Y2, directions=0))
    row(m + "plane_gradient_hessian", "g", lambda: am.plane_gradient_hessian(torch.zeros(3, dtype=F64), E2, P2, Y2))
    row(m + "plane_minimiser", "g0", lambda: am.plane_minimiser(E2, P2, Y2, g0=torch.tensor([NAN, 0.0], dtype=F64)))
    row(m + "plane_minimiser", "iterations", lambda: am.plane_minimiser(E2, P2, Y2, iterations=0))

    # train
    t = "damlib.train."
    row(t + "sweep", "at", lambda: train.sweep(W, E, U, P, Y, lr=0.1, steps=3, at=[1.5]))
    row(t + "sweep", "generator", lambda: train.sweep(W, E, U, P, Y, lr=0.1, steps=3, batch_size=2))
    row(t + "sweep", "W0", lambda: train.sweep(_with_nan(W), E, U, P, Y, lr=0.1, steps=3))
    row(t + "sweep", "lr", lambda: train.sweep(W, E, U, P, Y, lr=[0.1, NAN], steps=3))
    row(t + "sweep", "record", lambda: train.sweep(W, E, U, P, Y, lr=0.1, steps=3, record="loss"))
    row(t + "check_record", "record", lambda: train.check_record(("size",), train.RECORDS))
    row(t + "recorded_steps", "at", lambda: train.recorded_steps([0, 9], 3))
    row(t + "recorded_steps", "at", lambda: train.recorded_steps([0.5], 3))
    row(t + "first_perfect_step", "steps", lambda: train.first_perfect_step(E, P, Y, lr=0.1, steps=0))
    row(t + "first_perfect_step", "targets", lambda: train.first_perfect_step(E, P, Y.double(), lr=0.1, steps=2))
    row(t + "plane_picture", "resolution", lambda: train.plane_picture(E2, P2, Y2, lr=0.1, steps=2, resolution=0))
    row(t + "plane_picture", "generator", lambda: train.plane_picture(E2, P2, Y2, lr=0.1, steps=2, batch_size=1))
    row(t + "plane_states", "p1s", lambda: train.plane_states([0.1], [1.5], [0.1], steps=2, resolution=3,
                                                              device="cpu"))
    row(t + "plane_states", "alphas", lambda: train.plane_states("ab", [0.5], [0.1], device="cpu"))

    # transformer
    x = "damlib.transformer."
    row(x + "make_task", "triggers", lambda: tf.make_task(triggers=[1.5, 2.7]))
    row(x + "make_task", "triggers", lambda: tf.make_task(triggers=[-1, 2]))
    row(x + "make_task", "k", lambda: tf.make_task(0))
    row(x + "make_task", "table", lambda: tf.make_task(2, table="shakespeare"))
    row(x + "sample_sequences", "generator", lambda: tf.sample_sequences(TASK, 2, 5, generator=None))
    row(x + "sample_sequences", "task", lambda: tf.sample_sequences("task", 2, 5, generator=_gen()))
    row(x + "init_frozen", "generator", lambda: tf.init_frozen(65, 4, 8, generator=None))
    row(x + "init_frozen", "d", lambda: tf.init_frozen(65, 0, 8, generator=_gen()))
    row(x + "init_params", "runs", lambda: tf.init_params(FROZEN, 0))
    row(x + "init_params", "frozen", lambda: tf.init_params("frozen", 1))
    row(x + "induction_keys", "triggers", lambda: tf.induction_keys(FROZEN, torch.tensor([0.5]), 1.0))
    row(x + "induction_keys", "strength", lambda: tf.induction_keys(FROZEN, TASK.triggers, -1.0))
    row(x + "forward", "tokens", lambda: tf.forward(FROZEN, PARAMS, torch.tensor([[-1, 1, 2]])))
    row(x + "forward", "tokens", lambda: tf.forward(FROZEN, PARAMS, torch.tensor([[0, 1, 99]])))
    row(x + "forward", "params", lambda: tf.forward(FROZEN, {**PARAMS, "WK1": _with_nan(PARAMS["WK1"])},
                                                    SEQS.tokens))
    row(x + "forward", "queries", lambda: tf.forward(FROZEN, PARAMS, SEQS.tokens, [[0]]))
    row(x + "loss_mask", "tokens", lambda: tf.loss_mask(SEQS.tokens.double(), TASK.triggers))
    row(x + "loss_positions", "mask", lambda: tf.loss_positions(SEQS.mask.long()))
    row(x + "loss_and_gradient", "trained", lambda: tf.loss_and_gradient(FROZEN, PARAMS, SEQS, trained=("WQ",)))
    row(x + "loss_and_gradient", "seqs", lambda: tf.loss_and_gradient(FROZEN, PARAMS, "seqs"))
    row(x + "evaluate", "chunk", lambda: tf.evaluate(FROZEN, PARAMS, SEQS, chunk=0))
    row(x + "train", "lr", lambda: tf.train(FROZEN, PARAMS, SEQS, lr=NAN, steps=1))
    row(x + "train", "steps", lambda: tf.train(FROZEN, PARAMS, SEQS, lr=0.1, steps=0))
    row(x + "train", "at", lambda: tf.train(FROZEN, PARAMS, SEQS, lr=0.1, steps=2, at=[1.5]))
    row(x + "association_margins", "correct", lambda: tf.association_margins(
        torch.eye(2), torch.eye(2), torch.eye(2), torch.tensor([0.0, 1.0])))
    row(x + "association_margins", "W", lambda: tf.association_margins(
        _with_nan(torch.eye(2)), torch.eye(2), torch.eye(2), torch.tensor([0, 1])))
    row(x + "output_margins", "tokens", lambda: tf.output_margins(FROZEN, PARAMS["WO2"], torch.tensor([70])))
    row(x + "induction_margins", "tokens", lambda: tf.induction_margins(FROZEN, PARAMS["WK2"], [0.5]))
    row(x + "previous_token_margins", "positions", lambda: tf.previous_token_margins(
        FROZEN, PARAMS["WK1"], torch.tensor([0])))

    # data
    d = "damlib.data."
    row(d + "read_idx", "path", lambda: data.read_idx("/nonexistent/file-idx"))
    row(d + "load_mnist", "path", lambda: data.load_mnist("/nonexistent/folder"))
    row(d + "centre_and_normalise", "x", lambda: data.centre_and_normalise(torch.tensor([[1.0, NAN, 2.0]])))
    row(d + "centre_and_normalise", "x", lambda: data.centre_and_normalise(torch.ones(2, 3)))
    row(d + "coarse_grain", "s", lambda: data.coarse_grain(torch.zeros(2, 784), 5))
    row(d + "coarse_grain", "images", lambda: data.coarse_grain(torch.zeros(2, 780), 4))
    row(d + "coarse_mnist", "images", lambda: data.coarse_mnist(torch.zeros(784), 4))
    row(d + "load_shakespeare_table", "path", lambda: data.load_shakespeare_table("/nonexistent.json"))
    row(d + "CharTable", "ids", lambda: TABLE.decode([-1]))
    row(d + "CharTable", "ids", lambda: TABLE.decode([1.0]))
    row(d + "CharTable", "text", lambda: TABLE.encode(["a"]))
    row(d + "Digits", "n_train", lambda: data.Digits(torch.zeros(2, 784), torch.zeros(2, dtype=torch.long),
                                                     torch.zeros(1, 784), torch.zeros(1, dtype=torch.long),
                                                     "test").train(5))

    # dam
    g = "damlib.dam."
    row(g + "DAM", "beta", lambda: dam.DAM(MODEL.w, MODEL.logits, torch.tensor(-1.0, dtype=F64)))
    row(g + "DAM", "logits", lambda: dam.DAM(MODEL.w, MODEL.logits[:2], MODEL.beta))
    row(g + "make_model", "labels", lambda: dam.make_model(XD[:4], torch.tensor([0.0, 1.0, 0.0, 1.0]), 2, 1.0))
    row(g + "make_model", "purity", lambda: dam.make_model(XD[:4], YD[:4], 2, 1.0, purity=0.0))
    row(g + "make_model", "beta", lambda: dam.make_model(XD[:4], YD[:4], 2, -2.0))
    row(g + "init_from_data", "generator", lambda: dam.init_from_data(XD, YD, 4, 2, 1.0, generator=None))
    row(g + "init_from_data", "x", lambda: dam.init_from_data(_with_nan(XD), YD, 4, 2, 1.0, generator=_gen()))
    row(g + "check_single", "caller", lambda: dam.check_single(MB, "caller"))
    row(g + "log_terms", "x", lambda: dam.log_terms(MODEL, XD[:, :3]))
    row(g + "class_log_posterior", "x", lambda: dam.class_log_posterior(MODEL, _with_nan(XD)))
    row(g + "log_likelihood", "y", lambda: dam.log_likelihood(MODEL, XD, YD + 5))
    row(g + "targets", "smoothing", lambda: dam.targets(YD, 2, 1.5))
    row(g + "targets", "y", lambda: dam.targets(YD.double(), 2, 0.1))
    row(g + "loss", "model", lambda: dam.loss("model", XD, YD))
    row(g + "loss", "smoothing", lambda: dam.loss(MODEL, XD, YD, smoothing=-0.1))
    row(g + "loss", "model.w", lambda: dam.loss(dam.DAM(_with_nan(MODEL.w), MODEL.logits, MODEL.beta), XD, YD))
    row(g + "accuracy", "y", lambda: dam.accuracy(MODEL, XD, YD[:3]))
    row(g + "residuals", "x", lambda: dam.residuals(MODEL, XD.float()[:, :2], YD))
    row(g + "project", "v", lambda: dam.project(MODEL.w, torch.zeros(4, 3, dtype=F64)))
    row(g + "gradient", "y", lambda: dam.gradient(MODEL, XD, -YD))
    row(g + "gradient_scale", "x", lambda: dam.gradient_scale(MODEL, XD[None], YD))
    row(g + "gradient_norm", "grads", lambda: dam.gradient_norm(MODEL.w))
    row(g + "tangent_hessian", "tangent_hessian", lambda: dam.tangent_hessian(MB, XD, YD))
    row(g + "replace_beta", "beta", lambda: dam.replace_beta(MODEL, 0.0))
    row(g + "train", "eval_every", lambda: dam.train(MODEL, XD, YD, steps=3, lr=0.1, eval_every=0))
    row(g + "train", "eval_every", lambda: dam.train(MODEL, XD, YD, steps=3, lr=0.1, eval_every=-1))
    row(g + "train", "generator", lambda: dam.train(MODEL, XD, YD, steps=3, lr=0.1, batch_size=4))
    row(g + "train", "lr", lambda: dam.train(MODEL, XD, YD, steps=3, lr=NAN))
    row(g + "train", "resume", lambda: dam.train(MODEL, XD, YD, steps=3, lr=0.1, resume=3))
    row(g + "train", "x", lambda: dam.train(MODEL, _with_nan(XD), YD, steps=3, lr=0.1))
    row(g + "polish", "max_iter", lambda: dam.polish(MODEL, XD, YD, max_iter=0))
    row(g + "polish", "polish", lambda: dam.polish(MB, XD, YD))
    row(g + "newton_polish", "cg_iters", lambda: dam.newton_polish(MODEL, XD, YD, cg_iters=0))
    row(g + "smoothed_accuracy", "window", lambda: dam.smoothed_accuracy(HIST, 0))
    row(g + "smoothed_accuracy", "window", lambda: dam.smoothed_accuracy(HIST, 99))
    row(g + "time_to_reach", "measure", lambda: dam.time_to_reach(HIST, 0.5, measure="hours"))
    row(g + "time_to_reach", "target", lambda: dam.time_to_reach(HIST, "half"))
    row(g + "copy_memories", "index", lambda: dam.copy_memories(MODEL, [0.7]))
    row(g + "copy_memories", "index", lambda: dam.copy_memories(MODEL, [9]))
    row(g + "copy_memories", "index", lambda: dam.copy_memories(MODEL, [0, 0]))
    row(g + "split_memories", "eps", lambda: dam.split_memories(MODEL, [0], MODEL.w[:1], eps=-1.0))
    row(g + "split_memories", "directions", lambda: dam.split_memories(MODEL, [0], _with_nan(MODEL.w[:1]), eps=0.1))
    row(g + "splitting_matrix", "y", lambda: dam.splitting_matrix(MODEL, XD, YD + 2))
    row(g + "splitting_eigen", "x", lambda: dam.splitting_eigen(MODEL, XD[:, :2], YD))
    row(g + "splitting_apply", "v", lambda: dam.splitting_apply(MODEL, torch.zeros(20, 4, dtype=F64), XD,
                                                                torch.zeros(4, 2, dtype=F64)))
    row(g + "splitting_directions", "generator", lambda: dam.splitting_directions(MODEL, XD, YD))
    row(g + "splitting_directions", "iters", lambda: dam.splitting_directions(MODEL, XD, YD, iters=0,
                                                                              generator=_gen()))
    row(g + "grow_by_splitting", "p_max", lambda: dam.grow_by_splitting(
        MODEL, XD, YD, p_max=2, stage_steps=2, total_steps=4, lr=0.1, eps=0.1, generator=_gen(),
        eval_every=2, eval_data=(XD, YD)))
    row(g + "grow_by_splitting", "generator", lambda: dam.grow_by_splitting(
        MODEL, XD, YD, p_max=8, stage_steps=2, total_steps=4, lr=0.1, eps=0.1, generator=None,
        eval_every=2, eval_data=(XD, YD)))
    row(g + "models_over_beta", "betas", lambda: dam.models_over_beta(XD, YD, [], steps=2, lr=0.1))
    row(g + "models_over_beta", "betas", lambda: dam.models_over_beta(XD, YD, [1.0, -1.0], steps=2, lr=0.1))
    row(g + "saddle_states", "models", lambda: dam.saddle_states(MODEL, XD, YD))
    row(g + "saddle_point_iteration", "max_iter", lambda: dam.saddle_point_iteration(MODEL, XD, YD, max_iter=0))
    row(g + "saddle_point_iteration", "saddle_point_iteration", lambda: dam.saddle_point_iteration(MB, XD, YD))
    row(g + "kh_outputs", "power", lambda: dam.kh_outputs(KH, VKH, power=0, temperature=1.0))
    row(g + "kh_outputs", "memories", lambda: dam.kh_outputs(_with_nan(KH), VKH, power=2, temperature=1.0))
    row(g + "kh_initial", "generator", lambda: dam.kh_initial(3, 6, generator=None))
    row(g + "train_kh", "y", lambda: dam.train_kh(VKH, torch.arange(10) % 3, 2, n_memories=3, power=2,
                                                  temperature=1.0, steps=2, lr=0.1, batch_size=4, generator=_gen()))
    row(g + "train_kh", "generator", lambda: dam.train_kh(VKH, torch.arange(10) % 2, 2, n_memories=3, power=2,
                                                          temperature=1.0, steps=2, lr=0.1, batch_size=4,
                                                          generator=None))
    row(g + "neighbour_purity", "k", lambda: dam.neighbour_purity(MODEL.w, YD[:4], XD, YD, k=0))
    row(g + "neighbour_purity", "labels", lambda: dam.neighbour_purity(MODEL.w, torch.zeros(4), XD, YD))
    row(g + "kh_winning_share", "temperature", lambda: dam.kh_winning_share(KH, VKH, power=2, temperature=0.0))
    row(g + "log_bessel_i", "x", lambda: dam.log_bessel_i(1.0, -1.0))
    row(g + "log_bessel_i", "x", lambda: dam.log_bessel_i(1.0, "one"))
    row(g + "log_normaliser", "beta", lambda: dam.log_normaliser(-1.0, 4))
    row(g + "log_normaliser", "n_features", lambda: dam.log_normaliser(1.0, 1))
    row(g + "mean_overlap_factor", "kappa", lambda: dam.mean_overlap_factor("k", 4))
    row(g + "race", "p_max", lambda: dam.race(XD, YD, XD, YD, p_max=0, p0=2, total_steps=2, stage_steps=1,
                                              eval_every=1, batch_size=4, beta=1.0, lr=0.1, eps=0.1, window=1))
    row(g + "smoothed_curve", "window", lambda: dam.smoothed_curve(HIST, 0))
    row(g + "load_digits", "n_train", lambda: dam.load_digits(0))

    # dam.protocol
    q = "damlib.dam.protocol."
    row(q + "gradient_with_beta", "smoothing", lambda: protocol.gradient_with_beta(MODEL, XD, YD, smoothing=2.0))
    row(q + "authors_run", "generator", lambda: protocol.authors_run(MODEL, XD, YD, p_max=4, stage_epochs=1,
                                                                     batch_size=5, generator=None))
    row(q + "authors_run", "val_fraction", lambda: protocol.authors_run(MODEL, XD, YD, p_max=4, stage_epochs=1,
                                                                        batch_size=5, val_fraction=1.0,
                                                                        generator=_gen()))
    row(q + "random_start", "classes", lambda: protocol.random_start(4, 3, 2, 1.0, generator=_gen(), classes="x"))
    row(q + "random_start", "generator", lambda: protocol.random_start(4, 3, 2, 1.0, generator=None))
    row(q + "mean_start", "x", lambda: protocol.mean_start(_with_nan(XD), 4, 2, 1.0, generator=_gen()))
    row(q + "arrays", "run", lambda: protocol.arrays("run"))
    row(q + "SMD", "momentum", lambda: protocol.SMD(MODEL, momentum=1.0))

    # denseam
    h = "damlib.denseam."
    row(h + "Setup", "D", lambda: dm.Setup(0, 4, 4, 4))
    row(h + "Setup", "activation", lambda: dm.Setup(4, 4, 4, 4, activation="gelu"))
    row(h + "proportional", "D", lambda: dm.proportional(2.5))
    row(h + "k_only", "K", lambda: dm.k_only(-3))
    row(h + "gaussian_data", "generator", lambda: dm.gaussian_data(SETUP, 2, generator=None))
    row(h + "batches", "data", lambda: next(dm.batches(torch.zeros(3, 4), SETUP, 2, generator=_gen())))
    row(h + "batches", "generator", lambda: next(dm.batches(torch.zeros(1, 3, 4), SETUP, 2, generator=None)))
    row(h + "Trainer", "lrs", lambda: dm.Trainer(SETUP, [0.1, -1.0], 1, device="cpu"))
    row(h + "Trainer", "data", lambda: dm.Trainer(SETUP, [0.1], 1, data=torch.full((SETUP.N, SETUP.D), NAN),
                                                  device="cpu"))
    row(h + "Trainer", "seeds", lambda: dm.Trainer(SETUP, [0.1], 0, device="cpu"))
    row(h + "Trainer.run", "drop_every", lambda: dm.Trainer(SETUP, [0.1], 1, device="cpu").run(2, drop_every=0))
    row(h + "sweep", "record", lambda: dm.sweep(SETUP, [0.1], steps=2, record=("energy",), device="cpu"))
    row(h + "sweep", "steps", lambda: dm.sweep(SETUP, [0.1], steps=0, device="cpu"))
    row(h + "first_updates", "lr", lambda: dm.first_updates(SETUP, -0.1, device="cpu"))
    row(h + "activate", "activation", lambda: dm.activate(ACT, "gelu"))
    row(h + "activate", "h", lambda: dm.activate([1.0], "relu"))
    row(h + "centre", "W", lambda: dm.centre(torch.zeros(3)))
    row(h + "init_params", "generator", lambda: dm.init_params(2, 3, 4))
    row(h + "forward", "x", lambda: dm.forward(DMP, torch.zeros(5, SETUP.D + 1), s_in=1.0, s_out=1.0))
    row(h + "forward", "x", lambda: dm.forward(DMP, torch.full((5, SETUP.D), NAN), s_in=1.0, s_out=1.0))
    row(h + "forward", "params", lambda: dm.forward("params", torch.zeros(5, SETUP.D), s_in=1.0, s_out=1.0))
    row(h + "mse", "x", lambda: dm.mse(torch.zeros(2, 3, 4), torch.zeros(3, 1)))
    row(h + "gram_eigenvalues", "top", lambda: dm.gram_eigenvalues(ACT, centred=True, top=9))
    row(h + "participation", "a", lambda: dm.participation(torch.zeros(3)))
    row(h + "relu_power_norm", "p", lambda: dm.relu_power_norm(0.0))
    row(h + "has_optimum", "history", lambda: dm.has_optimum(HIST))
    row(h + "optimal_lr", "history", lambda: dm.optimal_lr(_all_diverged(DMH)))
    row(h + "best_loss", "history", lambda: dm.best_loss("h"))
    row(h + "max_stable", "history", lambda: dm.max_stable(None))
    row(h + "transfer_factor", "histories", lambda: dm.transfer_factor([]))
    row(h + "pinned_at_edge", "history", lambda: dm.pinned_at_edge(1))
    row(h + "nearest_lr_index", "lr", lambda: dm.nearest_lr_index(DMH.lrs, -1.0))
    row(h + "nearest_lr_index", "lrs", lambda: dm.nearest_lr_index([0.1, -0.1], 0.1))
    row(h + "transfer", "histories", lambda: dm.transfer(DMH))
    row(h + "parameterisation", "regime", lambda: dm.parameterisation("mean_field", "relu", "sgd"))
    row(h + "sweep_plan", "DAMLIB_SCALE", lambda: _with_env("DAMLIB_SCALE", "huge", dm.sweep_plan))
    row(h + "Monomial", "exponents", lambda: dm.Monomial.of(Z=1.0))
    row(h + "Parameterisation", "D", lambda: dm.TABLE1[("proportional", "elementwise", "sgd")].scales(
        D=0, K=1, B=1, N=1))

    # store
    s = "damlib.store."
    row(s + "paths", "experiment", lambda: store.paths("../up", "a"))
    row(s + "paths", "shard", lambda: store.paths("gd_x", "a/b"))
    row(s + "rerun_command", "shard", lambda: store.rerun_command("gd_x", ""))
    row(s + "load", "experiment", lambda: store.load("", "a"))
    row(s + "read", "params", lambda: store.read("gd_x", "a", "params"))
    row(s + "write", "params", lambda: store.write("gd_x", "a", {"x": object()}, {"v": [1.0]}, seconds=1.0,
                                                   root="/tmp/none"))
    row(s + "write", "arrays", lambda: store.write("gd_x", "a", {}, {}, seconds=1.0, root="/tmp/none"))
    row(s + "write", "seconds", lambda: store.write("gd_x", "a", {}, {"v": [1.0]}, seconds=-1.0, root="/tmp/none"))
    row(s + "jsonable", "params", lambda: store.jsonable({"f": lambda: 0}))
    row(s + "canonical", "params", lambda: store.canonical({1, 2}))
    row(s + "duration", "seconds", lambda: store.duration(-5.0))
    row(s + "verify", "recomputed", lambda: store.verify("shard", {}, rtol=0.0, atol=0.0))
    row(s + "describe", "shard", lambda: store.describe("shard"))
    row(s + "absent", "experiment", lambda: store.absent("../x", "a"))
    row(s + "absent", "shard", lambda: store.absent("gd_x", "a b"))
    row(s + "provenance", "device", lambda: store.provenance("tpu"))
    row(s + "resolve_root", "root", lambda: store.resolve_root(5))

    # experiments
    e = "damlib.experiments."
    row(e + "get", "name", lambda: ex.get("no_such_experiment"))
    row(e + "read", "name", lambda: ex.read("no_such_experiment", "a"))
    row(e + "state", "name", lambda: ex.state("no_such_experiment", "a"))
    row(e + "run_shard", "shard", lambda: ex.run_shard(next(iter(ex.REGISTRY)), "no_such_shard"))
    row(e + "register", "experiment", lambda: ex.register("experiment"))
    return R


def _with_env(name, value, fn):
    import os
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        return fn()
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def _all_diverged(h):
    return dm.History(h.setup, h.lrs, h.steps, torch.full_like(h.loss, math.inf), h.records,
                      torch.zeros_like(h.diverged))


ROWS = rows()
FLAT = [(name, arg, call) for name, items in ROWS.items() for arg, call in items]


def _public(module_name):
    mod = importlib.import_module(module_name)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in dir(mod) if not n.startswith("_")
                 and getattr(getattr(mod, n), "__module__", None) == mod.__name__]
    return [f"{module_name}.{n}" for n in names
            if inspect.isfunction(getattr(mod, n)) or inspect.isclass(getattr(mod, n))]


def test_every_public_function_has_rows():
    public = [name for m in MODULES for name in _public(m)]
    missing = [name for name in public if name not in ROWS and name not in EXEMPT]
    assert not missing, f"public names without a bad-input row in tests/test_contract.py: {missing}"


@pytest.mark.parametrize("name, arg, call", FLAT, ids=[f"{n.split('.', 1)[1]}-{a}" for n, a, _ in FLAT])
def test_bad_input_raises_value_error_naming_the_argument(name, arg, call):
    with pytest.raises(ValueError) as err:
        call()
    assert arg in str(err.value), f"{name}: the message {str(err.value)!r} does not name {arg!r}"


def test_finite_raises_divergence_with_the_step():
    with pytest.raises(checks.DivergenceError) as err:
        checks.finite(7, torch.tensor([1.0, NAN]))
    assert err.value.step == 7
