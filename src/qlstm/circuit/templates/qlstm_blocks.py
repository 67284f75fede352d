r"""The six VQC blocks of a QLSTM cell (Chen, Yoo & Fang 2020), as data.

A QLSTM cell replaces each affine map of a classical LSTM cell by a VQC. With
:math:`v_t = [x_t, h_{t-1}]`:

* VQC1 ``forget``: :math:`f_t = \sigma(\mathrm{VQC}_1(v_t))` -- sigmoid, stage 1
* VQC2 ``input``: :math:`i_t = \sigma(\mathrm{VQC}_2(v_t))` -- sigmoid, stage 1
* VQC3 ``candidate`` (alias ``update``): :math:`\tilde c_t = \tanh(\mathrm{VQC}_3(v_t))` -- tanh, stage 1
* VQC4 ``output``: :math:`o_t = \sigma(\mathrm{VQC}_4(v_t))` -- sigmoid, stage 1
* VQC5 ``hidden_processing``: :math:`h_t = \mathrm{VQC}_5(o_t \circ \tanh c_t)` -- no nonlinearity, stage 2
* VQC6 ``output_processing``: :math:`y_t = \mathrm{VQC}_6(o_t \circ \tanh c_t)` -- no nonlinearity, stage 2

with :math:`c_t = f_t \circ c_{t-1} + i_t \circ \tilde c_t` in between. The
names follow the student proposal ("VQC1: Forget block ... VQC3: Update block
... VQC6: Output processing block"); ``update`` is an alias of ``candidate``.
The run order inside a cell is VQC1..VQC6 (:func:`cell_order`); the four stage-1
blocks read the same :math:`v_t` and may run in parallel (qlstm's
:class:`~qlstm.models.qlstm.QLSTM` evaluates them in one batched call), the
two stage-2 blocks need :math:`c_t` and :math:`o_t`, so they run after.

Every block's reference circuit is Chen's VQC (:func:`~qlstm.circuit.templates.chen_vqc`):
per wire ``H, RY(arctan x_i), RZ(arctan x_i^2)``, then ``n_layers`` of
{CNOT ring ``(i, i+1)``, CNOT ring ``(i, i+2)``, ``Rot`` on every wire}, then
``<Z>`` on the output wires. :func:`qlstm_block` builds it with the circuit's
name set to the block's name; :func:`block_weights` draws initial weights
(``0.01 * N(0, 1)`` as in the authors' code by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ...errors import CircuitError
from ..circuit import Circuit
from .layers import INIT_SCHEMES, chen_vqc, init_weights

__all__ = ["Block", "QLSTM_BLOCKS", "block", "qlstm_block", "block_weights", "cell_order", "NONLINEARITIES"]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


NONLINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "none": _identity,
}


@dataclass(frozen=True)
class Block:
    """One VQC of a QLSTM cell.

    Attributes:
        name: canonical name (``"forget"``, ...).
        vqc: its number in Chen et al. / the proposal (1..6) = its run order in a cell.
        aliases: other accepted names (``"update"`` for ``candidate``, ``"vqc1"``, ...).
        reads: what it is fed, ``"v_t = [x_t, h_(t-1)]"`` or ``"o_t * tanh(c_t)"``.
        produces: the symbol it produces (``"f_t"``, ...).
        nonlinearity: ``"sigmoid"``, ``"tanh"`` or ``"none"`` -- applied to the VQC's outputs.
        stage: 1 for the four gate blocks (independent of each other), 2 for the
            two processing blocks (they need ``c_t`` and ``o_t``).
        description: one line for help texts.
    """

    name: str
    vqc: int
    aliases: tuple[str, ...]
    reads: str
    produces: str
    nonlinearity: str
    stage: int
    description: str

    @property
    def order(self) -> int:
        """Position in a cell's run order (1-based); the same as :attr:`vqc`."""
        return self.vqc

    def input_size(self, input_size: int, hidden_size: int) -> int:
        """Number of values the block reads: ``input_size + hidden_size`` (stage 1) or ``hidden_size``."""
        return input_size + hidden_size if self.stage == 1 else hidden_size

    def output_size(self, input_size: int, hidden_size: int) -> int:
        """Number of values the block produces: ``hidden_size`` for every block."""
        return hidden_size

    def activate(self, t: torch.Tensor) -> torch.Tensor:
        """Apply the block's nonlinearity to its VQC outputs."""
        return NONLINEARITIES[self.nonlinearity](t)


_V = "v_t = [x_t, h_(t-1)]"
_P = "o_t * tanh(c_t)"

QLSTM_BLOCKS: dict[str, Block] = {
    b.name: b
    for b in (
        Block("forget", 1, ("vqc1", "f", "forget_gate"), _V, "f_t", "sigmoid", 1,
              "forget gate: f_t = sigmoid(VQC1(v_t)); how much of c_(t-1) is kept"),
        Block("input", 2, ("vqc2", "i", "input_gate"), _V, "i_t", "sigmoid", 1,
              "input gate: i_t = sigmoid(VQC2(v_t)); how much of the candidate enters c_t"),
        Block("candidate", 3, ("update", "vqc3", "g", "cell", "candidate_gate"), _V, "c~_t", "tanh", 1,
              "candidate (update) block: c~_t = tanh(VQC3(v_t)); c_t = f_t*c_(t-1) + i_t*c~_t"),
        Block("output", 4, ("vqc4", "o", "output_gate"), _V, "o_t", "sigmoid", 1,
              "output gate: o_t = sigmoid(VQC4(v_t))"),
        Block("hidden_processing", 5, ("hidden", "vqc5", "h", "hidden_state"), _P, "h_t", "none", 2,
              "hidden-state processing: h_t = VQC5(o_t * tanh(c_t))"),
        Block("output_processing", 6, ("vqc6", "y", "readout"), _P, "y_t", "none", 2,
              "output processing: y_t = VQC6(o_t * tanh(c_t))"),
    )
}
"""The six blocks by canonical name, in run order."""

_LOOKUP = {}
for _b in QLSTM_BLOCKS.values():
    for _n in (_b.name,) + _b.aliases:
        _LOOKUP[_n] = _b.name


def block(name: str | Block) -> Block:
    """The :class:`Block` called ``name`` or one of its aliases (case-insensitive, ``-`` = ``_``)."""
    if isinstance(name, Block):
        return name
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _LOOKUP:
        names = ", ".join(f"{b.name} ({'/'.join(b.aliases[:1])})" for b in QLSTM_BLOCKS.values())
        raise CircuitError(f"unknown QLSTM block {name!r}; valid: {names}")
    return QLSTM_BLOCKS[_LOOKUP[key]]


def cell_order() -> tuple[str, ...]:
    """Block names in the order a cell runs them (VQC1..VQC6)."""
    return tuple(sorted(QLSTM_BLOCKS, key=lambda n: QLSTM_BLOCKS[n].vqc))


def qlstm_block(name: str, n_qubits: int, n_layers: int = 2, n_outputs: int | None = None) -> Circuit:
    r"""The reference VQC of block ``name``: Chen's VQC named after the block.

    Args:
        name: a block name or alias (``"forget"``, ``"update"``, ``"vqc5"``, ...).
        n_qubits: wires = inputs (one value of the block's input per wire).
        n_layers: variational layers (Chen et al. use 2).
        n_outputs: read ``<Z>`` on the first ``n_outputs`` wires (the hidden size,
            when the block's input is ``[x_t, h_(t-1)]``); all wires by default.

    Shapes: inputs ``[B, n_qubits]``, weights ``[3 * n_qubits * n_layers]``
    (order: layer, wire, (alpha, beta, gamma)), outputs ``[B, n_outputs]``.
    Apply :meth:`Block.activate` to the outputs for the gate value.

    ``print(qlstm_block("forget", 4, n_layers=1).draw())``::

        q0: ─H─RY(atan(x_0))─RZ(atan(x_0 ** 2))─●─────X─●───X─ROT(w_0, w_1, w_2)────────────────────── <Z>
        q1: ─H─RY(atan(x_1))─RZ(atan(x_1 ** 2))─X─●───│─│─●─│─────────X───────────ROT(w_3, w_4, w_5)── <Z>
        q2: ─H─RY(atan(x_2))─RZ(atan(x_2 ** 2))───X─●─│─X─│─●─────────│───────────ROT(w_6, w_7, w_8)── <Z>
        q3: ─H─RY(atan(x_3))─RZ(atan(x_3 ** 2))─────X─●───X───────────●──────────ROT(w_9, w_10, w_11)─ <Z>
    """
    b = block(name)
    if n_outputs is not None:
        if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or not 1 <= n_outputs <= n_qubits:
            raise CircuitError(f"n_outputs must be an integer in 1..{n_qubits}, got {n_outputs!r}")
    wires = None if n_outputs is None else range(n_outputs)
    return chen_vqc(n_qubits, n_layers, measure_wires=wires, name=b.name)


def block_weights(n_qubits: int, n_layers: int = 2, scheme: str = "chen", *,
                  generator: torch.Generator | None = None, dtype=torch.float32, **kwargs) -> torch.Tensor:
    """Initial weights ``[3 * n_qubits * n_layers]`` of a block (scheme from :data:`INIT_SCHEMES`).

    ``"chen"`` (default) is ``0.01 * N(0, 1)`` as in the authors' code; see
    :func:`~qlstm.circuit.templates.init_weights` for the others.
    """
    if scheme not in INIT_SCHEMES:
        raise CircuitError(f"unknown weight init scheme {scheme!r}; valid: {', '.join(INIT_SCHEMES)}")
    return init_weights(3 * n_qubits * n_layers, scheme, generator=generator, dtype=dtype, **kwargs)
