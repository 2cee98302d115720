"""The induction-head task and the two-layer attention-only transformer of Bietti et al. (2023).

Section 5.3 and Appendix D of Cabannes, Simsek and Bietti (2024) train this model and read its
three trained matrices as associative memories.

The task
    Sequences of characters (vocabulary of V = 65) follow a bigram model estimated from
    Shakespeare, except after the ``k`` trigger tokens ``q_1..q_k`` (fixed, by default the ``k``
    most frequent characters): each occurrence of ``q_j`` is followed by the sequence's own output
    token ``o_j``, drawn uniformly from the vocabulary for every sequence. The loss is the
    cross-entropy of the next token at the positions of a trigger that has occurred before in the
    sequence (the output token from its second occurrence on): only there can it be predicted, by
    copying.

The model (``d`` = embedding dimension, ``T`` = sequence length)
    ``x_t = e_{z_t} + p_t`` with frozen token embeddings ``E (V, d)`` and positional embeddings
    ``P (T, d)``, both N(0, 1). Two single-head causal attention layers with identity queries and
    ``1/sqrt(d)`` scaling, no MLP, residual connections::

        x1_t = x_t  + W_O1 W_V1 sum_s softmax_s(x_t^T W_K1 x_s / sqrt d) x_s
        x2_t = x1_t + W_O2 W_V2 sum_s softmax_s(x1_t^T W_K2 x1_s / sqrt d) x1_s
        logits_t = U x2_t

    ``W_V1, W_O1, W_V2`` and the unembedding ``U (V, d)`` are frozen, with entries uniform on
    ``[-1/sqrt(d), 1/sqrt(d)]`` (torch's default for a linear layer); the trained matrices are
    ``W_K1``, ``W_K2`` and ``W_O2`` (each ``(d, d)``).

Every trained matrix carries a leading run axis ``R`` (one entry per learning rate of a sweep):
``params`` maps ``"WK1"``, ``"WK2"``, ``"WO2"`` to tensors of shape ``(R, d, d)``, and one
training step of all runs is one batched tensor program. Sequences are shared by the runs.
The full-batch gradient is accumulated exactly over chunks of sequences, so a batch that does not
fit in memory at once gives the same gradient (see :func:`loss_and_gradient`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import checks
from .data import CharTable, load_shakespeare_table
from .memory import _margins as _row_margins
from .progress import bar
from .train import check_record, recorded_steps

TRAINABLE = ("WK1", "WK2", "WO2")


# --- the task -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """The sequence model: ``unigram (V,)`` law of the first token, ``transition (V, V)`` bigram
    law (row ``a``: law of the token after ``a``), ``triggers (k,)`` token ids, ``vocab`` string."""

    unigram: torch.Tensor
    transition: torch.Tensor
    triggers: torch.Tensor
    vocab: str


def make_task(k: int = 5, table: CharTable | None = None, *, triggers=None) -> Task:
    """The task built from a character table (default: the Shakespeare table of ``damlib``).

    ``triggers`` (a string of characters or a sequence of ids) defaults to the ``k`` most
    frequent characters. A character never followed by another in the table gets the unigram
    law as its next-token law. Probabilities are float64.
    """
    table = load_shakespeare_table() if table is None else table
    if not isinstance(table, CharTable):
        raise ValueError(f"table must be a CharTable, got {type(table).__name__}")
    v = len(table.vocab)
    unigram = table.unigram.double()
    if float(unigram.sum()) <= 0:
        raise ValueError("table must hold positive unigram counts")
    unigram = unigram / unigram.sum()
    rows = table.bigram.double()
    totals = rows.sum(-1, keepdim=True)
    transition = torch.where(totals > 0, rows / totals.clamp_min(1), unigram)
    if triggers is None:
        checks.positive_int("k", k)
        if k >= v:
            raise ValueError(f"k must be smaller than the vocabulary ({v}), got {k}")
        trig = unigram.argsort(descending=True, stable=True)[:k]
    else:
        trig = (table.encode(triggers) if isinstance(triggers, str)
                else checks.indices("triggers", triggers, v, device="cpu")).flatten()
        if trig.numel() == 0 or len(set(trig.tolist())) != trig.numel():
            raise ValueError(f"triggers must be distinct tokens, got {trig.tolist()}")
    return Task(unigram, transition, trig, table.vocab)


@dataclass(frozen=True)
class Sequences:
    """Sampled sequences: ``tokens (n, T)`` model inputs, ``targets (n, T)`` the next tokens,
    ``mask (n, T)`` bool, the positions where the loss is taken, ``outputs (n, k)`` each
    sequence's output tokens (``outputs[i, j]`` follows trigger ``j`` in sequence ``i``)."""

    tokens: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    outputs: torch.Tensor

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to(self, device) -> Sequences:
        """The same sequences on ``device``."""
        return Sequences(*(t.to(device) for t in (self.tokens, self.targets, self.mask, self.outputs)))

    def __getitem__(self, index) -> Sequences:
        """A slice of the sequences (``index`` over the first axis)."""
        return Sequences(self.tokens[index], self.targets[index], self.mask[index], self.outputs[index])


def loss_mask(tokens: torch.Tensor, triggers: torch.Tensor) -> torch.Tensor:
    """Positions ``(n, T)`` holding a trigger that already occurred earlier in its sequence."""
    checks.indices("tokens", tokens, dim=2)
    checks.indices("triggers", triggers, dim=1)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    for q in triggers.tolist():  # k is small (5): one pass per trigger
        hit = tokens == q
        mask |= hit & (hit.cumsum(-1) >= 2)
    return mask


def sample_sequences(task: Task, n: int, length: int, *, generator: torch.Generator) -> Sequences:
    """Draw ``n`` sequences of ``length`` inputs (``length + 1`` tokens) from the task.

    The first token follows the unigram law; after a trigger comes the sequence's output token,
    after any other token the bigram law. Output tokens are uniform over the vocabulary, one per
    trigger and sequence. Sampling is vectorised over sequences (a loop over positions) and runs
    on the generator's device.
    """
    if not isinstance(task, Task):
        raise ValueError(f"task must be a Task (make_task), got {type(task).__name__}")
    checks.positive_int("n", n)
    checks.positive_int("length", length)
    checks.generator("generator", generator)
    if length < 2:
        raise ValueError(f"length must be at least 2, got {length}")
    dev = generator.device
    v, k = task.transition.shape[0], task.triggers.numel()
    cdf = task.transition.to(dev).cumsum(-1)
    cdf[:, -1] = 1.0  # guard against round-off in the last bin
    slot = torch.full((v,), -1, dtype=torch.long, device=dev)
    slot[task.triggers.to(dev)] = torch.arange(k, device=dev)
    outputs = torch.randint(v, (n, k), generator=generator, device=dev)
    first = torch.multinomial(task.unigram.to(dev), n, replacement=True, generator=generator)
    seq = torch.empty(n, length + 1, dtype=torch.long, device=dev)
    seq[:, 0] = first
    uniform = torch.rand(length, n, 1, generator=generator, device=dev, dtype=cdf.dtype)
    for t in range(length):
        prev = seq[:, t]
        drawn = torch.searchsorted(cdf[prev], uniform[t]).squeeze(-1).clamp_max(v - 1)
        j = slot[prev]
        copied = outputs.gather(1, j.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        seq[:, t + 1] = torch.where(j >= 0, copied, drawn)
    tokens, targets = seq[:, :-1], seq[:, 1:]
    return Sequences(tokens.contiguous(), targets.contiguous(), loss_mask(tokens, task.triggers.to(dev)),
                     outputs)


# --- the model ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frozen:
    """The frozen parts of the model: ``E (V, d)`` token and ``P (T, d)`` positional embeddings,
    value/output matrices ``WV1, WO1, WV2 (d, d)``, unembedding ``U (V, d)``."""

    E: torch.Tensor
    P: torch.Tensor
    WV1: torch.Tensor
    WO1: torch.Tensor
    WV2: torch.Tensor
    U: torch.Tensor

    @property
    def d(self) -> int:
        return self.E.shape[1]


def _uniform(shape, bound, generator, dtype):
    u = torch.rand(*shape, generator=generator, device=generator.device, dtype=dtype)
    return bound * (2 * u - 1)


def init_frozen(vocab_size: int, d: int, length: int, *, generator: torch.Generator,
                dtype: torch.dtype = torch.float32) -> Frozen:
    """Random frozen parts on the generator's device: embeddings N(0, 1); value, output and
    unembedding matrices uniform on ``[-1/sqrt(d), 1/sqrt(d)]`` (torch's default for a linear
    layer, as in the code of Bietti et al. 2023)."""
    for name, value in (("vocab_size", vocab_size), ("d", d), ("length", length)):
        checks.positive_int(name, value)
    checks.generator("generator", generator)
    dev, b = generator.device, 1 / math.sqrt(d)
    E = torch.randn(vocab_size, d, generator=generator, device=dev, dtype=dtype)
    P = torch.randn(length, d, generator=generator, device=dev, dtype=dtype)
    WV1, WO1, WV2 = (_uniform((d, d), b, generator, dtype) for _ in range(3))
    return Frozen(E=E, P=P, WV1=WV1, WO1=WO1, WV2=WV2, U=_uniform((vocab_size, d), b, generator, dtype))


def init_params(frozen: Frozen, runs: int, *,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Trainable matrices ``(runs, d, d)``, the same for every run: uniform on ``[-1/sqrt(d), 1/sqrt(d)]``
    (torch's default) when a generator is given, zero otherwise."""
    _check_frozen(frozen)
    checks.positive_int("runs", runs)
    if generator is not None:
        checks.generator("generator", generator)
    d, dtype = frozen.d, frozen.E.dtype
    out = {}
    for name in TRAINABLE:
        W = (torch.zeros(d, d, dtype=dtype, device=frozen.E.device) if generator is None
             else _uniform((d, d), 1 / math.sqrt(d), generator, dtype).to(frozen.E.device))
        out[name] = W.expand(runs, d, d).clone()
    return out


def _outer_memory(keys_left: torch.Tensor, keys_right: torch.Tensor, strength: float) -> torch.Tensor:
    """``strength * sqrt(d) * sum_i a_i b_i^T / (|a_i|^2 |b_i|^2)``.

    The score ``a_i^T W b_i / sqrt(d)`` of each stored pair is then near ``strength``."""
    d = keys_left.shape[-1]
    a = keys_left / keys_left.pow(2).sum(-1, keepdim=True)
    b = keys_right / keys_right.pow(2).sum(-1, keepdim=True)
    return strength * math.sqrt(d) * a.transpose(-1, -2) @ b


def induction_keys(frozen: Frozen, triggers: torch.Tensor, strength: float) -> dict[str, torch.Tensor]:
    """Hand-built key memories of the induction head (Bietti et al. 2023), ``(d, d)`` each.

    ``W_K1 ~ sum_t p_t p_{t-1}^T`` (previous-token head) and ``W_K2 ~ sum_q e_q (W_O1 W_V1 e_q)^T``
    over the triggers ``q`` (matching head), scaled so that the right attention score is about
    ``strength``.
    """
    _check_frozen(frozen)
    checks.positive("strength", strength)
    triggers = checks.indices("triggers", triggers, frozen.E.shape[0], dim=1, device=frozen.E.device)
    P, E = frozen.P, frozen.E
    return {"WK1": _outer_memory(P[1:], P[:-1], strength),
            "WK2": _outer_memory(E[triggers], E[triggers] @ (frozen.WO1 @ frozen.WV1).T, strength)}


def _check_frozen(frozen) -> None:
    if not isinstance(frozen, Frozen):
        raise ValueError(f"frozen must be a Frozen (init_frozen), got {type(frozen).__name__}")


def _check_params(frozen: Frozen, params: dict[str, torch.Tensor], *, values: bool = True) -> int:
    _check_frozen(frozen)
    if not isinstance(params, dict) or set(params) != set(TRAINABLE):
        got = sorted(params) if isinstance(params, dict) else params
        raise ValueError(f"params must map exactly {TRAINABLE} to tensors, got {got!r}")
    runs = None
    for name in TRAINABLE:
        checks.shape(f"params[{name!r}]", params[name], (frozen.d, frozen.d))
        if params[name].dim() != 3 or (runs is not None and params[name].shape[0] != runs):
            raise ValueError(f"params[{name!r}] must have shape (R, {frozen.d}, {frozen.d}) with one R "
                             f"for all three, got {tuple(params[name].shape)}")
        runs = params[name].shape[0]
        if values:
            checks.finite_data(f"params[{name!r}]", params[name])
    return runs


def forward(frozen: Frozen, params: dict[str, torch.Tensor], tokens: torch.Tensor,
            queries: torch.Tensor | None = None) -> torch.Tensor:
    """Logits ``(R, B, L, V)`` of every run for token ids ``tokens (B, T)`` at the positions
    ``queries (B, L)`` of each sequence (default: all ``T`` positions).

    Layer 1 runs at every position (the second layer reads all of them); layer 2 only at the
    queried ones.
    """
    _check_params(frozen, params)
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be a long tensor of shape (B, T), got {tokens!r}")
    checks.indices("tokens", tokens, frozen.E.shape[0])
    if queries is not None and not isinstance(queries, torch.Tensor):
        raise ValueError(f"queries must be a long tensor (B, L), got {type(queries).__name__}")
    return _forward(frozen, params, tokens, queries)


def _forward(frozen, params, tokens, queries=None):
    B, T = tokens.shape
    if T > frozen.P.shape[0]:
        raise ValueError(f"tokens has {T} positions, more than the {frozen.P.shape[0]} positional embeddings")
    pos = torch.arange(T, device=tokens.device)
    if queries is None:
        queries = pos.expand(B, T)
    elif (queries.dtype != torch.long or queries.dim() != 2 or queries.shape[0] != B
          or bool((queries < 0).any()) or bool((queries >= T).any())):
        raise ValueError(f"queries must be a long tensor (B={B}, L) of positions in [0, {T}), "
                         f"got {queries!r}")
    x, v1 = _embed(frozen, tokens)
    x1, _ = _layer1(frozen, params["WK1"], tokens, x, v1)
    q, _, _, h = _layer2(params["WK2"], x1, queries)
    return _logits(frozen, params["WO2"], q, h)[0]


# The stages of the model, shared by the forward pass, the autograd reference gradient and the
# hand-written backward of loss_and_gradient. Each is written out of place where autograd needs
# the value, so that autograd through them stays correct.

def _embed(frozen, tokens):
    """The inputs ``x = E[z] + P (B, T, d)`` and the layer-1 values ``v1 = x (W_O1 W_V1)^T (B, T, d)``."""
    x = frozen.E[tokens] + frozen.P[:tokens.shape[1]]
    return x, x @ (frozen.WO1 @ frozen.WV1).T


def _layer1(frozen, WK1, tokens, x, v1):
    """Layer 1 of every run on ``tokens (B, T)`` (``x, v1`` from :func:`_embed`): its output
    ``x1 (R, B, T, d)`` and the attention ``a1 (B, T, R, T)``.

    The runs sit inside each sequence (rows ``(t, r)``) so that the products with ``x`` and
    ``v1``, shared by the runs, are one matmul per sequence without copying them ``R`` times.
    """
    (R, d, _), (B, T, _) = WK1.shape, x.shape
    W = (WK1 / math.sqrt(d)).transpose(0, 1).reshape(d, R * d)                   # W[e, (r, f)]
    s1 = (_embedded_rows(frozen, tokens, W).view(B, T * R, d) @ x.transpose(1, 2)).view(B, T, R, T)
    s1.masked_fill_(_future(T, x.device)[:, None], -math.inf)
    a1 = torch.softmax(s1, dim=-1)
    x1 = (a1.view(B, T * R, T) @ v1).view(B, T, R, d).permute(2, 0, 1, 3).contiguous()
    return x1.add_(x), a1


def _embedded_rows(frozen, tokens, M):
    """``x M (B, T, k)`` for ``M (d, k)``, as ``(E M)[z] + P M``: a gather from a ``(V, k)``
    table costs less than multiplying the ``B T`` rows of ``x``."""
    T = tokens.shape[1]
    rows = (frozen.E @ M).index_select(0, tokens.flatten()).view(*tokens.shape, M.shape[1])
    return rows + frozen.P[:T] @ M


def _embedded_outer(frozen, tokens, y):
    """``sum_{b, t} x_{b t} y_{b t}^T (d, k)`` for ``y (B, T, k)``: the adjoint of
    :func:`_embedded_rows`, summing ``y`` by token and by position first."""
    by_token = y.new_zeros(frozen.E.shape[0], y.shape[-1]).index_add_(0, tokens.flatten(), y.flatten(0, 1))
    return frozen.E.T @ by_token + frozen.P[:tokens.shape[1]].T @ y.sum(0)


def _future(T, device):
    """``(T, T)`` bool, true at the keys ``s > t`` a query ``t`` does not see."""
    pos = torch.arange(T, device=device)
    return pos[None, :] > pos[:, None]


def _layer2(WK2, x1, queries):
    """Layer 2 of every run at the positions ``queries (B, L)``: the queried ``q (R, B, L, d)``,
    ``qk = q W_K2 / sqrt(d)``, the attention ``a2 (R, B, L, T)`` and its read ``h = a2 x1``."""
    (R, B, T, d), L = x1.shape, queries.shape[1]
    q = x1.gather(2, queries[None, :, :, None].expand(R, B, L, d))
    qk = _per_run(q, WK2 / math.sqrt(d))
    s2 = qk @ x1.transpose(-1, -2)
    s2.masked_fill_(torch.arange(T, device=x1.device) > queries[:, :, None], -math.inf)
    a2 = torch.softmax(s2, dim=-1)
    return q, qk, a2, a2 @ x1


def _logits(frozen, WO2, q, h):
    """Logits ``U (q + W_O2 W_V2 h)`` of rows ``q, h (R, ..., d)``, and ``hv = h W_V2^T``."""
    hv = h @ frozen.WV2.T
    return (q + _per_run(hv, WO2.transpose(-1, -2))) @ frozen.U.T, hv


def _per_run(a, W):
    """``a W`` for rows ``a (R, ..., d)`` and one matrix ``W (R, d, k)`` per run, as one matmul
    of all the rows of a run: broadcasting ``W`` over the rows would copy it (and under
    autograd sum its gradients back)."""
    return (a.reshape(a.shape[0], -1, a.shape[-1]) @ W).view(*a.shape[:-1], W.shape[-1])


def loss_positions(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss positions of each sequence, padded: ``queries (B, L)`` and ``valid (B, L)`` bool,
    with ``L`` the largest count in a sequence (padding points at position 0 and is not valid)."""
    checks.tensor("mask", mask, dim=2, dtype=torch.bool)
    T = mask.shape[-1]
    pos = torch.arange(T, device=mask.device)
    L = max(int(mask.sum(-1).max()), 1)
    order = torch.where(mask, pos, T).sort(dim=-1).values[:, :L]
    valid = order < T
    return torch.where(valid, order, 0), valid


def _losses(frozen, params, seqs: Sequences):
    """Cross-entropy and correctness at the loss positions, ``(R, B, L)`` each, zero at padding."""
    queries, valid = loss_positions(seqs.mask)
    logits = _forward(frozen, params, seqs.tokens, queries)                          # (R, B, L, V)
    target = seqs.targets.gather(1, queries)                                        # (B, L)
    logp = torch.log_softmax(logits, dim=-1)
    ce = -logp.gather(-1, target.expand(logp.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    right = logits.argmax(-1) == target
    return ce * valid, right & valid


def _loss_sum(frozen, params, seqs: Sequences) -> torch.Tensor:
    """Sum over loss positions of the cross-entropy, ``(R,)``."""
    return _losses(frozen, params, seqs)[0].sum((-1, -2))


def _chunks(n: int, chunk: int | None):
    chunk = n if chunk is None else checks.positive_int("chunk", chunk)
    return [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]


def _check_seqs(seqs: Sequences) -> int:
    if not isinstance(seqs, Sequences):
        raise ValueError(f"seqs must be Sequences, got {type(seqs).__name__}")
    if seqs.tokens.dim() != 2 or seqs.mask.shape != seqs.tokens.shape:
        raise ValueError(f"seqs must hold tokens and mask of one shape (n, T), got {tuple(seqs.tokens.shape)}")
    total = int(seqs.mask.sum())
    if total == 0:
        raise ValueError("seqs has no loss positions (no trigger occurs twice): use longer or more sequences")
    return total


def loss_and_gradient(frozen: Frozen, params: dict[str, torch.Tensor], seqs: Sequences, *,
                      trained=TRAINABLE, chunk: int | None = None):
    """Full-batch loss ``(R,)`` (mean cross-entropy over all loss positions) and its gradient.

    The gradient (a dict over ``trained``, each ``(R, d, d)``) is accumulated over chunks of
    at most ``chunk`` sequences: each chunk contributes the gradient of its summed loss divided
    by the total number of loss positions, so the sum is the exact full-batch gradient whatever
    the chunk size (up to float round-off). The backward pass is written out (no autograd
    graph); on a CPU the chunks may be smaller than ``chunk``, to stay in cache.
    """
    _check_params(frozen, params)
    trained = _check_trained(trained)
    return _loss_and_gradient(frozen, params, seqs, trained, chunk, _check_seqs(seqs))


def _check_trained(trained) -> tuple[str, ...]:
    trained = (trained,) if isinstance(trained, str) else tuple(trained)
    if not trained or any(name not in TRAINABLE for name in trained):
        raise ValueError(f"trained must be a non-empty subset of {TRAINABLE}, got {trained!r}")
    return trained


def _loss_and_gradient(frozen, params, seqs, trained, chunk, total):
    """:func:`loss_and_gradient` by the hand-written backward (see :func:`_summed`)."""
    return _summed(frozen, params, _prepare(frozen, params, seqs, trained, chunk, total), trained)


def _summed(frozen, params, parts, trained, grad: bool = True):
    """The loss ``(R,)`` and, with ``grad``, the gradient summed over ``parts`` (:func:`_prepare`)."""
    loss = torch.zeros(params["WO2"].shape[0], dtype=params["WO2"].dtype, device=params["WO2"].device)
    grads = {n: torch.zeros_like(params[n]) for n in trained} if grad else {}
    for part in parts:
        piece, part_grads = _part_loss_and_gradient(frozen, params, part, trained, grad)
        loss += piece
        for name, g in part_grads.items():
            grads[name] += g
    return loss, grads


def _loss_and_gradient_autograd(frozen, params, seqs, trained, chunk, total):
    """:func:`loss_and_gradient` by autograd through :func:`_forward`: the reference of the
    hand-written backward."""
    leaves = {n: p.detach().requires_grad_(n in trained) for n, p in params.items()}
    loss = torch.zeros(params["WO2"].shape[0], dtype=params["WO2"].dtype, device=params["WO2"].device)
    grads = {n: torch.zeros_like(params[n]) for n in trained}
    for part in _chunks(len(seqs), chunk):
        piece = _loss_sum(frozen, leaves, seqs[part]) / total
        parts = torch.autograd.grad(piece.sum(), [leaves[n] for n in trained])
        for name, g in zip(trained, parts, strict=True):
            grads[name] += g
        loss += piece.detach()
    return loss, grads


_CPU_PART = 2 ** 18  # elements of a part's largest tensors on a CPU (see _prepare)


@dataclass(frozen=True)
class _Part:
    """What a gradient step needs of one chunk of sequences besides the trained matrices: the
    part of the model that does not depend on them, computed once.

    ``target`` and ``weight`` (``1 / total`` at a loss position, 0 at padding) cover the rows
    of the readout. By the first trained layer:

    - ``WK1`` trained: ``tokens (B, T)``, ``x, v1 (B, T, d)`` (:func:`_embed`), ``queries
      (B, L)`` the padded loss positions; ``target, weight (B, L)``.
    - ``WK2`` the first: ``x1 (R, B, T, d)``, layer 1's output (this cache grows as
      ``R n T d`` over the ``n`` sequences), ``queries``; ``target, weight (B, L)``.
    - ``WO2`` alone: the ``N`` loss positions of the chunk, packed: ``uq = U q (R, N, V)`` and
      ``hv = h W_V2^T (R, N, d)`` (:func:`_logits`); ``target, weight (N,)``.
    """

    target: torch.Tensor
    weight: torch.Tensor
    tokens: torch.Tensor | None = None
    x: torch.Tensor | None = None
    v1: torch.Tensor | None = None
    x1: torch.Tensor | None = None
    queries: torch.Tensor | None = None
    uq: torch.Tensor | None = None
    hv: torch.Tensor | None = None


@torch.no_grad()
def _prepare(frozen, params, seqs, trained, chunk, total) -> list[_Part]:
    """The chunks of ``seqs`` as :class:`_Part`, for the matrices ``trained`` (the others are
    read from ``params`` now and must not change while the parts are in use).

    The sequences are ordered by their number of loss positions first, so that a chunk pads
    its loss positions little (the summed gradient does not depend on the order, up to
    round-off). On a CPU a part holds fewer sequences than ``chunk`` where that keeps its
    largest tensors, ``(R, B, T, max(T, d))``, within about a megabyte (``_CPU_PART``
    elements): they then stay in the core's cache, which at ``T = 32, d = 64`` makes the step
    twice as fast as parts of 128 sequences."""
    seqs = seqs[seqs.mask.sum(-1).argsort(stable=True)]
    dtype, (R, d, _), T = params["WO2"].dtype, params["WO2"].shape, seqs.tokens.shape[1]
    size = len(seqs) if chunk is None else chunk
    if frozen.E.device.type == "cpu":
        size = min(size, max(_CPU_PART // (R * T * max(T, d)), 1))
    parts = []
    for part in _chunks(len(seqs), size):
        tokens, mask = seqs.tokens[part], seqs.mask[part]
        queries, valid = loss_positions(mask)
        target, weight = seqs.targets[part].gather(1, queries), valid.to(dtype) / total
        x, v1 = _embed(frozen, tokens)
        if "WK1" in trained:
            parts.append(_Part(target, weight, tokens=tokens, x=x, v1=v1, queries=queries))
            continue
        x1, _ = _layer1(frozen, params["WK1"], tokens, x, v1)
        if "WK2" in trained:
            parts.append(_Part(target, weight, x1=x1, queries=queries))
            continue
        q, _, _, h = _layer2(params["WK2"], x1, queries)
        hv = h[:, valid] @ frozen.WV2.T
        parts.append(_Part(target[valid], weight[valid], uq=q[:, valid] @ frozen.U.T, hv=hv))
    return parts


def _part_loss_and_gradient(frozen, params, part: _Part, trained, grad: bool = True):
    """The loss ``(R,)`` of one part (its summed cross-entropy over ``total``) and, with
    ``grad``, the gradient of the matrices ``trained``."""
    if part.uq is not None:
        return _readout_only(frozen, params["WO2"], part, grad)
    WK2, WO2 = params["WK2"], params["WO2"]
    x1, a1 = ((part.x1, None) if part.x1 is not None
              else _layer1(frozen, params["WK1"], part.tokens, part.x, part.v1))
    q, qk, a2, h = _layer2(WK2, x1, part.queries)
    logits, hv = _logits(frozen, WO2, q, h)
    loss, G = _cross_entropy(logits, part.target, part.weight)
    if not grad:
        return loss, {}
    dx2 = G @ frozen.U                                                             # (R, B, L, d)
    grads = {"WO2": _run_outer(dx2, hv)} if "WO2" in trained else {}
    dh = _per_run(dx2, WO2 @ frozen.WV2)
    dqk, dx1 = _attention_backward(a2, dh, x1, qk, keys="WK1" in trained)
    if "WK2" in trained:
        grads["WK2"] = _run_outer(q, dqk) / math.sqrt(q.shape[-1])
    if "WK1" in trained:
        dq = dx2 + _per_run(dqk, WK2.transpose(-1, -2) / math.sqrt(q.shape[-1]))
        index = part.queries[None, :, :, None].expand(dq.shape)
        dx1.scatter_add_(2, index, dq)
        grads["WK1"] = _layer1_backward(frozen, part.tokens, part.x, part.v1, a1, dx1)
    return loss, grads


def _readout_only(frozen, WO2, part: _Part, grad: bool):
    """Loss and ``W_O2`` gradient of a part with the keys frozen: logits ``U q + (U W_O2) hv``."""
    UW = frozen.U @ WO2                                                            # (R, V, d)
    loss, G = _cross_entropy(torch.baddbmm(part.uq, part.hv, UW.transpose(-1, -2)), part.target,
                             part.weight)
    return loss, ({"WO2": frozen.U.T @ (G.transpose(-1, -2) @ part.hv)} if grad else {})


def _cross_entropy(logits, target, weight):
    """Weighted sum ``(R,)`` over the rows of the cross-entropy of ``logits (R, ..., V)``
    against ``target (...)``, and its gradient with respect to the logits, ``weight (...)``
    times ``softmax - onehot``, computed in place of ``logits``."""
    index = target.expand(logits.shape[:-1]).unsqueeze(-1)
    logits -= logits.amax(-1, keepdim=True)
    right = logits.gather(-1, index).squeeze(-1)
    p = logits.exp_()
    z = p.sum(-1, keepdim=True)
    loss = ((z.squeeze(-1).log() - right) * weight).flatten(1).sum(-1)
    p /= z
    p.scatter_add_(-1, index, torch.full_like(right, -1.0).unsqueeze(-1))
    return loss, p.mul_(weight.unsqueeze(-1))


def _run_outer(a, b):
    """``sum_i a_i b_i^T`` over all rows of each run, ``(R, d, d)`` from ``a, b (R, ..., d)``."""
    R, d = a.shape[0], a.shape[-1]
    return a.reshape(R, -1, d).transpose(-1, -2) @ b.reshape(R, -1, d)


def _attention_backward(a, da_read, values, qk, keys: bool):
    """Backward of ``read = softmax(qk values^T) values`` (``a`` the softmax, ``da_read`` the
    gradient of the read): the gradient of ``qk`` and, with ``keys``, of ``values`` (both as
    keys and as values), all ``(R, B, ., d)``."""
    ds = _softmax_backward_(da_read @ values.transpose(-1, -2), a)                # (R, B, L, T)
    dqk = ds @ values
    if not keys:
        return dqk, None
    return dqk, (a.transpose(-1, -2) @ da_read).add_(ds.transpose(-1, -2) @ qk)


def _softmax_backward_(da, a):
    """The gradient of the scores from ``da``, that of their softmax ``a`` (last axis), in place of ``da``."""
    da -= (da * a).sum(-1, keepdim=True)
    return da.mul_(a)


def _layer1_backward(frozen, tokens, x, v1, a1, dx1):
    """The ``W_K1`` gradient ``(R, d, d)`` from the gradient ``dx1 (R, B, T, d)`` of layer 1's
    output (layout as in :func:`_layer1`)."""
    (R, B, T, d) = dx1.shape
    g = dx1.permute(1, 2, 0, 3).reshape(B, T * R, d)
    ds = _softmax_backward_((g @ v1.transpose(1, 2)).view(B, T, R, T), a1)
    y = (ds.view(B, T * R, T) @ x).view(B, T, R * d)                               # y[b, t, (r, f)]
    return _embedded_outer(frozen, tokens, y).view(d, R, d).transpose(0, 1) / math.sqrt(d)


@torch.no_grad()
def evaluate(frozen: Frozen, params: dict[str, torch.Tensor], seqs: Sequences, *, chunk: int | None = None):
    """Loss ``(R,)`` (mean cross-entropy) and accuracy ``(R,)`` (argmax = target) at the loss positions."""
    _check_params(frozen, params)
    total = _check_seqs(seqs)
    runs = params["WO2"].shape[0]
    loss = torch.zeros(runs, dtype=torch.float64, device=params["WO2"].device)
    right = torch.zeros_like(loss)
    for part in _chunks(len(seqs), chunk):
        ce, ok = _losses(frozen, params, seqs[part])
        loss += ce.sum((-1, -2)).double()
        right += ok.sum((-1, -2)).double()
    return loss / total, right / total


RECORDS = ("loss", "output_margins", "induction_margins", "previous_token_margins")


@dataclass(frozen=True)
class State:
    """Where a run of :func:`train` stands: the matrices ``params`` (as in :func:`init_params`,
    each ``(R, d, d)``) after ``step`` gradient steps. Pass it back to :func:`train` to go on."""

    params: dict[str, torch.Tensor]
    step: int = 0


@dataclass
class Run:
    """What :func:`train` returns.

    ``steps``: ``(S,)`` long tensor, the recorded step indices, counted from the start of the
    run that ``state.step`` continues (so a continued run goes on numbering).
    ``records``: name -> tensor of shape ``(S, R, ...)``; see :func:`train` for each name.
    ``state``: the :class:`State` after the last step, to continue the run from.
    """

    steps: torch.Tensor
    records: dict[str, torch.Tensor]
    state: State

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.records[name]

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The final matrices, ``(R, d, d)`` each."""
        return self.state.params


def _recorder(frozen: Frozen, record, output_tokens, induction_tokens):
    check_record(record, RECORDS)
    dev = frozen.E.device
    every = torch.arange(frozen.E.shape[0], device=dev)
    outputs = every if output_tokens is None else output_tokens
    queries = every if induction_tokens is None else induction_tokens
    positions = torch.arange(1, frozen.P.shape[0], device=dev)
    margins = {"output_margins": lambda p: output_margins(frozen, p["WO2"], outputs),
               "induction_margins": lambda p: induction_margins(frozen, p["WK2"], queries),
               "previous_token_margins": lambda p: previous_token_margins(frozen, p["WK1"], positions)}
    return {name: margins[name] for name in record if name != "loss"}


def _check_lr(lr, runs: int, like: torch.Tensor) -> torch.Tensor:
    lr = checks.real_tensor("lr", lr, dtype=like.dtype, device=like.device).flatten()
    if lr.numel() == 1:
        lr = lr.expand(runs)
    if lr.numel() != runs or not bool(torch.isfinite(lr).all()) or bool((lr <= 0).any()):
        raise ValueError(f"lr must be one positive learning rate or one per run ({runs}), got {lr.tolist()}")
    return lr


def train(
    frozen: Frozen,
    start: dict[str, torch.Tensor] | State,
    seqs: Sequences,
    *,
    lr,
    steps: int,
    trained=TRAINABLE,
    record=("loss",),
    at=None,
    output_tokens: torch.Tensor | None = None,
    induction_tokens: torch.Tensor | None = None,
    chunk: int | None = None,
    progress: bool | None = None,
) -> Run:
    """Full-batch gradient descent of a batch of runs, one learning rate per run.

    Parameters
    ----------
    frozen : Frozen
        The frozen parts of the model (:func:`init_frozen`).
    start : dict or State
        The starting matrices (``"WK1"``, ``"WK2"``, ``"WO2"``, each ``(R, d, d)``, as from
        :func:`init_params`), or the :class:`State` of an earlier run to continue.
    seqs : Sequences
        The training sequences, shared by the ``R`` runs.
    lr : float or tensor ``(R,)``
        The learning rate of every run, or one per run.
    steps : int
        Gradient steps to take (from ``start``).
    trained : collection of str
        The matrices that move, among ``TRAINABLE``; the others stay as in ``start``.
    record : collection of str
        Quantities measured with the matrices before every step and after the last one, among
        ``RECORDS``: ``"loss"`` (the training loss ``(R,)``, the one the step descends),
        ``"output_margins"`` (``(R, n)``, :func:`output_margins` of ``output_tokens``),
        ``"induction_margins"`` (``(R, n)``, :func:`induction_margins` of ``induction_tokens``),
        ``"previous_token_margins"`` (``(R, T - 1)``, :func:`previous_token_margins` of the
        positions ``1..T-1``).
    at : sequence of int, optional
        The steps (``0..steps``, counted from ``start``) at which to record; default every step.
    output_tokens, induction_tokens : long tensor ``(n,)``, optional
        The tokens whose output and induction margins are recorded (default: every token).
    chunk : int, optional
        Sequences per chunk of the gradient (:func:`loss_and_gradient`).
    progress : bool, optional
        Show a progress bar (default: :func:`damlib.progress.bar`'s).

    Returns
    -------
    Run
        The recorded quantities, ``run[name]`` of shape ``(S, R, ...)`` at the steps
        ``run.steps``, and ``run.state``, the final matrices and the step count.

    Raises
    ------
    DivergenceError
        At the first (absolute) step where a loss or a matrix is not finite.
    """
    state = start if isinstance(start, State) else State(start, 0)
    runs = _check_params(frozen, state.params)
    checks.positive_int("steps", steps)
    if isinstance(state.step, bool) or not isinstance(state.step, int) or state.step < 0:
        raise ValueError(f"start.step must be a non-negative int, got {state.step!r}")
    lr = _check_lr(lr, runs, state.params["WO2"])
    trained = _check_trained(trained)
    total = _check_seqs(seqs)
    if chunk is not None:
        checks.positive_int("chunk", chunk)
    measures = _recorder(frozen, record, output_tokens, induction_tokens)
    at = recorded_steps(at, steps)
    wanted = torch.zeros(steps + 1, dtype=torch.bool, device="cpu")
    wanted[at] = True
    params = {n: p.detach().clone() for n, p in state.params.items()}
    out: dict[str, list] = {name: [] for name in record}
    watch = checks.Watch()
    parts = _prepare(frozen, params, seqs, trained, chunk, total)  # the untrained matrices stay put
    for t in bar(range(steps + 1), desc="GD steps", progress=progress):
        loss, grads = _summed(frozen, params, parts, trained, grad=t < steps)
        watch.see(state.step + t, loss, "loss")
        if wanted[t]:
            if "loss" in out:
                out["loss"].append(loss)
            for name, measure in measures.items():
                out[name].append(measure(params).detach())
        if t < steps:
            for name, g in grads.items():
                params[name] -= lr[:, None, None] * g
                watch.see(state.step + t + 1, params[name], name)
    watch.check()
    records = {name: torch.stack(values) for name, values in out.items()}
    return Run(steps=at.to(params["WO2"].device) + state.step, records=records,
               state=State(params, state.step + steps))


# --- associative-memory margins ----------------------------------------------------------------

def association_margins(W: torch.Tensor, left: torch.Tensor, right: torch.Tensor, correct: torch.Tensor,
                        *, allowed: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """Margins of a memory ``W (..., d, d)`` read through embeddings.

    Item ``i`` has the scores ``s_ij = scale * left_i^T W right_j`` (``left (n, d)``, ``right
    (m, d)``); its margin is ``s_{i, correct_i} - max_{j != correct_i, allowed_ij} s_ij``, shape
    ``(..., n)``. ``allowed (n, m)`` bool restricts the competitors (default: all).
    """
    checks.shape("left", left, (None, None), batch=False)
    checks.shape("right", right, (None, None), batch=False)
    checks.shape("W", W, (left.shape[-1], right.shape[-1]))
    for name, t in (("W", W), ("left", left), ("right", right)):
        checks.finite_data(name, t)
    n, m = left.shape[0], right.shape[0]
    checks.number("scale", scale)
    if not isinstance(correct, torch.Tensor) or correct.dtype != torch.long or correct.shape != (n,):
        raise ValueError(f"correct must be a long tensor of shape ({n},), got {correct!r}")
    checks.indices("correct", correct, m)
    S = scale * (left @ W @ right.T)                                               # (..., n, m)
    if allowed is not None:
        if not isinstance(allowed, torch.Tensor) or allowed.shape != (n, m) or allowed.dtype != torch.bool:
            raise ValueError(f"allowed must be a bool tensor of shape ({n}, {m}), "
                             f"got {allowed.dtype} {tuple(allowed.shape)}")
        competitors = allowed.clone()
        competitors[torch.arange(n, device=correct.device), correct] = False
        if not bool(competitors.any(-1).all()):
            raise ValueError("allowed must leave at least one wrong competitor for every item")
        keep = competitors.clone()
        keep[torch.arange(n, device=correct.device), correct] = True
        S = S.masked_fill(~keep, -math.inf)
    return _row_margins(S, correct)


def output_margins(frozen: Frozen, WO2: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Margins ``(..., n)`` of ``W_O2`` for tokens ``(n,)``.

    Input ``W_V2 e_k``, classes ``u_j``, right class ``k``.

    ``s_kj = u_j^T W_O2 W_V2 e_k``: copying token ``k`` writes its own unembedding.
    """
    _check_frozen(frozen)
    tokens = checks.indices("tokens", tokens, frozen.E.shape[0], dim=1)
    inputs = frozen.E[tokens] @ frozen.WV2.T                                       # (n, d) rows W_V2 e_k
    return association_margins(WO2.transpose(-1, -2), inputs, frozen.U, tokens)


def induction_margins(frozen: Frozen, WK2: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Margins ``(..., n)`` of ``W_K2`` for query tokens ``(n,)``.

    Scores ``s_kj = e_k^T W_K2 W_O1 W_V1 e_j / sqrt(d)``, right key ``k``.

    The key ``W_O1 W_V1 e_j`` is what the first layer writes at the position after token ``j``.
    """
    _check_frozen(frozen)
    tokens = checks.indices("tokens", tokens, frozen.E.shape[0], dim=1)
    keys = frozen.E @ (frozen.WO1 @ frozen.WV1).T                                  # (V, d)
    return association_margins(WK2, frozen.E[tokens], keys, tokens, scale=1 / math.sqrt(frozen.d))


def previous_token_margins(frozen: Frozen, WK1: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Margins ``(..., n)`` of ``W_K1`` for query positions ``t`` (``(n,)``, each at least 1):
    ``s_ts = p_t^T W_K1 p_s / sqrt(d)`` over the visible keys ``s <= t``, right key ``t - 1``."""
    _check_frozen(frozen)
    T = frozen.P.shape[0]
    if not isinstance(positions, torch.Tensor) or positions.dtype != torch.long or positions.dim() != 1:
        raise ValueError(f"positions must be a 1-d long tensor, got {positions!r}")
    if bool((positions < 1).any()) or bool((positions >= T).any()):
        raise ValueError(f"positions must lie in [1, {T}), got {positions.tolist()}")
    allowed = torch.arange(T, device=positions.device) <= positions[:, None]      # causal mask (n, T)
    return association_margins(WK1, frozen.P[positions], frozen.P, positions - 1,
                               allowed=allowed, scale=1 / math.sqrt(frozen.d))
