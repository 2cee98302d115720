"""The results store: runs too large for the CPU build, kept as arrays plus metadata.

One stored run of one experiment at one size is a *shard*: two files under the store's root,

``results/<experiment>/<shard>.npz``
    the arrays (final losses, the few curves a figure draws), compressed numpy;
``results/<experiment>/<shard>.json``
    the metadata: experiment, shard, every parameter, damlib version, git commit, torch version,
    device, torch threads, wall seconds, date, the command that reruns it, and the sha256 of the
    ``.npz``.

The root is the repository's top-level ``results/`` (next to the imported ``damlib`` package);
``DAMLIB_RESULTS`` overrides it, and every function takes ``root=`` to override both.

A write is atomic: both files go to temporaries in the same folder, are flushed to disk, and are
renamed into place, the metadata last, so a half-written shard never reads as present; a write that
fails leaves the previous shard as it was (and a process killed in the instant between the two
renames leaves new arrays under the old checksum: the shard reads as corrupt, never as a wrong run).

A read compares the stored parameters with the caller's (after a JSON round trip, so a tuple and
a list, or ``2`` and ``2.0``, are the same) and refuses a stored run made with other parameters
(:class:`StaleShard`, naming the parameters and the command that recomputes it), or whose arrays
do not match their checksum (:class:`CorruptShard`).
:func:`verify` compares arrays recomputed at build time with the stored ones.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, checks, config

FORMAT = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*")
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class StoreError(ValueError):
    """A stored run cannot be used as it is. ``command`` recomputes it."""

    def __init__(self, message: str, *, path: Path | None = None, command: str | None = None):
        self.path = path
        self.command = command
        super().__init__(message)


class StaleShard(StoreError):
    """The stored run was made with other parameters than the caller's.

    ``differences`` maps each differing parameter to ``(stored, current)``; a parameter that
    only one side has shows ``None`` on the other.
    """

    def __init__(self, message: str, *, path: Path, command: str, differences: dict):
        self.differences = differences
        super().__init__(message, path=path, command=command)


class CorruptShard(StoreError):
    """The stored arrays do not match their checksum, or a file of the shard is unreadable."""


class VerificationError(StoreError):
    """A recomputed array differs from the stored one beyond the tolerance.

    ``array`` names it, ``deviation`` is the largest absolute deviation and ``tolerance`` the
    allowed deviation at the worst element.
    """

    def __init__(self, message: str, *, array: str, deviation: float, tolerance: float,
                 path: Path | None = None, command: str | None = None):
        self.array = array
        self.deviation = deviation
        self.tolerance = tolerance
        super().__init__(message, path=path, command=command)


@dataclass(frozen=True)
class Shard:
    """One stored run, read back and checked.

    Attributes
    ----------
    experiment, shard : str
        The names it is stored under.
    params : dict
        The parameters it was computed with (as stored: JSON types).
    arrays : dict of str to numpy.ndarray
        The stored arrays.
    meta : dict
        The metadata: ``device``, ``device_name``, ``threads``, ``seconds``, ``date``, ``torch``,
        ``damlib``, ``commit``, ``dirty``, ``command``, ``sha256``, ``arrays`` (shape and dtype).
    path : pathlib.Path
        The ``.npz`` file.
    """

    experiment: str
    shard: str
    params: dict
    arrays: dict[str, np.ndarray] = field(repr=False)
    meta: dict = field(repr=False)
    path: Path

    @property
    def command(self) -> str:
        """The command that recomputes this shard."""
        return self.meta["command"]


# --- locations and names --------------------------------------------------------------------


def default_root() -> Path:
    """The store's root: ``DAMLIB_RESULTS`` when set, else ``results/`` beside the damlib package."""
    env = os.environ.get("DAMLIB_RESULTS", "").strip()
    return Path(env).expanduser() if env else _PACKAGE_ROOT / "results"


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` when given, else :func:`default_root`."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"root must be a folder path, got {type(root).__name__}")
    return Path(root).expanduser() if root is not None else default_root()


def _check_name(argument: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"{argument} must be a name of letters, digits and _.+=- (not starting with one of "
            f"those signs), got {value!r}"
        )
    return value


def paths(experiment: str, shard: str, *, root=None) -> tuple[Path, Path]:
    """The ``(.npz, .json)`` paths of a shard."""
    folder = resolve_root(root) / _check_name("experiment", experiment)
    name = _check_name("shard", shard)
    return folder / f"{name}.npz", folder / f"{name}.json"


def rerun_command(experiment: str, shard: str, *, root=None) -> str:
    """The shell command that (re)computes one shard into the store at ``root``."""
    _check_name("experiment", experiment)
    _check_name("shard", shard)
    cmd = f"python -m damlib.experiments run {shlex.quote(experiment)} {shlex.quote(shard)}"
    where = resolve_root(root).resolve()
    if where != (_PACKAGE_ROOT / "results").resolve():
        cmd = f"DAMLIB_RESULTS={shlex.quote(str(where))} {cmd}"
    return cmd


def stored(*, root=None) -> list[tuple[str, str]]:
    """Every ``(experiment, shard)`` with metadata under ``root``, sorted."""
    base = resolve_root(root)
    if not base.is_dir():
        return []
    found = []
    for meta in base.glob("*/*.json"):
        if _NAME.fullmatch(meta.parent.name) and _NAME.fullmatch(meta.stem):
            found.append((meta.parent.name, meta.stem))
    return sorted(found)


# --- parameters -----------------------------------------------------------------------------


def jsonable(value: Any, name: str = "params") -> Any:
    """``value`` as JSON types: tuples become lists, numpy and torch scalars and arrays Python
    numbers and lists, dtypes and devices strings. Anything else is a ``ValueError`` naming it."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{name} keys must be strings, got {key!r}")
            out[key] = jsonable(item, f"{name}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(item, f"{name}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, np.generic):
        return jsonable(value.item(), name)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return jsonable(value.tolist(), name)
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    raise ValueError(f"{name} must be JSON-like (numbers, strings, lists, dicts), got {type(value).__name__}")


def canonical(value: Any) -> str:
    """A string that two parameter sets share exactly when they mean the same run: JSON types,
    sorted keys, and integral floats written as integers (``2.0`` and ``2`` agree)."""

    def norm(v):
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            return int(v)
        return v

    return json.dumps(norm(jsonable(value)), sort_keys=True, separators=(",", ":"))


def _differences(stored_params: dict, current: dict) -> dict:
    """Top-level parameters whose canonical forms differ, as ``name -> (stored, current)``."""
    out = {}
    for key in sorted(set(stored_params) | set(current)):
        a, b = stored_params.get(key), current.get(key)
        if key not in stored_params or key not in current or canonical(a) != canonical(b):
            out[key] = (a, b)
    return out


# --- arrays ---------------------------------------------------------------------------------


def _as_numpy(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype == torch.bfloat16:
            value = value.float()
        value = value.cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        raise ValueError(f"arrays[{name!r}] must hold numbers or booleans, got dtype {array.dtype}")
    return array


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays as a compressed ``.npz``, byte-for-byte the same for the same arrays (fixed entry
    dates), so that a rerun with identical results leaves the committed file unchanged."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            entry = io.BytesIO()
            np.lib.format.write_array(entry, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(info, entry.getvalue())
    return buffer.getvalue()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- provenance -----------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    if not (_PACKAGE_ROOT / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(_PACKAGE_ROOT), *args], capture_output=True,
                              text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: torch.device | str | None = None) -> dict:
    """What a stored run records about where it ran: damlib, torch, git commit (``None`` outside a
    git checkout) and whether the checkout had uncommitted changes (outside ``results/``), the
    device and its name, torch's thread count, the date."""
    try:
        dev = torch.device(device) if device is not None else config.device()
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a torch device, got {device!r} ({err})") from None
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results")
        dirty = bool(status) if status is not None else None
    return {
        "damlib": __version__,
        "commit": commit,
        "dirty": dirty,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": str(dev),
        "device_name": _device_name(dev),
        "threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# --- write, read, verify --------------------------------------------------------------------


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(folder: Path, name: str, data: bytes) -> Path:
    # created as open() creates a file (mode 0666 less the umask), not private like tempfile's,
    # since it is renamed into the store
    while True:
        path = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def write(experiment: str, shard: str, params: dict, arrays: Mapping[str, Any], *, seconds: float,
          root=None, command: str | None = None, device: torch.device | str | None = None) -> Path:
    """Store one shard atomically and return its ``.npz`` path.

    Parameters
    ----------
    experiment, shard : str
        Names of the experiment and of the size it ran at (letters, digits, ``_.+=-``).
    params : dict
        Every parameter of the run, JSON-like (numbers, strings, lists, dicts; tuples, numpy and
        torch scalars are converted).
    arrays : mapping of str to numpy.ndarray or torch.Tensor
        The results, numeric or boolean; names are letters, digits, ``_.+=-``.
    seconds : float
        Wall time of the run, in seconds.
    root : path, optional
        The store's root (default :func:`default_root`).
    command : str, optional
        The command that reruns it (default ``python -m damlib.experiments run EXPERIMENT SHARD``).
    device : torch.device or str, optional
        The device it ran on (default :func:`damlib.config.device`).

    Returns
    -------
    pathlib.Path
        The ``.npz`` file; the ``.json`` metadata lies beside it.
    """
    npz, meta_path = paths(experiment, shard, root=root)
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError("arrays must be a non-empty dict of name -> array")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"seconds must be a finite non-negative number, got {seconds!r}")
    numeric = {_check_name("array name", str(name)): _as_numpy(name, value) for name, value in arrays.items()}
    data = _npz_bytes(numeric)
    meta = {
        "format": FORMAT,
        "experiment": experiment,
        "shard": shard,
        "params": jsonable(params),
        **provenance(device),
        "seconds": float(seconds),
        "command": command if command is not None else rerun_command(experiment, shard, root=root),
        "sha256": hashlib.sha256(data).hexdigest(),
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in sorted(numeric.items())},
    }
    text = json.dumps(meta, indent=1, sort_keys=False) + "\n"

    folder = npz.parent
    folder.mkdir(parents=True, exist_ok=True)
    temporaries = []
    try:
        npz_tmp = _temporary(folder, npz.name, data)
        temporaries.append(npz_tmp)
        meta_tmp = _temporary(folder, meta_path.name, text.encode())
        temporaries.append(meta_tmp)
        backup = None
        if npz.exists():
            # Keep the previous arrays under a temporary name, so that a failure between the two
            # renames puts them back: the previous shard stays whole.
            backup = folder / f".{npz.name}.{os.getpid()}.previous.tmp"
            backup.unlink(missing_ok=True)
            try:
                os.link(npz, backup)
            except OSError:  # a file system without hard links
                shutil.copyfile(npz, backup)
            temporaries.append(backup)
        os.replace(npz_tmp, npz)
        try:
            os.replace(meta_tmp, meta_path)
        except BaseException:
            if backup is not None:
                os.replace(backup, npz)
            else:
                npz.unlink(missing_ok=True)
            raise
        _fsync_folder(folder)
    finally:
        for path in temporaries:
            path.unlink(missing_ok=True)
    return npz


def load(experiment: str, shard: str, *, root=None) -> Shard | None:
    """The stored shard, checksum checked but parameters not compared; ``None`` when absent.

    Raises :class:`CorruptShard` when the arrays do not match their checksum or a file is unreadable.
    """
    npz, meta_path = paths(experiment, shard, root=root)
    rerun = rerun_command(experiment, shard, root=root)
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        expected = meta["sha256"]
        params = meta["params"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorruptShard(f"the metadata {meta_path} is unreadable ({error}); recompute it: {rerun}",
                           path=meta_path, command=rerun) from error
    if (meta.get("experiment"), meta.get("shard")) != (experiment, shard):
        raise CorruptShard(
            f"{meta_path} describes {meta.get('experiment')!r}/{meta.get('shard')!r}, not "
            f"{experiment!r}/{shard!r}; recompute it: {rerun}", path=meta_path, command=rerun)
    if not npz.exists():
        raise CorruptShard(f"{meta_path} has no arrays beside it ({npz.name} is missing); "
                           f"recompute it: {rerun}", path=npz, command=rerun)
    actual = _sha256(npz)
    if actual != expected:
        raise CorruptShard(
            f"the arrays {npz} do not match their checksum (sha256 {actual[:12]}..., the metadata "
            f"says {str(expected)[:12]}...): the file was changed after it was written; recompute "
            f"it: {rerun}", path=npz, command=rerun)
    try:
        with np.load(npz, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise CorruptShard(f"the arrays {npz} are unreadable ({error}); recompute it: {rerun}",
                           path=npz, command=rerun) from error
    return Shard(experiment, shard, params, arrays, meta, npz)


def read(experiment: str, shard: str, params: dict, *, root=None) -> Shard | None:
    """The stored shard, checked against ``params``; ``None`` when it is not stored.

    Raises
    ------
    StaleShard
        When the stored parameters differ from ``params`` (compared after a JSON round trip);
        the message names each differing parameter and the command that recomputes the shard.
    CorruptShard
        When the stored arrays do not match their checksum.
    """
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    found = load(experiment, shard, root=root)
    if found is None:
        return None
    current = jsonable(params)
    differences = _differences(found.params, current)
    if differences:
        listed = "; ".join(
            f"{key}: stored {json.dumps(a)}, now {json.dumps(b)}"
            for key, (a, b) in differences.items()
        )
        rerun = rerun_command(experiment, shard, root=root)
        raise StaleShard(
            f"the stored run {experiment}/{shard} was made with other parameters than its "
            f"definition ({listed}); recompute it: {rerun}",
            path=found.path, command=rerun, differences=differences)
    return found


def _numpy_of(name: str, value) -> np.ndarray:
    return _as_numpy(name, value).astype(np.complex128 if np.iscomplexobj(value) else np.float64)


def verify(shard: Shard, recomputed: Mapping[str, Any], *, rtol: float, atol: float,
           select: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Check arrays recomputed now against the stored ones.

    An element agrees when ``|recomputed - stored| <= atol + rtol * |stored|``, or when both are
    NaN, or both the same infinity.

    Parameters
    ----------
    shard : Shard
        The stored run, from :func:`read`.
    recomputed : mapping of str to numpy.ndarray or torch.Tensor
        Arrays recomputed now, by the names they are stored under.
    rtol, atol : float
        Relative and absolute tolerance.
    select : mapping of str to index, optional
        For a cheap slice: the stored array ``name`` is indexed with ``select[name]`` (for example
        ``np.s_[0, :50]``) before the comparison.

    Returns
    -------
    dict of str to float
        The largest absolute deviation of each compared array (NaN where both are NaN counts 0).

    Raises
    ------
    VerificationError
        Naming the first array that disagrees, its largest deviation and the tolerance.
    """
    for argument, value in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{argument} must be a finite non-negative number, got {value!r}")
    if not isinstance(recomputed, Mapping) or not recomputed:
        raise ValueError("recomputed must be a non-empty dict of name -> array")
    select = dict(select or {})
    unknown = sorted((set(recomputed) | set(select)) - set(shard.arrays))
    if unknown:
        raise ValueError(f"recomputed names arrays the shard does not store: {unknown}; "
                         f"it stores {sorted(shard.arrays)}")
    where = f"{shard.experiment}/{shard.shard}"
    deviations = {}
    for name, value in recomputed.items():
        stored_array = shard.arrays[name]
        if name in select:
            stored_array = stored_array[select[name]]
        new = _numpy_of(name, value)
        old = np.asarray(stored_array).astype(new.dtype if np.iscomplexobj(new) else np.float64)
        if new.shape != old.shape:
            raise VerificationError(
                f"the recomputed {name!r} has shape {new.shape}, the stored one of {where} "
                f"{old.shape}", array=name, deviation=math.inf, tolerance=atol,
                path=shard.path, command=shard.command)
        both_nan = np.isnan(old) & np.isnan(new)
        same_inf = np.isinf(old) & (old == new)
        with np.errstate(invalid="ignore"):
            diff = np.abs(new - old)
        diff = np.where(both_nan | same_inf, 0.0, np.where(np.isnan(diff), np.inf, diff))
        allowed = atol + rtol * np.abs(np.where(np.isfinite(old), old, 0.0))
        deviation = float(diff.max()) if diff.size else 0.0
        deviations[name] = deviation
        excess = diff - allowed
        if excess.size and float(excess.max()) > 0:
            worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
            raise VerificationError(
                f"the recomputed {name!r} disagrees with the stored run {where}: at index "
                f"{tuple(int(i) for i in worst)} it is {new[worst]!r} against {old[worst]!r} "
                f"(deviation {diff[worst]:.3g}, tolerance {allowed[worst]:.3g} = atol {atol:g} + "
                f"rtol {rtol:g} x |stored|); largest deviation {deviation:.3g} over "
                f"{int((excess > 0).sum())} of {excess.size} elements; the stored run was made by "
                f"{shard.command}",
                array=name, deviation=deviation, tolerance=float(allowed[worst]),
                path=shard.path, command=shard.command)
    return deviations


# --- sentences for the pages ----------------------------------------------------------------


def duration(seconds: float) -> str:
    """A wall time for a reader: ``"42 s"``, ``"3.5 min"``, ``"2.1 h"``."""
    checks.positive("seconds", seconds, allow_zero=True)
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def describe(shard: Shard) -> str:
    """One sentence for a caption: where, how long, when and by which command the run was made
    (the sizes are the chapter's to state)."""
    if not isinstance(shard, Shard):
        raise ValueError(f"shard must be a Shard (store.read), got {type(shard).__name__}")
    meta = shard.meta
    device = meta.get("device", "?")
    name = meta.get("device_name")
    on = f"{device} ({name})" if name else device
    threads = meta.get("threads")
    date = str(meta.get("date", "?"))[:10]
    commit = meta.get("commit")
    version = f"damlib {meta.get('damlib', '?')}" + (f", commit {commit[:7]}" if commit else "")
    if meta.get("dirty"):
        version += " with uncommitted changes"
    return (f"Stored run computed on {on} with {threads} torch thread{'s' if threads != 1 else ''} "
            f"in {duration(float(meta.get('seconds', 0)))} on {date} ({version}), by "
            f"`{meta.get('command') or rerun_command(shard.experiment, shard.shard)}`.")


def absent(experiment: str, shard: str, *, root=None) -> str:
    """The sentence a page shows when a stored run is not in the store, with the command that makes it."""
    return (f"The stored run {experiment}/{shard} is not in the results store, so this page "
            f"shows the book-scale run only; `{rerun_command(experiment, shard, root=root)}` computes it.")
