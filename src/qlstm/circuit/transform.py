"""Pure functions that rewrite operations: renumbering wires, weights, inputs and clbits."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from .expr import BinOp, Const, Expr, Func, Input, Weight
from .ops import AmplitudeEncoding, Channel, Condition, Gate, Measure, Operation, Reset

__all__ = ["remap", "shift_expr"]


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
