"""Univariate time series from the QLSTM literature, windowing and scaling.

Generators (all return a float64 ``np.ndarray`` of shape ``[n_points]``):

* :func:`sine` -- ``amplitude * sin(2 pi f t + phase)``.
* :func:`damped_pendulum` -- angular velocity of a damped pendulum.
* :func:`bessel_j2` -- Bessel function of the first kind of order 2.
* :func:`delayed_quantum_control` -- train of decaying Gaussian pulses.
* :func:`population_inversion` -- Jaynes-Cummings collapse and revival.
* :func:`lorenz` -- one component of the Lorenz-63 attractor.

The pendulum, Bessel and delayed-quantum-control definitions follow the public
code of the QLSTM paper (Chen, Yoo, Fang 2020). The sine, population-inversion
and Lorenz parameters are this library's choices, stated in each docstring.
Every generator takes
``noise_std`` and ``seed``: Gaussian noise of that standard deviation is drawn
from ``np.random.default_rng(seed)``, never from numpy's global state.

Pipeline helpers: :func:`make_windows`, :class:`MinMaxScaler`,
:func:`series_dataset` (chronological split, scaler fitted on the training
part only) and :func:`load_csv_series` for a user's own data.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from qlstm.errors import InputError

__all__ = [
    "sine",
    "damped_pendulum",
    "bessel_jn",
    "bessel_j2",
    "delayed_quantum_control",
    "population_inversion",
    "lorenz",
    "rk4",
    "SERIES",
    "make_series",
    "make_windows",
    "MinMaxScaler",
    "SeriesData",
    "series_dataset",
    "load_csv_series",
]


def _add_noise(y: np.ndarray, noise_std: float, seed) -> np.ndarray:
    if noise_std < 0:
        raise InputError(f"noise_std must be >= 0, got {noise_std}")
    if noise_std == 0:
        return y
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return y + rng.normal(0.0, noise_std, size=y.shape)


def _check_points(n_points: int) -> None:
    if int(n_points) != n_points or n_points < 2:
        raise InputError(f"n_points must be an integer >= 2, got {n_points}")


def rk4(f: Callable[[float, np.ndarray], np.ndarray], y0, t: np.ndarray, substeps: int = 20) -> np.ndarray:
    """Integrate ``dy/dt = f(t, y)`` with the classical fixed-step Runge-Kutta 4 method.

    Args:
        f: right-hand side, ``f(t, y) -> dy/dt`` with ``y`` of shape ``[d]``.
        y0: initial state at ``t[0]``, shape ``[d]``.
        t: increasing output times, shape ``[n]``.
        substeps: RK4 steps taken between consecutive output times; the step
            is ``(t[i+1] - t[i]) / substeps``. The global error scales as
            ``step**4``.

    Returns:
        States at the output times, shape ``[n, d]``, float64.
    """
    t = np.asarray(t, dtype=np.float64)
    y = np.array(y0, dtype=np.float64)
    out = np.empty((len(t), y.size))
    out[0] = y
    for i in range(len(t) - 1):
        h = (t[i + 1] - t[i]) / substeps
        s = t[i]
        for _ in range(substeps):
            k1 = f(s, y)
            k2 = f(s + h / 2, y + h / 2 * k1)
            k3 = f(s + h / 2, y + h / 2 * k2)
            k4 = f(s + h, y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            s += h
        out[i + 1] = y
    return out


def sine(n_points: int = 240, t_max: float = 20.0, frequency: float = 0.2, amplitude: float = 1.0,
         phase: float = 0.0, noise_std: float = 0.0, seed=0) -> np.ndarray:
    """Sampled sine wave ``amplitude * sin(2 pi frequency t + phase)``.

    ``t = linspace(0, t_max, n_points)`` (time units arbitrary, ``frequency``
    in cycles per time unit); the defaults give 4 periods on the 240-point
    grid used for the pendulum. Returns shape ``[n_points]``.
    """
    _check_points(n_points)
    t = np.linspace(0.0, t_max, n_points)
    return _add_noise(amplitude * np.sin(2 * np.pi * frequency * t + phase), noise_std, seed)


def damped_pendulum(n_points: int = 240, t_max: float = 20.0, damping: float = 0.15, g: float = 9.81,
                    length: float = 1.0, theta0: float = 0.0, omega0: float = 3.0, substeps: int = 50,
                    noise_std: float = 0.0, seed=0) -> np.ndarray:
    """Angular velocity ``theta'(t)`` (rad/s) of a damped pendulum.

    Solves ``theta'' = -damping * theta' - (g / length) * sin(theta)`` with
    ``theta(0) = theta0`` (rad), ``theta'(0) = omega0`` (rad/s) on
    ``t = linspace(0, t_max, n_points)`` seconds, as in the QLSTM paper's
    "damped SHM" data (0.15, 9.81, theta(0)=0, theta'(0)=3, [0, 20] s, 240
    points). Integrated with fixed-step RK4 using ``substeps`` steps per
    output interval (about 1.7 ms by default, error far below 1e-8).

    Returns:
        ``theta'(t)``, shape ``[n_points]``.
    """
    _check_points(n_points)
    k = g / length

    def f(_t, y):
        return np.array([y[1], -damping * y[1] - k * math.sin(y[0])])

    t = np.linspace(0.0, t_max, n_points)
    return _add_noise(rk4(f, [theta0, omega0], t, substeps)[:, 1], noise_std, seed)


def bessel_jn(n: int, x) -> np.ndarray:
    """Bessel function of the first kind ``J_n(x)`` for integer order ``n``.

    Uses Bessel's integral ``J_n(x) = 1/(2 pi) int_0^{2 pi} cos(n tau - x sin tau) d tau``.
    The integrand is smooth and periodic, so the trapezoidal rule with ``M``
    equally spaced nodes is exact up to terms of size ``J_M(x)``, which is
    below double precision once ``M > |x| + |n| + 40``; ``M`` is chosen that
    way from the largest ``|x|``.

    Args:
        n: integer order.
        x: real argument(s), any shape.

    Returns:
        ``J_n(x)`` with the shape of ``x``, float64.
    """
    if int(n) != n:
        raise InputError(f"bessel_jn needs an integer order, got {n}")
    x = np.asarray(x, dtype=np.float64)
    m = int(2 * np.ceil((np.max(np.abs(x), initial=0.0) + abs(n)) / 2)) + 64
    tau = 2 * np.pi * np.arange(m) / m
    phase = n * tau - x[..., None] * np.sin(tau)
    return np.cos(phase).mean(axis=-1)


def bessel_j2(n_points: int = 256, x_min: float = 2.0, x_max: float = 100.0, noise_std: float = 0.0,
              seed=0) -> np.ndarray:
    """Bessel function ``J_2(x)`` on ``x = linspace(x_min, x_max, n_points)``.

    Defaults follow the QLSTM paper's code: ``x`` in ``[2, 100]``, 256 points.
    Returns shape ``[n_points]``.
    """
    _check_points(n_points)
    return _add_noise(bessel_jn(2, np.linspace(x_min, x_max, n_points)), noise_std, seed)


def delayed_quantum_control(x_min: float = -2.0, x_max: float = 20.0, step: float = 0.01,
                            n_pulses: int = 11, noise_std: float = 0.0, seed=0) -> np.ndarray:
    """Decaying pulse train ``sum_{n=0}^{n_pulses-1} exp(-10 (x - 2n)^2) exp(-x / 16)``.

    Sampled at ``x = arange(x_min, x_max, step)`` (defaults: ``[-2, 20)`` in
    steps of 0.01, 2200 points), as in the QLSTM paper's code. Returns shape
    ``[len(x)]``.
    """
    x = np.arange(x_min, x_max, step)
    centres = 2.0 * np.arange(n_pulses)
    y = np.exp(-10.0 * (x[:, None] - centres) ** 2).sum(axis=1) * np.exp(-x / 16.0)
    return _add_noise(y, noise_std, seed)


def population_inversion(n_points: int = 1200, t_max: float = 60.0, mean_photons: float = 40.0,
                         coupling: float = 1.0, noise_std: float = 0.0, seed=0) -> np.ndarray:
    """Atomic population inversion ``W(t)`` of the resonant Jaynes-Cummings model.

    An atom starting in the excited state interacts with a single field mode
    in a coherent state of mean photon number ``nbar = mean_photons``:

        ``W(t) = sum_n P(n) cos(2 g sqrt(n + 1) t)``,  ``P(n) = exp(-nbar) nbar^n / n!``

    with ``g = coupling`` and ``t = linspace(0, t_max, n_points)`` in units of
    ``1/g``. The Rabi oscillations collapse after ``t ~ 1/g`` and revive near
    ``t_r = 2 pi sqrt(nbar) / g`` (about 39.7 for the defaults); the default
    grid has about 10 samples per Rabi period and shows the first revival.
    The sum runs over ``n <= nbar + 12 sqrt(nbar) + 20``, where the neglected
    Poisson tail is below 1e-15. Returns shape ``[n_points]``, values in
    ``[-1, 1]``.
    """
    _check_points(n_points)
    if mean_photons <= 0:
        raise InputError(f"mean_photons must be > 0, got {mean_photons}")
    n = np.arange(int(mean_photons + 12 * math.sqrt(mean_photons) + 20) + 1)
    log_p = -mean_photons + n * math.log(mean_photons) - np.array([math.lgamma(k + 1) for k in n])
    p = np.exp(log_p)
    t = np.linspace(0.0, t_max, n_points)
    y = np.cos(2 * coupling * np.sqrt(n + 1.0)[None, :] * t[:, None]) @ p
    return _add_noise(y, noise_std, seed)


def lorenz(n_points: int = 1000, dt: float = 0.01, sigma: float = 10.0, beta: float = 8.0 / 3.0,
           rho: float = 28.0, initial=(1.0, 1.0, 1.0), component: str = "x", substeps: int = 10,
           noise_std: float = 0.0, seed=0) -> np.ndarray:
    """One coordinate of the Lorenz-63 system, sampled every ``dt`` time units.

    ``x' = sigma (y - x)``, ``y' = x (rho - z) - y``, ``z' = x y - beta z``
    from ``initial`` at ``t = 0``, integrated with fixed-step RK4
    (``substeps`` steps per sample). ``component`` is ``"x"``, ``"y"`` or
    ``"z"``. Returns shape ``[n_points]``.
    """
    _check_points(n_points)
    axes = {"x": 0, "y": 1, "z": 2}
    if component not in axes:
        raise InputError(f"component must be one of 'x', 'y', 'z', got {component!r}")

    def f(_t, s):
        x, y, z = s
        return np.array([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])

    t = dt * np.arange(n_points)
    return _add_noise(rk4(f, initial, t, substeps)[:, axes[component]], noise_std, seed)


SERIES: dict[str, Callable[..., np.ndarray]] = {
    "sine": sine,
    "damped_pendulum": damped_pendulum,
    "bessel_j2": bessel_j2,
    "delayed_quantum_control": delayed_quantum_control,
    "population_inversion": population_inversion,
    "lorenz": lorenz,
}


def make_series(name: str, **kwargs) -> np.ndarray:
    """Generate the registered series ``name`` (a key of :data:`SERIES`).

    Keyword arguments go to the generator. Returns a float64 array ``[n]``.
    """
    try:
        fn = SERIES[name]
    except KeyError:
        raise InputError(f"unknown series {name!r}; valid names: {', '.join(sorted(SERIES))}") from None
    return fn(**kwargs)


def make_windows(series, window: int = 4, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cut a 1-D series into sliding input windows and the value ``horizon`` steps later.

    Window ``i`` is ``X[i] = series[i : i + window]`` and its target is
    ``y[i] = series[i + window + horizon - 1]`` (``horizon=1``: the next
    value). Every admissible window is returned:
    ``N = len(series) - window - horizon + 1``. (The QLSTM paper's code
    dropped the last window; this does not.)

    Returns:
        ``X`` of shape ``[N, window]`` and ``y`` of shape ``[N]``, both with
        the series' dtype.
    """
    s = np.asarray(series)
    if s.ndim != 1:
        raise InputError(f"make_windows needs a 1-D series, got shape {tuple(s.shape)}")
    if window < 1 or horizon < 1:
        raise InputError(f"window and horizon must be >= 1, got window={window}, horizon={horizon}")
    n = len(s) - window - horizon + 1
    if n < 1:
        raise InputError(
            f"series of length {len(s)} is too short for window={window} and horizon={horizon}; "
            f"it needs at least {window + horizon} points"
        )
    idx = np.arange(n)[:, None] + np.arange(window)[None, :]
    return s[idx], s[np.arange(n) + window + horizon - 1]


class MinMaxScaler:
    """Affine map of a series' ``[min, max]`` (seen at :meth:`fit`) onto ``feature_range``.

    All values are treated as one feature (the global min and max), as fits a
    univariate series. Values outside the fitted range (e.g. in the test part
    of a series) map outside ``feature_range``; they are not clipped. Works
    on numpy arrays and torch tensors and returns the same type.
    """

    def __init__(self, feature_range: tuple[float, float] = (-1.0, 1.0)):
        lo, hi = feature_range
        if not lo < hi:
            raise InputError(f"feature_range must be (low, high) with low < high, got {feature_range}")
        self.feature_range = (float(lo), float(hi))
        self.data_min_: float | None = None
        self.data_max_: float | None = None

    def fit(self, data) -> "MinMaxScaler":
        """Record the min and max of ``data`` (any shape). Raises on a constant or non-finite input."""
        a = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data, dtype=np.float64)
        if a.size == 0:
            raise InputError("cannot fit MinMaxScaler on an empty array")
        if not np.all(np.isfinite(a)):
            raise InputError("cannot fit MinMaxScaler: the data contain NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo == hi:
            raise InputError(
                f"cannot fit MinMaxScaler on a constant series (every value is {lo}); "
                "min-max scaling needs max > min"
            )
        self.data_min_, self.data_max_ = lo, hi
        return self

    def _check(self) -> None:
        if self.data_min_ is None:
            raise InputError("MinMaxScaler is not fitted; call fit(train_data) first")

    @property
    def scale_(self) -> float:
        """Output units per input unit."""
        self._check()
        lo, hi = self.feature_range
        return (hi - lo) / (self.data_max_ - self.data_min_)

    def transform(self, data):
        """Map data to the scaled range: ``low + (x - min) * scale_``."""
        self._check()
        if not isinstance(data, torch.Tensor):
            data = np.asarray(data, dtype=np.float64)
        return self.feature_range[0] + (data - self.data_min_) * self.scale_

    def fit_transform(self, data):
        """:meth:`fit` then :meth:`transform` on the same data."""
        return self.fit(data).transform(data)

    def inverse_transform(self, data):
        """Map scaled values back to the original units."""
        self._check()
        if not isinstance(data, torch.Tensor):
            data = np.asarray(data, dtype=np.float64)
        return (data - self.feature_range[0]) / self.scale_ + self.data_min_

    def __repr__(self) -> str:
        return f"MinMaxScaler(feature_range={self.feature_range}, data_min_={self.data_min_}, data_max_={self.data_max_})"


class SeriesData(NamedTuple):
    """Chronologically split, scaled and windowed series (see :func:`series_dataset`)."""

    x_train: torch.Tensor
    """Training inputs ``[N_train, window, 1]``."""
    y_train: torch.Tensor
    """Training targets ``[N_train, 1]``."""
    x_test: torch.Tensor
    """Test inputs ``[N_test, window, 1]``."""
    y_test: torch.Tensor
    """Test targets ``[N_test, 1]``."""
    scaler: MinMaxScaler
    """Scaler fitted on the training part; ``inverse_transform`` gives original units."""


def series_dataset(name_or_array, window: int = 4, train_frac: float = 0.67, horizon: int = 1,
                   feature_range: tuple[float, float] = (-1.0, 1.0), dtype: torch.dtype = torch.float32,
                   **series_kwargs) -> SeriesData:
    """Scaled, windowed, chronologically split train/test tensors for one series.

    Steps:

    1. Take the series: a name from :data:`SERIES` (``series_kwargs`` go to
       its generator) or a 1-D array.
    2. Split point ``n_train = int(train_frac * len(series))``: points before
       it are the training part, the rest the test part. No shuffling.
    3. Fit a :class:`MinMaxScaler` on the training part only, so no
       information from the test part leaks into training; test values may
       fall outside ``feature_range``.
    4. Cut the scaled series with :func:`make_windows`. A window belongs to
       the training set when its target index is ``< n_train``, else to the
       test set; the first test windows therefore read inputs from the end of
       the training part (past values, as in forecasting), but no target is
       shared.

    Returns:
        :class:`SeriesData` ``(x_train [N_tr, window, 1], y_train [N_tr, 1],
        x_test [N_te, window, 1], y_test [N_te, 1], scaler)``.
    """
    if isinstance(name_or_array, str):
        series = make_series(name_or_array, **series_kwargs)
    else:
        if series_kwargs:
            raise InputError(f"series keyword arguments {sorted(series_kwargs)} only apply to a named series")
        series = name_or_array.detach().cpu().numpy() if isinstance(name_or_array, torch.Tensor) else name_or_array
        series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1:
        raise InputError(f"series_dataset needs a 1-D series, got shape {tuple(series.shape)}")
    if not 0.0 < train_frac < 1.0:
        raise InputError(f"train_frac must be in (0, 1), got {train_frac}")
    n_train = int(train_frac * len(series))
    if n_train < window + horizon:
        raise InputError(
            f"the training part ({n_train} of {len(series)} points) is shorter than window + horizon = "
            f"{window + horizon}; use a longer series or a larger train_frac"
        )
    scaler = MinMaxScaler(feature_range).fit(series[:n_train])
    x, y = make_windows(scaler.transform(series), window, horizon)
    target_idx = np.arange(len(y)) + window + horizon - 1
    train = target_idx < n_train
    if train.all():
        raise InputError(
            f"no test windows: the test part ({len(series) - n_train} points) is empty; lower train_frac"
        )

    def tx(a):
        return torch.as_tensor(a, dtype=dtype)

    return SeriesData(tx(x[train])[..., None], tx(y[train])[:, None], tx(x[~train])[..., None],
                      tx(y[~train])[:, None], scaler)


def load_csv_series(path: str | os.PathLike, column: str | int) -> np.ndarray:
    """Read one numeric column of a CSV file with a header row as a float64 series ``[n]``.

    Args:
        path: the CSV file (comma separated, first row = column names).
        column: a column name from the header, or a 0-based column index.

    Raises:
        FileNotFoundError: the file does not exist.
        InputError: the column is not in the header (the message lists the
            available ones), the file has no data rows, or a value is empty,
            NaN, infinite or not a number (the message gives its line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path} is empty; expected a header row and data rows")
        header = [h.strip() for h in header]
        if isinstance(column, int) and not isinstance(column, bool):
            if not 0 <= column < len(header):
                raise InputError(f"column index {column} is out of range for {path}, which has "
                                 f"{len(header)} columns: {header}")
            col = column
        else:
            if column not in header:
                raise InputError(f"column {column!r} not found in {path}; available columns: {header}")
            col = header.index(column)
        values = []
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            line = reader.line_num
            cell = row[col].strip() if col < len(row) else ""
            if not cell:
                raise InputError(f"{path}, line {line}: column {header[col]!r} is empty (a missing value); "
                                 "fill or drop missing values first")
            try:
                v = float(cell)
            except ValueError:
                raise InputError(f"{path}, line {line}: column {header[col]!r} holds {cell!r}, "
                                 "which is not a number; clean or drop that row") from None
            if not math.isfinite(v):
                raise InputError(f"{path}, line {line}: column {header[col]!r} holds {cell!r} "
                                 "(NaN or infinite); fill or drop missing values first")
            values.append(v)
    if not values:
        raise InputError(f"{path} has a header but no data rows")
    return np.asarray(values, dtype=np.float64)
