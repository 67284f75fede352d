"""`Circuit.probs` read-outs against PennyLane's qml.probs, on every simulation path."""

import pytest
import torch

from qlstm import Circuit, run

qml = pytest.importorskip("pennylane")


def test_probs_match_pennylane_on_every_path():
    c = Circuit(3)
    x = c.inputs(1)
    (w,) = c.weights(1)
    c.ry(0, x[0].atan()).h(1).cnot(0, 2).crx(1, 2, w).rz(2, 0.3).cnot(2, 1)
    c.probs([2, 0]).probs(1).probs()
    xs = torch.tensor([[0.7], [-1.3]], dtype=torch.float64)
    ws = torch.tensor([0.9], dtype=torch.float64)

    dev = qml.device("default.qubit", wires=3)

    @qml.qnode(dev)
    def ref(xv, wv, wires):
        qml.RY(torch.atan(xv), 0)
        qml.Hadamard(1)
        qml.CNOT([0, 2])
        qml.CRX(wv, wires=[1, 2])
        qml.RZ(0.3, 2)
        qml.CNOT([2, 1])
        return qml.probs(wires=wires)

    for method in ("auto", "reference", "density"):
        res = run(c, xs, ws, method=method)
        for b in range(2):
            for got, wires in zip(res.probs, c.prob_wires):
                expected = ref(xs[b, 0], ws[0], list(wires))
                assert torch.allclose(got[b], expected, atol=1e-10), (method, wires)


def test_probs_with_shots_are_frequencies():
    c = Circuit(2)
    c.h(0).cnot(0, 1).probs()
    g = torch.Generator().manual_seed(0)
    p = run(c, shots=1000, generator=g).probs[0]
    assert p.sum().item() == pytest.approx(1.0)
    assert p[0, 1] == 0 and p[0, 2] == 0 and abs(p[0, 0].item() - 0.5) < 0.08
