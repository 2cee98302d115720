"""The registry of stored-run experiments, and the runner of one shard.

An :class:`Experiment` is a computation too large for the CPU build, split into independent
*shards* (one size each). Each part of the book keeps its experiments in
``damlib/experiments/<part>.py`` and registers them on import with :func:`register`; the part
modules are found with :mod:`pkgutil` and imported on the first use of the registry, so a part
that has none is no error.

``python -m damlib.experiments list`` shows what is stored; ``python -m damlib.experiments run
NAME SHARD`` computes one shard (:func:`run_shard`) into the store (:mod:`damlib.store`). A chapter
reads a stored run with the parameters of the registry, the same definition the command used::

    shard = experiments.read("hpt_k_only", "K=16384")   # None when absent

An experiment's parameters must depend on the shard alone (not on ``DAMLIB_SCALE`` or the device),
so that the chapter and the command agree on them wherever each runs.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

from .. import store

__all__ = ["Experiment", "REGISTRY", "get", "read", "register", "run_shard", "state"]


@dataclass(frozen=True)
class Experiment:
    """One experiment of the results store.

    Attributes
    ----------
    name : str
        Its folder under ``results/`` (letters, digits, ``_.+=-``), for example ``"hpt_k_only"``.
    shards : tuple of str
        Its shard names, one per independent run, for example ``("K=1024", "K=4096")``.
    params : callable
        ``params(shard) -> dict``: every parameter of that shard, JSON-like, depending on the
        shard alone.
    run : callable
        ``run(params) -> dict`` of arrays (numpy or torch): the computation. Every random draw
        takes a generator seeded from ``params``.
    description : str
        One line for ``list``.
    """

    name: str
    shards: tuple[str, ...]
    params: Callable[[str], dict]
    run: Callable[[dict], Mapping]
    description: str = ""

    def __post_init__(self):
        store._check_name("name", self.name)
        if not isinstance(self.shards, tuple) or not self.shards:
            raise ValueError(f"shards must be a non-empty tuple of names, got {self.shards!r}")
        for shard in self.shards:
            store._check_name("shards", shard)
        if len(set(self.shards)) != len(self.shards):
            raise ValueError(f"shards must be distinct, got {self.shards!r}")
        for argument in ("params", "run"):
            if not callable(getattr(self, argument)):
                raise ValueError(f"{argument} must be callable")

    def shard_params(self, shard: str) -> dict:
        """The parameters of ``shard``, checked to be a known shard and JSON-like."""
        if shard not in self.shards:
            raise ValueError(f"shard must be one of {', '.join(self.shards)} for {self.name}, got {shard!r}")
        params = self.params(shard)
        if not isinstance(params, Mapping):
            raise ValueError(f"{self.name}.params({shard!r}) must return a dict, got {type(params).__name__}")
        store.jsonable(params, f"{self.name}.params({shard!r})")
        return dict(params)


class Registry(Mapping):
    """Experiments by name; the part modules are imported on first use."""

    def __init__(self):
        self._entries: dict[str, Experiment] = {}
        self._discovered = False

    def discover(self) -> None:
        """Import every part module of this package once (each registers its experiments)."""
        if self._discovered:
            return
        self._discovered = True  # set first: a part module that reads the registry must not recurse
        try:
            for module in pkgutil.iter_modules(__path__):
                if not module.name.startswith("_"):
                    importlib.import_module(f"{__name__}.{module.name}")
        except BaseException:
            self._discovered = False
            raise

    def add(self, experiment: Experiment) -> None:
        old = self._entries.get(experiment.name)
        if old is not None and old.run.__module__ != experiment.run.__module__:
            raise ValueError(
                f"experiment {experiment.name!r} is already registered by {old.run.__module__}")
        self._entries[experiment.name] = experiment

    def remove(self, name: str) -> None:
        """Forget one experiment (for tests)."""
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> Experiment:
        self.discover()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self.discover()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self.discover()
        return len(self._entries)


REGISTRY = Registry()


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry and return it. Registering a name again from the same
    module replaces it (a module imported twice); from another module it is a ``ValueError``."""
    if not isinstance(experiment, Experiment):
        raise ValueError(f"experiment must be an Experiment, got {type(experiment).__name__}")
    REGISTRY.add(experiment)
    return experiment


def get(name: str) -> Experiment:
    """The registered experiment ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY) or "none"
        raise ValueError(f"name must be a registered experiment ({known}), got {name!r}") from None


def read(name: str, shard: str, *, root=None) -> store.Shard | None:
    """The stored shard, checked against the registry's parameters (see :func:`damlib.store.read`)."""
    return store.read(name, shard, get(name).shard_params(shard), root=root)


def state(name: str, shard: str, *, root=None) -> tuple[str, str]:
    """``(state, detail)`` of one shard: ``"stored"`` (detail: device and wall time),
    ``"absent"``, ``"stale"`` (detail: the differing parameters) or ``"corrupt"`` (the reason)."""
    try:
        found = read(name, shard, root=root)
    except store.StaleShard as error:
        return "stale", "differs in " + ", ".join(error.differences)
    except store.CorruptShard as error:
        return "corrupt", str(error).split("; recompute", 1)[0]
    if found is None:
        return "absent", ""
    meta = found.meta
    return "stored", f"{meta['device']}, {store.duration(meta['seconds'])}, {meta['date'][:10]}"


def run_shard(name: str, shard: str, *, force: bool = False, root=None) -> tuple[store.Shard, bool]:
    """Compute one shard and store it, unless it is stored already with the same parameters.

    Parameters
    ----------
    name, shard : str
        The registered experiment and one of its shards.
    force : bool
        Recompute even when an up-to-date shard is stored.
    root : path, optional
        The store's root (default :func:`damlib.store.default_root`).

    Returns
    -------
    (Shard, bool)
        The stored shard, read back, and whether it was computed now (``False``: it was up to date).
        A stale or corrupt stored shard is recomputed without ``force``.
    """
    experiment = get(name)
    params = experiment.shard_params(shard)
    if not force:
        try:
            found = store.read(name, shard, params, root=root)
        except store.StoreError:
            found = None
        if found is not None:
            return found, False
    start = time.perf_counter()
    arrays = experiment.run(params)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if not isinstance(arrays, Mapping):
        raise ValueError(f"{name}.run must return a dict of arrays, got {type(arrays).__name__}")
    store.write(name, shard, params, arrays, seconds=seconds, root=root)
    return store.read(name, shard, params, root=root), True
