"""A forget block with a mistake: each layer has only the first CNOT ring (i, i+1).

Chen et al.'s layer has two rings, CNOT(i, i+1) and CNOT(i, i+2).
`qlstm verify examples/verify/forget_wrong_ring.py --against forget` reports FAIL:
"second CNOT ring missing (CNOT(i, i+2 mod 4)): gate counts differ — user has 4 CNOT per layer, reference 8".
"""

from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

N_QUBITS = 4
N_LAYERS = 2


def build() -> QuantumCircuit:
    n = N_QUBITS
    x = ParameterVector("x", n)
    w = ParameterVector("w", 3 * n * N_LAYERS)
    qc = QuantumCircuit(n, name="forget_wrong_ring")
    for i in range(n):
        qc.h(i)
        qc.ry(x[i].arctan(), i)
        qc.rz((x[i] ** 2).arctan(), i)
    for layer in range(N_LAYERS):
        for i in range(n):
            qc.cx(i, (i + 1) % n)
        # BUG: the second ring, qc.cx(i, (i + 2) % n), is missing
        for i in range(n):
            k = 3 * (layer * n + i)
            qc.rz(w[k], i)
            qc.ry(w[k + 1], i)
            qc.rz(w[k + 2], i)
    qc.measure_all()
    return qc


circuit = build()
