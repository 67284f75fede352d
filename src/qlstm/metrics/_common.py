"""Input conversion shared by the metric modules."""

from __future__ import annotations

import numpy as np
import torch

from qlstm.errors import InputError


def to_numpy64(x, name: str) -> np.ndarray:
    """Return ``x`` (torch tensor, numpy array or array-like) as a float64 numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a tensor or numeric array, got {type(x).__name__}") from exc


def to_torch64(x, name: str) -> torch.Tensor:
    """Return ``x`` as a detached float64 CPU tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64)
    return torch.from_numpy(to_numpy64(x, name))


def check_same_shape(pred_shape, target_shape) -> None:
    """Raise :class:`InputError` naming both shapes unless they are equal."""
    if tuple(pred_shape) != tuple(target_shape):
        raise InputError(
            f"shape mismatch: pred has shape {tuple(pred_shape)} but target has shape {tuple(target_shape)}; "
            "reshape one of them (e.g. squeeze a trailing size-1 axis) so they match"
        )
