"""Gate algebra shared by the importers and exporters (pure Python + torch).

Gates are handled as plain :class:`~qlstm.circuit.ops.Gate` values; the extra
name ``"gphase"`` (no wires, one angle) stands for a global phase, which only
matters once it is controlled (then it becomes a phase gate on the control).

* :func:`invert` / :func:`control` -- the ``inv @`` and ``ctrl @`` modifiers.
* :data:`QASM_GATES` -- the OpenQASM 3 ``stdgates.inc`` gates (and a few
  Qiskit extras) expanded into qlstm gates.
* :func:`state_prep_ry` -- a real amplitude vector as RY + CNOT gates
  (Mottonen et al.'s uniformly controlled rotations).
* :func:`merge_conditions` / :func:`complement` -- nested and ``else``
  branches as flat qlstm conditions.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..circuit.expr import BinOp, Const, Expr, Func
from ..circuit.ops import Condition, Gate
from ..errors import CircuitError
from ..sim.gates import controlled, gate_matrix, lookup
from ._lex import fold

__all__ = ["invert", "control", "QASM_GATES", "state_prep_ry", "merge_conditions", "complement", "NEVER",
           "const_matrix"]

_PI = Const(math.pi)
_HALF_PI = Const(math.pi / 2)


def _neg(e: Expr) -> Expr:
    return Const(-float(e.value)) if isinstance(e, Const) else Func("neg", e)


def _add(a: Expr, b: Expr) -> Expr:
    return fold(BinOp("+", a, b))


def _half(e: Expr) -> Expr:
    return fold(BinOp("/", e, Const(2.0)))


def _is_const(g: Gate) -> bool:
    return all(isinstance(p, Const) for p in g.params)


def const_matrix(g: Gate) -> torch.Tensor:
    """Matrix (complex128, first wire most significant) of a gate with constant parameters."""
    if g.name == "unitary":
        return g.matrix.to(torch.complex128)
    if g.name == "gphase":
        return torch.tensor([[complex(math.cos(g.params[0].value), math.sin(g.params[0].value))]],
                            dtype=torch.complex128)
    return gate_matrix(g.name, [float(p.value) for p in g.params])


def _unitary(m: torch.Tensor, wires, condition=None) -> Gate:
    return Gate("unitary", tuple(wires), (), m.to(torch.complex128), condition)


_SELF_INVERSE = {"i", "h", "x", "y", "z", "cnot", "cy", "cz", "swap", "toffoli"}
_SWAP_INVERSE = {"s": "sdg", "sdg": "s", "t": "tdg", "tdg": "t"}
_NEGATE_ALL = {"rx", "ry", "rz", "phaseshift", "crx", "cry", "crz", "cphase", "isingxx", "isingyy", "isingzz",
               "gphase"}


def invert(g: Gate) -> Gate:
    """The inverse of one gate."""
    n = g.name
    if n in _SELF_INVERSE:
        return g
    if n in _SWAP_INVERSE:
        return Gate(_SWAP_INVERSE[n], g.wires, (), None, g.condition)
    if n in _NEGATE_ALL:
        return Gate(n, g.wires, tuple(_neg(p) for p in g.params), None, g.condition)
    if n in ("rot", "crot"):
        a, b, c = g.params
        return Gate(n, g.wires, (_neg(c), _neg(b), _neg(a)), None, g.condition)
    if n == "u3":
        th, ph, la = g.params
        return Gate(n, g.wires, (_neg(th), _neg(la), _neg(ph)), None, g.condition)
    if n == "unitary" or _is_const(g):
        return _unitary(const_matrix(g).conj().T, g.wires, g.condition)
    raise CircuitError(f"cannot invert gate {n!r} with symbolic parameters")  # pragma: no cover


_CONTROLLED = {"x": "cnot", "y": "cy", "z": "cz", "rx": "crx", "ry": "cry", "rz": "crz", "phaseshift": "cphase",
               "rot": "crot", "cnot": "toffoli"}


def control(g: Gate, ctrl: int) -> list[Gate]:
    """``g`` controlled by wire ``ctrl`` (applied when it is |1>), as qlstm gates."""
    n = g.name
    if ctrl in g.wires:
        raise CircuitError(f"control wire {ctrl} is also a target of gate {n!r}")
    if n == "gphase":
        return [Gate("phaseshift", (ctrl,), g.params, None, g.condition)]
    if n == "i":
        return []
    if n in _CONTROLLED:
        return [Gate(_CONTROLLED[n], (ctrl,) + g.wires, g.params, None, g.condition)]
    if n == "u3" and not _is_const(g):
        # U3(th, ph, la) = e^{i(ph+la)/2} RZ(ph) RY(th) RZ(la) = e^{i(ph+la)/2} Rot(la, th, ph)
        th, ph, la = g.params
        return [Gate("crot", (ctrl,) + g.wires, (la, th, ph), None, g.condition),
                Gate("phaseshift", (ctrl,), (_half(_add(ph, la)),), None, g.condition)]
    if n == "unitary" or _is_const(g):
        return [_unitary(controlled(const_matrix(g)), (ctrl,) + g.wires, g.condition)]
    raise CircuitError(f"'ctrl @' on gate {n!r} with symbolic parameters is not supported")


# ---------------------------------------------------------------------------
# OpenQASM 3 standard gates -> qlstm gates

_SX_DG = torch.tensor([[0.5 - 0.5j, 0.5 + 0.5j], [0.5 + 0.5j, 0.5 - 0.5j]], dtype=torch.complex128)
_H = gate_matrix("h")


def _g(name: str) -> Callable:
    canon = lookup(name).name
    return lambda p, w: [Gate(canon, tuple(w), tuple(p))]


def _u2(p, w):
    return [Gate("u3", tuple(w), (_HALF_PI, p[0], p[1]))]


def _r(p, w):  # Qiskit's RGate(theta, phi) = U(theta, phi - pi/2, pi/2 - phi)
    th, ph = p
    return [Gate("u3", tuple(w), (th, fold(BinOp("-", ph, _HALF_PI)), fold(BinOp("-", _HALF_PI, ph))))]


def _cu(p, w):  # controlled (e^{i gamma} U(th, ph, la))
    th, ph, la, ga = p
    c, t = w
    return [Gate("phaseshift", (c,), (ga,))] + control(Gate("u3", (t,), (th, ph, la)), c)


def _cu3(p, w):
    c, t = w
    return control(Gate("u3", (t,), tuple(p)), c)


def _cswap(p, w):
    c, a, b = w
    return [Gate("cnot", (b, a)), Gate("toffoli", (c, a, b)), Gate("cnot", (b, a))]


def _rzx(p, w):  # exp(-i theta/2 Z(x)X) = H_t RZZ(theta) H_t
    a, b = w
    return [Gate("h", (b,)), Gate("isingzz", (a, b), tuple(p)), Gate("h", (b,))]


def _multi_x(k: int) -> Callable:
    m = gate_matrix("x")
    for _ in range(k):
        m = controlled(m)
    return lambda p, w: [_unitary(m, w)]


# name -> (n_params, n_qubits, expand(params, wires) -> [Gate])
QASM_GATES: dict[str, tuple[int, int, Callable]] = {
    "id": (0, 1, _g("i")), "x": (0, 1, _g("x")), "y": (0, 1, _g("y")), "z": (0, 1, _g("z")),
    "h": (0, 1, _g("h")), "s": (0, 1, _g("s")), "sdg": (0, 1, _g("sdg")), "t": (0, 1, _g("t")),
    "tdg": (0, 1, _g("tdg")), "sx": (0, 1, _g("sx")),
    "sxdg": (0, 1, lambda p, w: [_unitary(_SX_DG, w)]),
    "rx": (1, 1, _g("rx")), "ry": (1, 1, _g("ry")), "rz": (1, 1, _g("rz")),
    "p": (1, 1, _g("phaseshift")), "phase": (1, 1, _g("phaseshift")), "u1": (1, 1, _g("phaseshift")),
    "u": (3, 1, _g("u3")), "U": (3, 1, _g("u3")), "u3": (3, 1, _g("u3")), "u2": (2, 1, _u2), "r": (2, 1, _r),
    "cx": (0, 2, _g("cnot")), "CX": (0, 2, _g("cnot")), "cy": (0, 2, _g("cy")), "cz": (0, 2, _g("cz")),
    "ch": (0, 2, lambda p, w: [_unitary(controlled(_H), w)]),
    "swap": (0, 2, _g("swap")), "ccx": (0, 3, _g("toffoli")), "cswap": (0, 3, _cswap),
    "crx": (1, 2, _g("crx")), "cry": (1, 2, _g("cry")), "crz": (1, 2, _g("crz")),
    "cp": (1, 2, _g("cphase")), "cphase": (1, 2, _g("cphase")), "cu1": (1, 2, _g("cphase")),
    "cu": (4, 2, _cu), "cu3": (3, 2, _cu3),
    "csx": (0, 2, lambda p, w: [_unitary(controlled(gate_matrix("sx")), w)]), "rzx": (1, 2, _rzx),
    "c3x": (0, 4, _multi_x(3)), "c4x": (0, 5, _multi_x(4)),
    "rxx": (1, 2, _g("isingxx")), "ryy": (1, 2, _g("isingyy")), "rzz": (1, 2, _g("isingzz")),
    "gphase": (1, 0, lambda p, w: [Gate("gphase", (), tuple(p))]),
}


# ---------------------------------------------------------------------------
# state preparation of a real amplitude vector


def state_prep_ry(amplitudes: Sequence[float], wires: Sequence[int]) -> list[Gate]:
    """Gates taking ``|0...0>`` on ``wires`` to ``sum_i a_i |i>`` (real ``a``, first wire = MSB).

    Level ``j`` rotates wire ``wires[j]`` by a uniformly controlled RY (one
    angle per value of the wires before it), decomposed into ``2**j`` RY and
    ``2**j`` CNOT gates along a Gray code. Upper levels split block norms, the
    last level the signed amplitude pairs, so negative amplitudes come out right.
    """
    k = len(wires)
    a = [float(v) for v in amplitudes] + [0.0] * (2 ** k - len(amplitudes))
    norm = math.sqrt(sum(v * v for v in a))
    if norm == 0:
        raise CircuitError("cannot prepare the zero vector")
    a = [v / norm for v in a]
    out: list[Gate] = []
    for j in range(k):
        size = 2 ** (k - j)
        thetas = []
        for p in range(2 ** j):
            block = a[p * size:(p + 1) * size]
            left, right = block[:size // 2], block[size // 2:]
            if j == k - 1:
                thetas.append(2 * math.atan2(right[0], left[0]))
            else:
                thetas.append(2 * math.atan2(math.sqrt(sum(v * v for v in right)),
                                             math.sqrt(sum(v * v for v in left))))
        target = wires[j]
        if j == 0:
            if thetas[0] != 0:
                out.append(Gate("ry", (target,), (Const(thetas[0]),)))
            continue
        m = 2 ** j
        gray = [i ^ (i >> 1) for i in range(m)]
        phis = [sum(thetas[p] * (-1) ** bin(p & gray[i]).count("1") for p in range(m)) / m for i in range(m)]
        for i in range(m):
            out.append(Gate("ry", (target,), (Const(phis[i]),)))
            bit = (gray[i] ^ gray[(i + 1) % m]).bit_length() - 1  # bit position in the prefix integer
            out.append(Gate("cnot", (wires[j - 1 - bit], target)))
    return out


# ---------------------------------------------------------------------------
# classical conditions

NEVER = object()  # a condition that can never hold (contradictory nested ifs)


def merge_conditions(outer, inner):
    """Conjunction of two conditions (None = always); :data:`NEVER` if they contradict."""
    if outer is NEVER or inner is NEVER:
        return NEVER
    if outer is None:
        return inner
    if inner is None:
        return outer
    bits: dict[int, int] = {}
    for cond in (outer, inner):
        for i, b in enumerate(cond.clbits):
            v = (cond.value >> i) & 1
            if bits.get(b, v) != v:
                return NEVER
            bits[b] = v
    order = list(bits)
    return Condition(tuple(order), sum(bits[b] << i for i, b in enumerate(order)))


def complement(conds: list[Condition], bits: Sequence[int] | None = None, max_bits: int = 10) -> list[Condition]:
    """Disjoint conditions covering every assignment that satisfies none of ``conds``."""
    allbits: list[int] = list(dict.fromkeys(list(bits or []) + [b for c in conds for b in c.clbits]))
    if not allbits:
        return []
    if len(allbits) > max_bits:
        raise CircuitError(f"the complement of a condition on {len(allbits)} bits is too large "
                           f"(at most {max_bits} bits)")
    out = []
    for v in range(2 ** len(allbits)):
        val = {b: (v >> i) & 1 for i, b in enumerate(allbits)}
        hit = any(all(val[b] == (c.value >> i) & 1 for i, b in enumerate(c.clbits)) for c in conds)
        if not hit:
            out.append(Condition(tuple(allbits), v))
    return out
