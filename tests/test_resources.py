"""Resource counts on hand-built circuits."""

from __future__ import annotations

import json

import pytest

from qlstm.circuit import Circuit
from qlstm.circuit.templates import chen_vqc, qcnn_tree
from qlstm.errors import CircuitError
from qlstm.resources import count_resources, light_cone


def test_counts_on_a_small_circuit():
    c = Circuit(4, name="small")
    x = c.inputs(2)
    w = c.weights(3)
    c.h(0).ry(0, x[0].atan()).ry(1, x[1]).rz(1, x[0] * 2)  # x_0 read twice
    c.cnot(0, 1).crz(1, 2, w[0]).rx(2, w[1]).toffoli(0, 1, 2).rz(0, 0.5)
    c.expval("Z", 2)
    r = count_resources(c)
    assert r.qubits == 4 and r.clbits == 0 and r.operations == 9 and r.gates == 9
    assert r.gate_counts == {"cnot": 1, "crz": 1, "h": 1, "rx": 1, "ry": 2, "rz": 2, "toffoli": 1}
    assert r.one_qubit_gates == {"h": 1, "rx": 1, "ry": 2, "rz": 2}
    assert r.two_qubit_gates == {"cnot": 1, "crz": 1} and r.multi_qubit_gates == {"toffoli": 1}
    assert (r.n_one_qubit, r.n_two_qubit, r.n_multi_qubit) == (6, 2, 1)
    assert r.weights == 3 and r.inputs == 2 and r.parameters == 5
    assert r.parameterized_gates == 5  # the constant RZ(0.5) is not parameterized
    assert r.encodings == 3 and r.input_reads == {0: 2, 1: 1}
    assert r.idle_qubits == [3] and r.dead_qubits == [3]
    # layers: [h0, ry1] [ry0, rz1] [cnot01] [crz12] [rx2] [toffoli] [rz0]
    assert r.depth == 7
    assert r.idle_slots == (4 * 7) - (2 + 2 + 2 + 2 + 1 + 3 + 1)
    assert r.idle_share == pytest.approx(r.idle_slots / 28)
    assert r.idle_per_layer == pytest.approx([0.5, 0.5, 0.5, 0.5, 0.75, 0.25, 0.75])
    # the final RZ on wire 0 comes after everything that reaches wire 2: outside the light cone
    assert r.dead_ops == 1


def test_mid_circuit_measurements_resets_conditions_channels():
    c = Circuit(3)
    w = c.weights(1)
    c.h(0)
    b = c.measure(0)                       # mid-circuit: its bit is read below
    c.x(1, condition=b)
    c.measure(2, reset=True)              # mid-circuit: it resets its wire
    c.reset(2)
    c.channel("depolarizing", [1], 0.1)
    c.ry(1, w[0])
    c.measure(1)                          # terminal
    r = count_resources(c)
    assert r.measurements == 3 and r.mid_circuit_measurements == 2
    assert r.resets == 2 and r.conditional_ops == 1 and r.channels == {"depolarizing": 1}
    assert r.clbits == 3
    d = r.as_dict()
    json.dumps(d)
    assert d["mid_circuit_measurements"] == 2 and d["channels"] == {"depolarizing": 1}


def test_light_cone_follows_classical_dependencies():
    c = Circuit(4)
    c.h(0).cnot(0, 1)
    b = c.measure(1)
    c.x(2, condition=b)        # wire 2 depends on wires 0, 1 through the measured bit
    c.h(3)                     # wire 3 never reaches the output
    c.expval("Z", 2)
    wires, in_cone = light_cone(c)
    assert wires == {0, 1, 2}
    r = count_resources(c)
    assert r.dead_qubits == [3] and r.idle_qubits == []
    assert in_cone == [True, True, True, True, False]


def test_light_cone_reset_cuts_the_past():
    c = Circuit(2)
    c.h(0).cnot(0, 1)
    c.reset(1)                 # wire 1 forgets the CNOT
    c.ry(1, 0.3)
    c.expval("Z", 1)
    assert count_resources(c).dead_qubits == [0]
    # without observables every measured clbit is an output
    c2 = Circuit(2)
    c2.h(0).cnot(0, 1).measure(1)
    assert count_resources(c2).dead_qubits == []
    c3 = Circuit(2)
    c3.h(0).h(1).measure(1)
    assert count_resources(c3).dead_qubits == [0]
    with pytest.raises(CircuitError, match="outputs must be"):
        light_cone(c3, outputs="some")


def test_chen_vqc_and_tree():
    r = count_resources(chen_vqc(4, 2))
    assert r.two_qubit_gates == {"cnot": 16} and r.gate_counts["rot"] == 8
    assert r.input_reads == {0: 2, 1: 2, 2: 2, 3: 2} and r.encodings == 8
    assert r.idle_qubits == [] and r.dead_qubits == [] and r.mid_circuit_measurements == 0
    t = count_resources(qcnn_tree(8, "U_TTN", encoding=None))
    # 7 modules; the tree reads out wire 7 and every wire reaches it
    assert t.two_qubit_gates == {"cnot": 7} and t.dead_qubits == []
    assert t.idle_share > 0.3  # half the qubits wait at level 2, three quarters at level 3
    m = count_resources(qcnn_tree(4, pool="measure"))
    assert m.mid_circuit_measurements == 3 and m.conditional_ops == 6 and m.amplitude_encodings == 1
    assert m.input_reads == {i: 1 for i in range(16)}


def test_report_and_dict_are_readable():
    r = count_resources(qcnn_tree(4, pool="measure", encoding=None))
    text = r.report()
    for key in ("depth", "two-qubit", "mid-circuit", "idle qubits", "dead qubits", "idle slots"):
        assert key in text
    d = r.as_dict()
    assert list(d)[:4] == ["name", "qubits", "clbits", "depth"]
    json.dumps(d)
    with pytest.raises(CircuitError):
        count_resources("not a circuit")


def test_empty_circuit():
    r = count_resources(Circuit(2))
    assert r.depth == 0 and r.idle_share == 0.0 and r.idle_qubits == [0, 1] and r.dead_qubits == [0, 1]
