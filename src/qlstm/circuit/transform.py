"""Pure functions that rewrite operations: renumbering wires, weights, inputs and clbits."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from .expr import BinOp, Const, Expr, Func, Input, Weight
from .ops import AmplitudeEncoding, Channel, Condition, Gate, Measure, Operation, Reset

__all__ = ["remap", "shift_expr", "light_cone", "restrict_to_light_cone"]


def shift_expr(e: Expr, weight_offset: int, input_offset: int) -> Expr:
    """``e`` with every ``w_i`` -> ``w_{i+weight_offset}`` and ``x_i`` -> ``x_{i+input_offset}``."""
    if isinstance(e, Weight):
        return Weight(e.index + weight_offset)
    if isinstance(e, Input):
        return Input(e.index + input_offset)
    if isinstance(e, Func):
        return Func(e.name, shift_expr(e.arg, weight_offset, input_offset))
    if isinstance(e, BinOp):
        return BinOp(e.op, shift_expr(e.left, weight_offset, input_offset), shift_expr(e.right, weight_offset, input_offset))
    assert isinstance(e, Const)
    return e


def _cond(c: Condition | None, clbit_offset: int) -> Condition | None:
    return None if c is None else Condition(tuple(b + clbit_offset for b in c.clbits), c.value)


def remap(op: Operation, wires: Sequence[int], weight_offset: int = 0, input_offset: int = 0,
          clbit_offset: int = 0) -> Operation:
    """A copy of ``op`` with wire ``i`` mapped to ``wires[i]`` and indices shifted."""
    if isinstance(op, Gate):
        return replace(
            op,
            wires=tuple(wires[w] for w in op.wires),
            params=tuple(shift_expr(p, weight_offset, input_offset) for p in op.params),
            condition=_cond(op.condition, clbit_offset),
        )
    if isinstance(op, AmplitudeEncoding):
        return replace(op, wires=tuple(wires[w] for w in op.wires), inputs=tuple(i + input_offset for i in op.inputs))
    if isinstance(op, Measure):
        return replace(op, wire=wires[op.wire], clbit=op.clbit + clbit_offset)
    if isinstance(op, Reset):
        return replace(op, wire=wires[op.wire], condition=_cond(op.condition, clbit_offset))
    if isinstance(op, Channel):
        return replace(op, wires=tuple(wires[w] for w in op.wires), condition=_cond(op.condition, clbit_offset))
    raise TypeError(f"not a qlstm operation: {op!r}")


def light_cone(circuit) -> list[int]:
    """Wires that can influence the circuit's read-outs, in increasing order.

    Walks the operations backwards from the wires of the observables,
    ``probs`` requests and measurements: an operation touching a wire in the
    set adds all its wires (and, if conditioned, the wires of the
    measurements that wrote its bits). Operations on other wires cannot change
    the reduced state of the read-out wires -- this is the Heisenberg picture
    of the read-outs, restricted to which wires they reach.
    """
    from .ops import Measure

    need: set[int] = {w for o in circuit.observables for w in o.wires}
    need.update(w for ws in circuit.prob_wires for w in ws)
    need.update(op.wire for op in circuit.ops if isinstance(op, Measure))
    for op in reversed(circuit.ops):
        if need & set(op.wires):
            need.update(op.wires)
    return sorted(need)


def restrict_to_light_cone(circuit):
    """``(smaller_circuit, wires)``: the circuit on its :func:`light_cone` wires only, or ``(circuit, None)``.

    Only for circuits without measurements or conditions (pure read-outs);
    expectation values and probabilities of the result equal those of the
    original, the simulated register is ``len(wires)`` qubits instead of ``n``.
    """
    from .circuit import Circuit, Observable
    from .ops import Measure

    if any(isinstance(op, Measure) or getattr(op, "condition", None) is not None for op in circuit.ops):
        return circuit, None
    wires = light_cone(circuit)
    if len(wires) == circuit.n_qubits or not wires:
        return circuit, None
    index = {w: i for i, w in enumerate(wires)}
    small = Circuit(len(wires), circuit.n_inputs, name=circuit.name)
    small.n_weights = circuit.n_weights
    mapping = [index.get(w, -1) for w in range(circuit.n_qubits)]
    for op in circuit.ops:
        if set(op.wires) <= set(wires):
            small.ops.append(remap(op, mapping))
    small.observables = [Observable(o.paulis, tuple(index[w] for w in o.wires)) for o in circuit.observables]
    small.prob_wires = [tuple(index[w] for w in ws) for ws in circuit.prob_wires]
    return small, wires
