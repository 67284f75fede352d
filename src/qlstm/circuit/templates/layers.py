"""Variational layers and the Chen-2020 VQC."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ...errors import CircuitError
from ..circuit import Circuit
from .encodings import chen_encoding

__all__ = [
    "chen_layers", "basic_entangler_layers", "strongly_entangling_layers", "VQC_TEMPLATES",
    "variational_layers", "chen_vqc", "init_weights", "INIT_SCHEMES",
]

INIT_SCHEMES = ("chen", "normal", "uniform", "zeros")


def _check_sizes(what: str, n_qubits, n_layers) -> None:
    if isinstance(n_qubits, bool) or not isinstance(n_qubits, int) or n_qubits < 1:
        raise CircuitError(f"{what} needs n_qubits >= 1, got {n_qubits!r}")
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 0:
        raise CircuitError(f"{what} needs n_layers >= 0, got {n_layers!r}")


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
    _check_sizes("chen_layers", n_qubits, n_layers)
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


def basic_entangler_layers(n_qubits: int, n_layers: int, rotation: str = "X") -> Circuit:
    r"""One rotation per wire, then a ring of CNOTs, per layer (PennyLane's ``BasicEntanglerLayers``).

    One layer on 3 qubits (``print(basic_entangler_layers(3, 1).draw())``)::

        q0: ─RX(w_0)─●───X─
        q1: ─RX(w_1)─X─●─│─
        q2: ─RX(w_2)───X─●─

    The ring is ``CNOT(i, i+1 mod n)``; with 2 qubits it is the single ``CNOT(0, 1)``
    and with 1 qubit there is none (PennyLane's convention). Weights:
    ``n_qubits * n_layers``, ordered layer, wire.
    """
    _check_sizes("basic_entangler_layers", n_qubits, n_layers)
    rotation = str(rotation).upper()
    if rotation not in ("X", "Y", "Z"):
        raise CircuitError(f"basic_entangler_layers rotation must be X, Y or Z, got {rotation!r}")
    c = Circuit(n_qubits, name="basic_entangler_layers")
    for _ in range(n_layers):
        for i, w in enumerate(c.weights(n_qubits)):
            c.gate("r" + rotation.lower(), i, w)
        if n_qubits == 2:
            c.cnot(0, 1)
        elif n_qubits > 2:
            for i in range(n_qubits):
                c.cnot(i, (i + 1) % n_qubits)
    return c


def strongly_entangling_layers(n_qubits: int, n_layers: int) -> Circuit:
    r"""``Rot`` on every wire, then ``CNOT(i, i + r mod n)``, per layer (PennyLane's ``StronglyEntanglingLayers``).

    The range of layer ``l`` is ``r = l mod (n - 1) + 1`` (PennyLane's default), so
    successive layers entangle ever farther wires. One layer on 3 qubits::

        q0: ─ROT(w_0, w_1, w_2)─●───X─
        q1: ─ROT(w_3, w_4, w_5)─X─●─│─
        q2: ─ROT(w_6, w_7, w_8)───X─●─

    With 1 qubit there are no CNOTs. Weights: ``3 * n_qubits * n_layers``, ordered
    layer, wire, (phi, theta, omega) -- PennyLane's ``weights[l, i, :]`` flattened.
    """
    _check_sizes("strongly_entangling_layers", n_qubits, n_layers)
    c = Circuit(n_qubits, name="strongly_entangling_layers")
    for layer in range(n_layers):
        for i in range(n_qubits):
            c.rot(i, *c.weights(3))
        if n_qubits > 1:
            r = layer % (n_qubits - 1) + 1
            for i in range(n_qubits):
                c.cnot(i, (i + r) % n_qubits)
    return c


def _basic_entangler_ry(n_qubits: int, n_layers: int) -> Circuit:
    return basic_entangler_layers(n_qubits, n_layers, rotation="Y")


VQC_TEMPLATES: dict[str, Callable[[int, int], Circuit]] = {
    "chen": chen_layers,
    "basic_entangler": _basic_entangler_ry,
    "strongly_entangling": strongly_entangling_layers,
}
"""Variational-layer templates by name: ``(n_qubits, n_layers) -> Circuit`` with weights only.

``"basic_entangler"`` uses **RY** rotations, not PennyLane's default RX: behind the Chen
encoding (``H`` first), a zero input leaves its wire in ``|+>``, which RX keeps, and with 3 or
more wires every ``<Z>`` read-out then involves such a wire after the CNOT ring and is exactly
0 -- a QLSTM with ``input_size + hidden_size >= 3`` started from a zero state would read 0
from every VQC, for every weight, forever. Call :func:`basic_entangler_layers` with
``rotation="X"`` for PennyLane's.
"""


def variational_layers(template: str | Callable[[int, int], Circuit], n_qubits: int, n_layers: int) -> Circuit:
    """The weights-only variational part named ``template`` (a key of :data:`VQC_TEMPLATES`),
    or built by a callable ``template(n_qubits, n_layers) -> Circuit``.

    A callable's circuit must act on ``n_qubits`` wires, read no inputs and have no
    observables or measurements (the encoding and read-out are added around it).
    """
    if callable(template):
        c = template(n_qubits, n_layers)
        if not isinstance(c, Circuit):
            raise CircuitError(f"VQC template {template!r} returned {type(c).__name__}, expected a Circuit")
        if c.n_qubits != n_qubits:
            raise CircuitError(f"VQC template {template!r} built {c.n_qubits} qubits, expected {n_qubits}")
        if c.n_inputs:
            raise CircuitError(f"VQC template {template!r} reads {c.n_inputs} inputs; a template must use weights only")
        if c.observables or c.n_clbits:
            raise CircuitError(f"VQC template {template!r} has observables or measurements; "
                               "a template is the variational part only")
        return c
    fn = VQC_TEMPLATES.get(template)
    if fn is None:
        raise CircuitError(f"unknown VQC template {template!r}; valid: {', '.join(VQC_TEMPLATES)} "
                           "(or a callable (n_qubits, n_layers) -> Circuit)")
    return fn(n_qubits, n_layers)


def chen_vqc(n_qubits: int, n_layers: int = 2, measure_wires: Sequence[int] | None = None,
             name: str = "chen_vqc", template: str | Callable[[int, int], Circuit] = "chen") -> Circuit:
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

    ``template`` swaps the variational part while keeping the Chen encoding and
    read-out: a name in :data:`VQC_TEMPLATES` or a callable (see
    :func:`variational_layers`); the weight count is then the template's.
    """
    c = chen_encoding(n_qubits)
    c.name = name
    c.compose(variational_layers(template, n_qubits, n_layers))
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
