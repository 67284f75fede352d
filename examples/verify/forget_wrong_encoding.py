"""A forget block with a mistake in the encoding: RZ(x_i) where RZ(arctan(x_i^2)) belongs.

`qlstm verify examples/verify/forget_wrong_encoding.py --against forget` reports FAIL:
"RZ on wires 0, 1, 2, 3 reads x_i where the reference reads atan(x_i ** 2)".
"""

from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

N_QUBITS = 4
N_LAYERS = 2


def build() -> QuantumCircuit:
    n = N_QUBITS
    x = ParameterVector("x", n)
    w = ParameterVector("w", 3 * n * N_LAYERS)
    qc = QuantumCircuit(n, name="forget_wrong_encoding")
    for i in range(n):
        qc.h(i)
        qc.ry(x[i].arctan(), i)
        qc.rz(x[i], i)  # BUG: should be (x[i] ** 2).arctan()
    for layer in range(N_LAYERS):
        for i in range(n):
            qc.cx(i, (i + 1) % n)
        for i in range(n):
            qc.cx(i, (i + 2) % n)
        for i in range(n):
            k = 3 * (layer * n + i)
            qc.rz(w[k], i)
            qc.ry(w[k + 1], i)
            qc.rz(w[k + 2], i)
    qc.measure_all()
    return qc


circuit = build()
