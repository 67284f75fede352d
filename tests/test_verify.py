"""`qlstm.verify`: equality with a reference block, precise diagnoses, fit, gradient and barren-plateau checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from qlstm.circuit import Circuit, atan, run
from qlstm.circuit.templates import qcnn_tree, qlstm_block
from qlstm.verify import VerifyInputError, apply_mapping, load_circuit, parse_slot, verify

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "verify"
CORRECT_PY = EXAMPLES / "forget_correct.py"
CORRECT_QASM = EXAMPLES / "forget_correct.qasm"
WRONG_RING = EXAMPLES / "forget_wrong_ring.py"
WRONG_ENC = EXAMPLES / "forget_wrong_encoding.py"

REPORT_KEYS = ["status", "passed", "exit_code", "reasons", "notes", "differences", "source", "source_kind",
               "against", "reference_description", "n_qubits", "n_layers", "outputs", "accept", "seed", "mapping",
               "suggested_mapping", "unitary", "unitary_detail", "equivalence", "fit", "gradient_check",
               "barren_plateau", "user", "reference", "seconds"]


def chen_like(n=4, layers=2, *, skip_ring2=False, enc_override=None, rot_order=(0, 1, 2), gate="rot"):
    """A Chen VQC built by hand (qlstm API) with optional mistakes."""
    c = Circuit(n, name="hand")
    x = c.inputs(n)
    for i in range(n):
        c.h(i).ry(i, atan(x[i]))
        c.rz(i, enc_override(i, x[i]) if enc_override else atan(x[i] ** 2))
    for _ in range(layers):
        for i in range(n):
            c.cnot(i, (i + 1) % n)
        if not skip_ring2 and n > 2:
            for i in range(n):
                c.cnot(i, (i + 2) % n)
        for i in range(n):
            w = c.weights(3)
            p = [w[k] for k in rot_order]
            if gate == "rot":
                c.rot(i, *p)
            else:
                c.u3(i, *p)
    c.expval_each("Z", range(n))
    return c


# ---------------------------------------------------------------------------
# the shipped examples


@pytest.mark.parametrize("path", [CORRECT_PY, CORRECT_QASM])
def test_correct_examples_pass(path):
    pytest.importorskip("qiskit")
    r = verify(path, against="forget")
    assert r.status == "PASS" and r.passed and r.exit_code == 0, r.report()
    assert r.reasons == []
    assert r.equivalence["equal"] and r.equivalence["min_fidelity"] > 1 - 1e-9
    assert r.equivalence["max_output_diff"] < 1e-9
    assert r.unitary
    assert r.fit["ran"] is False and "not needed" in r.fit["skipped_because"]
    assert r.gradient_check["ok"] and r.gradient_check["max_abs_error"] < 1e-6
    assert r.n_qubits == 4 and r.n_layers == 2 and r.user["weights"] == 24 and r.user["inputs"] == 4
    assert r.source_kind == ("python" if path.suffix == ".py" else "qasm3")


def test_qasm_example_is_qiskits_export_with_atan():
    text = CORRECT_QASM.read_text()
    assert "ry(atan(_x_0_)) q[0];" in text and "rz(atan(_x_0_**2)) q[0];" in text


def test_wrong_ring_fails_with_reason():
    pytest.importorskip("qiskit")
    r = verify(WRONG_RING, against="forget", fit=False)
    assert r.status == "FAIL" and r.exit_code == 1
    assert r.reasons[0] == ("second CNOT ring missing (CNOT(i, i+2 mod 4)): gate counts differ — user has 4 CNOT "
                            "per layer, reference 8")
    assert not r.equivalence["equal"]
    assert any("missing CNOT(0, 2), CNOT(2, 0)" in d for d in r.differences)
    assert "second CNOT ring missing" in r.report()


def test_wrong_encoding_fails_with_reason():
    pytest.importorskip("qiskit")
    r = verify(WRONG_ENC, against="forget", fit=False)
    assert r.status == "FAIL"
    assert r.reasons == ["RZ on wires 0, 1, 2, 3 reads x_i where the reference reads atan(x_i ** 2)"]


def test_single_wire_encoding_reason():
    c = chen_like(enc_override=lambda i, xi: xi if i == 2 else atan(xi ** 2))
    r = verify(c, "forget", fit=False)
    assert r.reasons == ["RZ on wire 2 reads x_2 where the reference reads atan(x_2 ** 2)"]


def test_first_ring_missing_and_layer_hint():
    c = chen_like(layers=3)
    r = verify(c, "input", fit=False)
    assert r.status == "FAIL"
    assert any("has 36 weights, the reference 24 (with --layers 3 the reference has 36)" in m for m in r.reasons)
    assert verify(c, "input", n_layers=3, fit=False).passed


def test_blocks_and_qiskit_objects_pass():
    for name in ("forget", "update", "hidden_processing"):
        assert verify(qlstm_block(name, 3, 2), name, fit=False).passed
    qiskit = pytest.importorskip("qiskit")
    from qlstm.interop import to_qiskit

    qc = to_qiskit(qlstm_block("output", 4, 1))
    assert isinstance(qc, qiskit.QuantumCircuit)
    r = verify(qc, "output", n_layers=1)
    assert r.passed and r.source_kind == "qiskit"


def test_output_wires_are_taken_from_the_measurements():
    c = qlstm_block("input", 4, 2, n_outputs=3)
    r = verify(c, "input", fit=False)
    assert r.passed and r.outputs == ["<Z0>", "<Z1>", "<Z2>"]
    # reading out other wires than the reference is a failure
    r = verify(c, "input", n_outputs=4, fit=False)
    assert not r.passed and any("reads out <Z0>, <Z1>, <Z2> where the reference reads" in m for m in r.reasons)


# ---------------------------------------------------------------------------
# parameter names and mappings


def test_permuted_weights_get_a_suggested_mapping_and_the_mapping_passes():
    c = chen_like(rot_order=(2, 1, 0))
    r = verify(c, "forget", fit=False)
    assert r.status == "FAIL"
    assert r.reasons[0].startswith("parameters named differently")
    assert r.suggested_mapping == {**{f"w_{3 * k}": f"w_{3 * k + 2}" for k in range(8)},
                                   **{f"w_{3 * k + 2}": f"w_{3 * k}" for k in range(8)}}
    r2 = verify(c, "forget", mapping=r.suggested_mapping, fit=False)
    assert r2.passed, r2.report()
    assert r2.mapping["w_0"] == "w_2"


def test_qiskit_names_outside_the_convention():
    qiskit = pytest.importorskip("qiskit")
    from qiskit.circuit import ParameterVector

    theta = ParameterVector("theta", 2)
    inp = ParameterVector("inp", 1)
    qc = qiskit.QuantumCircuit(1)
    qc.h(0)
    qc.ry(inp[0].arctan(), 0)
    qc.rz((inp[0] ** 2).arctan(), 0)
    qc.rz(theta[0], 0)
    qc.ry(theta[1], 0)
    qc.rz(0.0, 0)
    # inp[0] is not an input under the convention: it becomes a weight, and the input x_0 is never read
    r = verify(qc, "forget", n_layers=1, fit=False)
    assert not r.passed
    loaded = load_circuit(qc)
    # other names are weights in natural sorted order
    assert loaded.names == {"inp[0]": ("weight", 0), "theta[0]": ("weight", 1), "theta[1]": ("weight", 2)}
    circ, final = apply_mapping(loaded, {"inp[0]": "x_0", "theta[0]": "w_0", "theta[1]": "w_1"})
    assert final == {"inp[0]": "x_0", "theta[0]": "w_0", "theta[1]": "w_1"}
    assert circ.n_inputs == 1 and circ.n_weights == 2
    # Chen's layer on one qubit: Rot(w_0, w_1, w_2), so the third angle must be a weight too
    qc2 = qiskit.QuantumCircuit(1)
    w = ParameterVector("w", 3)
    qc2.h(0)
    qc2.ry(inp[0].arctan(), 0)
    qc2.rz((inp[0] ** 2).arctan(), 0)
    qc2.rz(w[0], 0)
    qc2.ry(w[1], 0)
    qc2.rz(w[2], 0)
    assert verify(qc2, "forget", n_layers=1, mapping={"inp[0]": "x_0"}, fit=False).passed


def test_mapping_errors():
    c = qlstm_block("forget", 2, 1)
    with pytest.raises(VerifyInputError, match="no parameter named 'theta'"):
        verify(c, "forget", n_layers=1, mapping={"theta": "w_0"})
    with pytest.raises(VerifyInputError, match="must look like"):
        verify(c, "forget", n_layers=1, mapping={"w_0": "y_0"})
    with pytest.raises(VerifyInputError, match="both map to w_1"):
        verify(c, "forget", n_layers=1, mapping={"w_0": "w_1"})
    assert parse_slot("x[3]") == ("input", 3) and parse_slot("w_12") == ("weight", 12)


# ---------------------------------------------------------------------------
# unreadable input


def test_unreadable_inputs(tmp_path):
    with pytest.raises(VerifyInputError, match="no such file"):
        verify(tmp_path / "nope.py")
    bad = tmp_path / "bad.qasm"
    bad.write_text("OPENQASM 3.0;\nqubit[2] q;\nh q[0]\ncx q[0], q[1];\n")
    with pytest.raises(VerifyInputError, match="line"):
        verify(bad)
    unsupported = tmp_path / "loop.qasm"
    unsupported.write_text("OPENQASM 3.0;\nqubit[2] q;\nfor int i in [0:1] { h q[i]; }\n")
    with pytest.raises(VerifyInputError, match="for"):
        verify(unsupported)
    unbound = tmp_path / "unbound.qasm"
    unbound.write_text('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nrx(theta) q[0];\n')
    with pytest.raises(VerifyInputError, match="theta"):
        verify(unbound)
    nothing = tmp_path / "nothing.py"
    nothing.write_text("x = 1\n")
    with pytest.raises(VerifyInputError, match="defines no circuit"):
        verify(nothing)
    raises = tmp_path / "raises.py"
    raises.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(VerifyInputError, match="RuntimeError: boom"):
        verify(raises)
    args = tmp_path / "args.py"
    args.write_text("def build(n):\n    return None\n")
    with pytest.raises(VerifyInputError, match="no arguments"):
        verify(args)
    wrong_type = tmp_path / "wrong_type.py"
    wrong_type.write_text("circuit = [1, 2]\n")
    with pytest.raises(VerifyInputError, match="expected a Qiskit QuantumCircuit"):
        verify(wrong_type)
    other = tmp_path / "circuit.txt"
    other.write_text("hello\n")
    with pytest.raises(VerifyInputError, match="not a circuit file"):
        verify(other)


def test_qubit_count_mismatch_is_an_input_error():
    with pytest.raises(VerifyInputError, match="has 4 qubits but 5 were requested"):
        verify(qlstm_block("forget", 4, 2), n_qubits=5)
    with pytest.raises(VerifyInputError, match="unknown QLSTM block"):
        verify(qlstm_block("forget", 4, 2), against="gate9")


def test_python_file_prints_go_to_stderr(tmp_path, capsys):
    pytest.importorskip("qiskit")
    f = tmp_path / "noisy.py"
    f.write_text(CORRECT_PY.read_text() + "\nprint('hello from the user file')\n")
    r = verify(f, fit=False)
    out = capsys.readouterr()
    assert r.passed and "hello" not in out.out and "hello" in out.err


# ---------------------------------------------------------------------------
# fit, gradients, barren plateaus, non-unitary circuits


def test_fit_structurally_different_but_expressive_circuit():
    """U3 instead of Rot (another parameter order): not equal, but trainable to the reference's function."""
    c = chen_like(n=2, layers=1, gate="u3")
    r = verify(c, "forget", n_layers=1, seed=2, fit_steps=200)
    assert r.status == "FAIL"
    assert not r.equivalence["equal"]
    assert any(m.startswith("U3 where the reference has Rot") for m in r.reasons)
    assert r.fit["ran"] and r.fit["success"] and r.fit["rmse"] < 0.05 <= r.fit["baseline_rmse"], r.fit
    assert any("trained to reproduce" in n for n in r.notes)
    r2 = verify(c, "forget", n_layers=1, seed=2, fit_steps=200, accept="trainable")
    assert r2.status == "PASS" and r2.reasons and "accepted because the fit succeeded" in r2.notes[0]


@pytest.mark.slow
def test_fit_cannot_repair_a_missing_ring():
    pytest.importorskip("qiskit")
    r = verify(WRONG_RING, "forget", seed=0)
    assert r.fit["ran"] and not r.fit["success"] and r.fit["rmse"] > 0.05


def test_fit_cannot_reproduce_a_weak_circuit():
    # no entangling gates at all: the outputs cannot depend on other wires' inputs
    c = Circuit(2)
    x = c.inputs(2)
    for i in range(2):
        c.h(i).ry(i, atan(x[i])).rz(i, atan(x[i] ** 2))
        a, b, g = c.weights(3)
        c.rot(i, a, b, g)
    c.expval_each("Z", range(2))
    r = verify(c, "forget", n_layers=1, seed=0, fit_steps=150, fit_restarts=2)
    assert r.status == "FAIL" and r.fit["ran"] and not r.fit["success"]
    assert any(m.startswith("first CNOT ring missing (CNOT(i, i+1 mod 2))") for m in r.reasons)


def test_gradient_check_and_barren_plateau_diagnostic():
    r = verify(qlstm_block("forget", 4, 2), "forget")
    gc = r.gradient_check
    assert gc["ran"] and gc["ok"] and gc["weights_checked"] == 24 and gc["max_abs_error"] < 1e-6
    bp = r.barren_plateau
    # the same circuit sees the same weight draws: the same variance
    assert bp["user_variance"] == pytest.approx(bp["reference_variance"], rel=1e-12)
    assert bp["ratio"] == pytest.approx(1.0, rel=1e-12) and not bp["flag"]
    # the last layer's final RZ on every wire cannot change a Z read-out
    assert set(bp["reference_dead_weights"]) >= {"w_14", "w_17", "w_20", "w_23"}
    assert bp["dead_weights"] == bp["reference_dead_weights"]


def test_barren_plateau_flag_for_a_flat_landscape():
    """Rotations by 0.01 * w: the gradients shrink 100x, their variance 10^4 x."""
    c = qlstm_block("forget", 2, 1)
    flat = Circuit(2, name="flat")
    for op in c.ops:
        if op.name == "rot":
            flat.rot(op.wires[0], *(0.01 * p for p in op.params))
        else:
            flat.append(op)
    flat.observables = list(c.observables)
    r = verify(flat, "forget", n_layers=1, fit=False)
    bp = r.barren_plateau
    assert bp["flag"] and bp["ratio"] < 1e-3
    assert any("barren plateau" in n for n in r.notes)
    assert r.gradient_check["ok"]


def test_dead_weights_are_reported():
    c = qlstm_block("forget", 2, 1)
    # Rot(w_0, w_1, w_2) on wire 0 replaced by RZ(w_0) RZ(w_1) RZ(w_2) after the CNOTs: w_0..w_2 do nothing for <Z>
    dead = Circuit(2, name="dead")
    for op in c.ops:
        if op.name == "rot" and op.wires == (0,):
            for p in op.params:
                dead.rz(0, p)
        else:
            dead.append(op)
    dead.observables = list(c.observables)
    r = verify(dead, "forget", n_layers=1, fit=False)
    # w_2 and w_5 (the final RZ of each wire) are dead in the reference too; the note names the new ones
    assert r.barren_plateau["dead_weights"] == ["w_0", "w_1", "w_2", "w_5"]
    assert r.barren_plateau["reference_dead_weights"] == ["w_2", "w_5"]
    assert any(n.endswith("where the reference uses them: w_0, w_1") for n in r.notes)


def test_mid_circuit_measurement_circuits():
    meas = qcnn_tree(4, "U_15", pool="measure", encoding="angle")
    ctrl = qcnn_tree(4, "U_15", pool="controlled", encoding="angle")
    r = verify(meas, against=meas.copy(), fit=False, bp_samples=8)
    assert r.passed and not r.unitary and "mid-circuit" in r.unitary_detail
    assert r.n_layers is None and r.user["mid_circuit_measurements"] == 3
    # same outputs (deferred measurement) but not the same state: the measured qubits are dephased
    r2 = verify(meas, against=ctrl, fit=False, bp_samples=8)
    assert not r2.passed
    assert r2.equivalence["max_output_diff"] < 1e-9 and r2.equivalence["min_fidelity"] < 0.99
    assert any("MEASURE" in m for m in r2.reasons)


def test_report_dict_has_stable_keys():
    r = verify(qlstm_block("forget", 2, 1), "forget", n_layers=1)
    d = r.to_dict()
    assert list(d) == REPORT_KEYS
    import json

    json.dumps(d)
    assert set(d["equivalence"]) == {"checked", "equal", "samples", "min_fidelity", "max_output_diff",
                                     "skipped_because"}
    assert set(d["fit"]) == {"ran", "success", "rmse", "train_rmse", "threshold", "baseline_rmse", "steps",
                             "restarts", "seconds", "skipped_because"}
    assert {"user_variance", "reference_variance", "ratio", "dead_weights"} <= set(d["barren_plateau"])


def test_same_seed_same_report():
    c = chen_like(n=2, layers=1, skip_ring2=True)
    a = verify(c, "forget", n_layers=1, seed=3, fit=False).to_dict()
    b = verify(c, "forget", n_layers=1, seed=3, fit=False).to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_states_compare_up_to_global_phase():
    # an extra global phase (RZ(2 pi) = -I) does not matter
    c = qlstm_block("forget", 2, 1)
    c2 = Circuit(2)
    c2.compose(c)
    c2.rz(0, 2 * math.pi)
    c2.observables = list(c.observables)
    r = verify(c2, "forget", n_layers=1, fit=False)
    assert r.equivalence["equal"] and r.passed
    x = torch.randn(2, 2, dtype=torch.float64)
    w = torch.randn(6, dtype=torch.float64)
    s1 = run(c, x, w, return_state=True).state
    s2 = run(c2, x, w, return_state=True).state
    torch.testing.assert_close(s2, -s1)
