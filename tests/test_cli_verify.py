"""`qlstm verify`, `qlstm resources`, `qlstm export`: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qlstm.cli import main, qiskit_python_source

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "verify"
CORRECT_PY = str(EXAMPLES / "forget_correct.py")
CORRECT_QASM = str(EXAMPLES / "forget_correct.qasm")
WRONG_RING = str(EXAMPLES / "forget_wrong_ring.py")
WRONG_ENC = str(EXAMPLES / "forget_wrong_encoding.py")

qiskit = pytest.importorskip("qiskit")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(err: str, *needles: str):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


# ---------------------------------------------------------------------------
# verify


def test_verify_pass_and_fail_exit_codes(capsys):
    code, out, err = run_cli(capsys, "verify", CORRECT_PY, "--against", "forget")
    assert code == 0 and "PASS" in out.splitlines()[2] and err == ""
    code, out, _ = run_cli(capsys, "verify", CORRECT_QASM, "--qubits", "4", "--layers", "2")
    assert code == 0 and "PASS" in out
    code, out, _ = run_cli(capsys, "verify", WRONG_RING, "--no-fit")
    assert code == 1
    assert ("second CNOT ring missing (CNOT(i, i+2 mod 4)): gate counts differ — user has 4 CNOT per layer, "
            "reference 8") in out
    code, out, _ = run_cli(capsys, "verify", WRONG_ENC, "--no-fit")
    assert code == 1 and "RZ on wires 0, 1, 2, 3 reads x_i where the reference reads atan(x_i ** 2)" in out


def test_verify_json_has_stable_keys(capsys):
    code, out, _ = run_cli(capsys, "verify", WRONG_RING, "--no-fit", "--json", "--seed", "3")
    assert code == 1
    d = json.loads(out)
    assert list(d)[:4] == ["status", "passed", "exit_code", "reasons"]
    assert d["status"] == "FAIL" and d["exit_code"] == 1 and d["seed"] == 3
    assert d["fit"]["ran"] is False and d["fit"]["skipped_because"] == "disabled (--no-fit)"
    assert d["user"]["two_qubit_gates"] == {"cnot": 8} and d["reference"]["two_qubit_gates"] == {"cnot": 16}
    code, out2, _ = run_cli(capsys, "verify", WRONG_RING, "--no-fit", "--json", "--seed", "3")
    d2 = json.loads(out2)
    assert list(d2) == list(d)
    d.pop("seconds"), d2.pop("seconds")
    assert d == d2


def test_verify_map_option(capsys, tmp_path):
    # a file whose Rot angles are in reversed order: FAIL, then PASS with the suggested mapping
    src = Path(CORRECT_PY).read_text()
    src = src.replace("qc.rz(w[k], i)\n            qc.ry(w[k + 1], i)\n            qc.rz(w[k + 2], i)",
                      "qc.rz(w[k + 2], i)\n            qc.ry(w[k + 1], i)\n            qc.rz(w[k], i)")
    f = tmp_path / "reversed.py"
    f.write_text(src)
    code, out, _ = run_cli(capsys, "verify", str(f), "--no-fit", "--json")
    d = json.loads(out)
    assert code == 1 and d["suggested_mapping"]["w[0]"] == "w_2"
    maps = [a for k, v in d["suggested_mapping"].items() for a in ("--map", f"{k}={v}")]
    code, out, _ = run_cli(capsys, "verify", str(f), "--no-fit", *maps)
    assert code == 0 and "PASS" in out


def test_verify_accept_trainable(capsys, tmp_path):
    # the encoding mistake cannot be trained away, so even --accept trainable fails
    code, out, _ = run_cli(capsys, "verify", WRONG_ENC, "--accept", "trainable", "--fit-steps", "30", "--json")
    d = json.loads(out)
    assert code == 1 and d["fit"]["ran"] and not d["fit"]["success"] and d["accept"] == "trainable"


@pytest.mark.parametrize("case,needles", [
    ("missing", ["no such file"]),
    ("malformed", ["line 4"]),
    ("unsupported", ["unsupported", "while"]),
    ("unbound", ["theta"]),
    ("no_circuit", ["defines no circuit"]),
    ("qubits", ["has 4 qubits but 5 were requested"]),
    ("bad_map", ["must look like"]),
    ("unknown_map", ["no parameter named 'nope'"]),
    ("map_syntax", ["--map expects name=x_i"]),
    ("against", ["unknown QLSTM block 'gate9'"]),
])
def test_verify_bad_input_is_exit_2_one_line(capsys, tmp_path, case, needles):
    def write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return str(p)

    args = {
        "missing": [str(tmp_path / "nope.qasm")],
        "malformed": [write("m.qasm", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nh q[0]\nx q[1];\n')],
        "unsupported": [write("u.qasm", "OPENQASM 3.0;\nqubit[1] q;\nwhile (true) { h q[0]; }\n")],
        "unbound": [write("b.qasm", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nrx(theta) q[0];\n')],
        "no_circuit": [write("n.py", "import math\nvalue = math.pi\n")],
        "qubits": [CORRECT_PY, "--qubits", "5"],
        "bad_map": [CORRECT_PY, "--map", "w[0]=z_1"],
        "unknown_map": [CORRECT_PY, "--map", "nope=w_0"],
        "map_syntax": [CORRECT_PY, "--map", "w_0"],
        "against": [CORRECT_PY, "--against", "gate9"],
    }[case]
    code, out, err = run_cli(capsys, "verify", *args, "--no-fit")
    assert code == 2 and out == ""
    assert_one_line_error(err, "qlstm verify:", *needles)


def test_verify_subprocess_no_traceback(tmp_path):
    bad = tmp_path / "bad.qasm"
    bad.write_text("OPENQASM 3.0;\nqubit[1] q;\nfoo q[0];\n")
    p = subprocess.run([sys.executable, "-m", "qlstm.cli", "verify", str(bad)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "foo" in p.stderr
    p = subprocess.run([sys.executable, "-m", "qlstm.cli", "verify", WRONG_RING, "--no-fit"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 1 and "second CNOT ring missing" in p.stdout


# ---------------------------------------------------------------------------
# resources


def test_resources_templates(capsys):
    code, out, _ = run_cli(capsys, "resources", "forget", "--json")
    d = json.loads(out)
    assert code == 0 and d["qubits"] == 4 and d["weights"] == 24 and d["two_qubit_gates"] == {"cnot": 16}
    code, out, _ = run_cli(capsys, "resources", "qcnn_tree", "--qubits", "8", "--module", "U_TTN", "--json")
    d = json.loads(out)
    assert code == 0 and d["two_qubit_gates"] == {"cnot": 7} and d["inputs"] == 256
    code, out, _ = run_cli(capsys, "resources", "qcnn_tree", "--pool", "measure", "--layers", "2", "--json")
    d = json.loads(out)
    assert d["mid_circuit_measurements"] == 3 and d["weights"] == 2 * 3 * 6 + 3 * 2
    code, out, _ = run_cli(capsys, "resources", "chen_vqc", "--qubits", "3", "--layers", "1")
    assert code == 0 and "3 qubits" in out and "idle slots" in out
    code, out, _ = run_cli(capsys, "resources", "U_SU4", "--json")
    assert json.loads(out)["weights"] == 15


def test_resources_files(capsys):
    code, out, _ = run_cli(capsys, "resources", WRONG_RING, "--json")
    d = json.loads(out)
    assert code == 0 and d["two_qubit_gates"] == {"cnot": 8} and d["measurements"] == 4
    code, out, _ = run_cli(capsys, "resources", CORRECT_QASM)
    assert code == 0 and "CNOT 16" in out


def test_resources_bad_input(capsys, tmp_path):
    code, out, err = run_cli(capsys, "resources", "no_such_template")
    assert code == 2 and out == ""
    assert_one_line_error(err, "qlstm resources:", "not a template", "qcnn_tree")
    code, _, err = run_cli(capsys, "resources", str(tmp_path / "gone.qasm"))
    assert code == 2
    assert_one_line_error(err, "no such file")
    code, _, err = run_cli(capsys, "resources", "qcnn_tree", "--qubits", "6")
    assert code == 2
    assert_one_line_error(err, "power-of-two")


# ---------------------------------------------------------------------------
# export


@pytest.mark.parametrize("fmt,ext", [("qasm3", "qasm"), ("qiskit-py", "py")])
def test_export_round_trips_through_verify(capsys, tmp_path, fmt, ext):
    f = tmp_path / f"candidate.{ext}"
    code, out, _ = run_cli(capsys, "export", "update", "--format", fmt, "--qubits", "3", "--layers", "1",
                           "-o", str(f))
    assert code == 0 and out == "" and f.exists()
    code, out, _ = run_cli(capsys, "verify", str(f), "--against", "candidate", "--layers", "1", "--no-fit")
    assert code == 0, out


def test_export_to_stdout_and_tree(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "export", "forget")
    assert code == 0 and out.startswith("OPENQASM 3.0;") and "input float[64] x_0;" in out
    code, out, _ = run_cli(capsys, "export", "qcnn_tree", "--pool", "measure", "--format", "qiskit-py")
    assert code == 0 and "with qc.if_test((qc.clbits[0], 1)):" in out
    # the exported tree is the same circuit
    f = tmp_path / "tree.py"
    f.write_text(out)
    from qlstm.circuit.templates import qcnn_tree
    from qlstm.verify import verify

    r = verify(str(f), against=qcnn_tree(4, pool="measure", encoding="angle"), fit=False, bp_samples=8)
    assert r.passed, r.report()


def test_export_bad_input(capsys):
    code, out, err = run_cli(capsys, "export", "qcnn_tree", "--encoding", "amplitude")
    assert code == 2 and out == ""
    assert_one_line_error(err, "qlstm export:", "amplitude encoding", "--encoding angle")
    code, _, err = run_cli(capsys, "export", "nonsense")
    assert code == 2
    assert_one_line_error(err, "not a template")


def test_qiskit_python_source_expressions():
    from qlstm.circuit import Circuit, sqrt

    c = Circuit(1)
    x = c.inputs(1)
    w = c.weights(2)
    c.ry(0, -(x[0] ** 2).atan() + 0.5).rz(0, sqrt(w[0] * w[1]).atan()).rot(0, w[0], 1.0, w[1])
    src = qiskit_python_source(c)
    ns: dict = {}
    exec(compile(src, "<exported>", "exec"), ns)  # noqa: S102 - our own generated code
    from qlstm.interop import from_qiskit

    back = from_qiskit(ns["circuit"])
    import torch

    from qlstm.circuit import run

    back.observables = []
    c2 = Circuit(1)
    c2.compose(back)
    c2.expval("X", 0)
    c.expval("X", 0)
    xv = torch.tensor([[0.3], [-1.2]], dtype=torch.float64)
    wv = torch.tensor([0.4, 1.7], dtype=torch.float64)
    torch.testing.assert_close(run(c2, xv, wv).expvals, run(c, xv, wv).expvals)


def test_help_texts(capsys):
    for cmd in ("verify", "resources", "export"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "usage: qlstm " + cmd in capsys.readouterr().out
