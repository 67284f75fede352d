"""Resource counts of a circuit: qubits, depth, gates, parameters, measurements, idle and dead qubits.

:func:`count_resources` reads a :class:`~qlstm.circuit.Circuit` (nothing is
simulated) and returns a :class:`Resources`; ``as_dict()`` gives JSON-ready
data with stable keys, ``report()`` a readable summary.

Definitions
-----------
* **depth** -- number of layers of :func:`qlstm.circuit.draw.layers` (greedy
  as-soon-as-possible layering; a classically conditioned operation waits for
  the measurement that wrote its bits). Every operation counts as one step,
  measurements, resets, channels and amplitude encodings included.
* **gates** -- :class:`~qlstm.circuit.Gate` operations by name, split by the
  number of wires they act on (1, 2, 3+). Measurements, resets, channels and
  amplitude encodings are counted separately.
* **mid-circuit measurements** -- measurements that are not terminal: something
  acts on the wire afterwards, the bit is read by a condition, the measurement
  resets its wire, or an X/Y observable reads the wire (as in
  :func:`qlstm.circuit.execute.analyse`).
* **encodings** -- operations that read data inputs (gates with an ``x_i`` in
  a parameter, amplitude encodings); ``input_reads[i]`` -- how many operations
  read ``x_i`` (re-uploading shows up as counts > 1).
* **idle qubits** -- wires no operation touches (an observable alone does not count).
* **dead qubits** -- wires outside the backward light cone of the outputs: the
  outputs are the observables, plus every measured classical bit when the circuit
  has no observables (``outputs="auto"``). Walking the operations backwards, a
  wire enters the cone when an operation couples it to a wire in the cone; a
  condition brings in the measurements that wrote its bits; a reset (or a
  measurement with reset) cuts the wire's past. Nothing done on a dead qubit can
  change an output. ``dead_ops`` counts the operations outside the cone.
* **idle slots** -- per layer, the qubits with nothing to do; ``idle_share`` =
  idle slots / (qubits * depth).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from .circuit.circuit import Circuit
from .circuit.draw import layers as _layers
from .circuit.expr import Input, Weight
from .circuit.ops import AmplitudeEncoding, Channel, Gate, Measure, Reset
from .errors import CircuitError

__all__ = ["Resources", "count_resources", "light_cone"]


@dataclass
class Resources:
    """What :func:`count_resources` found (see the module docstring for the definitions)."""

    name: str
    qubits: int
    clbits: int
    depth: int
    operations: int
    gates: int
    gate_counts: dict[str, int]
    one_qubit_gates: dict[str, int]
    two_qubit_gates: dict[str, int]
    multi_qubit_gates: dict[str, int]
    weights: int
    inputs: int
    parameterized_gates: int
    measurements: int
    mid_circuit_measurements: int
    resets: int
    conditional_ops: int
    channels: dict[str, int]
    amplitude_encodings: int
    encodings: int
    input_reads: dict[int, int]
    observables: list[str]
    idle_qubits: list[int]
    dead_qubits: list[int]
    dead_ops: int
    idle_slots: int
    idle_share: float
    idle_per_layer: list[float] = field(repr=False)

    @property
    def n_one_qubit(self) -> int:
        return sum(self.one_qubit_gates.values())

    @property
    def n_two_qubit(self) -> int:
        return sum(self.two_qubit_gates.values())

    @property
    def n_multi_qubit(self) -> int:
        return sum(self.multi_qubit_gates.values())

    @property
    def parameters(self) -> int:
        """Weights plus data inputs."""
        return self.weights + self.inputs

    def as_dict(self) -> dict:
        """JSON-ready dict; keys are stable (input indices become strings ``"x_i"``)."""
        d = asdict(self)
        d["input_reads"] = {f"x_{i}": n for i, n in sorted(self.input_reads.items())}
        d["one_qubit_total"] = self.n_one_qubit
        d["two_qubit_total"] = self.n_two_qubit
        d["multi_qubit_total"] = self.n_multi_qubit
        d["parameters"] = self.parameters
        d["idle_share"] = round(self.idle_share, 6)
        d["idle_per_layer"] = [round(v, 6) for v in self.idle_per_layer]
        return d

    def report(self) -> str:
        """A readable multi-line summary."""

        def counts(d: dict[str, int]) -> str:
            return ", ".join(f"{k.upper()} {v}" for k, v in sorted(d.items())) or "none"

        def wires(ws: list[int]) -> str:
            return ", ".join(f"q{w}" for w in ws) if ws else "none"

        reads = sorted(self.input_reads.items())
        if reads and all(n == reads[0][1] for _, n in reads):
            read_txt = f"each of x_0..x_{reads[-1][0]} read {reads[0][1]}x" if len(reads) > 1 else \
                f"x_{reads[0][0]} read {reads[0][1]}x"
        else:
            read_txt = ", ".join(f"x_{i}: {n}x" for i, n in reads) or "none"
        lines = [
            f"{self.name}: {self.qubits} qubits, {self.clbits} clbits, depth {self.depth}, {self.operations} operations",
            f"  gates           : {self.gates} ({self.n_one_qubit} one-qubit, {self.n_two_qubit} two-qubit"
            + (f", {self.n_multi_qubit} on 3+ qubits" if self.n_multi_qubit else "") + ")",
            f"    one-qubit     : {counts(self.one_qubit_gates)}",
            f"    two-qubit     : {counts(self.two_qubit_gates)}",
        ]
        if self.multi_qubit_gates:
            lines.append(f"    3+ qubits     : {counts(self.multi_qubit_gates)}")
        lines += [
            f"  parameters      : {self.weights} weights, {self.inputs} inputs "
            f"({self.parameterized_gates} parameterized gates)",
            f"  encodings       : {self.encodings} operations read data ({read_txt})"
            + (f"; {self.amplitude_encodings} amplitude encodings" if self.amplitude_encodings else ""),
            f"  measurements    : {self.measurements} ({self.mid_circuit_measurements} mid-circuit), "
            f"resets {self.resets}, conditional ops {self.conditional_ops}",
            f"  noise channels  : {counts(self.channels)}",
            f"  outputs         : {', '.join(self.observables) or 'none'}",
            f"  idle qubits     : {wires(self.idle_qubits)}",
            f"  dead qubits     : {wires(self.dead_qubits)} (cannot affect the outputs; {self.dead_ops} ops outside "
            f"the light cone)",
            f"  idle slots      : {self.idle_slots} of {self.qubits * self.depth} qubit-layers "
            f"({self.idle_share:.1%} idle)",
        ]
        return "\n".join(lines)


def _uses_input(op) -> set[int]:
    if isinstance(op, AmplitudeEncoding):
        return set(op.inputs)
    if isinstance(op, Gate):
        return {leaf.index for p in op.params for leaf in p.leaves() if isinstance(leaf, Input)}
    return set()


def light_cone(circuit: Circuit, outputs: str = "auto") -> tuple[set[int], list[bool]]:
    """Backward light cone of the circuit's outputs.

    Args:
        outputs: ``"auto"`` (observables; every measured clbit too if the circuit
            has no observables), ``"observables"``, or ``"all"`` (observables and
            every measured clbit).

    Returns:
        ``(wires, in_cone)``: the wires that can affect an output, and for each
        operation whether it lies in the cone.
    """
    if outputs not in ("auto", "observables", "all"):
        raise CircuitError(f"outputs must be 'auto', 'observables' or 'all', got {outputs!r}")
    live: set[int] = {w for o in circuit.observables for p, w in zip(o.paulis, o.wires) if p != "I"}
    bits: set[int] = set()
    if outputs == "all" or (outputs == "auto" and not circuit.observables):
        bits = {op.clbit for op in circuit.ops if isinstance(op, Measure)}
    cone = set(live)
    in_cone = [False] * len(circuit.ops)
    for i in range(len(circuit.ops) - 1, -1, -1):
        op = circuit.ops[i]
        if isinstance(op, Measure):
            reads_bit = op.clbit in bits
            wire_live = op.wire in live
            if reads_bit:
                bits.discard(op.clbit)  # earlier writes to this bit are overwritten
            if reads_bit or wire_live:
                in_cone[i] = True
                # after a measurement with reset the wire's later state no longer depends on its past
                if reads_bit or not op.reset:
                    live.add(op.wire)
                else:
                    live.discard(op.wire)
            continue
        ws = set(op.wires)
        if not ws & live:
            continue
        in_cone[i] = True
        cond = getattr(op, "condition", None)
        if cond is not None:
            bits.update(cond.clbits)
        if isinstance(op, Reset) and cond is None:
            live.discard(op.wire)
        else:
            live |= ws
        cone |= ws
    cone |= {op.wire for i, op in enumerate(circuit.ops) if in_cone[i] and isinstance(op, Measure)}
    return cone, in_cone


def count_resources(circuit: Circuit, outputs: str = "auto") -> Resources:
    """Count the resources of ``circuit`` (see the module docstring; ``outputs`` as in :func:`light_cone`)."""
    if not isinstance(circuit, Circuit):
        raise CircuitError(f"count_resources needs a qlstm Circuit, got {type(circuit).__name__}")
    from .circuit.execute import analyse

    ops = circuit.ops
    n = circuit.n_qubits
    lay = _layers(circuit)
    depth = len(lay)
    gate_counts: Counter = Counter()
    by_size: dict[int, Counter] = {1: Counter(), 2: Counter(), 3: Counter()}
    channels: Counter = Counter()
    reads: Counter = Counter()
    weights_used: set[int] = set()
    encodings = param_gates = conditional = resets = measurements = amp = 0
    touched: set[int] = set()
    for op in ops:
        touched.update(op.wires)
        if getattr(op, "condition", None) is not None:
            conditional += 1
        xs = _uses_input(op)
        if xs:
            encodings += 1
            reads.update(xs)
        if isinstance(op, Gate):
            gate_counts[op.name] += 1
            by_size[min(len(op.wires), 3)][op.name] += 1
            if op.params and not all(p.is_constant for p in op.params):
                param_gates += 1
            weights_used.update(leaf.index for p in op.params for leaf in p.leaves() if isinstance(leaf, Weight))
        elif isinstance(op, Measure):
            measurements += 1
            resets += int(op.reset)
        elif isinstance(op, Reset):
            resets += 1
        elif isinstance(op, Channel):
            channels[op.name] += 1
        elif isinstance(op, AmplitudeEncoding):
            amp += 1
    terminal = analyse(circuit).terminal
    mid = sum(1 for i, op in enumerate(ops) if isinstance(op, Measure) and i not in terminal)
    cone, in_cone = light_cone(circuit, outputs)
    busy = [len({w for i in layer for w in ops[i].wires}) for layer in lay]
    idle_per_layer = [(n - b) / n for b in busy]
    idle_slots = sum(n - b for b in busy)
    return Resources(
        name=circuit.name,
        qubits=n,
        clbits=circuit.n_clbits,
        depth=depth,
        operations=len(ops),
        gates=sum(gate_counts.values()),
        gate_counts=dict(sorted(gate_counts.items())),
        one_qubit_gates=dict(sorted(by_size[1].items())),
        two_qubit_gates=dict(sorted(by_size[2].items())),
        multi_qubit_gates=dict(sorted(by_size[3].items())),
        weights=circuit.n_weights,
        inputs=circuit.n_inputs,
        parameterized_gates=param_gates,
        measurements=measurements,
        mid_circuit_measurements=mid,
        resets=resets,
        conditional_ops=conditional,
        channels=dict(sorted(channels.items())),
        amplitude_encodings=amp,
        encodings=encodings,
        input_reads=dict(sorted(reads.items())),
        observables=[o.label() for o in circuit.observables],
        idle_qubits=[w for w in range(n) if w not in touched],
        dead_qubits=[w for w in range(n) if w not in cone],
        dead_ops=sum(1 for f in in_cone if not f),
        idle_slots=idle_slots,
        idle_share=(idle_slots / (n * depth)) if depth else 0.0,
        idle_per_layer=idle_per_layer,
    )
