"""Data encodings: functions that return a :class:`~qlstm.circuit.Circuit` with inputs only.

Compose them in front of a variational layer with :meth:`Circuit.compose`, or
use :func:`qlstm.circuit.templates.chen_vqc` which does so.
"""

from __future__ import annotations

import math

from ...errors import CircuitError
from ..circuit import Circuit
from ..expr import atan

__all__ = ["angle_encoding", "dense_angle_encoding", "amplitude_encoding", "chen_encoding"]


def _check(n: int, what: str) -> None:
    if not isinstance(n, int) or n < 1:
        raise CircuitError(f"{what} needs a positive integer size, got {n!r}")


def angle_encoding(n_inputs: int, rotation: str = "Y", scale: float = 1.0) -> Circuit:
    r"""One rotation per input: ``R_rotation(scale * x_i)`` on wire ``i``.

    ::

        q0: ─RY(x_0)─
        q1: ─RY(x_1)─

    Args:
        n_inputs: number of inputs = number of wires.
        rotation: ``"X"``, ``"Y"`` or ``"Z"`` (a Z rotation on |0> only adds a phase;
            put a Hadamard first if you want it to matter).
        scale: multiplies each input (e.g. ``math.pi`` for inputs in [0, 1]).
    """
    _check(n_inputs, "angle encoding")
    rotation = rotation.upper()
    if rotation not in ("X", "Y", "Z"):
        raise CircuitError(f"angle encoding rotation must be X, Y or Z, got {rotation!r}")
    c = Circuit(n_inputs, name="angle_encoding")
    for i, xi in enumerate(c.inputs(n_inputs)):
        c.gate("r" + rotation.lower(), i, xi if scale == 1.0 else scale * xi)
    return c


def dense_angle_encoding(n_inputs: int) -> Circuit:
    r"""Two inputs per qubit (LaRose & Coyle 2020):
    :math:`|x\rangle = \cos(\pi x_{2i})|0\rangle + e^{2\pi i x_{2i+1}}\sin(\pi x_{2i})|1\rangle`.

    ::

        q0: ─RY(2π x_0)─P(2π x_1)─

    Uses ``ceil(n_inputs / 2)`` wires; an odd last input gets only the RY.
    """
    _check(n_inputs, "dense angle encoding")
    nq = math.ceil(n_inputs / 2)
    c = Circuit(nq, name="dense_angle_encoding")
    x = c.inputs(n_inputs)
    for q in range(nq):
        c.ry(q, 2 * math.pi * x[2 * q])
        if 2 * q + 1 < n_inputs:
            c.phase(q, 2 * math.pi * x[2 * q + 1])
    return c


def amplitude_encoding(n_inputs: int, n_qubits: int | None = None, normalize: bool = True) -> Circuit:
    r""":math:`|x\rangle = \sum_i x_i |i\rangle / \lVert x \rVert` on ``ceil(log2 n_inputs)`` wires.

    Inputs are zero-padded to ``2**n_qubits``; a zero vector raises an error
    at run time (it has no direction to encode). ``amplitude_encoding(4)``::

        q0: ─AMP(x_0..x_3)[0]─
        q1: ─AMP(x_0..x_3)[1]─

    Shapes: inputs ``[B, n_inputs]``, no weights; wire 0 holds the most significant
    bit of the amplitude index.
    """
    _check(n_inputs, "amplitude encoding")
    need = max(1, (n_inputs - 1).bit_length())
    n_qubits = need if n_qubits is None else n_qubits
    if n_qubits < need:
        raise CircuitError(f"amplitude encoding of {n_inputs} values needs at least {need} qubits, got {n_qubits}")
    c = Circuit(n_qubits, name="amplitude_encoding")
    c.amplitude_encoding(n_inputs, range(n_qubits), normalize=normalize)
    return c


def chen_encoding(n_inputs: int) -> Circuit:
    r"""The encoding of Chen, Yoo & Fang (2020): per wire ``H, RY(arctan x_i), RZ(arctan x_i^2)``.

    ::

        q0: ─H─RY(atan(x_0))─RZ(atan(x_0 ** 2))─
        q1: ─H─RY(atan(x_1))─RZ(atan(x_1 ** 2))─

    ``arctan`` maps any real input into (-pi/2, pi/2), so no input scaling is needed.
    """
    _check(n_inputs, "Chen encoding")
    c = Circuit(n_inputs, name="chen_encoding")
    for i, xi in enumerate(c.inputs(n_inputs)):
        c.h(i).ry(i, atan(xi)).rz(i, atan(xi**2))
    return c
