"""Evaluation metrics.

* :mod:`qlstm.metrics.regression` -- ``mse``, ``mae``, ``rmse``, ``r2``,
  ``tolerance_accuracy``, ``direction_accuracy`` for point forecasts.
* :mod:`qlstm.metrics.frames` -- ``mse``, ``mse_frame_sum``, ``mae``,
  ``mae_frame_sum``, ``psnr``, ``ssim``, ``ssim_openstl``, ``lpips`` for
  video prediction.
* :mod:`qlstm.metrics.lpips` -- the :class:`LPIPS` network.

``mse`` and ``mae`` exist in both ``regression`` and ``frames`` with the
same meaning (mean over all elements) but different input checks, so they
are not re-exported here: call them through their module. Names that are
unambiguous are re-exported.
"""

from . import frames, lpips, regression
from .frames import mae_frame_sum, mse_frame_sum, psnr, ssim, ssim_openstl
from .lpips import LPIPS
from .regression import direction_accuracy, r2, rmse, tolerance_accuracy

__all__ = [
    "frames",
    "lpips",
    "regression",
    "LPIPS",
    "mae_frame_sum",
    "mse_frame_sum",
    "psnr",
    "ssim",
    "ssim_openstl",
    "direction_accuracy",
    "r2",
    "rmse",
    "tolerance_accuracy",
]
