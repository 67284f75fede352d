"""The forget block (VQC1) of Chen, Yoo & Fang's QLSTM, written in Qiskit.

Check it with:  qlstm verify examples/verify/forget_correct.py --against forget

Naming convention read by `qlstm verify`:
  * data inputs are the ParameterVector "x": x[i] is the value encoded on qubit i;
  * weights are the ParameterVector "w", ordered layer, wire, (alpha, beta, gamma):
    Rot(alpha, beta, gamma) on qubit q of layer l uses w[3*(l*n + q) + 0, 1, 2];
  * Rot(alpha, beta, gamma) = RZ(alpha), then RY(beta), then RZ(gamma).
"""

from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

N_QUBITS = 4
N_LAYERS = 2


def build() -> QuantumCircuit:
    n = N_QUBITS
    x = ParameterVector("x", n)
    w = ParameterVector("w", 3 * n * N_LAYERS)
    qc = QuantumCircuit(n, name="forget")
    # encoding: H, RY(arctan x_i), RZ(arctan x_i^2) on every qubit
    for i in range(n):
        qc.h(i)
        qc.ry(x[i].arctan(), i)
        qc.rz((x[i] ** 2).arctan(), i)
    for layer in range(N_LAYERS):
        # two CNOT rings: (i, i+1) and (i, i+2)
        for i in range(n):
            qc.cx(i, (i + 1) % n)
        for i in range(n):
            qc.cx(i, (i + 2) % n)
        # Rot(alpha, beta, gamma) on every qubit
        for i in range(n):
            k = 3 * (layer * n + i)
            qc.rz(w[k], i)
            qc.ry(w[k + 1], i)
            qc.rz(w[k + 2], i)
    qc.measure_all()  # read out <Z> on every qubit
    return qc


circuit = build()
