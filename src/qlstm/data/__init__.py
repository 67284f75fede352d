"""Data sets for qlstm: literature time series, MNIST and Moving-MNIST.

* :mod:`qlstm.data.series` -- sine, damped pendulum, Bessel J2, delayed
  quantum control, population inversion, Lorenz; windowing, min-max scaling
  and chronological train/test splits; CSV columns.
* :mod:`qlstm.data.mnist` -- real MNIST digits, cached offline.
* :mod:`qlstm.data.moving_mnist` -- Moving-MNIST generation and loading.
* :func:`prepare` -- one-time downloads into the cache (``$QLSTM_CACHE`` or
  ``~/.cache/qlstm``).
"""

from ._fetch import DataDownloadError, cache_dir
from .mnist import download_mnist, load_mnist, load_mnist_idx
from .moving_mnist import (
    TEST_SEED,
    TRAIN_SEED,
    FrameSequenceDataset,
    MovingMNIST,
    generate_moving_mnist,
    load_moving_mnist_npy,
)
from .prepare import PREPARABLE, prepare
from .series import (
    SERIES,
    MinMaxScaler,
    SeriesData,
    bessel_j2,
    bessel_jn,
    damped_pendulum,
    delayed_quantum_control,
    load_csv_series,
    lorenz,
    make_series,
    make_windows,
    population_inversion,
    series_dataset,
    sine,
)

__all__ = [
    "DataDownloadError",
    "cache_dir",
    "download_mnist",
    "load_mnist",
    "load_mnist_idx",
    "TEST_SEED",
    "TRAIN_SEED",
    "FrameSequenceDataset",
    "MovingMNIST",
    "generate_moving_mnist",
    "load_moving_mnist_npy",
    "PREPARABLE",
    "prepare",
    "SERIES",
    "MinMaxScaler",
    "SeriesData",
    "bessel_j2",
    "bessel_jn",
    "damped_pendulum",
    "delayed_quantum_control",
    "load_csv_series",
    "lorenz",
    "make_series",
    "make_windows",
    "population_inversion",
    "series_dataset",
    "sine",
]
