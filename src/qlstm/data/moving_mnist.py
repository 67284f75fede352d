"""Moving-MNIST sequences, generated as in Srivastava et al. (2015).

Generator (:func:`generate_moving_mnist`), following the authors' original
code: each of ``num_digits`` digits gets a random MNIST image, a start
position uniform in the unit square and a direction ``theta`` uniform in
``[0, 2 pi)``. Per frame the position moves by ``step_length`` (0.1 of the
free range, i.e. 3.6 px per frame on a 64 px canvas with 28 px digits) along
``(cos theta, sin theta)``; a coordinate leaving ``[0, 1]`` is clamped to the
border and its velocity component reflected. Positions are mapped to the
digit's top-left pixel by ``int((size - digit) * pos)`` (truncation), so
digits always lie fully inside the frame. The first frame is drawn after the
first step, as in the original. Overlapping digits combine by pixel-wise
maximum.

Datasets: :class:`MovingMNIST` draws training sequences from the 60 000
MNIST training digits and test sequences from the 10 000 test digits, so no
test digit image appears in training. Sequence ``i`` is generated from
``np.random.default_rng([seed, i])``: reproducible, random-access, and
nothing is held in memory. The default test seed is :data:`TEST_SEED`
(2015), the default training seed :data:`TRAIN_SEED` (0).
:func:`load_moving_mnist_npy` reads the standard ``mnist_test_seq.npy``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from qlstm.errors import InputError

from .mnist import load_mnist

__all__ = [
    "generate_moving_mnist",
    "MovingMNIST",
    "FrameSequenceDataset",
    "load_moving_mnist_npy",
    "TRAIN_SEED",
    "TEST_SEED",
]

TRAIN_SEED = 0
"""Default seed of :class:`MovingMNIST` training sequences."""
TEST_SEED = 2015
"""Default seed of the fixed :class:`MovingMNIST` test set (year of Srivastava et al.)."""


def _as_rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _trajectories(rng: np.random.Generator, count: int, seq_len: int, step_length: float) -> np.ndarray:
    """Bouncing unit-square trajectories, ``[seq_len, count, 2]`` as (row, col) in [0, 1]."""
    pos = rng.random((count, 2))
    theta = rng.random(count) * 2 * np.pi
    vel = np.stack([np.sin(theta), np.cos(theta)], axis=1)
    out = np.empty((seq_len, count, 2))
    for t in range(seq_len):
        pos = pos + vel * step_length
        low, high = pos <= 0.0, pos >= 1.0
        pos = np.clip(pos, 0.0, 1.0)
        vel = np.where(low | high, -vel, vel)
        out[t] = pos
    return out


def generate_moving_mnist(digits, num_sequences: int, seq_len: int = 20, size: int = 64,
                          num_digits: int = 2, step_length: float = 0.1, seed=None,
                          return_meta: bool = False):
    """Generate Moving-MNIST sequences (see the module docstring for the process).

    Args:
        digits: digit images, uint8 ``[N, h, w]`` (numpy or torch), e.g. from
            :func:`~qlstm.data.load_mnist`.
        num_sequences: number of sequences ``S``.
        seq_len: frames per sequence ``T``.
        size: canvas side in pixels.
        num_digits: digits per sequence.
        step_length: displacement per frame as a fraction of the free range
            ``size - h`` (0.1 as in the original).
        seed: int, ``np.random.SeedSequence``-compatible entropy, or a
            ``np.random.Generator``; the only source of randomness.
        return_meta: also return the digit indices and pixel positions.

    Returns:
        uint8 array ``[S, T, size, size]``; with ``return_meta`` also a dict
        with ``"digit_indices"`` ``[S, num_digits]`` (rows of ``digits``) and
        ``"positions"`` ``[S, T, num_digits, 2]`` (top row, left column).
    """
    digits = digits.numpy() if isinstance(digits, torch.Tensor) else np.asarray(digits)
    if digits.ndim != 3 or digits.dtype != np.uint8:
        raise InputError(f"digits must be a uint8 array [N, h, w], got {digits.dtype} {tuple(digits.shape)}")
    n, h, w = digits.shape
    if n == 0 or h > size or w > size:
        raise InputError(f"need at least one digit no larger than the {size}x{size} canvas, got {tuple(digits.shape)}")
    if num_sequences < 0 or seq_len < 1 or num_digits < 1:
        raise InputError(f"num_sequences >= 0, seq_len >= 1 and num_digits >= 1 required, got "
                         f"{num_sequences}, {seq_len}, {num_digits}")
    rng = _as_rng(seed)
    s, d = num_sequences, num_digits
    idx = rng.integers(0, n, size=(s, d))
    traj = _trajectories(rng, s * d, seq_len, step_length).reshape(seq_len, s, d, 2)
    free = np.array([size - h, size - w], dtype=np.float64)
    pos = (traj * free).astype(np.int64).transpose(1, 0, 2, 3)  # [S, T, D, 2]

    frames = np.zeros((s, seq_len, size, size), dtype=np.uint8)
    seq = np.arange(s)[:, None, None]
    dr = np.arange(h)[None, :, None]
    dc = np.arange(w)[None, None, :]
    for k in range(d):
        img = digits[idx[:, k]]  # [S, h, w]
        for t in range(seq_len):
            rows = pos[:, t, k, 0][:, None, None] + dr
            cols = pos[:, t, k, 1][:, None, None] + dc
            view = frames[:, t]
            # Each (sequence, pixel) appears once per digit, so the fancy-index write is well defined.
            view[seq, rows, cols] = np.maximum(view[seq, rows, cols], img)
    if return_meta:
        return frames, {"digit_indices": idx, "positions": pos}
    return frames


def _split_item(frames: np.ndarray, n_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32).div_(255.0).unsqueeze(1)
    return x[:n_in], x[n_in:]


class FrameSequenceDataset(Dataset):
    """Dataset over fixed uint8 frame sequences ``[S, T, H, W]`` (e.g. ``mnist_test_seq.npy``).

    Item ``i`` is ``(inputs, targets)``: float32 tensors ``[n_in, 1, H, W]``
    and ``[T - n_in, 1, H, W]`` with values in ``[0, 1]`` (pixel / 255).
    """

    def __init__(self, sequences, n_in: int = 10):
        arr = sequences.numpy() if isinstance(sequences, torch.Tensor) else np.asarray(sequences)
        if arr.ndim != 4 or arr.dtype != np.uint8:
            raise InputError(f"sequences must be uint8 [S, T, H, W], got {arr.dtype} {tuple(arr.shape)}")
        if not 0 < n_in < arr.shape[1]:
            raise InputError(f"n_in must be in [1, T-1] = [1, {arr.shape[1] - 1}], got {n_in}")
        self.sequences = arr
        self.n_in = n_in

    def __len__(self) -> int:
        return self.sequences.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} sequences")
        return _split_item(self.sequences[i], self.n_in)


class MovingMNIST(Dataset):
    """Moving-MNIST generated on demand from real MNIST digits.

    Args:
        split: ``"train"`` (digits from the MNIST training set) or ``"test"``
            (digits from the MNIST test set).
        num_sequences: dataset length ``S``.
        seq_len: frames per sequence ``T``.
        n_in: input frames; the remaining ``T - n_in`` are targets.
        seed: base seed; default :data:`TRAIN_SEED` (0) for ``"train"`` and
            :data:`TEST_SEED` (2015) for ``"test"``. Sequence ``i`` comes from
            ``np.random.default_rng([seed, i])``.
        cache_dir: MNIST cache folder (see :func:`~qlstm.data.load_mnist`).
        download: fetch MNIST if not cached.
        digits: uint8 ``[N, 28, 28]`` images to use instead of loading MNIST.
        size, num_digits, step_length: as in :func:`generate_moving_mnist`.

    Item ``i`` is ``(inputs, targets)``: float32 tensors ``[n_in, 1, size, size]``
    and ``[T - n_in, 1, size, size]``, values in ``[0, 1]`` (pixel / 255).
    """

    def __init__(self, split: str = "train", num_sequences: int = 10000, seq_len: int = 20, n_in: int = 10,
                 seed: int | None = None, cache_dir: str | os.PathLike | None = None, download: bool = True,
                 digits=None, size: int = 64, num_digits: int = 2, step_length: float = 0.1):
        if split not in ("train", "test"):
            raise InputError(f"split must be 'train' or 'test', got {split!r}")
        if not 0 < n_in < seq_len:
            raise InputError(f"n_in must be in [1, seq_len-1] = [1, {seq_len - 1}], got {n_in}")
        if num_sequences < 1:
            raise InputError(f"num_sequences must be >= 1, got {num_sequences}")
        if digits is None:
            digits = load_mnist(split, cache_dir=cache_dir, download=download)[0]
        self.digits = digits.numpy() if isinstance(digits, torch.Tensor) else np.asarray(digits)
        self.split = split
        self.num_sequences = num_sequences
        self.seq_len = seq_len
        self.n_in = n_in
        self.seed = (TRAIN_SEED if split == "train" else TEST_SEED) if seed is None else int(seed)
        self.size = size
        self.num_digits = num_digits
        self.step_length = step_length

    def __len__(self) -> int:
        return self.num_sequences

    def sequence(self, i: int) -> np.ndarray:
        """Frames of sequence ``i`` as uint8 ``[T, size, size]``."""
        if not 0 <= i < self.num_sequences:
            raise IndexError(f"index {i} out of range for {self.num_sequences} sequences")
        rng = np.random.default_rng([self.seed, i])
        return generate_moving_mnist(self.digits, 1, self.seq_len, self.size, self.num_digits,
                                     self.step_length, seed=rng)[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i < 0:
            i += self.num_sequences
        return _split_item(self.sequence(i), self.n_in)


def load_moving_mnist_npy(path: str | os.PathLike) -> np.ndarray:
    """Read the standard Moving-MNIST file ``mnist_test_seq.npy``.

    The file holds uint8 ``[T, S, 64, 64]`` (20 frames x 10 000 sequences).
    It is memory-mapped and returned as a transposed view ``[S, T, 64, 64]``
    (no copy; wrap with ``np.ascontiguousarray`` to load it into memory).
    Use :class:`FrameSequenceDataset` to iterate over it.

    Raises:
        FileNotFoundError: no such file.
        InputError: the array is not uint8 with shape ``[T, S, 64, 64]``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Moving-MNIST file not found: {path}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path} is not a plain .npy array file: {exc}") from exc
    if arr.ndim != 4 or arr.shape[2:] != (64, 64) or arr.dtype != np.uint8:
        raise InputError(
            f"{path}: expected uint8 array of shape [T, S, 64, 64] (e.g. [20, 10000, 64, 64]), "
            f"got {arr.dtype} {tuple(arr.shape)}"
        )
    return arr.transpose(1, 0, 2, 3)
