"""The :class:`Circuit`: qubits, classical bits, operations and observables, as data.

A circuit does not run itself; :func:`qlstm.circuit.execute.run` (and the
:class:`qlstm.nn.QuantumLayer` module) simulate it, :mod:`qlstm.interop`
exports it, :mod:`qlstm.resources` counts it. Build one with the methods below
(each validates its arguments and returns the circuit, so calls chain):

>>> from qlstm.circuit import Circuit
>>> c = Circuit(2)
>>> x = c.inputs(2)             # data inputs x_0, x_1
>>> w = c.weights(2)            # trainable weights w_0, w_1
>>> c.ry(0, x[0].atan()).ry(1, x[1].atan()).cnot(0, 1).rx(0, w[0]).rx(1, w[1])
>>> c.expval("Z", 0).expval("Z", 1)
>>> print(c.draw())
q0: ─RY(atan(x_0))─●─RX(w_0)─ <Z>
q1: ─RY(atan(x_1))─X─RX(w_1)─ <Z>

Wire 0 is the most significant bit of a basis index (see :mod:`qlstm.sim`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from ..errors import ChannelError, CircuitError
from ..sim import channels as _channels
from ..sim.gates import lookup
from .expr import Expr, Input, Weight, as_expr
from .ops import AmplitudeEncoding, Channel, Condition, Gate, Measure, Operation, Reset

__all__ = ["Circuit", "Observable"]


@dataclass(frozen=True)
class Observable:
    """Pauli-string observable ``paulis`` (letters in ``IXYZ``) on ``wires``."""

    paulis: str
    wires: tuple[int, ...]

    def label(self) -> str:
        return "<" + "".join(f"{p}{w}" for p, w in zip(self.paulis, self.wires)) + ">"


def _as_condition(cond) -> Condition | None:
    if cond is None or isinstance(cond, Condition):
        return cond
    if isinstance(cond, int):
        return Condition((cond,), 1)
    bits, value = cond
    bits = (bits,) if isinstance(bits, int) else tuple(int(b) for b in bits)
    return Condition(bits, int(value))


class Circuit:
    """A quantum circuit as data.

    Args:
        n_qubits: number of wires (>= 1).
        n_inputs: number of data inputs per sample; grows automatically when
            :meth:`inputs` or an expression refers to a higher index.
        name: optional label used by the drawer and exporters.

    Attributes:
        ops: list of operations in order.
        observables: the Pauli observables whose expectation values a run returns.
        prob_wires: the wire tuples whose joint probabilities a run returns
            (``Result.probs``), one entry per :meth:`probs` call.
        n_weights: length of the flat weight vector.
        n_clbits: number of classical bits.
    """

    def __init__(self, n_qubits: int, n_inputs: int = 0, name: str | None = None):
        if not isinstance(n_qubits, int) or n_qubits < 1:
            raise CircuitError(f"a circuit needs a positive integer number of qubits, got {n_qubits!r}")
        self.n_qubits = n_qubits
        self.n_inputs = int(n_inputs)
        self.n_weights = 0
        self.n_clbits = 0
        self.name = name or "circuit"
        self.ops: list[Operation] = []
        self.observables: list[Observable] = []
        self.prob_wires: list[tuple[int, ...]] = []
        self._version = 0

    # -- parameters -------------------------------------------------------------
    def weights(self, k: int) -> list[Weight]:
        """Allocate ``k`` new trainable weights and return them as expressions."""
        start = self.n_weights
        self.n_weights += k
        return [Weight(start + i) for i in range(k)]

    def inputs(self, k: int, start: int = 0) -> list[Input]:
        """Data inputs ``x_start .. x_{start+k-1}`` (columns of the input batch)."""
        self.n_inputs = max(self.n_inputs, start + k)
        return [Input(start + i) for i in range(k)]

    # -- validation helpers -----------------------------------------------------
    def _check_wires(self, wires: Sequence[int], what: str) -> tuple[int, ...]:
        wires = tuple(wires)
        for w in wires:
            if isinstance(w, bool) or not isinstance(w, int):
                raise CircuitError(f"{what}: wire {w!r} is not an integer")
            if not 0 <= w < self.n_qubits:
                raise CircuitError(f"{what}: wire {w} is out of range for a {self.n_qubits}-qubit circuit")
        if len(set(wires)) != len(wires):
            raise CircuitError(f"{what}: wires {list(wires)} repeat a wire")
        return wires

    def _check_condition(self, cond: Condition | None, what: str) -> None:
        if cond is None:
            return
        for b in cond.clbits:
            if not 0 <= b < self.n_clbits:
                raise CircuitError(
                    f"{what}: condition reads classical bit {b}, but only {self.n_clbits} exist; measure into it first"
                )
        if not 0 <= cond.value < 2 ** len(cond.clbits):
            raise CircuitError(f"{what}: condition value {cond.value} does not fit in {len(cond.clbits)} bit(s)")

    def _track(self, exprs: Iterable[Expr]) -> None:
        for e in exprs:
            for leaf in e.leaves():
                if isinstance(leaf, Input):
                    self.n_inputs = max(self.n_inputs, leaf.index + 1)
                elif isinstance(leaf, Weight):
                    self.n_weights = max(self.n_weights, leaf.index + 1)

    def append(self, op: Operation) -> "Circuit":
        """Validate and append an operation."""
        if isinstance(op, Gate):
            what = f"gate {op.name!r}"
            wires = self._check_wires(op.wires, what)
            if op.name == "unitary":
                m = op.matrix
                if m is None or m.dim() != 2 or m.shape != (2 ** len(wires), 2 ** len(wires)):
                    raise CircuitError(
                        f"unitary on {len(wires)} wire(s) needs a {2**len(wires)}x{2**len(wires)} matrix, "
                        f"got {None if m is None else tuple(m.shape)}"
                    )
                eye = torch.eye(m.shape[0], dtype=torch.complex128)
                m128 = m.to(torch.complex128)
                if (m128.conj().T @ m128 - eye).abs().max() > 1e-8:
                    raise CircuitError("unitary: the matrix is not unitary (U^dag U != I)")
            else:
                spec = lookup(op.name)
                if spec.num_wires != len(wires):
                    raise CircuitError(f"{what} acts on {spec.num_wires} wire(s), got wires {list(wires)}")
                if spec.num_params != len(op.params):
                    raise CircuitError(f"{what} takes {spec.num_params} parameter(s), got {len(op.params)}")
            self._check_condition(op.condition, what)
            self._track(op.params)
        elif isinstance(op, AmplitudeEncoding):
            wires = self._check_wires(op.wires, "amplitude encoding")
            if len(op.inputs) > 2 ** len(wires):
                raise CircuitError(
                    f"amplitude encoding of {len(op.inputs)} values needs at least "
                    f"{(len(op.inputs) - 1).bit_length()} wires, got {len(wires)}"
                )
            touched = {w for o in self.ops for w in getattr(o, "wires", ())}
            if touched & set(wires):
                raise CircuitError(
                    "amplitude encoding must come before any other operation on its wires "
                    f"(wires {sorted(touched & set(wires))} are already used)"
                )
            self.n_inputs = max(self.n_inputs, max(op.inputs) + 1)
        elif isinstance(op, Measure):
            self._check_wires([op.wire], "measure")
            if op.clbit < 0:
                raise CircuitError(f"measure: classical bit {op.clbit} is negative")
            self.n_clbits = max(self.n_clbits, op.clbit + 1)
        elif isinstance(op, Reset):
            self._check_wires([op.wire], "reset")
            self._check_condition(op.condition, "reset")
        elif isinstance(op, Channel):
            self._check_wires(op.wires, f"channel {op.name!r}")
            self._check_condition(op.condition, f"channel {op.name!r}")
            if op.name == "kraus":
                d = 2 ** len(op.wires)
                if op.kraus is None or op.kraus.shape[-1] != d:
                    raise ChannelError(f"Kraus operators on {len(op.wires)} wire(s) must be {d}x{d}")
            else:
                _channels.channel_kraus(op.name, op.p)  # validates name and probability
        else:
            raise CircuitError(f"not a qlstm operation: {op!r}")
        self.ops.append(op)
        self._version += 1
        return self

    # -- builders -----------------------------------------------------------------
    def gate(self, name: str, wires, *params, condition=None) -> "Circuit":
        """Append gate ``name`` (see :data:`qlstm.sim.gates.GATES`) on ``wires``.

        ``params`` are numbers or :class:`~qlstm.circuit.expr.Expr`;
        ``condition`` is a clbit index (apply if it reads 1), a pair
        ``(clbits, value)`` or a :class:`Condition`.
        """
        wires = (wires,) if isinstance(wires, int) else tuple(wires)
        spec = lookup(name)
        return self.append(Gate(spec.name, wires, tuple(as_expr(p) for p in params), None, _as_condition(condition)))

    def unitary(self, matrix, wires, *, condition=None) -> "Circuit":
        """Append an arbitrary unitary ``[2**k, 2**k]`` on ``wires`` (first wire = most significant bit)."""
        wires = (wires,) if isinstance(wires, int) else tuple(wires)
        m = torch.as_tensor(matrix, dtype=torch.complex128)
        return self.append(Gate("unitary", wires, (), m, _as_condition(condition)))

    def amplitude_encoding(self, inputs: Sequence[int] | int, wires: Sequence[int], normalize: bool = True):
        """Encode input columns ``inputs`` (indices, or a count starting at 0) as amplitudes on ``wires``."""
        idx = tuple(range(inputs)) if isinstance(inputs, int) else tuple(int(i) for i in inputs)
        if not idx:
            raise CircuitError("amplitude encoding needs at least one input")
        return self.append(AmplitudeEncoding(tuple(wires), idx, normalize))

    def measure(self, wire: int, clbit: int | None = None, *, reset: bool = False) -> int:
        """Measure ``wire`` in the Z basis into ``clbit`` (a new bit if None); returns the clbit index."""
        if clbit is None:
            clbit = self.n_clbits
        self.append(Measure(wire, int(clbit), bool(reset)))
        return clbit

    def measure_all(self) -> "Circuit":
        """Measure every wire ``w`` into a new classical bit."""
        for w in range(self.n_qubits):
            self.measure(w)
        return self

    def reset(self, wire: int, *, condition=None) -> "Circuit":
        return self.append(Reset(wire, _as_condition(condition)))

    def channel(self, name: str, wires, p: float, *, condition=None) -> "Circuit":
        """Append a named single-qubit noise channel on each of ``wires`` with probability ``p``."""
        wires = (wires,) if isinstance(wires, int) else tuple(wires)
        key = name.lower().replace("-", "_")
        for w in wires:
            self.append(Channel(key, (w,), float(p), None, _as_condition(condition)))
        return self

    def kraus(self, operators, wires, *, condition=None) -> "Circuit":
        """Append a user-given Kraus channel; it is checked for completeness (CPTP)."""
        wires = (wires,) if isinstance(wires, int) else tuple(wires)
        ops = _channels.check_kraus(operators)
        return self.append(Channel("kraus", wires, 0.0, ops, _as_condition(condition)))

    def expval(self, paulis: str, wires) -> "Circuit":
        """Request ``<P>`` for the Pauli string ``paulis`` on ``wires`` (e.g. ``expval("ZZ", (0, 1))``)."""
        wires = (wires,) if isinstance(wires, int) else tuple(wires)
        paulis = paulis.upper()
        if len(paulis) == 1 and len(wires) > 1:
            raise CircuitError(
                f"expval({paulis!r}, {list(wires)}): one Pauli letter per wire; "
                "use expval_each for one observable per wire"
            )
        if len(paulis) != len(wires) or set(paulis) - set("IXYZ"):
            raise CircuitError(f"Pauli string {paulis!r} must have one letter from IXYZ per wire {list(wires)}")
        self._check_wires(wires, "observable")
        self.observables.append(Observable(paulis, wires))
        self._version += 1
        return self

    def probs(self, wires=None) -> "Circuit":
        """Request the joint computational-basis probabilities of ``wires`` (all wires if None).

        The run returns them in ``Result.probs`` as ``[B, 2**len(wires)]`` with
        ``wires[0]`` as the most significant bit of the index.
        """
        wires = tuple(range(self.n_qubits)) if wires is None else ((wires,) if isinstance(wires, int) else tuple(wires))
        if not wires:
            raise CircuitError("probs() needs at least one wire")
        self._check_wires(wires, "probs")
        self.prob_wires.append(wires)
        self._version += 1
        return self

    def expval_each(self, pauli: str, wires: Iterable[int]) -> "Circuit":
        """Request ``<P_w>`` on each wire separately (``expval_each("Z", range(4))``)."""
        for w in wires:
            self.expval(pauli, (w,))
        return self

    # -- whole-circuit helpers ---------------------------------------------------------
    def copy(self) -> "Circuit":
        """A new circuit with the same operations (operations are immutable and shared)."""
        return _clone(self)

    def compose(self, other: "Circuit", wires: Sequence[int] | None = None, *, share_weights: bool = False,
                input_offset: int = 0) -> "Circuit":
        """Append ``other``'s operations, mapping its wire ``i`` to ``wires[i]``.

        Its weights are renumbered after this circuit's (or shared, index for
        index, with ``share_weights``); its inputs are shifted by ``input_offset``.
        Classical bits are renumbered after this circuit's. Observables are not copied.
        """
        from .transform import remap  # local: avoids a cycle at import time

        wires = list(range(other.n_qubits)) if wires is None else list(wires)
        if len(wires) != other.n_qubits:
            raise CircuitError(f"compose: other circuit has {other.n_qubits} qubits but {len(wires)} wires were given")
        w_off = 0 if share_weights else self.n_weights
        c_off = self.n_clbits
        for op in other.ops:
            self.append(remap(op, wires, w_off, input_offset, c_off))
        return self

    def draw(self) -> str:
        """Plain-text drawing, one line per wire, operations in layers."""
        from .draw import draw

        return draw(self)

    def __repr__(self) -> str:
        return (
            f"Circuit(name={self.name!r}, n_qubits={self.n_qubits}, n_inputs={self.n_inputs}, "
            f"n_weights={self.n_weights}, n_clbits={self.n_clbits}, ops={len(self.ops)}, "
            f"observables={len(self.observables)})"
        )

    def __str__(self) -> str:
        return self.draw()

    # -- shortcuts for named gates -----------------------------------------------------
    def i(self, w, **kw):
        return self.gate("i", w, **kw)

    def h(self, w, **kw):
        return self.gate("h", w, **kw)

    def x(self, w, **kw):
        return self.gate("x", w, **kw)

    def y(self, w, **kw):
        return self.gate("y", w, **kw)

    def z(self, w, **kw):
        return self.gate("z", w, **kw)

    def s(self, w, **kw):
        return self.gate("s", w, **kw)

    def t(self, w, **kw):
        return self.gate("t", w, **kw)

    def sx(self, w, **kw):
        return self.gate("sx", w, **kw)

    def rx(self, w, theta, **kw):
        return self.gate("rx", w, theta, **kw)

    def ry(self, w, theta, **kw):
        return self.gate("ry", w, theta, **kw)

    def rz(self, w, theta, **kw):
        return self.gate("rz", w, theta, **kw)

    def phase(self, w, phi, **kw):
        return self.gate("phaseshift", w, phi, **kw)

    def rot(self, w, phi, theta, omega, **kw):
        return self.gate("rot", w, phi, theta, omega, **kw)

    def u3(self, w, theta, phi, lam, **kw):
        return self.gate("u3", w, theta, phi, lam, **kw)

    def cnot(self, c, t, **kw):
        return self.gate("cnot", (c, t), **kw)

    cx = cnot

    def cz(self, a, b, **kw):
        return self.gate("cz", (a, b), **kw)

    def swap(self, a, b, **kw):
        return self.gate("swap", (a, b), **kw)

    def crx(self, c, t, theta, **kw):
        return self.gate("crx", (c, t), theta, **kw)

    def cry(self, c, t, theta, **kw):
        return self.gate("cry", (c, t), theta, **kw)

    def crz(self, c, t, theta, **kw):
        return self.gate("crz", (c, t), theta, **kw)

    def crot(self, c, t, phi, theta, omega, **kw):
        return self.gate("crot", (c, t), phi, theta, omega, **kw)

    def isingxx(self, a, b, phi, **kw):
        return self.gate("isingxx", (a, b), phi, **kw)

    def isingyy(self, a, b, phi, **kw):
        return self.gate("isingyy", (a, b), phi, **kw)

    def isingzz(self, a, b, phi, **kw):
        return self.gate("isingzz", (a, b), phi, **kw)

    def toffoli(self, a, b, t, **kw):
        return self.gate("toffoli", (a, b, t), **kw)


def _clone(c: Circuit) -> Circuit:
    new = Circuit(c.n_qubits, c.n_inputs, c.name)
    new.n_weights, new.n_clbits = c.n_weights, c.n_clbits
    new.ops = list(c.ops)
    new.observables = list(c.observables)
    new.prob_wires = list(c.prob_wires)
    return new
