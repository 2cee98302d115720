"""Tests of damlib.transformer: the induction-head task, the model, the chunked gradient, margins."""

import math

import pytest
import torch

import damlib
from damlib import DivergenceError
from damlib import transformer as tf
from damlib.data import load_shakespeare_table

F64 = torch.float64


@pytest.fixture(scope="module")
def task():
    return tf.make_task(5)


@pytest.fixture(scope="module")
def small(task):
    """A small problem in float64: sequences, frozen parts, random trained matrices for 3 runs."""
    gen = damlib.generator(1)
    seqs = tf.sample_sequences(task, 24, 20, generator=gen)
    frozen = tf.init_frozen(65, 8, 20, generator=gen, dtype=F64)
    params = tf.init_params(frozen, 3, generator=gen)
    params = {k: v + 0.3 * torch.randn(v.shape, generator=gen, dtype=F64) for k, v in params.items()}
    return seqs, frozen, params


def reference_logits(frozen, params, tokens):
    """The model written out run by run and sequence by sequence, all positions: (R, B, T, V)."""
    T = tokens.shape[1]
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    scale = 1 / math.sqrt(frozen.d)
    runs = []
    for r in range(params["WK1"].shape[0]):
        seqs = []
        for z in tokens:
            x = frozen.E[z] + frozen.P[:T]
            a1 = torch.softmax((scale * x @ params["WK1"][r] @ x.T).masked_fill(future, -math.inf), -1)
            x1 = x + a1 @ x @ frozen.WV1.T @ frozen.WO1.T
            a2 = torch.softmax((scale * x1 @ params["WK2"][r] @ x1.T).masked_fill(future, -math.inf), -1)
            x2 = x1 + a2 @ x1 @ frozen.WV2.T @ params["WO2"][r].T
            seqs.append(x2 @ frozen.U.T)
        runs.append(torch.stack(seqs))
    return torch.stack(runs)


def reference_loss(frozen, params, seqs):
    """Mean cross-entropy and accuracy over the loss positions, from the reference logits: (R,) each."""
    logits = reference_logits(frozen, params, seqs.tokens)[:, seqs.mask]            # (R, n, V)
    target = seqs.targets[seqs.mask]
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.expand(logits.shape[0], -1),
                                           reduction="none").mean(-1)
    return ce, (logits.argmax(-1) == target).double().mean(-1)


# --- table and task ---------------------------------------------------------------------------

def test_table_and_task(task):
    table = load_shakespeare_table()
    assert len(table.vocab) == 65 and table.vocab[:2] == "\n "
    assert table.decode(table.encode("To be, or not")) == "To be, or not"
    assert table.bigram.sum() <= table.unigram.sum()
    assert table.decode(task.triggers) == " etoa"
    assert torch.allclose(task.transition.sum(-1), torch.ones(65, dtype=F64))
    assert torch.allclose(task.unigram.sum(), torch.tensor(1.0, dtype=F64))
    dollar = table.vocab.index("$")  # never followed by anything in the texts
    assert table.bigram[dollar].sum() == 0 and torch.equal(task.transition[dollar], task.unigram)
    assert tf.make_task(triggers="xz").triggers.tolist() == table.encode("xz").tolist()


def test_task_rejects_bad_input():
    with pytest.raises(ValueError, match="k"):
        tf.make_task(0)
    with pytest.raises(ValueError, match="k"):
        tf.make_task(65)
    with pytest.raises(ValueError, match="triggers"):
        tf.make_task(triggers=[1, 1])
    with pytest.raises(ValueError, match="triggers"):
        tf.make_task(triggers=[70])
    with pytest.raises(ValueError, match="vocabulary"):
        tf.make_task(triggers="#")
    with pytest.raises(ValueError, match="path"):
        load_shakespeare_table("/nonexistent/table.json")


def test_sample_sequences(task):
    seqs = tf.sample_sequences(task, 200, 50, generator=damlib.generator(3))
    assert seqs.tokens.shape == seqs.targets.shape == seqs.mask.shape == (200, 50)
    assert seqs.outputs.shape == (200, 5) and len(seqs) == 200
    assert torch.equal(seqs.tokens[:, 1:], seqs.targets[:, :-1])
    for j, q in enumerate(task.triggers.tolist()):
        hit = seqs.tokens == q
        assert torch.equal(seqs.targets[hit], seqs.outputs[:, j:j + 1].expand_as(hit)[hit])
    # the mask, position by position: a trigger seen before in its sequence
    for i in range(20):
        seen = set()
        for t, z in enumerate(seqs.tokens[i].tolist()):
            expected = z in task.triggers.tolist() and z in seen
            assert bool(seqs.mask[i, t]) == expected
            seen.add(z)
    # same seed, same sequences; other seed, others
    again = tf.sample_sequences(task, 200, 50, generator=damlib.generator(3))
    assert torch.equal(again.tokens, seqs.tokens)
    other = tf.sample_sequences(task, 200, 50, generator=damlib.generator(4))
    assert not torch.equal(other.tokens, seqs.tokens)


def test_sampling_follows_the_bigram(task):
    """Transitions out of non-triggers match the bigram law (chi-square-free check on the commonest row)."""
    seqs = tf.sample_sequences(task, 2000, 100, generator=damlib.generator(5))
    table = load_shakespeare_table()
    h = table.vocab.index("h")
    after = seqs.targets[seqs.tokens == h]
    freq = torch.bincount(after, minlength=65).double() / after.numel()
    assert after.numel() > 2000
    assert (freq - task.transition[h]).abs().max() < 0.03
    # outputs are uniform over the vocabulary
    counts = torch.bincount(seqs.outputs.flatten(), minlength=65).double()
    assert counts.min() > 0 and counts.max() / counts.mean() < 1.5


def test_sample_rejects_bad_input(task):
    gen = damlib.generator(0)
    with pytest.raises(ValueError, match="n"):
        tf.sample_sequences(task, 0, 10, generator=gen)
    with pytest.raises(ValueError, match="length"):
        tf.sample_sequences(task, 3, 1, generator=gen)


def test_loss_positions():
    mask = torch.tensor([[False, True, False, True], [False, False, False, False], [True, True, True, False]])
    queries, valid = tf.loss_positions(mask)
    assert queries.tolist() == [[1, 3, 0], [0, 0, 0], [0, 1, 2]]
    assert valid.tolist() == [[True, True, False], [False, False, False], [True, True, True]]


# --- model ------------------------------------------------------------------------------------

def test_init_shapes():
    gen = damlib.generator(0)
    frozen = tf.init_frozen(65, 16, 30, generator=gen)
    assert frozen.E.shape == (65, 16) and frozen.P.shape == (30, 16) and frozen.U.shape == (65, 16)
    assert frozen.WV1.abs().max() <= 1 / 4 and frozen.d == 16
    params = tf.init_params(frozen, 3, generator=gen)
    assert all(p.shape == (3, 16, 16) for p in params.values())
    assert torch.equal(params["WK1"][0], params["WK1"][2])  # every run starts from the same matrices
    assert all(float(p.abs().max()) == 0 for p in tf.init_params(frozen, 2).values())
    with pytest.raises(ValueError, match="d"):
        tf.init_frozen(65, 0, 30, generator=gen)
    with pytest.raises(ValueError, match="runs"):
        tf.init_params(frozen, 0)


def test_forward_matches_the_reference(small):
    seqs, frozen, params = small
    logits = tf.forward(frozen, params, seqs.tokens)
    expected = reference_logits(frozen, params, seqs.tokens)
    assert logits.shape == (3, 24, 20, 65)
    assert torch.allclose(logits, expected, atol=1e-12, rtol=0)
    queries, _ = tf.loss_positions(seqs.mask)
    at = tf.forward(frozen, params, seqs.tokens, queries)
    assert torch.allclose(at, expected[:, torch.arange(24)[:, None], queries], atol=1e-12, rtol=0)


def test_forward_of_long_sequences_matches_the_reference(task):
    """Sequences longer than the vocabulary (T > V) take the matmul path for the layer-1 scores."""
    gen = damlib.generator(4)
    seqs = tf.sample_sequences(task, 3, 70, generator=gen)
    frozen = tf.init_frozen(65, 8, 70, generator=gen, dtype=F64)
    params = tf.init_params(frozen, 2, generator=gen)
    logits = tf.forward(frozen, params, seqs.tokens)
    assert torch.allclose(logits, reference_logits(frozen, params, seqs.tokens), atol=1e-12, rtol=0)


def test_forward_rejects_bad_input(small):
    seqs, frozen, params = small
    with pytest.raises(ValueError, match="tokens"):
        tf.forward(frozen, params, seqs.tokens.double())
    with pytest.raises(ValueError, match="positions"):
        tf.forward(frozen, params, torch.zeros(2, 21, dtype=torch.long))
    with pytest.raises(ValueError, match="queries"):
        tf.forward(frozen, params, seqs.tokens, torch.full((24, 2), 20))
    with pytest.raises(ValueError, match="params"):
        tf.forward(frozen, {"WK1": params["WK1"]}, seqs.tokens)
    with pytest.raises(ValueError, match="WO2"):
        tf.forward(frozen, {**params, "WO2": params["WO2"][:2]}, seqs.tokens)


def test_induction_keys_are_the_ideal_memories():
    """On orthonormal embeddings the hand-built keys score exactly ``strength`` on the right pairs."""
    d = 12
    eye = torch.eye(d, dtype=F64)
    frozen = tf.Frozen(E=eye[:6], P=eye[6:], WV1=eye, WO1=eye, WV2=eye, U=eye[:6])
    keys = tf.induction_keys(frozen, torch.tensor([0, 2]), strength=4.0)
    m1 = tf.previous_token_margins(frozen, keys["WK1"], torch.arange(1, 6))
    assert torch.allclose(m1, torch.full((5,), 4.0, dtype=F64))
    m2 = tf.induction_margins(frozen, keys["WK2"], torch.tensor([0, 2]))
    assert torch.allclose(m2, torch.full((2,), 4.0, dtype=F64))
    with pytest.raises(ValueError, match="strength"):
        tf.induction_keys(frozen, torch.tensor([0]), strength=-1.0)


# --- loss, chunked gradient, training ---------------------------------------------------------

def test_loss_and_gradient_match_autograd(small):
    seqs, frozen, params = small
    loss, grads = tf.loss_and_gradient(frozen, params, seqs)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    ref, _ = reference_loss(frozen, leaves, seqs)
    assert torch.allclose(loss, ref.detach(), atol=1e-12, rtol=0)
    auto = torch.autograd.grad(ref.sum(), [leaves[k] for k in tf.TRAINABLE])
    for name, g in zip(tf.TRAINABLE, auto, strict=True):
        assert torch.allclose(grads[name], g, atol=1e-12, rtol=0), name


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
def test_chunked_gradient_equals_one_shot(task, dtype, tol):
    gen = damlib.generator(7)
    seqs = tf.sample_sequences(task, 21, 24, generator=gen)
    frozen = tf.init_frozen(65, 8, 24, generator=gen, dtype=dtype)
    params = tf.init_params(frozen, 2, generator=gen)
    params = {k: v + 0.3 * torch.randn(v.shape, generator=gen, dtype=dtype) for k, v in params.items()}
    loss, grads = tf.loss_and_gradient(frozen, params, seqs)
    for chunk in (2, 5, 16):
        loss_c, grads_c = tf.loss_and_gradient(frozen, params, seqs, chunk=chunk)
        assert torch.allclose(loss_c, loss, rtol=tol, atol=0)
        for name in tf.TRAINABLE:
            scale = grads[name].abs().max()
            assert (grads_c[name] - grads[name]).abs().max() <= tol * scale, (chunk, name)


def test_gradient_of_a_subset(small):
    seqs, frozen, params = small
    _, grads = tf.loss_and_gradient(frozen, params, seqs, trained=("WO2",))
    _, full = tf.loss_and_gradient(frozen, params, seqs)
    assert set(grads) == {"WO2"} and torch.allclose(grads["WO2"], full["WO2"], atol=1e-14)
    with pytest.raises(ValueError, match="trained"):
        tf.loss_and_gradient(frozen, params, seqs, trained=("WQ",))
    with pytest.raises(ValueError, match="chunk"):
        tf.loss_and_gradient(frozen, params, seqs, chunk=0)
    empty = seqs[:2]
    empty = tf.Sequences(empty.tokens, empty.targets, torch.zeros_like(empty.mask), empty.outputs)
    with pytest.raises(ValueError, match="loss positions"):
        tf.loss_and_gradient(frozen, params, empty)
    with pytest.raises(ValueError, match="seqs"):
        tf.loss_and_gradient(frozen, params, seqs.tokens)


SUBSETS = [("WO2",), ("WK2", "WO2"), tf.TRAINABLE]


def perturbed(params, gen, size=1e-4):
    """The matrices moved by ``size`` times a standard normal draw: a control for the comparisons."""
    return {k: v + size * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}


@pytest.mark.parametrize("trained", SUBSETS, ids="+".join)
@pytest.mark.parametrize("length", [20, 70], ids=["T<=V", "T>V"])
def test_hand_written_gradient_equals_autograd(task, trained, length):
    """The hand-written backward (with what the frozen matrices fix computed once) against
    autograd through the forward pass, whole and in chunks. Control: the autograd gradient at
    matrices moved by 1e-4 is not equal at the tolerance."""
    gen = damlib.generator(11)
    seqs = tf.sample_sequences(task, 14, length, generator=gen)
    frozen = tf.init_frozen(65, 8, length, generator=gen, dtype=F64)
    params = perturbed(tf.init_params(frozen, 2, generator=gen), gen, 0.3)
    total = tf._check_seqs(seqs)
    for chunk in (None, 4):
        loss, grads = tf._loss_and_gradient(frozen, params, seqs, trained, chunk, total)
        ref_loss, ref = tf._loss_and_gradient_autograd(frozen, params, seqs, trained, chunk, total)
        assert set(grads) == set(trained)
        assert torch.allclose(loss, ref_loss, rtol=1e-10, atol=0)
        for name in trained:
            assert (grads[name] - ref[name]).abs().max() <= 1e-10 * ref[name].abs().max(), (chunk, name)
    _, moved = tf._loss_and_gradient_autograd(frozen, perturbed(params, gen), seqs, trained, None, total)
    for name in trained:
        assert (grads[name] - moved[name]).abs().max() > 1e-8 * moved[name].abs().max(), name


def reference_train(frozen, params, seqs, lr, steps, trained):
    """Gradient descent by the autograd gradient, one chunk: losses (steps + 1, R), final matrices."""
    params = {k: v.clone() for k, v in params.items()}
    total, losses = tf._check_seqs(seqs), []
    for _ in range(steps):
        loss, grads = tf._loss_and_gradient_autograd(frozen, params, seqs, trained, None, total)
        losses.append(loss)
        for name, g in grads.items():
            params[name] -= lr * g
    losses.append(tf.evaluate(frozen, params, seqs)[0].to(losses[0].dtype))
    return torch.stack(losses), params


@pytest.mark.parametrize("trained", SUBSETS, ids="+".join)
def test_train_equals_the_autograd_path(task, trained):
    """A few float32 steps of train (prepared parts, hand-written backward, chunks) give the
    losses and matrices of plain gradient descent by autograd. Control: the same descent at a
    learning rate 1 % larger is not equal at the tolerance."""
    gen = damlib.generator(12)
    seqs = tf.sample_sequences(task, 40, 24, generator=gen)
    frozen = tf.init_frozen(65, 16, 24, generator=gen)
    params = perturbed(tf.init_params(frozen, 2, generator=gen), gen, 0.1)
    lr = torch.tensor([1.0, 3.0])
    run = tf.train(frozen, params, seqs, lr=lr, steps=4, trained=trained, chunk=16, progress=False)
    losses, final = reference_train(frozen, params, seqs, lr[:, None, None], 4, trained)
    assert torch.allclose(run["loss"], losses, rtol=1e-5, atol=0)
    for name in tf.TRAINABLE:
        assert torch.allclose(run.params[name], final[name], rtol=1e-5, atol=1e-6), name
    _, faster = reference_train(frozen, params, seqs, 1.01 * lr[:, None, None], 4, trained)
    assert not torch.allclose(run.params["WO2"], faster["WO2"], rtol=1e-5, atol=1e-6)


def test_evaluate(small):
    seqs, frozen, params = small
    loss, acc = tf.evaluate(frozen, params, seqs, chunk=7)
    ref_loss, ref_acc = reference_loss(frozen, params, seqs)
    assert torch.allclose(loss, ref_loss, atol=1e-12) and torch.allclose(acc, ref_acc)


def test_train_runs_are_independent(small):
    """A batch of learning rates gives, run by run, the runs made one at a time."""
    seqs, frozen, params = small
    lrs = torch.tensor([0.5, 2.0, 5.0], dtype=F64)
    run = tf.train(frozen, params, seqs, lr=lrs, steps=4, progress=False,
                   record=("loss", "output_margins"))
    assert run["loss"].shape == (5, 3) and run["output_margins"].shape == (5, 3, 65)
    assert run.steps.tolist() == [0, 1, 2, 3, 4] and run.state.step == 4
    margins = tf.output_margins(frozen, run.params["WO2"], torch.arange(3))
    assert torch.allclose(run["output_margins"][-1, :, :3], margins, atol=1e-12)
    for r in range(3):
        one = {k: v[r:r + 1] for k, v in params.items()}
        run_r = tf.train(frozen, one, seqs, lr=float(lrs[r]), steps=4, progress=False, chunk=5)
        assert torch.allclose(run_r["loss"][:, 0], run["loss"][:, r], atol=1e-12)
        for k in tf.TRAINABLE:
            assert torch.allclose(run_r.params[k][0], run.params[k][r], atol=1e-11)
    assert run["loss"][-1, 0] < run["loss"][0, 0]  # the smallest step size descends
    frozen_keys = tf.train(frozen, params, seqs, lr=1.0, steps=2, trained=("WO2",), progress=False)
    assert torch.equal(frozen_keys.params["WK1"], params["WK1"])
    assert not torch.equal(frozen_keys.params["WO2"], params["WO2"])


def test_train_continues_from_its_state(small):
    """Two runs of 2 and 3 steps, the second from the first's state, make one run of 5 steps."""
    seqs, frozen, params = small
    record = ("loss", "induction_margins", "previous_token_margins")
    whole = tf.train(frozen, params, seqs, lr=2.0, steps=5, record=record, progress=False)
    first = tf.train(frozen, params, seqs, lr=2.0, steps=2, record=record, progress=False)
    second = tf.train(frozen, first.state, seqs, lr=2.0, steps=3, record=record, progress=False)
    assert second.steps.tolist() == [2, 3, 4, 5] and second.state.step == 5
    for name in record:
        joined = torch.cat([first[name], second[name][1:]])
        assert torch.allclose(joined, whole[name], atol=1e-12), name
    assert whole["previous_token_margins"].shape == (6, 3, 19)
    for k in tf.TRAINABLE:
        assert torch.allclose(second.params[k], whole.params[k], atol=1e-12)
    some = tf.train(frozen, params, seqs, lr=2.0, steps=5, at=[0, 5], progress=False)
    assert some.steps.tolist() == [0, 5] and torch.allclose(some["loss"], whole["loss"][[0, 5]])


def test_train_records_the_margins_of_chosen_tokens(task):
    gen = damlib.generator(3)
    seqs = tf.sample_sequences(task, 12, 20, generator=gen)
    frozen = tf.init_frozen(65, 8, 20, generator=gen)
    params = tf.init_params(frozen, 2, generator=gen)
    ids = torch.tensor([task.vocab.index("e"), task.vocab.index("T")])
    run = tf.train(frozen, params, seqs, lr=1.0, steps=2, record=tf.RECORDS, output_tokens=ids,
                   induction_tokens=task.triggers, progress=False)
    assert torch.equal(run["output_margins"][-1], tf.output_margins(frozen, run.params["WO2"], ids))
    assert torch.equal(run["induction_margins"][-1],
                       tf.induction_margins(frozen, run.params["WK2"], task.triggers))
    positions = torch.arange(1, 20)
    assert torch.equal(run["previous_token_margins"][-1],
                       tf.previous_token_margins(frozen, run.params["WK1"], positions))
    every = tf.train(frozen, params, seqs, lr=1.0, steps=2, record=("output_margins",), progress=False)
    assert every["output_margins"].shape == (3, 2, 65)


def test_train_rejects_bad_input_and_divergence(small):
    seqs, frozen, params = small
    with pytest.raises(ValueError, match="lr"):
        tf.train(frozen, params, seqs, lr=[1.0, 2.0], steps=2, progress=False)
    with pytest.raises(ValueError, match="lr"):
        tf.train(frozen, params, seqs, lr=-1.0, steps=2, progress=False)
    with pytest.raises(ValueError, match="steps"):
        tf.train(frozen, params, seqs, lr=1.0, steps=0, progress=False)
    with pytest.raises(ValueError, match="record"):
        tf.train(frozen, params, seqs, lr=1.0, steps=1, record=("margins",), progress=False)
    with pytest.raises(ValueError, match="at"):
        tf.train(frozen, params, seqs, lr=1.0, steps=1, at=[2], progress=False)
    with pytest.raises(ValueError, match="start.step"):
        tf.train(frozen, tf.State(params, -1), seqs, lr=1.0, steps=1, progress=False)
    # the gradient is bounded (softmax residuals), so only an overflow makes a run diverge:
    # in float32 a step of 1e38 sends the matrices past the largest float
    f32 = tf.init_frozen(65, 8, 20, generator=damlib.generator(2))
    p32 = tf.init_params(f32, 1, generator=damlib.generator(2))
    with pytest.raises(DivergenceError) as err:
        tf.train(f32, p32, seqs, lr=3e38, steps=5, progress=False)
    assert 1 <= err.value.step <= 5
    first = err.value.step
    bad = {**params, "WO2": params["WO2"].clone()}
    bad["WO2"][0, 0, 0] = math.nan
    # NaN in the start is bad input, not a divergence
    with pytest.raises(ValueError, match="WO2"):
        tf.train(frozen, bad, seqs, lr=1.0, steps=3, progress=False)
    with pytest.raises(DivergenceError) as err:  # the step counts on from the state
        tf.train(f32, tf.State(p32, 7), seqs, lr=3e38, steps=5, progress=False)
    assert err.value.step == 7 + first


# --- margins ----------------------------------------------------------------------------------

def test_association_margins_by_hand():
    """Scores [[3, 1, 2], [0, 5, 5.5]] with right answers (0, 1): margins 1 and -0.5."""
    left = torch.eye(2, dtype=F64)
    right = torch.eye(3, dtype=F64)
    W = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 5.5]], dtype=F64)
    m = tf.association_margins(W, left, right, torch.tensor([0, 1]))
    assert m.tolist() == [1.0, -0.5]
    # restricting the competitors, and a batch of memories with a scale
    allowed = torch.tensor([[True, True, False], [True, True, False]])
    m = tf.association_margins(W, left, right, torch.tensor([0, 1]), allowed=allowed)
    assert m.tolist() == [2.0, 5.0]
    batch = torch.stack([W, 2 * W])
    assert tf.association_margins(batch, left, right, torch.tensor([0, 1]), scale=0.5).tolist() == [
        [0.5, -0.25], [1.0, -0.5]]


def test_model_margins_by_hand():
    """Orthonormal embeddings and identity maps: each memory's margin is the stored strength."""
    d = 10
    eye = torch.eye(d, dtype=F64)
    frozen = tf.Frozen(E=eye[:5], P=eye[5:], WV1=eye, WO1=eye, WV2=eye, U=eye[:5])
    tokens = torch.arange(5)
    WO2 = 2 * eye - 0.5 * eye[[1, 0]].T @ eye[[0, 1]]   # token 1 also writes -0.5 u_0, token 0 -0.5 u_1
    assert tf.output_margins(frozen, WO2, tokens).tolist() == [2.0, 2.0, 2.0, 2.0, 2.0]
    WO2 = eye.clone()
    WO2[1, 0] = 1.5                                      # token 0 writes u_1 more than u_0
    assert tf.output_margins(frozen, WO2, tokens).tolist() == [-0.5, 1.0, 1.0, 1.0, 1.0]
    WK2 = 3 * math.sqrt(d) * eye
    m = tf.induction_margins(frozen, WK2, torch.tensor([0, 3]))
    assert torch.allclose(m, torch.full((2,), 3.0, dtype=F64))
    shift = sum(torch.outer(eye[5 + t], eye[5 + t - 1]) for t in range(1, 5))
    m = tf.previous_token_margins(frozen, 2 * math.sqrt(d) * shift, torch.arange(1, 5))
    assert torch.allclose(m, torch.full((4,), 2.0, dtype=F64))
    # position 1 sees keys {0, 1} only: a strong score on a future key does not count
    future = 2 * math.sqrt(d) * shift + 10 * math.sqrt(d) * torch.outer(eye[6], eye[9])
    assert math.isclose(float(tf.previous_token_margins(frozen, future, torch.tensor([1]))[0]), 2.0)


def test_margins_reject_bad_input():
    eye = torch.eye(4, dtype=F64)
    with pytest.raises(ValueError, match="W"):
        tf.association_margins(torch.zeros(3, 3, dtype=F64), eye, eye, torch.arange(4))
    with pytest.raises(ValueError, match="correct"):
        tf.association_margins(eye, eye, eye, torch.arange(3))
    with pytest.raises(ValueError, match="correct"):
        tf.association_margins(eye, eye, eye, torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="allowed"):
        tf.association_margins(eye, eye, eye, torch.arange(4), allowed=torch.eye(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="allowed"):
        tf.association_margins(eye, eye, eye, torch.arange(4), allowed=torch.ones(3, 4, dtype=torch.bool))
    frozen = tf.Frozen(E=eye[:2], P=eye[2:], WV1=eye, WO1=eye, WV2=eye, U=eye[:2])
    with pytest.raises(ValueError, match="positions"):
        tf.previous_token_margins(frozen, eye, torch.tensor([0]))
    with pytest.raises(ValueError, match="positions"):
        tf.previous_token_margins(frozen, eye, torch.tensor([2]))
