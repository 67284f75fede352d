"""Qiskit <-> qlstm, both directions. Qiskit is imported only inside the functions.

Conventions
-----------
**Qubits.** qlstm wire ``w`` is Qiskit qubit ``w`` (same index; one register
``q``). The bit orders differ: in qlstm wire 0 is the *most* significant bit
of a basis index (PennyLane), in Qiskit qubit 0 is the *least* significant.
So for an ``n``-qubit circuit the qlstm amplitude at index ``i`` is Qiskit's
amplitude at index ``reverse_bits_n(i)``::

    qlstm_state == Statevector(to_qiskit(c, ...)).reverse_qargs().data
    qlstm_state == reverse_qubit_order(Statevector(...).data)

(:func:`reverse_qubit_order` does this for statevectors ``[..., 2**n]``.)
Gate qubit lists mean the same thing on both sides (``cx(c, t)`` is
``cnot(c, t)``); only matrices with several qubits (``unitary``, Kraus
operators, state preparations) are written with the qubit list reversed,
because a qlstm matrix has its first wire most significant and a Qiskit
``Operator`` its first qubit least significant.

**Classical bits.** clbit ``k`` is Qiskit clbit ``k`` (one register ``c``);
qlstm's clbit distributions already use Qiskit's bitstring order (clbit 0
rightmost), so counts compare directly.

**Parameters.** :func:`to_qiskit` writes weights as ``ParameterVector("w",
n_weights)`` and inputs as ``ParameterVector("x", n_inputs)`` (Qiskit's OpenQASM
3 exporter writes the elements as ``input float[64] _w_0_;`` / ``_x_0_``), and
expressions as ``ParameterExpression`` (``atan`` -> ``.arctan()``, ``sqrt`` ->
``** 0.5``, ``ln`` -> ``.log()``, ``tanh(a)`` -> ``1 - 2/(exp(2a) + 1)``).
:func:`from_qiskit` reads parameters by name with the convention of
:mod:`qlstm.interop._params`: ``x_i`` / ``x[i]`` / ``_x_i_`` are data inputs
``x_i``, everything else a weight (``w_i`` / ``w[i]`` / ``_w_i_`` keep index
``i``, other names follow in natural sorted order, e.g. ``θ[0], θ[1], ...``);
``input_params`` / ``weight_params`` override it and ``return_mapping=True``
returns ``{name: ("weight" | "input", index)}``.

**Not representable.** Global phases are dropped by :func:`from_qiskit` (qlstm
has no global-phase operation; probabilities and expectation values do not
see it). Observables are not part of a ``QuantumCircuit``: use
:func:`observables_to_sparse_pauli`.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
import torch

from ..circuit.circuit import Circuit
from ..circuit.expr import BinOp, Const, Expr, Func, Input, Weight
from ..circuit.ops import AmplitudeEncoding, Channel, Condition, Gate, Measure, Reset
from ..errors import CircuitError, InputError
from ._gates import NEVER, complement as _complement, merge_conditions
from ._lex import ExprParser, QasmError, build_expr, tokenize
from ._params import classify

__all__ = ["to_qiskit", "from_qiskit", "observables_to_sparse_pauli", "reverse_qubit_order"]


def _require_qiskit():
    try:
        import qiskit  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("qlstm.interop's Qiskit functions need qiskit: pip install 'qlstm[qiskit]'") from err


def reverse_qubit_order(state):
    """Statevector(s) ``[..., 2**n]`` with the qubit order reversed (qlstm <-> Qiskit; an involution).

    Works on numpy arrays and torch tensors.
    """
    is_torch = isinstance(state, torch.Tensor)
    arr = state if is_torch else np.asarray(state)
    dim = arr.shape[-1]
    n = dim.bit_length() - 1
    if 2 ** n != dim:
        raise InputError(f"a statevector has 2**n entries, got {dim}")
    lead = tuple(arr.shape[:-1])
    t = arr.reshape(*lead, *([2] * n))
    perm = list(range(len(lead))) + [len(lead) + n - 1 - k for k in range(n)]
    t = t.permute(*perm) if is_torch else t.transpose(perm)
    return t.reshape(*lead, dim)


# ---------------------------------------------------------------------------
# qlstm -> Qiskit

_FIXED = {"i": "id", "h": "h", "x": "x", "y": "y", "z": "z", "s": "s", "sdg": "sdg", "t": "t", "tdg": "tdg",
          "sx": "sx", "cnot": "cx", "cy": "cy", "cz": "cz", "swap": "swap", "toffoli": "ccx"}
_PARAM = {"rx": "rx", "ry": "ry", "rz": "rz", "phaseshift": "p", "u3": "u", "crx": "crx", "cry": "cry",
          "crz": "crz", "cphase": "cp", "isingxx": "rxx", "isingyy": "ryy", "isingzz": "rzz"}

_FLOAT_FN = {"atan": math.atan, "arctan": math.atan, "sin": math.sin, "cos": math.cos, "tan": math.tan,
             "asin": math.asin, "acos": math.acos, "exp": math.exp, "ln": math.log, "log": math.log, "sqrt": math.sqrt,
             "tanh": math.tanh, "neg": lambda v: -v}


def _pe_fn(name: str, a):
    if isinstance(a, float):
        return float(_FLOAT_FN[name](a))
    if name == "neg":
        return -a
    if name == "sqrt":
        return a ** 0.5
    if name == "tanh":
        return 1 - 2 / ((2 * a).exp() + 1)
    method = {"atan": "arctan", "asin": "arcsin", "acos": "arccos", "ln": "log", "log": "log"}.get(name, name)
    return getattr(a, method)()


def _to_param(e: Expr, leaf):
    """qlstm Expr -> float or ParameterExpression; ``leaf(Weight|Input)`` gives a float or Parameter."""
    if isinstance(e, Const):
        return float(e.value)
    if isinstance(e, (Weight, Input)):
        return leaf(e)
    if isinstance(e, Func):
        return _pe_fn(e.name, _to_param(e.arg, leaf))
    if isinstance(e, BinOp):
        a, b = _to_param(e.left, leaf), _to_param(e.right, leaf)
        if e.op == "+":
            return a + b
        if e.op == "-":
            return a - b
        if e.op == "*":
            return a * b
        if e.op == "/":
            return a / b
        return a ** b
    raise CircuitError(f"cannot convert expression {e!r}")


def _bound(values, n: int, what: str):
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float64).detach().reshape(-1)
    if t.numel() != n:
        raise InputError(f"{what} needs {n} value(s), got {t.numel()}")
    return t.tolist()


def _channel_error(op: Channel):
    try:
        from qiskit_aer.noise import amplitude_damping_error, kraus_error, pauli_error, phase_damping_error
    except ImportError:
        raise CircuitError(f"exporting the noise channel {op.name!r} to Qiskit needs qiskit-aer "
                           "(pip install qiskit-aer), or strip the channels first") from None
    p = float(op.p)
    if op.name == "bit_flip":
        return pauli_error([("X", p), ("I", 1 - p)])
    if op.name == "phase_flip":
        return pauli_error([("Z", p), ("I", 1 - p)])
    if op.name == "bit_phase_flip":
        return pauli_error([("Y", p), ("I", 1 - p)])
    if op.name == "depolarizing":  # PennyLane form: K_{1,2,3} = sqrt(p/3) X, Y, Z
        return pauli_error([("I", 1 - p), ("X", p / 3), ("Y", p / 3), ("Z", p / 3)])
    if op.name == "amplitude_damping":
        return amplitude_damping_error(p)
    if op.name == "phase_damping":
        return phase_damping_error(p)
    if op.name == "kraus":
        return kraus_error([k.detach().cpu().numpy() for k in op.kraus])
    raise CircuitError(f"noise channel {op.name!r} has no Qiskit form")  # pragma: no cover


def to_qiskit(circuit: Circuit, *, bind_weights=None, bind_inputs=None):
    """The circuit as a ``qiskit.QuantumCircuit`` (see the module docstring for the conventions).

    Args:
        circuit: the qlstm circuit.
        bind_weights: optional ``[n_weights]`` numbers to put in place of the weights.
        bind_inputs: optional ``[n_inputs]`` numbers (one sample) in place of the
            inputs; needed for amplitude encodings (exported as ``StatePreparation``).

    Returns:
        a ``QuantumCircuit`` with register ``q`` (``n_qubits``) and, if the circuit
        measures, ``c`` (``n_clbits``); unbound weights/inputs are the
        ``ParameterVector`` s ``w`` and ``x``. Gates map one to one
        (``rot`` -> ``rz, ry, rz``; ``crot`` -> ``crz, cry, crz``; ``isingxx`` ->
        ``rxx`` ...), ``unitary`` -> ``UnitaryGate``, conditions -> ``if_test``
        blocks, noise channels -> qiskit-aer ``QuantumError`` instructions
        (simulate with ``AerSimulator``).
    """
    _require_qiskit()
    from qiskit.circuit import ClassicalRegister, ParameterVector, QuantumCircuit, QuantumRegister
    from qiskit.circuit.classical import expr as qexpr
    from qiskit.circuit.library import StatePreparation, UnitaryGate

    w_vals = _bound(bind_weights, circuit.n_weights, "bind_weights")
    x_vals = _bound(bind_inputs, circuit.n_inputs, "bind_inputs")
    wv = ParameterVector("w", circuit.n_weights) if w_vals is None and circuit.n_weights else None
    xv = ParameterVector("x", circuit.n_inputs) if x_vals is None and circuit.n_inputs else None

    def leaf(e):
        if isinstance(e, Weight):
            return float(w_vals[e.index]) if w_vals is not None else wv[e.index]
        return float(x_vals[e.index]) if x_vals is not None else xv[e.index]

    qr = QuantumRegister(circuit.n_qubits, "q")
    regs = [qr]
    cr = None
    if circuit.n_clbits:
        cr = ClassicalRegister(circuit.n_clbits, "c")
        regs.append(cr)
    qc = QuantumCircuit(*regs, name=circuit.name)
    qc.metadata = {"qlstm": True, "n_weights": circuit.n_weights if w_vals is None else 0,
                   "n_inputs": circuit.n_inputs if x_vals is None else 0}

    def emit(op, target):
        if isinstance(op, Gate):
            q = [qr[w] for w in op.wires]
            n = op.name
            if n in _FIXED:
                getattr(target, _FIXED[n])(*q)
            elif n in _PARAM:
                getattr(target, _PARAM[n])(*[_to_param(p, leaf) for p in op.params], *q)
            elif n == "rot":
                phi, th, om = (_to_param(p, leaf) for p in op.params)
                target.rz(phi, q[0])
                target.ry(th, q[0])
                target.rz(om, q[0])
            elif n == "crot":
                phi, th, om = (_to_param(p, leaf) for p in op.params)
                target.crz(phi, q[0], q[1])
                target.cry(th, q[0], q[1])
                target.crz(om, q[0], q[1])
            elif n == "unitary":
                target.append(UnitaryGate(op.matrix.detach().cpu().numpy()), q[::-1])
            else:  # pragma: no cover
                raise CircuitError(f"gate {n!r} has no Qiskit form")
        elif isinstance(op, Measure):
            target.measure(qr[op.wire], cr[op.clbit])
            if op.reset:
                target.reset(qr[op.wire])
        elif isinstance(op, Reset):
            target.reset(qr[op.wire])
        elif isinstance(op, Channel):
            err = _channel_error(op)
            target.append(err.to_instruction(), [qr[w] for w in op.wires][::-1])
        elif isinstance(op, AmplitudeEncoding):
            if x_vals is None:
                raise CircuitError("amplitude encoding of symbolic inputs cannot be exported to Qiskit; pass "
                                   "bind_inputs=[...] (one sample) to export it as a StatePreparation")
            amp = np.array([x_vals[i] for i in op.inputs], dtype=float)
            norm = float(np.linalg.norm(amp))
            if norm == 0:
                raise InputError("amplitude encoding got a zero vector; it cannot be prepared")
            if not op.normalize and abs(norm - 1) > 1e-6:
                raise InputError(f"amplitude encoding with normalize=False got norm {norm:.6g}")
            amp = np.pad(amp / norm, (0, 2 ** len(op.wires) - len(amp)))
            target.append(StatePreparation(amp), [qr[w] for w in op.wires][::-1])
        else:  # pragma: no cover
            raise CircuitError(f"cannot export operation {op!r}")

    def qiskit_condition(cond: Condition):
        if len(cond.clbits) == 1:
            return (cr[cond.clbits[0]], cond.value)
        if cond.clbits == tuple(range(circuit.n_clbits)):
            return (cr, cond.value)
        terms = [qexpr.lift(cr[b]) if (cond.value >> i) & 1 else qexpr.logic_not(cr[b])
                 for i, b in enumerate(cond.clbits)]
        out = terms[0]
        for t in terms[1:]:
            out = qexpr.logic_and(out, t)
        return out

    ops = circuit.ops
    i = 0
    while i < len(ops):
        cond = getattr(ops[i], "condition", None)
        if cond is None:
            emit(ops[i], qc)
            i += 1
            continue
        j = i
        with qc.if_test(qiskit_condition(cond)):
            while j < len(ops) and getattr(ops[j], "condition", None) == cond:
                emit(ops[j], qc)
                j += 1
        i = j
    return qc


def observables_to_sparse_pauli(circuit: Circuit) -> list:
    """The circuit's observables as ``qiskit.quantum_info.SparsePauliOp`` s on ``n_qubits`` qubits.

    qlstm's ``expval("ZX", (0, 2))`` is ``Z`` on Qiskit qubit 0 and ``X`` on qubit
    2, i.e. the label ``"XIZ"`` for 3 qubits (Qiskit labels put qubit 0 last).
    """
    _require_qiskit()
    from qiskit.quantum_info import SparsePauliOp

    return [SparsePauliOp.from_sparse_list([(o.paulis, list(o.wires), 1.0)], num_qubits=circuit.n_qubits)
            for o in circuit.observables]


# ---------------------------------------------------------------------------
# Qiskit -> qlstm

_KNOWN = {"id": "i", "x": "x", "y": "y", "z": "z", "h": "h", "s": "s", "sdg": "sdg", "t": "t", "tdg": "tdg",
          "sx": "sx", "cx": "cnot", "cy": "cy", "cz": "cz", "swap": "swap", "ccx": "toffoli",
          "rx": "rx", "ry": "ry", "rz": "rz", "p": "phaseshift", "u1": "phaseshift", "u": "u3", "u3": "u3",
          "crx": "crx", "cry": "cry", "crz": "crz", "cp": "cphase", "cu1": "cphase",
          "rxx": "isingxx", "ryy": "isingyy", "rzz": "isingzz"}
_IGNORED = {"barrier", "delay", "global_phase"}
_SIMPLE_NAME = re.compile(r"^[^\W\d]\w*(\[\d+\])?$")


def _walk_params(qc, out: dict):
    """Every Parameter in ``qc`` (control-flow blocks included), by name."""
    from qiskit.circuit import ParameterExpression

    for p in qc.parameters:
        out.setdefault(p.name, p)
    for ci in qc.data:
        for b in getattr(ci.operation, "blocks", ()) or ():
            _walk_params(b, out)
        for p in ci.operation.params:
            if isinstance(p, ParameterExpression):
                for q in p.parameters:
                    out.setdefault(q.name, q)


class _FromQiskit:
    def __init__(self, leaves: dict[str, Expr]):
        self.leaves = leaves
        self.ops: list = []

    # -- parameters -----------------------------------------------------------
    def param(self, p, what: str) -> Expr:
        from qiskit.circuit import ParameterExpression

        if isinstance(p, ParameterExpression):
            if not p.parameters:
                v = complex(p.numeric()) if hasattr(p, "numeric") else complex(p)
                if abs(v.imag) > 1e-12:
                    raise CircuitError(f"{what}: complex parameter {v} is not supported")
                return Const(float(v.real))
            return self.expression(p, what)
        if isinstance(p, (int, float, np.integer, np.floating)) and not isinstance(p, bool):
            return Const(float(p))
        if isinstance(p, complex) and abs(p.imag) < 1e-12:
            return Const(float(p.real))
        raise CircuitError(f"{what}: parameter {p!r} is not a real number or a parameter expression")

    def expression(self, pe, what: str) -> Expr:
        from qiskit.circuit import Parameter

        params = list(pe.parameters)
        names = {}
        if all(_SIMPLE_NAME.match(q.name) for q in params):
            text = str(pe)
            names = {q.name: self.leaves[q.name] for q in params}
        else:
            subs = {q: Parameter(f"__qlstm_p{k}") for k, q in enumerate(params)}
            text = str(pe.subs(subs))
            names = {f"__qlstm_p{k}": self.leaves[q.name] for k, q in enumerate(params)}

        def resolve(name, tok):
            if name in names:
                return names[name]
            raise QasmError(f"{what}: unknown name '{name}' in parameter expression '{text}'")

        try:
            toks = tokenize(text)
            parser = ExprParser(toks)
            node = parser.expression()
            if parser.tok.kind != "eof":
                raise QasmError(f"unexpected {parser.tok.show()}")
            return build_expr(node, resolve)
        except QasmError as err:
            msg = str(err).split(": ", 1)[-1] if str(err).startswith("line") else str(err)
            raise CircuitError(f"{what}: cannot convert the parameter expression '{text}': {msg}") from None

    # -- conditions ---------------------------------------------------------------
    def condition(self, cond, circ, cmap) -> list[Condition]:
        from qiskit.circuit import ClassicalRegister, Clbit
        from qiskit.circuit.classical import expr as qexpr

        def bits_of(obj):
            if isinstance(obj, Clbit):
                return [cmap[circ.find_bit(obj).index]]
            if isinstance(obj, ClassicalRegister):
                return [cmap[circ.find_bit(b).index] for b in obj]
            raise CircuitError(f"unsupported condition target {obj!r}")

        if isinstance(cond, tuple):
            target, value = cond
            bits = bits_of(target)
            value = int(value)
            return [Condition(tuple(bits), value)] if 0 <= value < 2 ** len(bits) else []
        if isinstance(cond, qexpr.Expr):
            return self._expr_condition(cond, bits_of)
        raise CircuitError(f"unsupported if_test condition {cond!r}")

    def _expr_condition(self, e, bits_of) -> list[Condition]:
        from qiskit.circuit.classical import expr as qexpr

        if isinstance(e, qexpr.Cast):
            return self._expr_condition(e.operand, bits_of)
        if isinstance(e, qexpr.Var):
            bits = bits_of(e.var)
            if len(bits) == 1:
                return [Condition(tuple(bits), 1)]
            return _complement([Condition(tuple(bits), 0)])
        if isinstance(e, qexpr.Unary) and e.op in (qexpr.Unary.Op.LOGIC_NOT, qexpr.Unary.Op.BIT_NOT):
            inner = self._expr_condition(e.operand, bits_of)
            bits = [b for c in inner for b in c.clbits]
            return _complement(inner, bits)
        if isinstance(e, qexpr.Binary):
            if e.op == qexpr.Binary.Op.LOGIC_AND:
                out = []
                for a in self._expr_condition(e.left, bits_of):
                    for b in self._expr_condition(e.right, bits_of):
                        m = merge_conditions(a, b)
                        if m is not NEVER:
                            out.append(m)
                return out
            if e.op in (qexpr.Binary.Op.EQUAL, qexpr.Binary.Op.NOT_EQUAL):
                left, right = e.left, e.right
                if isinstance(left, qexpr.Value):
                    left, right = right, left
                while isinstance(left, qexpr.Cast):
                    left = left.operand
                if not isinstance(left, qexpr.Var) or not isinstance(right, qexpr.Value):
                    raise CircuitError(f"unsupported if_test condition {e}")
                bits = bits_of(left.var)
                value = int(right.value)
                cond = [Condition(tuple(bits), value)] if 0 <= value < 2 ** len(bits) else []
                return cond if e.op == qexpr.Binary.Op.EQUAL else _complement(cond, bits)
        raise CircuitError(f"unsupported if_test condition {e} (supported: bits, registers, ==, !=, !, &&)")

    # -- instructions ----------------------------------------------------------------
    def add(self, op, cond_list):
        for c in cond_list:
            if isinstance(op, Gate):
                self.ops.append(Gate(op.name, op.wires, op.params, op.matrix, c))
            elif isinstance(op, Reset):
                self.ops.append(Reset(op.wire, c))
            elif isinstance(op, Channel):
                self.ops.append(Channel(op.name, op.wires, op.p, op.kraus, c))
            else:
                self.ops.append(op)

    def walk(self, circ, qmap: list[int], cmap: list[int], conds: list | None, depth: int = 0):
        if depth > 50:
            raise CircuitError("instruction definitions nest too deeply")
        cl = conds if conds is not None else [None]
        for ci in circ.data:
            op = ci.operation
            name = op.name
            qs = [qmap[circ.find_bit(q).index] for q in ci.qubits]
            cs = [cmap[circ.find_bit(c).index] for c in ci.clbits]
            if name in _IGNORED:
                continue
            if name == "measure":
                if conds is not None:
                    raise CircuitError("a measurement inside an if_test block is not supported by qlstm")
                self.ops.append(Measure(qs[0], cs[0]))
            elif name == "reset":
                self.add(Reset(qs[0]), cl)
            elif name == "if_else":
                true_c = self.condition(op.condition, circ, cmap)
                blocks = op.blocks
                branches = [(blocks[0], true_c)]
                if len(blocks) > 1 and blocks[1] is not None:
                    bits = [b for c in true_c for b in c.clbits] or self._cond_bits(op.condition, circ, cmap)
                    branches.append((blocks[1], _complement(true_c, bits)))
                for body, bc in branches:
                    merged = [m for o in cl for c in bc if (m := merge_conditions(o, c)) is not NEVER]
                    if not merged:
                        continue
                    bq = [qs[k] for k in range(len(body.qubits))]
                    bcm = [cs[k] for k in range(len(body.clbits))]
                    self.walk(body, bq, bcm, merged, depth + 1)
            elif name == "box":
                body = op.blocks[0]
                self.walk(body, qs, cs, conds, depth + 1)
            elif name in _KNOWN:
                ours = _KNOWN[name]
                params = tuple(self.param(p, f"instruction '{name}'") for p in op.params)
                self.add(Gate(ours, tuple(qs), params), cl)
            elif name == "u2":
                phi, lam = (self.param(p, "instruction 'u2'") for p in op.params)
                self.add(Gate("u3", tuple(qs), (Const(math.pi / 2), phi, lam)), cl)
            elif name == "unitary":
                m = torch.as_tensor(np.asarray(op.to_matrix()), dtype=torch.complex128)
                self.add(Gate("unitary", tuple(qs[::-1]), (), m), cl)
            elif name in ("quantum_channel", "kraus"):
                from qiskit.quantum_info import Kraus

                src = getattr(op, "_quantum_error", None)
                data = Kraus(src if src is not None else op).data
                ks = torch.as_tensor(np.stack(data), dtype=torch.complex128)
                self.add(Channel("kraus", tuple(qs[::-1]), 0.0, ks), cl)
            elif getattr(op, "blocks", None):
                raise CircuitError(f"unsupported Qiskit instruction '{name}' (control flow other than if_test "
                                   "and box is not supported)")
            elif op.definition is not None:
                self.walk(op.definition, qs, cs, conds, depth + 1)
            elif hasattr(op, "to_matrix") and not any(
                    getattr(p, "parameters", None) for p in op.params):
                try:
                    m = torch.as_tensor(np.asarray(op.to_matrix()), dtype=torch.complex128)
                except Exception:  # noqa: BLE001 - no matrix after all
                    raise CircuitError(f"unsupported Qiskit instruction '{name}'") from None
                self.add(Gate("unitary", tuple(qs[::-1]), (), m), cl)
            else:
                raise CircuitError(f"unsupported Qiskit instruction '{name}' (no definition to decompose)")

    def _cond_bits(self, cond, circ, cmap):
        from qiskit.circuit import ClassicalRegister, Clbit

        if isinstance(cond, tuple):
            t = cond[0]
            if isinstance(t, Clbit):
                return [cmap[circ.find_bit(t).index]]
            if isinstance(t, ClassicalRegister):
                return [cmap[circ.find_bit(b).index] for b in t]
        return []


def from_qiskit(qc, *, input_params: Sequence[str] | None = None, weight_params: Sequence[str] | None = None,
                return_mapping: bool = False):
    """A qlstm :class:`~qlstm.circuit.Circuit` from a ``qiskit.QuantumCircuit``.

    Gates qlstm knows are translated directly; any other instruction is
    replaced by its definition, recursively (so library templates such as
    ``RealAmplitudes``, ``EfficientSU2``, ``TwoLocal``, ``n_local(...)`` and
    controlled or custom gates work without ``decompose()``); a gate without
    a definition but with a constant matrix becomes a ``unitary``.
    ``if_test`` / ``IfElseOp`` blocks become conditions (the ``else`` block
    gets the complementary conditions; conditions on bits, registers and the
    classical expressions ``==``, ``!=``, ``!``, ``&&`` are supported),
    ``measure`` and ``reset`` map directly, qiskit-aer noise instructions
    become Kraus channels; ``barrier``, ``delay`` and the global phase are
    dropped.

    Args:
        qc: the Qiskit circuit (qubit ``k`` becomes wire ``k``, clbit ``k`` clbit ``k``).
        input_params / weight_params: explicit parameter order (see the module docstring);
            names no gate uses still reserve their index (Qiskit drops unused parameters).
        return_mapping: also return ``{name: ("weight" | "input", index)}``.

    Raises:
        CircuitError: an unsupported instruction (named), a measurement inside an
            ``if_test``, or a parameter expression qlstm cannot represent.
    """
    _require_qiskit()
    found: dict = {}
    _walk_params(qc, found)
    mapping = classify(sorted(found), input_params, weight_params)
    mapping = {n: mapping[n] for n in found}
    leaves = {n: (Weight(i) if k == "weight" else Input(i)) for n, (k, i) in mapping.items()}
    conv = _FromQiskit(leaves)
    conv.walk(qc, list(range(qc.num_qubits)), list(range(qc.num_clbits)), None)
    if qc.num_qubits < 1:
        raise CircuitError("the Qiskit circuit has no qubits")
    circ = Circuit(qc.num_qubits, name=qc.name or "qiskit")
    circ.n_clbits = qc.num_clbits
    circ.n_weights = 1 + max((i for k, i in mapping.values() if k == "weight"), default=-1)
    circ.n_inputs = 1 + max((i for k, i in mapping.values() if k == "input"), default=-1)
    meta = qc.metadata or {}
    if meta.get("qlstm") and input_params is None and weight_params is None:
        # written by to_qiskit: keep weights/inputs that no gate uses (Qiskit drops unused parameters)
        circ.n_weights = max(circ.n_weights, int(meta.get("n_weights", 0)))
        circ.n_inputs = max(circ.n_inputs, int(meta.get("n_inputs", 0)))
    # names listed but not used by any gate (Qiskit drops unused parameters) still take their index
    if input_params is not None:
        circ.n_inputs = max(circ.n_inputs, len([input_params] if isinstance(input_params, str) else input_params))
    if weight_params is not None:
        circ.n_weights = max(circ.n_weights,
                             len([weight_params] if isinstance(weight_params, str) else weight_params))
    for op in conv.ops:
        circ.append(op)
    return (circ, mapping) if return_mapping else circ
