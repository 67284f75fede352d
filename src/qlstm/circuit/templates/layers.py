"""Variational layers and the Chen-2020 VQC."""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import CircuitError
from ..circuit import Circuit
from .encodings import chen_encoding

__all__ = ["chen_layers", "chen_vqc", "init_weights", "INIT_SCHEMES"]

INIT_SCHEMES = ("chen", "normal", "uniform", "zeros")


def chen_layers(n_qubits: int, n_layers: int) -> Circuit:
    r"""Chen, Yoo & Fang (2020) variational layers, weights only.

    Each layer: a ring of ``CNOT(i, i+1 mod n)``, a ring of ``CNOT(i, i+2 mod n)``,
    then ``Rot(alpha_i, beta_i, gamma_i)`` on every wire. For ``n = 4``, one
    layer (``print(chen_layers(4, 1).draw())``)::

        q0: ─●─────X─●───X─ROT(w_0, w_1, w_2)──────────────────────
        q1: ─X─●───│─│─●─│─────────X───────────ROT(w_3, w_4, w_5)──
        q2: ───X─●─│─X─│─●─────────│───────────ROT(w_6, w_7, w_8)──
        q3: ─────X─●───X───────────●──────────ROT(w_9, w_10, w_11)─

    With ``n < 3`` the second ring would be ``CNOT(i, i)`` and is left out;
    with ``n = 2`` the first ring is ``CNOT(0,1) CNOT(1,0)``; with ``n = 1``
    there are no CNOTs.

    Weights: ``3 * n_qubits * n_layers``, ordered layer, wire, (alpha, beta, gamma).
    """
    if not isinstance(n_qubits, int) or n_qubits < 1:
        raise CircuitError(f"chen_layers needs n_qubits >= 1, got {n_qubits!r}")
    if not isinstance(n_layers, int) or n_layers < 0:
        raise CircuitError(f"chen_layers needs n_layers >= 0, got {n_layers!r}")
    c = Circuit(n_qubits, name="chen_layers")
    for _ in range(n_layers):
        for step in (1, 2):
            if n_qubits > step or (step == 1 and n_qubits == 2):
                for i in range(n_qubits):
                    j = (i + step) % n_qubits
                    if j != i:
                        c.cnot(i, j)
        for i in range(n_qubits):
            a, b, g = c.weights(3)
            c.rot(i, a, b, g)
    return c


def chen_vqc(n_qubits: int, n_layers: int = 2, measure_wires: Sequence[int] | None = None,
             name: str = "chen_vqc") -> Circuit:
    r"""The VQC of Chen, Yoo & Fang, "Quantum Long Short-Term Memory" (arXiv 2009.01783).

    :func:`chen_encoding` of ``n_qubits`` inputs, ``n_layers`` of
    :func:`chen_layers`, then ``<Z>`` on ``measure_wires`` (all wires by default).
    ``chen_vqc(3, 1)``::

        q0: ─H─RY(atan(x_0))─RZ(atan(x_0 ** 2))─●───X─●─X─ROT(w_0, w_1, w_2)──────────────────── <Z>
        q1: ─H─RY(atan(x_1))─RZ(atan(x_1 ** 2))─X─●─│─│─●─────────X──────────ROT(w_3, w_4, w_5)─ <Z>
        q2: ─H─RY(atan(x_2))─RZ(atan(x_2 ** 2))───X─●─X───────────●──────────ROT(w_6, w_7, w_8)─ <Z>

    (a ring of CNOT(i, i+1 mod n), a ring of CNOT(i, i+2 mod n), then ``Rot`` on every wire,
    per layer; ``Rot(a, b, c) = RZ(c) RY(b) RZ(a)``).

    Shapes: inputs ``[B, n_qubits]``, weights ``[3 * n_qubits * n_layers]``,
    output ``[B, len(measure_wires)]``. The authors initialise weights as
    ``0.01 * N(0, 1)`` (:func:`init_weights` scheme ``"chen"``).
    """
    c = chen_encoding(n_qubits)
    c.name = name
    c.compose(chen_layers(n_qubits, n_layers))
    wires = range(n_qubits) if measure_wires is None else list(measure_wires)
    c.expval_each("Z", wires)
    return c


def init_weights(n: int | torch.Size | Sequence[int], scheme: str = "chen", *, scale: float | None = None,
                 generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
    """Initial weights of shape ``n``.

    Schemes: ``"chen"`` = ``0.01 * N(0, 1)`` as in Chen et al.'s code; ``"normal"`` =
    ``scale * N(0, 1)`` (scale 1 by default); ``"uniform"`` = U(0, 2 pi) * (scale or 1);
    ``"zeros"``.
    """
    shape = (n,) if isinstance(n, int) else tuple(n)
    if scheme == "chen":
        return 0.01 * torch.randn(shape, generator=generator, dtype=dtype, device=device)
    if scheme == "normal":
        return (1.0 if scale is None else scale) * torch.randn(shape, generator=generator, dtype=dtype, device=device)
    if scheme == "uniform":
        u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        return (1.0 if scale is None else scale) * 2 * torch.pi * u
    if scheme == "zeros":
        return torch.zeros(shape, dtype=dtype, device=device)
    raise CircuitError(f"unknown weight init scheme {scheme!r}; valid: {', '.join(INIT_SCHEMES)}")
