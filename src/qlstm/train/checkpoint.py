"""Atomic file writes and training checkpoints.

Every file of a run is written through :func:`atomic_write`: the data go to
a temporary file in the destination's folder, are flushed to disk, and only
then renamed over the destination with :func:`os.replace` (atomic on POSIX
and Windows within one file system). A crash, a full disk or a signal during
the write leaves the previous file intact and no temporary file behind.

A checkpoint is a dict saved with :func:`torch.save`:

``format``, ``version``
    identify the file as a qlstm training checkpoint.
``config``
    the resolved :class:`~qlstm.train.config.TrainConfig` as a dict.
``model_state``, ``optimizer_state``
    ``state_dict()`` of the model and optimizer.
``progress``
    where training stands: ``epoch`` (completed epochs), ``batch``
    (completed batches of the current epoch), ``perm`` (the current
    epoch's shuffled order), running ``loss_sum`` / ``seen`` of the epoch,
    ``history`` (one dict per completed epoch) and ``seconds``.
``shuffle_rng``, ``torch_rng``
    states of the shuffling generator and of torch's global generator.
``data_info``
    facts about the data (sizes; the series scaler's range, used by
    ``qlstm predict``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import QlstmError

__all__ = ["CheckpointError", "RunDirError", "atomic_write", "save_checkpoint", "load_checkpoint",
           "checkpoint_path", "load_model_state", "run_dir_error", "FORMAT", "VERSION", "CHECKPOINT_NAME"]

FORMAT = "qlstm-train-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(QlstmError):
    """A checkpoint is missing, unreadable, or does not belong to the model it is loaded into."""


class RunDirError(OSError):
    """A run directory or one of its files cannot be written (permissions, full disk, a file in the way).

    ``str(error)`` is the whole explanation: the path, the cause and what to do.
    """

    def __str__(self) -> str:
        return str(self.strerror)


def run_dir_error(path: Path, exc: OSError) -> RunDirError:
    """Wrap an OSError from writing ``path`` in a RunDirError with a helpful message."""
    return RunDirError(exc.errno, _explain(path, exc))


def _explain(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free some space or set run_dir=... on another disk"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "no permission to write there; choose a writable run_dir=..."
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        hint = "a file is in the way of the folder; choose another run_dir=..."
    else:
        hint = "choose another run_dir=..."
    return f"cannot write {path}: {exc.strerror or exc}; {hint}"


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write ``path`` via ``write(file_object)`` so that it is either complete or untouched.

    Raises:
        RunDirError: the folder is not writable or the disk is full (the
            message says which and what to do); no temporary file remains.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise run_dir_error(path, exc) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def checkpoint_path(run_dir_or_file: str | os.PathLike) -> Path:
    """``RUN_DIR/checkpoint.pt`` for a folder, the path itself for a file; raise if it does not exist."""
    p = Path(run_dir_or_file)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
        if not p.is_file():
            raise CheckpointError(f"{p.parent} holds no {CHECKPOINT_NAME}; is it a run directory of `qlstm train`?")
    elif not p.is_file():
        raise CheckpointError(f"no such run directory or checkpoint: {run_dir_or_file}")
    return p


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> Path:
    """Atomically save a checkpoint dict (see the module docstring for its keys)."""
    return atomic_write(path, lambda fh: torch.save({"format": FORMAT, "version": VERSION, **ckpt}, fh))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load and check a checkpoint written by :func:`save_checkpoint` (tensors on the CPU).

    Raises:
        CheckpointError: missing file, not a torch file, or not a qlstm
            training checkpoint.
    """
    p = checkpoint_path(path)
    try:
        # weights_only: a checkpoint holds only tensors, numbers, strings, lists and dicts,
        # so no pickled code from a foreign file is ever run.
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a checkpoint
        raise CheckpointError(f"{p} is not a readable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a qlstm training checkpoint (written by `qlstm train`)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{p} has checkpoint version {ckpt.get('version')}; this qlstm reads version {VERSION}")
    return ckpt


def load_model_state(model: torch.nn.Module, ckpt: dict, path: str | os.PathLike, expected_model: str) -> None:
    """Load ``ckpt["model_state"]`` into ``model`` or explain why it does not fit."""
    saved = ckpt.get("config", {}).get("model", {})
    name = saved.get("name")
    if name != expected_model:
        raise CheckpointError(f"{path} holds weights of model {name!r}, not {expected_model!r}; "
                              f"load it with its own run configuration or pick a checkpoint of {expected_model!r}")
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(
            f"{path} holds weights of a {name!r} model with other sizes or options than the one built "
            f"({' '.join(s.strip() for s in first)}); use the configuration the checkpoint was trained with"
        ) from None
