"""Noise channels as Kraus sets.

Each function takes a probability (float or real tensor ``[...]``) and returns
the Kraus operators stacked as ``[..., m, 2, 2]``, so that a batch of
probabilities broadcasts like batched gate matrices.

All channels are completely positive and trace preserving:
``sum_k K_k^dag K_k = I``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..errors import ChannelError
from .kernels import pauli_matrix

__all__ = [
    "CHANNELS",
    "bit_flip",
    "phase_flip",
    "bit_phase_flip",
    "depolarizing",
    "amplitude_damping",
    "phase_damping",
    "check_probability",
    "check_kraus",
    "channel_kraus",
]


def check_probability(p, name: str = "p") -> torch.Tensor | float:
    """Raise :class:`ChannelError` unless every value of ``p`` is a finite number in [0, 1]."""
    t = torch.as_tensor(p).detach()
    if t.is_complex() or not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise ChannelError(f"{name} must be a probability in [0, 1], got {p!r}")
    return p


def _stack(ops: Sequence[torch.Tensor]) -> torch.Tensor:
    ops = torch.broadcast_tensors(*ops)
    return torch.stack(ops, dim=-3)


def _real_tensor(p, dtype, device) -> torch.Tensor:
    """``p`` as a complex tensor of ``dtype``, going through the matching real precision
    (a Python float must not pass through float32, the default dtype of ``torch.as_tensor``)."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    t = p.to(device=device, dtype=real) if isinstance(p, torch.Tensor) else torch.as_tensor(p, dtype=real, device=device)
    return t.to(dtype)


def _pauli_mixture(p, letters: str, weights: Sequence[float], dtype, device) -> torch.Tensor:
    p = torch.as_tensor(p, dtype=torch.float64 if dtype == torch.complex128 else torch.float32, device=device)
    ops = [torch.sqrt(1 - p).to(dtype)[..., None, None] * pauli_matrix("I", dtype=dtype, device=device)]
    for letter, w in zip(letters, weights):
        ops.append(torch.sqrt(p * w).to(dtype)[..., None, None] * pauli_matrix(letter, dtype=dtype, device=device))
    return _stack(ops)


def bit_flip(p, *, dtype=torch.complex128, device=None) -> torch.Tensor:
    r"""Bit flip: :math:`K_0 = \sqrt{1-p}\,I,\ K_1 = \sqrt{p}\,X`. Returns ``[..., 2, 2, 2]``."""
    return _pauli_mixture(check_probability(p), "X", [1.0], dtype, device)


def phase_flip(p, *, dtype=torch.complex128, device=None) -> torch.Tensor:
    r"""Phase flip: :math:`K_0 = \sqrt{1-p}\,I,\ K_1 = \sqrt{p}\,Z`."""
    return _pauli_mixture(check_probability(p), "Z", [1.0], dtype, device)


def bit_phase_flip(p, *, dtype=torch.complex128, device=None) -> torch.Tensor:
    r"""Bit-phase flip: :math:`K_0 = \sqrt{1-p}\,I,\ K_1 = \sqrt{p}\,Y`."""
    return _pauli_mixture(check_probability(p), "Y", [1.0], dtype, device)


def depolarizing(p, *, dtype=torch.complex128, device=None) -> torch.Tensor:
    r"""Depolarizing channel, as PennyLane's ``DepolarizingChannel``.

    .. math::
        K_0 = \sqrt{1-p}\,I,\quad K_{1,2,3} = \sqrt{p/3}\,X,\ \sqrt{p/3}\,Y,\ \sqrt{p/3}\,Z

    Note: the Kraus operators printed as Eq. (7) of the QConvLSTM paper
    (Xu et al. 2024) are not a valid channel -- two of them are equal
    (both :math:`\tfrac{\sqrt p}{2} Z`), X is missing and the identity weight
    :math:`\sqrt{1-3p}/2` makes :math:`\sum K^\dagger K \ne I`. qlstm implements
    the standard channel above instead.
    """
    return _pauli_mixture(check_probability(p), "XYZ", [1 / 3, 1 / 3, 1 / 3], dtype, device)


def amplitude_damping(gamma, *, dtype=torch.complex128, device=None) -> torch.Tensor:
    r"""Amplitude damping: :math:`K_0 = |0\rangle\langle0| + \sqrt{1-\gamma}|1\rangle\langle1|,\ K_1 = \sqrt\gamma\,|0\rangle\langle1|`."""
    g = _real_tensor(check_probability(gamma, "gamma"), dtype, device)
    one, zero = torch.ones_like(g), torch.zeros_like(g)
    k0 = torch.stack([torch.stack([one, zero], -1), torch.stack([zero, torch.sqrt(1 - g)], -1)], -2)
    k1 = torch.stack([torch.stack([zero, torch.sqrt(g)], -1), torch.stack([zero, zero], -1)], -2)
    return _stack([k0, k1])


def phase_damping(gamma, *, dtype=torch.complex128, device=None) -> torch.Tensor:
    r"""Phase damping: :math:`K_0 = |0\rangle\langle0| + \sqrt{1-\gamma}|1\rangle\langle1|,\ K_1 = \sqrt\gamma\,|1\rangle\langle1|`."""
    g = _real_tensor(check_probability(gamma, "gamma"), dtype, device)
    one, zero = torch.ones_like(g), torch.zeros_like(g)
    k0 = torch.stack([torch.stack([one, zero], -1), torch.stack([zero, torch.sqrt(1 - g)], -1)], -2)
    k1 = torch.stack([torch.stack([zero, zero], -1), torch.stack([zero, torch.sqrt(g)], -1)], -2)
    return _stack([k0, k1])


CHANNELS: dict[str, Callable[..., torch.Tensor]] = {
    "bit_flip": bit_flip,
    "phase_flip": phase_flip,
    "bit_phase_flip": bit_phase_flip,
    "depolarizing": depolarizing,
    "amplitude_damping": amplitude_damping,
    "phase_damping": phase_damping,
}


def channel_kraus(name: str, p, *, dtype=torch.complex128, device=None) -> torch.Tensor:
    """Kraus set ``[..., m, 2, 2]`` of the named single-qubit channel."""
    fn = CHANNELS.get(name.lower().replace("-", "_"))
    if fn is None:
        raise ChannelError(f"unknown noise channel {name!r}; valid channels: {', '.join(CHANNELS)}")
    return fn(p, dtype=dtype, device=device)


def check_kraus(kraus: Sequence | torch.Tensor, *, atol: float = 1e-6) -> torch.Tensor:
    """Validate a user-given Kraus set and return it as a ``[m, d, d]`` complex128 tensor.

    Raises :class:`ChannelError` if shapes are not square powers of two or if
    ``sum_k K_k^dag K_k`` differs from the identity by more than ``atol``.
    """
    ops = torch.stack([torch.as_tensor(k, dtype=torch.complex128) for k in kraus]) if not isinstance(
        kraus, torch.Tensor
    ) else kraus.to(torch.complex128)
    if ops.dim() != 3 or ops.shape[-1] != ops.shape[-2] or ops.shape[-1] < 2 or ops.shape[-1] & (ops.shape[-1] - 1):
        raise ChannelError(f"Kraus operators must be a list of 2^k x 2^k matrices, got shape {tuple(ops.shape)}")
    if not torch.isfinite(torch.view_as_real(ops)).all():
        raise ChannelError("Kraus operators contain NaN or infinite entries")
    total = torch.einsum("mji,mjk->ik", ops.conj(), ops)
    eye = torch.eye(ops.shape[-1], dtype=ops.dtype)
    err = (total - eye).abs().max().item()
    if err > atol:
        raise ChannelError(
            f"Kraus set is not trace preserving: sum_k K_k^dag K_k differs from I by {err:.3g} (tolerance {atol})"
        )
    return ops
