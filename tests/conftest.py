"""Shared helpers for the simulator tests: seeded RNGs, an independent expression
evaluator and dense (kron-product) linear algebra used as references.

Nothing here calls into qlstm's simulator; the helpers only read a circuit's
data (its expression trees) so that reference simulators can be fed the same
angles.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import pytest
import torch

from qlstm.circuit.expr import BinOp, Const, Func, Input, Weight

_FUNCS = {
    "atan": torch.atan, "arctan": torch.atan, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan,
    "asin": torch.asin, "acos": torch.acos, "exp": torch.exp, "ln": torch.log, "log": torch.log,
    "sqrt": torch.sqrt, "tanh": torch.tanh, "neg": torch.neg,
}
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
        "/": lambda a, b: a / b, "**": lambda a, b: a**b}


def eval_expr(e, xrow, w) -> torch.Tensor:
    """Value of an angle expression for ONE sample ``xrow [n_inputs]`` and weights ``w``.

    Written independently of :meth:`Expr.evaluate`; returns a 0-dim float64 tensor
    (differentiable if ``xrow`` / ``w`` require grad).
    """
    if isinstance(e, Const):
        return torch.tensor(float(e.value), dtype=torch.float64)
    if isinstance(e, Weight):
        return w[e.index]
    if isinstance(e, Input):
        return xrow[e.index]
    if isinstance(e, Func):
        return _FUNCS[e.name](eval_expr(e.arg, xrow, w))
    if isinstance(e, BinOp):
        return _OPS[e.op](eval_expr(e.left, xrow, w), eval_expr(e.right, xrow, w))
    raise TypeError(f"unknown expression {e!r}")


def eval_params(op, xrow, w) -> list[float]:
    return [float(eval_expr(p, xrow, w)) for p in op.params]


PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def embed_dense(m: np.ndarray, wires, n: int) -> np.ndarray:
    """Full ``2^n x 2^n`` matrix of ``m`` acting on ``wires`` (wire 0 = most significant bit).

    Built by explicit index arithmetic, independent of qlstm's kernels.
    """
    k = len(wires)
    big = np.zeros((2**n, 2**n), dtype=complex)
    for i in range(2**n):
        bits = [(i >> (n - 1 - q)) & 1 for q in range(n)]
        sub_in = sum(bits[wq] << (k - 1 - j) for j, wq in enumerate(wires))
        for sub_out in range(2**k):
            amp = m[sub_out, sub_in]
            if amp == 0:
                continue
            nb = list(bits)
            for j, wq in enumerate(wires):
                nb[wq] = (sub_out >> (k - 1 - j)) & 1
            o = sum(b << (n - 1 - q) for q, b in enumerate(nb))
            big[o, i] += amp
    return big


def pauli_string_matrix(paulis: str, wires, n: int) -> np.ndarray:
    letters = ["I"] * n
    for p, wq in zip(paulis, wires):
        letters[wq] = p
    return reduce(np.kron, [PAULI[p] for p in letters])


def random_density(d: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    rank = rank or d
    a = rng.normal(size=(d, rank)) + 1j * rng.normal(size=(d, rank))
    rho = a @ a.conj().T
    return rho / np.trace(rho)


def random_unitary(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    q, r = np.linalg.qr(a)
    return q * (np.diag(r) / np.abs(np.diag(r)))


def apply_kraus(kraus, rho: np.ndarray) -> np.ndarray:
    return sum(k @ rho @ k.conj().T for k in kraus)


def sigma_tol(p, shots: int, k: float = 5.0, floor: float = 1e-3):
    """``k`` standard deviations of a frequency estimate of probability ``p`` (array), plus a floor."""
    p = np.asarray(p, dtype=float)
    return k * np.sqrt(np.clip(p * (1 - p), 0, None) / shots) + floor


# ---------------------------------------------------------------------------
# gate tables of the reference libraries (imported lazily: the core tests must
# run without qiskit / pennylane installed)

def qiskit_gate(name: str, params):
    """The Qiskit gate for qlstm gate ``name``; its qargs are qlstm's wires in the same order
    (control first). ``rot`` has no Qiskit gate and is built as RZ(omega) RY(theta) RZ(phi)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import library as L

    def rot(a, b, c):
        qc = QuantumCircuit(1, name="rot")
        qc.rz(a, 0)
        qc.ry(b, 0)
        qc.rz(c, 0)
        return qc.to_gate()

    table = {
        "i": L.IGate, "h": L.HGate, "x": L.XGate, "y": L.YGate, "z": L.ZGate, "s": L.SGate,
        "sdg": L.SdgGate, "t": L.TGate, "tdg": L.TdgGate, "sx": L.SXGate, "cnot": L.CXGate,
        "cy": L.CYGate, "cz": L.CZGate, "swap": L.SwapGate, "toffoli": L.CCXGate,
        "rx": L.RXGate, "ry": L.RYGate, "rz": L.RZGate, "phaseshift": L.PhaseGate, "rot": rot,
        "u3": L.UGate, "crx": L.CRXGate, "cry": L.CRYGate, "crz": L.CRZGate, "cphase": L.CPhaseGate,
        "crot": lambda a, b, c: rot(a, b, c).control(1, annotated=False),
        "isingxx": L.RXXGate, "isingyy": L.RYYGate, "isingzz": L.RZZGate,
    }
    return table[name](*params)


def pennylane_op(name: str, wires, params):
    """The PennyLane operation for qlstm gate ``name`` on ``wires`` (same wire convention)."""
    import pennylane as qml

    w = list(wires)
    adj = {"sdg": qml.S, "tdg": qml.T}
    if name in adj:
        return qml.adjoint(adj[name](w))
    table = {
        "i": qml.Identity, "h": qml.Hadamard, "x": qml.PauliX, "y": qml.PauliY, "z": qml.PauliZ,
        "s": qml.S, "t": qml.T, "sx": qml.SX, "cnot": qml.CNOT, "cy": qml.CY, "cz": qml.CZ,
        "swap": qml.SWAP, "toffoli": qml.Toffoli, "rx": qml.RX, "ry": qml.RY, "rz": qml.RZ,
        "phaseshift": qml.PhaseShift, "rot": qml.Rot, "u3": qml.U3, "crx": qml.CRX, "cry": qml.CRY,
        "crz": qml.CRZ, "cphase": qml.ControlledPhaseShift, "crot": qml.CRot, "isingxx": qml.IsingXX,
        "isingyy": qml.IsingYY, "isingzz": qml.IsingZZ,
    }
    return table[name](*params, wires=w)


def pennylane_channel(name: str, p, wire):
    import pennylane as qml

    table = {
        "bit_flip": lambda: qml.BitFlip(p, wires=wire),
        "phase_flip": lambda: qml.PhaseFlip(p, wires=wire),
        "bit_phase_flip": lambda: qml.PauliError("Y", p, wires=wire),
        "depolarizing": lambda: qml.DepolarizingChannel(p, wires=wire),
        "amplitude_damping": lambda: qml.AmplitudeDamping(p, wires=wire),
        "phase_damping": lambda: qml.PhaseDamping(p, wires=wire),
    }
    return table[name]()


def qiskit_error(name: str, p):
    """Qiskit Aer's error for a qlstm channel. Aer's depolarizing_error(lam) puts weight lam/4 on
    each of X, Y, Z where PennyLane/qlstm put p/3, hence lam = 4p/3."""
    from qiskit_aer.noise import amplitude_damping_error, depolarizing_error, pauli_error, phase_damping_error

    table = {
        "bit_flip": lambda: pauli_error([("X", p), ("I", 1 - p)]),
        "phase_flip": lambda: pauli_error([("Z", p), ("I", 1 - p)]),
        "bit_phase_flip": lambda: pauli_error([("Y", p), ("I", 1 - p)]),
        "depolarizing": lambda: depolarizing_error(4 * p / 3, 1),
        "amplitude_damping": lambda: amplitude_damping_error(p),
        "phase_damping": lambda: phase_damping_error(p),
    }
    return table[name]()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

