"""Circuits as data, and the code that runs them.

* :class:`Circuit` -- qubits, operations, observables; built with methods.
* :mod:`.expr` -- angle expressions over weights ``w_i``, inputs ``x_i``, constants.
* :mod:`.ops` -- the operation types (gate, measurement, reset, channel, ...).
* :func:`run` / :func:`expval` -- simulate a circuit on a batch (planner picks the method).
* :func:`compile_program` -- the fused plan for pure circuits, bound once per forward pass.
* :mod:`.templates` -- encodings, variational layers, QCNN trees, the QLSTM blocks.
"""

from .circuit import Circuit, Observable
from .execute import Result, expval, run
from .expr import Const, Expr, Input, Weight, atan, cos, exp, ln, sin, sqrt
from .ops import AmplitudeEncoding, Channel, Condition, Gate, Measure, Reset
from .plan import BoundProgram, Program, compile_program

__all__ = [
    "Circuit", "Observable", "Result", "run", "expval", "compile_program", "Program", "BoundProgram",
    "Expr", "Const", "Input", "Weight", "atan", "cos", "exp", "ln", "sin", "sqrt",
    "Gate", "AmplitudeEncoding", "Measure", "Reset", "Channel", "Condition",
]
