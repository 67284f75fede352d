"""Execution plans for pure circuits (no noise, no mid-circuit measurement).

A :class:`Program` is compiled once per circuit and splits it into

1. a **product-state prefix**: on every wire, the single-qubit gates that come
   before the wire's first multi-qubit gate commute with everything on other
   wires, so the encoded state is the Kronecker product of ``n`` two-component
   vectors -- ``O(B 2^n)`` work instead of a full contraction per gate;
2. **fused segments**: maximal runs of gates that depend on weights and
   constants only. For small registers (``n <= fuse_max_qubits``) a run is
   multiplied out into one ``2^n x 2^n`` matrix when the weights are bound,
   once per forward pass, and reused for every sample and every time step;
3. the remaining (data-dependent) gates, applied one by one to the batched state.

``program.bind(weights)`` does the weight-only work and returns a
:class:`BoundProgram`, whose :meth:`~BoundProgram.state` and
:meth:`~BoundProgram.expvals` take a data batch. A recurrent model binds once
per forward pass and calls the bound program at every time step.

The plain gate-by-gate path (:func:`qlstm.circuit.execute.run` with
``method="reference"``) is the reference the tests compare this against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import CircuitError
from ..sim import kernels as K
from ..sim.gates import lookup
from .circuit import Circuit
from .execute import amplitude_vector, embed_fresh, gate_matrix_of
from .ops import AmplitudeEncoding, Gate, Measure

__all__ = ["Program", "BoundProgram", "compile_program"]


@dataclass
class _Fused:
    gates: list[Gate]


@dataclass
class Program:
    """A compiled pure circuit; see the module docstring."""

    circuit: Circuit
    amplitude: list[AmplitudeEncoding]
    prefix: list[list[Gate]]  # per wire, in order
    steps: list[Gate | _Fused] = field(default_factory=list)

    def bind(self, weights: torch.Tensor | None, *, dtype=torch.complex128, device=None) -> "BoundProgram":
        """Evaluate everything that depends on weights only (fused matrices)."""
        n = self.circuit.n_qubits
        bound_steps = []
        for step in self.steps:
            if isinstance(step, _Fused):
                m = torch.eye(2**n, dtype=dtype, device=device)
                for g in step.gates:
                    m = _apply(m, gate_matrix_of(g, None, weights, dtype, device), g, n)
                bound_steps.append(("fused", m))  # rows are U e_j, i.e. m = U^T
            else:
                bound_steps.append(("gate", step))
        return BoundProgram(self, weights, bound_steps, dtype, device)


def _apply(state: torch.Tensor, matrix: torch.Tensor, g: Gate, n: int) -> torch.Tensor:
    if g.name != "unitary" and lookup(g.name).diagonal:
        diag = torch.diagonal(matrix, dim1=-2, dim2=-1)
        return K.apply_diagonal(state, diag, g.wires, n)
    return K.apply_matrix(state, matrix, g.wires, n)


class BoundProgram:
    """A :class:`Program` with its weights bound: call :meth:`state` / :meth:`expvals` on data."""

    def __init__(self, program: Program, weights, steps, dtype, device):
        self.program, self.weights, self.steps = program, weights, steps
        self.dtype, self.device = dtype, device
        circ = program.circuit
        self._zsigns = None
        if circ.observables and all(set(o.paulis) <= {"Z", "I"} for o in circ.observables):
            rd = torch.float64 if dtype == torch.complex128 else torch.float32
            self._zsigns = torch.stack(
                [K.z_signs(circ.n_qubits, [w for p, w in zip(o.paulis, o.wires) if p == "Z"], dtype=rd, device=device)
                 for o in circ.observables], dim=-1)  # [2^n, n_obs]

    def state(self, x: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """Final statevector ``[B, 2**n]`` for inputs ``x [B, n_inputs]``."""
        circ, dtype, device, w = self.program.circuit, self.dtype, self.device, self.weights
        n = circ.n_qubits
        batch = batch if batch is not None else (x.shape[0] if x is not None else 1)
        # product-state prefix: one 2-vector per wire
        vecs = []
        for gates in self.program.prefix:
            v = torch.zeros(2, dtype=dtype, device=device)
            v[0] = 1
            for g in gates:
                m = gate_matrix_of(g, x, w, dtype, device)
                v = (m @ v.unsqueeze(-1)).squeeze(-1)
            vecs.append(v)
        state = vecs[0]
        for v in vecs[1:]:
            state = (state.unsqueeze(-1) * v.unsqueeze(-2)).flatten(-2)
        if state.dim() == 1:
            state = state.expand(batch, -1)
        for enc in self.program.amplitude:
            state = embed_fresh(state, amplitude_vector(enc, x, dtype), enc.wires, n)
        for kind, item in self.steps:
            if kind == "fused":
                state = state @ item
            else:
                state = _apply(state, gate_matrix_of(item, x, w, dtype, device), item, n)
        return state

    def expvals(self, x: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """``[B, n_observables]`` exact expectation values."""
        state = self.state(x, batch)
        if self._zsigns is not None:
            return K.probabilities(state) @ self._zsigns
        circ = self.program.circuit
        return torch.stack([K.expval_pauli(state, o.paulis, o.wires, circ.n_qubits) for o in circ.observables], -1)


def compile_program(circuit: Circuit, *, fuse_max_qubits: int = 6) -> Program:
    """Compile a pure circuit (gates, amplitude encodings and terminal measurements only)."""
    n = circuit.n_qubits
    prefix: list[list[Gate]] = [[] for _ in range(n)]
    amplitude: list[AmplitudeEncoding] = []
    entangled: set[int] = set()
    rest: list[Gate] = []
    for op in circuit.ops:
        if isinstance(op, Measure):
            continue  # terminal by construction: read from the final state
        if isinstance(op, AmplitudeEncoding):
            amplitude.append(op)
            entangled.update(op.wires)
            continue
        if not isinstance(op, Gate) or op.condition is not None:
            raise CircuitError(f"compile_program takes pure circuits only; found {op!r}")
        if len(op.wires) == 1 and op.wires[0] not in entangled:
            prefix[op.wires[0]].append(op)
        else:
            rest.append(op)
            entangled.update(op.wires)
    steps: list[Gate | _Fused] = []
    run: list[Gate] = []
    fuse = n <= fuse_max_qubits

    def flush():
        if len(run) >= 2:
            steps.append(_Fused(list(run)))
        else:
            steps.extend(run)
        run.clear()

    for g in rest:
        if fuse and not g.uses_input:
            run.append(g)
        else:
            flush()
            steps.append(g)
    flush()
    return Program(circuit, amplitude, prefix, steps)
