"""Operations: the instructions a :class:`~qlstm.circuit.Circuit` is made of.

Every operation is an immutable value. The simulators, the drawer, the
resource counter, the verifier and the exporters all read the same objects.

* :class:`Gate` -- a named gate (see :data:`qlstm.sim.gates.GATES`) or an
  arbitrary ``unitary`` matrix, with angle expressions as parameters.
* :class:`AmplitudeEncoding` -- prepares ``sum_i x_i |i>`` on some wires
  (inputs normalised and zero-padded to ``2**k``); must come before any other
  operation on those wires.
* :class:`Measure` -- single-qubit Z-basis measurement into a classical bit,
  optionally followed by a reset to ``|0>``.
* :class:`Reset` -- reset one wire to ``|0>``.
* :class:`Channel` -- a noise channel given as a Kraus set.

Any of :class:`Gate`, :class:`Reset` and :class:`Channel` may carry a
:class:`Condition`: it is applied only when the classical bits read the given
value (Qiskit's ``if_test``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .expr import Expr

__all__ = ["Condition", "Gate", "AmplitudeEncoding", "Measure", "Reset", "Channel", "Operation"]


@dataclass(frozen=True)
class Condition:
    """Apply the operation only if the classical bits ``clbits`` read ``value``.

    ``clbits[0]`` is the least significant bit of ``value`` (Qiskit's order for
    a register condition); for a single bit, ``value`` is 0 or 1.
    """

    clbits: tuple[int, ...]
    value: int = 1

    def holds(self, bits: torch.Tensor) -> torch.Tensor:
        """Boolean mask ``[K]`` over branches whose bits ``[K, n_clbits]`` satisfy the condition."""
        v = torch.zeros(bits.shape[0], dtype=torch.long, device=bits.device)
        for i, c in enumerate(self.clbits):
            v = v + (bits[:, c].long() << i)
        return v == self.value

    def to_str(self) -> str:
        if len(self.clbits) == 1:
            return f"c{self.clbits[0]}=={self.value}"
        return f"c{list(self.clbits)}=={self.value}"


@dataclass(frozen=True, eq=False)
class Gate:
    """A gate on ``wires`` with angle expressions ``params``.

    For ``name == "unitary"`` the matrix ``[2**k, 2**k]`` is given in ``matrix``.
    """

    name: str
    wires: tuple[int, ...]
    params: tuple[Expr, ...] = ()
    matrix: Optional[torch.Tensor] = None
    condition: Optional[Condition] = None

    @property
    def uses_input(self) -> bool:
        return any(p.uses_input for p in self.params)

    @property
    def uses_weight(self) -> bool:
        return any(p.uses_weight for p in self.params)

    def label(self) -> str:
        base = self.name.upper() if self.name != "unitary" else "U"
        if self.params:
            base += "(" + ", ".join(p.to_str() for p in self.params) + ")"
        if self.condition is not None:
            base += f" if {self.condition.to_str()}"
        return base


@dataclass(frozen=True)
class AmplitudeEncoding:
    """``|x> = sum_i x_i |i> / ||x||`` on ``wires`` from input columns ``inputs``.

    ``len(inputs) <= 2**len(wires)``; shorter vectors are zero-padded. With
    ``normalize=False`` the inputs must already have unit norm.
    """

    wires: tuple[int, ...]
    inputs: tuple[int, ...]
    normalize: bool = True
    condition: None = None

    @property
    def uses_input(self) -> bool:
        return True

    uses_weight = False

    def label(self) -> str:
        return f"AMP(x_{self.inputs[0]}..x_{self.inputs[-1]})"


@dataclass(frozen=True)
class Measure:
    """Z-basis measurement of ``wire`` into classical bit ``clbit``; then reset to |0> if ``reset``."""

    wire: int
    clbit: int
    reset: bool = False
    condition: None = None

    @property
    def wires(self) -> tuple[int, ...]:
        return (self.wire,)

    def label(self) -> str:
        return f"M->c{self.clbit}" + ("|0>" if self.reset else "")


@dataclass(frozen=True)
class Reset:
    """Reset ``wire`` to ``|0>`` (the outcome is not recorded)."""

    wire: int
    condition: Optional[Condition] = None

    @property
    def wires(self) -> tuple[int, ...]:
        return (self.wire,)

    def label(self) -> str:
        return "|0>" + (f" if {self.condition.to_str()}" if self.condition else "")


@dataclass(frozen=True, eq=False)
class Channel:
    """A noise channel on ``wires``.

    ``name`` is one of :data:`qlstm.sim.channels.CHANNELS` with probability
    ``p``, or ``"kraus"`` with a validated Kraus set ``kraus`` ``[m, d, d]``.
    """

    name: str
    wires: tuple[int, ...]
    p: float = 0.0
    kraus: Optional[torch.Tensor] = field(default=None, repr=False)
    condition: Optional[Condition] = None

    def label(self) -> str:
        if self.name == "kraus":
            return "KRAUS"
        return f"{self.name}({self.p:g})"


Operation = Gate | AmplitudeEncoding | Measure | Reset | Channel
