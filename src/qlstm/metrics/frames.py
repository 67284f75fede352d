"""Video-prediction metrics on frames in ``[0, 1]``.

Inputs ``pred`` and ``target`` have identical shape ``[B, T, C, H, W]``
(batches of sequences) or ``[N, C, H, W]`` (frames); torch tensors or numpy
arrays. Every metric is computed per frame and averaged over all ``B * T``
(or ``N``) frames, in float64, and returned as a Python float.

Two MSE/MAE conventions are provided because papers differ:

* :func:`mse` / :func:`mae`: mean over every pixel (per-pixel error).
* :func:`mse_frame_sum` / :func:`mae_frame_sum`: sum over ``C, H, W`` within
  a frame, then mean over frames. This is what OpenSTL and most
  Moving-MNIST papers report as "MSE" / "MAE" (e.g. 64x64 frames:
  ``mse_frame_sum = 4096 * mse``).

Two SSIM variants: :func:`ssim` is the standard definition of Wang et al.
(2004); :func:`ssim_openstl` reproduces the numbers of OpenSTL's evaluation
code, which calls scikit-image with its defaults.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from qlstm.errors import InputError

from ._common import check_same_shape, to_torch64

__all__ = ["mse", "mse_frame_sum", "mae", "mae_frame_sum", "psnr", "ssim", "ssim_openstl", "lpips"]


def _frames(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 ``[F, C, H, W]`` frame stacks."""
    p, t = to_torch64(pred, "pred"), to_torch64(target, "target")
    check_same_shape(p.shape, t.shape)
    if p.ndim == 5:
        p, t = p.flatten(0, 1), t.flatten(0, 1)
    elif p.ndim != 4:
        raise InputError(f"frame metrics expect [B, T, C, H, W] or [N, C, H, W], got shape {tuple(p.shape)}")
    if p.numel() == 0:
        raise InputError(f"no frames to compare (shape {tuple(p.shape)})")
    return p, t


def mse(pred, target) -> float:
    """Per-pixel mean squared error: mean of ``(pred - target)^2`` over all frames, channels and pixels."""
    p, t = _frames(pred, target)
    return float(((p - t) ** 2).mean())


def mse_frame_sum(pred, target) -> float:
    """Squared error summed over ``C, H, W`` of each frame, averaged over frames (OpenSTL's "MSE")."""
    p, t = _frames(pred, target)
    return float(((p - t) ** 2).sum(dim=(1, 2, 3)).mean())


def mae(pred, target) -> float:
    """Per-pixel mean absolute error: mean of ``|pred - target|`` over all frames, channels and pixels."""
    p, t = _frames(pred, target)
    return float((p - t).abs().mean())


def mae_frame_sum(pred, target) -> float:
    """Absolute error summed over ``C, H, W`` of each frame, averaged over frames (OpenSTL's "MAE")."""
    p, t = _frames(pred, target)
    return float((p - t).abs().sum(dim=(1, 2, 3)).mean())


def psnr(pred, target, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, per frame then averaged over frames.

    ``PSNR_f = 10 log10(data_range^2 / mean_f((pred - target)^2))`` with the
    mean over one frame's ``C, H, W``; ``data_range = 1`` for frames in
    ``[0, 1]``. A frame reproduced exactly has infinite PSNR, which makes the
    average ``inf``.
    """
    p, t = _frames(pred, target)
    per_frame = ((p - t) ** 2).mean(dim=(1, 2, 3))
    return float((10.0 * torch.log10(data_range**2 / per_frame)).mean())


def _filter_valid(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate each channel of ``[F, C, H, W]`` with a 2-D kernel, keeping only full windows."""
    f, c, h, w = x.shape
    k = kernel.shape[-1]
    if h < k or w < k:
        raise InputError(f"SSIM needs frames of at least {k}x{k} pixels, got {h}x{w}")
    out = F.conv2d(x.reshape(f * c, 1, h, w), kernel[None, None])
    return out.reshape(f, c, h - k + 1, w - k + 1)


def _ssim_frames(p: torch.Tensor, t: torch.Tensor, kernel: torch.Tensor, data_range: float, k1: float,
                 k2: float, cov_norm: float) -> torch.Tensor:
    """Mean SSIM over channels and full-window positions of each frame, ``[F]``."""
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_p, mu_t = _filter_valid(p, kernel), _filter_valid(t, kernel)
    var_p = cov_norm * (_filter_valid(p * p, kernel) - mu_p**2)
    var_t = cov_norm * (_filter_valid(t * t, kernel) - mu_t**2)
    cov = cov_norm * (_filter_valid(p * t, kernel) - mu_p * mu_t)
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return s.mean(dim=(1, 2, 3))


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(pred, target, data_range: float = 1.0, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> float:
    """Structural similarity of Wang et al. (2004), averaged over channels, pixels and frames.

    Local statistics use an ``window x window`` Gaussian window (standard
    deviation ``sigma`` pixels, normalised to sum 1) with population
    (biased) variances; ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` with
    ``L = data_range`` (1 for frames in ``[0, 1]``). The SSIM map is averaged
    over window positions lying fully inside the frame (no padding), as in
    the authors' reference code; identical to scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``. Range ``[-1, 1]``, 1 for
    identical frames. Frames must be at least ``window`` pixels on a side.
    """
    p, t = _frames(pred, target)
    return float(_ssim_frames(p, t, _gaussian_kernel(window, sigma), data_range, k1, k2, 1.0).mean())


def ssim_openstl(pred, target) -> float:
    """SSIM as OpenSTL evaluates it, averaged over frames.

    OpenSTL clips predictions to ``[0, 1]`` and calls scikit-image's
    ``structural_similarity`` with its defaults on float images: a 7x7
    uniform window, sample covariance (variances scaled by 49/48),
    ``K1 = 0.01``, ``K2 = 0.03`` and ``data_range = 2`` (the default range of
    float images, although the frames span only ``[0, 1]``), channels
    averaged. Only ``pred`` is clipped. Because of ``data_range = 2`` the
    values are higher than :func:`ssim`; use this one only to compare with
    numbers reported through OpenSTL.
    """
    p, t = _frames(pred, target)
    kernel = torch.full((7, 7), 1.0 / 49.0, dtype=torch.float64)
    return float(_ssim_frames(p.clamp(0.0, 1.0), t, kernel, 2.0, 0.01, 0.03, 49.0 / 48.0).mean())


def lpips(pred, target, cache_dir: str | os.PathLike | None = None, batch_size: int = 256,
          download: bool = True) -> float:
    """LPIPS v0.1 (AlexNet) distance per frame, averaged over frames.

    Frames must be in ``[0, 1]`` with ``C`` = 1 (repeated to RGB) or 3 and at
    least 23x23 pixels; see :mod:`qlstm.metrics.lpips`. Frames are evaluated
    in chunks of ``batch_size`` without gradients, on the CPU for numpy
    inputs and on the tensors' device otherwise.
    """
    from .lpips import lpips as lpips_distance

    device = pred.device if isinstance(pred, torch.Tensor) else torch.device("cpu")
    p, t = _frames(pred, target)
    total, count = 0.0, p.shape[0]
    with torch.no_grad():
        for i in range(0, count, batch_size):
            d = lpips_distance(p[i:i + batch_size].to(device, torch.float32),
                               t[i:i + batch_size].to(device, torch.float32), cache_dir=cache_dir,
                               download=download)
            total += float(d.sum())
    return total / count
