"""Point-forecast metrics for time-series regression.

Every function takes ``pred`` and ``target`` of identical shape (torch
tensors, numpy arrays or nested lists; any shape, all elements pooled) and
returns a Python float computed in float64. A shape mismatch raises
:class:`~qlstm.errors.InputError` naming both shapes; no broadcasting is done,
so ``[N]`` against ``[N, 1]`` is an error rather than an ``N x N`` surprise.
"""

from __future__ import annotations

import numpy as np

from qlstm.errors import InputError

from ._common import check_same_shape, to_numpy64

__all__ = ["mse", "mae", "rmse", "r2", "tolerance_accuracy", "direction_accuracy"]


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    p, t = to_numpy64(pred, "pred"), to_numpy64(target, "target")
    check_same_shape(p.shape, t.shape)
    if p.size == 0:
        raise InputError("pred and target are empty; metrics need at least one value")
    return p, t


def mse(pred, target) -> float:
    """Mean squared error ``mean((pred - target)^2)`` over all elements (squared units of the data)."""
    p, t = _pair(pred, target)
    return float(np.mean((p - t) ** 2))


def mae(pred, target) -> float:
    """Mean absolute error ``mean(|pred - target|)`` over all elements (units of the data)."""
    p, t = _pair(pred, target)
    return float(np.mean(np.abs(p - t)))


def rmse(pred, target) -> float:
    """Root mean squared error ``sqrt(mean((pred - target)^2))`` (units of the data)."""
    return float(np.sqrt(mse(pred, target)))


def r2(pred, target) -> float:
    """Coefficient of determination ``1 - sum((target - pred)^2) / sum((target - mean(target))^2)``.

    1 is a perfect fit, 0 is no better than predicting the target mean, and
    it is negative for worse fits. Raises :class:`InputError` for a constant
    target, where it is undefined.
    """
    p, t = _pair(pred, target)
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        raise InputError("r2 is undefined for a constant target (zero variance)")
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot


def tolerance_accuracy(pred, target, tol: float = 0.1) -> float:
    """Share of predictions with ``|pred - target| <= tol``, in ``[0, 1]``.

    ``tol`` is in the units of the data it is given; the default 0.1 is meant
    for series min-max scaled to ``[-1, 1]`` (see
    :class:`~qlstm.data.MinMaxScaler`), where it is 5 % of the training
    range.
    """
    if tol < 0:
        raise InputError(f"tol must be >= 0, got {tol}")
    p, t = _pair(pred, target)
    return float(np.mean(np.abs(p - t) <= tol))


def direction_accuracy(pred, target, prev) -> float:
    """Share of steps whose up/down move is predicted correctly, in ``[0, 1]``.

    For each element, the true move is ``sign(target - prev)`` and the
    predicted move ``sign(pred - prev)``, where ``prev`` is the previous true
    value (e.g. the last value of each input window). Ties: steps where the
    true value does not move (``target == prev``) have no direction and are
    left out of both numerator and denominator; a prediction equal to
    ``prev`` when the true value did move counts as wrong.

    Raises:
        InputError: shapes differ, or every step is a tie.
    """
    p, t = _pair(pred, target)
    q = to_numpy64(prev, "prev")
    if q.shape != t.shape:
        raise InputError(
            f"shape mismatch: prev has shape {tuple(q.shape)} but target has shape {tuple(t.shape)}"
        )
    true_move = np.sign(t - q)
    moved = true_move != 0
    if not moved.any():
        raise InputError("direction_accuracy is undefined: the target never moves relative to prev")
    return float(np.mean(np.sign(p - q)[moved] == true_move[moved]))
