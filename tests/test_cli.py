"""The `qlstm` command line: demo and simulate (verify/resources/export are tested with their modules)."""

import json
import subprocess
import sys

import pytest

from qlstm.cli import main

BELL = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c[0] = measure q[0];
c[1] = measure q[1];
"""

DYNAMIC = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
ry(2 * atan(0.5)) q[0];
c[0] = measure q[0];
reset q[0];
if (c[0] == 1) { x q[1]; }
c[1] = measure q[1];
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_simulate_json_exact(tmp_path, capsys):
    assert main(["simulate", write(tmp_path, "bell.qasm", BELL), "--json"]) == 0
    dist = json.loads(capsys.readouterr().out)
    assert dist.keys() == {"00", "11"}
    assert dist["00"] == pytest.approx(0.5, abs=1e-12) and dist["11"] == pytest.approx(0.5, abs=1e-12)


def test_simulate_dynamic_circuit(tmp_path, capsys):
    # P(c0 = 1) = sin^2(atan(0.5)) = 0.2, and c1 copies c0 through the conditional X
    assert main(["simulate", write(tmp_path, "dyn.qasm", DYNAMIC), "--json"]) == 0
    dist = json.loads(capsys.readouterr().out)
    assert dist["11"] == pytest.approx(0.2, abs=1e-12) and dist["00"] == pytest.approx(0.8, abs=1e-12)
    assert set(dist) == {"00", "11"}


def test_simulate_shots_are_seeded(tmp_path, capsys):
    path = write(tmp_path, "bell.qasm", BELL)
    outs = []
    for _ in range(2):
        assert main(["simulate", path, "--shots", "500", "--seed", "7", "--json"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1]
    assert sum(outs[0].values()) == pytest.approx(1.0)
    assert abs(outs[0]["00"] - 0.5) < 5 * 0.5 / 500**0.5


@pytest.mark.parametrize("text,fragment", [
    ("OPENQASM 3.0;\nqubit[1] q;\nfoo q[0];\n", "foo"),
    ("OPENQASM 3.0;\nqubit[1] q;\nh q[3];\n", "3"),
    ("OPENQASM 3.0;\nqubit[1] q;\nh q[0]\n", "line"),
])
def test_simulate_bad_qasm_exits_2_without_traceback(tmp_path, capsys, text, fragment):
    assert main(["simulate", write(tmp_path, "bad.qasm", text)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and fragment in err


def test_simulate_missing_file_and_unbound_input(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope.qasm")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = write(tmp_path, "p.qasm", "OPENQASM 3.0;\ninput float[64] theta;\nqubit[1] q;\nbit[1] c;\n"
                                     "rx(theta) q[0];\nc[0] = measure q[0];\n")
    assert main(["simulate", path]) == 2
    assert "theta" in capsys.readouterr().err
    assert main(["simulate", path, "--bind", "theta=3.141592653589793", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["1"] == pytest.approx(1.0)


def test_demo_runs_and_reports(capsys):
    assert main(["demo", "--epochs", "2", "--quiet", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["epochs"] == 2 and res["n_train"] > res["n_test"] > 0
    assert 0 <= res["test_tolerance_accuracy"] <= 1 and res["test_mse"] >= 0


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "qlstm.cli", "simulate", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--shots" in out.stdout and "clbit 0" in out.stdout


def test_tune_malloc_reports_whether_it_took_effect():
    import platform

    from qlstm.train.malloc import tune_malloc

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert tune_malloc() is glibc
    assert tune_malloc() is glibc  # again: same settings, same answer
    with pytest.raises(ValueError, match="mmap_threshold must be an int of bytes"):
        tune_malloc(mmap_threshold=2**40)
