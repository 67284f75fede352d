"""qlstm.interop: Qiskit and OpenQASM 3, both directions.

Every round trip is checked by simulation (qlstm's own simulator on both
sides, and Qiskit's Statevector / AerSimulator where Qiskit is installed) at
float64 precision.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from qlstm import Circuit, CircuitError, InputError, run
from qlstm.circuit import cos, exp, ln, sin, sqrt
from qlstm.circuit.expr import Func
from qlstm.interop import (QasmError, dump, dumps, load, loads, reverse_qubit_order, simulate_qasm_file)

TOL = 1e-10


# ---------------------------------------------------------------------------
# helpers


def _random_unitary(k: int, gen: torch.Generator) -> torch.Tensor:
    d = 2 ** k
    a = torch.randn(d, d, dtype=torch.float64, generator=gen) + 1j * torch.randn(d, d, dtype=torch.float64,
                                                                                   generator=gen)
    q, r = torch.linalg.qr(a)
    return q * (torch.diagonal(r) / torch.diagonal(r).abs())


def every_gate_circuit(seed: int = 0, *, multi_qubit_unitary: bool = True) -> Circuit:
    """A 3-qubit circuit with every registered gate and expressions of every kind."""
    gen = torch.Generator().manual_seed(seed)
    c = Circuit(3, name="every_gate")
    x = c.inputs(2)
    w = c.weights(8)
    c.ry(0, x[0].atan()).ry(1, (x[1] ** 2).atan()).rx(2, sin(x[0]) * 2 - cos(w[0]) / 3)
    for name in ("i", "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx"):
        c.gate(name, 1)
        c.gate(name, 2)
    c.rz(0, exp(w[1] / 4)).phase(1, ln(1 + x[1] ** 2)).rot(2, w[2], -w[3], sqrt(1 + w[4] ** 2))
    c.u3(0, w[5], w[6] * x[0], Func("tanh", w[7]))
    c.cnot(0, 1).gate("cy", (1, 2)).cz(2, 0).swap(0, 2)
    c.crx(0, 1, w[0] + x[0]).cry(1, 2, w[1] - 0.5).crz(2, 0, 2 * w[2]).gate("cphase", (0, 2), w[3] ** 2)
    c.crot(1, 0, w[4], x[1], -w[5])
    c.isingxx(0, 1, w[6]).isingyy(1, 2, w[7]).isingzz(0, 2, w[0] * w[1]).toffoli(2, 0, 1)
    c.unitary(_random_unitary(1, gen), 1)
    if multi_qubit_unitary:
        c.unitary(_random_unitary(2, gen), (2, 0))
    c.ry(0, math.pi / 2).rz(1, -math.pi / 4).rx(2, 0.1234567890123456789)
    c.expval_each("Z", range(3)).expval("XX", (0, 1)).expval("YZ", (2, 0))
    return c


def _data(c: Circuit, batch: int = 4, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, c.n_inputs, dtype=torch.float64, generator=gen) * 2 - 1 if c.n_inputs else None
    w = torch.rand(c.n_weights, dtype=torch.float64, generator=gen) * 4 - 2 if c.n_weights else None
    return x, w


def _state(c: Circuit, x=None, w=None) -> torch.Tensor:
    return run(c, x, w, return_state=True, dtype=torch.float64).state


def _remap(values: torch.Tensor | None, mapping: dict, kind: str, names_to_src_index: dict):
    """Reorder values for a circuit read back with ``mapping`` (name -> (kind, index))."""
    if values is None:
        return None
    n = 1 + max((i for k, i in mapping.values() if k == kind), default=-1)
    out = torch.zeros(*values.shape[:-1], n, dtype=values.dtype)
    for name, (k, i) in mapping.items():
        if k == kind:
            out[..., i] = values[..., names_to_src_index[name]]
    return out


def _assert_same_up_to_phase(a: torch.Tensor, b: torch.Tensor, tol: float = TOL):
    a = torch.as_tensor(a, dtype=torch.complex128).reshape(-1, a.shape[-1])
    b = torch.as_tensor(b, dtype=torch.complex128).reshape(-1, b.shape[-1])
    for u, v in zip(a, b):
        k = int(torch.argmax(u.abs()))
        phase = v[k] / u[k]
        assert abs(abs(phase) - 1) < tol
        assert torch.allclose(u * phase, v, atol=tol), (u * phase - v).abs().max()


# ---------------------------------------------------------------------------
# pure Python parts (no qiskit)


def test_import_without_qiskit():
    code = textwrap.dedent("""
        import sys
        sys.modules["qiskit"] = None
        sys.modules["qiskit_aer"] = None
        import qlstm.interop as I
        from qlstm import Circuit
        c = Circuit(2); c.h(0).cnot(0, 1).measure_all()
        c2 = I.loads(I.dumps(c))
        assert c2.n_qubits == 2 and c2.n_clbits == 2
        try:
            I.to_qiskit(c)
        except ImportError as e:
            assert "qiskit" in str(e)
        else:
            raise SystemExit("to_qiskit should need qiskit")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_reverse_qubit_order():
    v = torch.arange(8, dtype=torch.float64).to(torch.complex128)
    r = reverse_qubit_order(v)
    # index b0 b1 b2 -> b2 b1 b0
    assert r.tolist() == [0, 4, 2, 6, 1, 5, 3, 7]
    assert torch.equal(reverse_qubit_order(r), v)
    assert np.array_equal(reverse_qubit_order(np.arange(8)), [0, 4, 2, 6, 1, 5, 3, 7])
    assert reverse_qubit_order(torch.zeros(5, 16)).shape == (5, 16)


def test_qasm_round_trip_every_gate():
    c = every_gate_circuit(multi_qubit_unitary=False)
    text = dumps(c)
    assert "input float[64] x_0;" in text and "input float[64] w_7;" in text
    assert "arctan(x_0)" in text
    c2, mapping = loads(text, return_mapping=True)
    assert mapping["x_1"] == ("input", 1) and mapping["w_3"] == ("weight", 3)
    assert (c2.n_qubits, c2.n_inputs, c2.n_weights) == (3, 2, 8)
    x, w = _data(c)
    # the 1-qubit unitary is written as U(...) without its global phase
    _assert_same_up_to_phase(_state(c, x, w), _state(c2, x, w))
    # isingxx/yy/zz come back as one gate each (their written definitions are recognised)
    assert {g.name for g in c2.ops} >= {"isingxx", "isingyy", "isingzz"}
    # and a second round trip is textually stable
    assert dumps(loads(dumps(c2))) == dumps(c2)


def test_qasm_round_trip_exact_without_unitary():
    c = every_gate_circuit(multi_qubit_unitary=False)
    c.ops = [op for op in c.ops if getattr(op, "name", "") != "unitary"]
    c2 = loads(dumps(c))
    c2.observables = list(c.observables)  # observables are only written as a comment
    x, w = _data(c, batch=6, seed=7)
    assert torch.allclose(_state(c, x, w), _state(c2, x, w), atol=TOL, rtol=0)
    assert torch.allclose(run(c, x, w).expvals, run(c2, x, w).expvals, atol=TOL, rtol=0)


def test_qasm_writer_rejects_what_it_cannot_write():
    c = Circuit(2)
    c.h(0).channel("depolarizing", 0, 0.1)
    with pytest.raises(CircuitError, match="noise channels have no OpenQASM 3 form"):
        dumps(c)
    c = Circuit(2)
    c.unitary(torch.eye(4), (0, 1))
    with pytest.raises(CircuitError, match="to_qiskit"):
        dumps(c)
    c = Circuit(2)
    c.amplitude_encoding(4, (0, 1))
    with pytest.raises(CircuitError, match="bind_inputs"):
        dumps(c)


@pytest.mark.parametrize("n_amp,wires", [(4, (0, 1)), (3, (2, 0)), (8, (1, 2, 0)), (5, (0, 1, 2))])
def test_qasm_amplitude_encoding_as_state_preparation(n_amp, wires):
    c = Circuit(3)
    c.amplitude_encoding(n_amp, wires)
    c.cnot(0, 1).ry(2, c.inputs(1, start=n_amp)[0])
    gen = torch.Generator().manual_seed(n_amp)
    x = torch.randn(1, c.n_inputs, dtype=torch.float64, generator=gen)
    c2 = loads(dumps(c, bind_inputs=x[0]))
    assert c2.n_inputs == 0
    assert torch.allclose(_state(c, x), _state(c2), atol=TOL, rtol=0)


def test_qasm_bound_weights_and_conditions():
    c = Circuit(3)
    w = c.weights(2)
    c.h(0).h(1).h(2).rx(0, w[0]).measure(0)
    c.measure(1)
    c.measure(2, reset=True)
    c.x(2, condition=0).ry(2, w[1], condition=0)
    c.rz(0, w[1], condition=((0, 1, 2), 5))  # the whole register
    c.rz(1, 0.3, condition=((2, 0), 2))  # two bits, not in order
    c.reset(1, condition=(1, 0))
    c.measure(2, 2)
    c.measure(1, 1)
    text = dumps(c, bind_weights=[0.3, -1.1])
    assert "input" not in text
    assert "if (c == 5)" in text and "if (!c[2])" in text
    c2 = loads(text)
    wv = torch.tensor([0.3, -1.1], dtype=torch.float64)
    p1 = run(c, None, wv).clbit_probs
    p2 = run(c2).clbit_probs
    assert torch.allclose(p1, p2, atol=TOL, rtol=0)


QASM_FEATURES = """
OPENQASM 3.0;
include "stdgates.inc";
/* a block comment
   over two lines */
input float[64] theta;   // a weight (not x-like)
input float[64] x_0;
input angle[32] _x_1_;
const float[64] half = pi / 2;
gate mygate(a, b) p, r {
  ry(a) p;
  cx p, r;
  rz(b / 2) r;
}
gate outer(a) p, r, s {
  mygate(a, -a) p, r;
  h s;
}
gate phased(a) p {
  gphase(a / 2);
  rz(a) p;
}
qubit[2] q;
qubit anc;
bit[2] c;
bit flag;
outer(theta) q[0], q[1], anc;
rx(arctan(x_0 ** 2) + half) q;
ry(sqrt(abs_x)) anc;
"""


def test_qasm_parser_features_match_hand_built_circuit():
    text = QASM_FEATURES.replace("ry(sqrt(abs_x)) anc;", "ry(sqrt(1 + _x_1_ ** 2) * exp(-theta) / ln(2)) anc;")
    text += textwrap.dedent("""
        U(0.1, 0.2, 0.3) q[1];
        u2(0.4, -0.5) anc;
        cu(0.3, 0.4, 0.5, 0.6) anc, q[0];
        cswap q[0], q[1], anc;
        ch q[1], anc;
        ctrl @ rx(theta) anc, q[0];
        negctrl @ ry(0.7) q[0], anc;
        ctrl(2) @ x q[0], q[1], anc;
        inv @ s q[1];
        inv @ mygate(0.2, 0.9) q[0], anc;
        pow(2) @ t q[0];
        ctrl @ mygate(theta, 0.4) q[1], q[0], anc;
        sxdg q[0];
        r(0.3, 0.2) q[1];
        ctrl @ phased(0.7) q[0], q[1];
        rzx(0.2) q[1], anc;
        c[0] = measure q[0];
        measure anc -> flag;
        barrier q;
        gphase(0.3);
        if (c[0] == 1) { x q[1]; } else { z q[1]; h anc; }
        if (!flag) rz(0.25) q[1];
        c[1] = measure q[1];
    """)
    c, mapping = loads(text, return_mapping=True)
    assert mapping == {"theta": ("weight", 0), "x_0": ("input", 0), "_x_1_": ("input", 1)}
    assert (c.n_qubits, c.n_clbits) == (3, 3)

    # the same program built by hand (anc is wire 2, flag is clbit 2)
    ref = Circuit(3)
    th = ref.weights(1)[0]
    x = ref.inputs(2)
    ref.ry(0, th).cnot(0, 1).rz(1, -th / 2).h(2)
    for q in range(2):  # 'q' is the 2-qubit register; anc is not in it
        ref.rx(q, (x[0] ** 2).atan() + math.pi / 2)
    ref.ry(2, sqrt(1 + x[1] ** 2) * exp(-th) / math.log(2))
    ref.u3(1, 0.1, 0.2, 0.3).u3(2, math.pi / 2, 0.4, -0.5)
    ref.phase(2, 0.6).crot(2, 0, 0.5, 0.3, 0.4).phase(2, (0.4 + 0.5) / 2)
    ref.cnot(2, 1).toffoli(0, 1, 2).cnot(2, 1)
    ref.unitary(torch.block_diag(torch.eye(2, dtype=torch.complex128),
                                 torch.tensor([[1, 1], [1, -1]], dtype=torch.complex128) / math.sqrt(2)), (1, 2))
    ref.crx(2, 0, th)
    ref.x(0).unitary(torch.block_diag(torch.eye(2, dtype=torch.complex128),
                                      torch.tensor([[math.cos(0.35), -math.sin(0.35)],
                                                    [math.sin(0.35), math.cos(0.35)]], dtype=torch.complex128)),
                     (0, 2)).x(0)
    ref.toffoli(0, 1, 2)
    ref.gate("sdg", 1)
    ref.rz(2, -0.9 / 2).cnot(0, 2).ry(0, -0.2)
    ref.t(0).t(0)
    ref.cry(1, 0, th).toffoli(1, 0, 2).crz(1, 2, 0.2)
    ref.unitary(torch.tensor([[0.5 - 0.5j, 0.5 + 0.5j], [0.5 + 0.5j, 0.5 - 0.5j]]), 0)
    ref.u3(1, 0.3, 0.2 - math.pi / 2, math.pi / 2 - 0.2)
    ref.gate("cphase", (0, 1), 0.7)  # the controlled global phase became a phase on the control
    ref.h(2).isingzz(1, 2, 0.2).h(2)
    ref.measure(0, 0)
    ref.measure(2, 2)
    ref.x(1, condition=0).z(1, condition=(0, 0)).h(2, condition=(0, 0))
    ref.rz(1, 0.25, condition=(2, 0))
    ref.measure(1, 1)

    x_data, w_data = _data(ref, batch=3, seed=5)
    r1 = run(c, x_data, w_data, return_state=True)
    r2 = run(ref, x_data, w_data, return_state=True)
    assert torch.allclose(r1.clbit_probs, r2.clbit_probs, atol=TOL, rtol=0)
    assert torch.allclose(r1.state, r2.state, atol=TOL, rtol=0)


def test_qasm_registers_qreg_creg_and_openqasm2_caret():
    text = """
    OPENQASM 2.0;
    include "qelib1.inc";
    qreg a[2];
    qreg b[1];
    creg m[3];
    h a;
    cx a[0], b[0];
    u1(2^3 / 16) b[0];
    measure a -> m[0:1];
    measure b[0] -> m[2];
    """
    c = loads(text)
    ref = Circuit(3)
    ref.h(0).h(1).cnot(0, 2).phase(2, 0.5).measure(0, 0)
    ref.measure(1, 1)
    ref.measure(2, 2)
    assert torch.allclose(run(c).clbit_probs, run(ref).clbit_probs, atol=TOL)


def test_qasm_register_conditions_and_physical_qubits():
    text = """
    OPENQASM 3.0;
    bit[2] c;
    h $0;
    h $1;
    c[0] = measure $0;
    c[1] = measure $1;
    if (c == 2) { x $2; }
    if (c != 0 && c[0]) { rx(0.5) $2; } else { ry(0.25) $2; }
    """
    c = loads(text)
    assert c.n_qubits == 3
    ref = Circuit(3)
    ref.h(0).h(1)
    ref.measure(0, 0)
    ref.measure(1, 1)
    ref.x(2, condition=((0, 1), 2))
    ref.rx(2, 0.5, condition=((0, 1), 1)).rx(2, 0.5, condition=((0, 1), 3))
    ref.ry(2, 0.25, condition=((0, 1), 0)).ry(2, 0.25, condition=((0, 1), 2))
    s1, s2 = run(c, return_state=True).state, run(ref, return_state=True).state
    assert torch.allclose(s1, s2, atol=TOL)


def test_qasm_input_params_bindings_and_natural_order():
    text = """
    OPENQASM 3.0;
    input float[64] b10;
    input float[64] b2;
    input float[64] alpha;
    input float[64] w_0;
    qubit[1] q;
    rx(b10 + 2 * b2 + 3 * alpha + 4 * w_0) q[0];
    """
    _, m = loads(text, return_mapping=True)
    assert m == {"w_0": ("weight", 0), "alpha": ("weight", 1), "b2": ("weight", 2), "b10": ("weight", 3)}
    _, m = loads(text, input_params=["b2", "b10"], return_mapping=True)
    assert m["b2"] == ("input", 0) and m["b10"] == ("input", 1) and m["alpha"] == ("weight", 1)
    c = loads(text, bindings={"b10": 0.1, "b2": 0.2, "alpha": 0.3, "w_0": 0.4})
    assert (c.n_weights, c.n_inputs) == (0, 0)
    assert abs(float(c.ops[0].params[0].value) - (0.1 + 0.4 + 0.9 + 1.6)) < 1e-15
    with pytest.raises(QasmError, match="not an input"):
        loads(text, bindings={"nope": 1.0})


MALFORMED = [
    ("qubit[2] q;\nh q[0]\ncx q[0], q[1];", 2, "expected ';'"),
    ("qubit[2] q;\nfoo q[0];", 2, "unknown gate 'foo'"),
    ("qubit[2] q;\nrx(0.1, 0.2) q[0];", 2, "takes 1 parameter"),
    ("qubit[2] q;\n\ncx q[0];", 3, "acts on 2 qubit"),
    ("qubit[2] q;\nh r[0];", 2, "undeclared qubit register 'r'"),
    ("qubit[2] q;\nx q[2];", 2, "index 2 is out of range"),
    ("qubit[2] q;\nbit[1] c;\nc[3] = measure q[0];", 3, "index 3 is out of range"),
    ("OPENQASM 3.0;\nqubit[2] q;\n\n\n\n\nfor int i in [0:1] { h q[0]; }", 7, "unsupported OpenQASM 3 statement 'for'"),
    ("qubit[1] q;\ndef f() {}", 2, "unsupported OpenQASM 3 statement 'def'"),
    ("qubit[1] q;\nrx(theta) q[0];", 2, "undeclared identifier 'theta'"),
    ("qubit[1] q;\nrx(foo(1)) q[0];", 2, "unsupported function 'foo'"),
    ("qubit[1] q;\nrx(2 ^ 3) q[0];", 2, "use '\\*\\*' for powers"),
    ("qubit[1] q;\n/* never closed", 2, "unterminated"),
    ("qubit[1] q;\nmeasure q[0];", 2, "needs a target bit"),
    ("qubit[1] q;\nbit c;\nc = measure q[0];\nif (c) { c = measure q[0]; }", 4, "inside an if block"),
    ("qubit[2] q;\ncx q[0], q[0];", 2, "repeats a qubit"),
    ("qubit[2] q;\ngate g a { h a; }\ng(0.1) q[0];", 3, "takes 0 parameter"),
    ("qubit[1] q;\nrx(0.1 q[0];", 2, "expected '\\)'"),
    ("qubit[1] q;\nrx(sqrt(-1)) q[0];", 2, "no real value|no finite real value"),
    ("qubit[2] q;\nctrl @ rxx(0.1) q[0], q[1];", 2, "acts on 2 qubit"),
    ("qubit[3] q;\ninput float[64] a;\nctrl @ rxx(a) q[0], q[1], q[2];", 3, "symbolic parameters"),
]


@pytest.mark.parametrize("text,line,message", MALFORMED)
def test_qasm_malformed(text, line, message):
    with pytest.raises(QasmError, match=message) as info:
        loads(text)
    assert info.value.line == line
    assert f"line {line}" in str(info.value)
    assert isinstance(info.value, CircuitError)


def test_qasm_file_helpers_and_simulate(tmp_path):
    c = Circuit(2)
    c.h(0).cnot(0, 1).measure(0)
    c.measure(1)
    path = tmp_path / "bell.qasm"
    dump(c, path)
    c2 = load(path)
    assert c2.name == "bell"
    assert simulate_qasm_file(path) == pytest.approx({"00": 0.5, "11": 0.5}, abs=1e-12)
    f1 = simulate_qasm_file(path, shots=1000, seed=3)
    f2 = simulate_qasm_file(path, shots=1000, seed=3)
    assert f1 == f2 and set(f1) <= {"00", "11"} and abs(sum(f1.values()) - 1) < 1e-12

    # no classical bits: the distribution over all qubits, qubit 0 rightmost
    p = tmp_path / "noclbits.qasm"
    p.write_text('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nx q[0];\nry(pi/2) q[2];\n')
    assert simulate_qasm_file(p) == pytest.approx({"001": 0.5, "101": 0.5}, abs=1e-12)

    p = tmp_path / "inputs.qasm"
    p.write_text('OPENQASM 3.0;\ninput float[64] theta;\nqubit[1] q;\nbit[1] c;\nrx(theta) q[0];\n'
                 'c[0] = measure q[0];\n')
    with pytest.raises(InputError, match="must be bound"):
        simulate_qasm_file(p)
    out = simulate_qasm_file(p, bindings={"theta": 2 * math.asin(math.sqrt(0.3))})
    assert out == pytest.approx({"0": 0.7, "1": 0.3}, abs=1e-12)


# ---------------------------------------------------------------------------
# Qiskit

qiskit = pytest.importorskip("qiskit")
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.circuit import Parameter, ParameterVector  # noqa: E402
from qiskit.quantum_info import Statevector  # noqa: E402

from qlstm.interop import from_qiskit, observables_to_sparse_pauli, to_qiskit  # noqa: E402


def _qiskit_state(qc) -> torch.Tensor:
    """Qiskit statevector in qlstm's qubit order."""
    return torch.as_tensor(Statevector(qc).reverse_qargs().data, dtype=torch.complex128)


def test_to_qiskit_bound_matches_statevector():
    c = every_gate_circuit()
    x, w = _data(c, batch=3)
    ours = _state(c, x, w)
    for b in range(x.shape[0]):
        qc = to_qiskit(c, bind_weights=w, bind_inputs=x[b])
        assert not qc.parameters
        theirs = _qiskit_state(qc)
        assert torch.allclose(ours[b], theirs, atol=TOL), (ours[b] - theirs).abs().max()
        # the documented relation, without reverse_qargs
        assert torch.allclose(reverse_qubit_order(ours[b]),
                              torch.as_tensor(Statevector(qc).data), atol=TOL)


def test_to_qiskit_symbolic_parameters_and_observables():
    c = every_gate_circuit()
    qc = to_qiskit(c)
    names = {p.name for p in qc.parameters}
    assert names == {f"w[{i}]" for i in range(8)} | {"x[0]", "x[1]"}
    x, w = _data(c, batch=1)
    values = {p: (float(w[p.index]) if p.vector.name == "w" else float(x[0, p.index])) for p in qc.parameters}
    bound = qc.assign_parameters(values)
    sv = Statevector(bound)
    assert torch.allclose(_state(c, x, w)[0], torch.as_tensor(sv.reverse_qargs().data), atol=TOL)
    ops = observables_to_sparse_pauli(c)
    assert [str(o.paulis[0]) for o in ops] == ["IIZ", "IZI", "ZII", "IXX", "YIZ"]
    theirs = torch.tensor([sv.expectation_value(o).real for o in ops], dtype=torch.float64)
    assert torch.allclose(run(c, x, w).expvals[0], theirs, atol=TOL)


def test_qiskit_round_trip_every_gate():
    c = every_gate_circuit()
    c2, mapping = from_qiskit(to_qiskit(c), return_mapping=True)
    assert mapping["w[3]"] == ("weight", 3) and mapping["x[1]"] == ("input", 1)
    assert (c2.n_inputs, c2.n_weights) == (2, 8)
    x, w = _data(c, batch=5, seed=11)
    assert torch.allclose(_state(c, x, w), _state(c2, x, w), atol=TOL, rtol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_library_templates_match_qiskit():
    from qiskit.circuit.library import EfficientSU2, RealAmplitudes, TwoLocal, efficient_su2, n_local, \
        real_amplitudes

    templates = [
        RealAmplitudes(3, reps=2),
        real_amplitudes(4, reps=1, entanglement="full"),
        EfficientSU2(3, reps=1),
        efficient_su2(3, su2_gates=["rx", "y"], reps=2),
        TwoLocal(3, ["ry", "rz"], "cz", reps=2, entanglement="circular"),
        n_local(3, ["rx", "h"], ["crx"], reps=1),
    ]
    rng = np.random.default_rng(0)
    for qc in templates:
        c, mapping = from_qiskit(qc, return_mapping=True)
        params = list(qc.parameters)
        vals = rng.uniform(-np.pi, np.pi, len(params))
        w = torch.zeros(c.n_weights, dtype=torch.float64)
        for p, v in zip(params, vals):
            kind, i = mapping[p.name]
            assert kind == "weight"
            w[i] = v
        # the natural order of names is Qiskit's parameter order
        assert [mapping[p.name][1] for p in params] == list(range(len(params)))
        theirs = _qiskit_state(qc.assign_parameters(vals))
        assert torch.allclose(_state(c, None, w)[0], theirs, atol=TOL), qc.name


def test_qiskit_exported_qasm_with_functions_reads_back():
    from qiskit import qasm3

    x = ParameterVector("x", 2)
    w = Parameter("w_0")
    theta = Parameter("θ")
    qc = QuantumCircuit(3)
    qc.ry((x[0] ** 2).arctan(), 0)
    qc.ry(x[1].arctan(), 1)
    qc.rz(w * 2 - x[1].exp() + (w ** 2 + 1) ** 0.5 / 3, 1)
    qc.rx(-theta + (1 + x[0] ** 2).log(), 2)
    qc.cx(0, 1)
    qc.rzz(theta * w, 1, 2)
    qc.crx(x[0].sin() * x[1].cos(), 2, 0)
    qc.p(x[0].tan() / 2, 2)
    qc.sxdg(0)
    qc.ch(1, 2)
    text = qasm3.dumps(qc)
    assert "atan(_x_0_**2)" in text or "atan(_x_0_ ** 2)" in text
    c, mapping = loads(text, return_mapping=True)
    assert mapping == {"_x_0_": ("input", 0), "_x_1_": ("input", 1), "w_0": ("weight", 0), "θ": ("weight", 1)}
    xs = np.array([0.3, -0.7])
    ws = np.array([0.9, -1.3])
    bound = qc.assign_parameters({x[0]: xs[0], x[1]: xs[1], w: ws[0], theta: ws[1]})
    ours = _state(c, torch.tensor(xs)[None], torch.tensor(ws))[0]
    _assert_same_up_to_phase(ours, _qiskit_state(bound))  # sxdg's definition carries a global phase
    # the same circuit straight through from_qiskit
    c2, m2 = from_qiskit(qc, return_mapping=True)
    assert m2 == {"x[0]": ("input", 0), "x[1]": ("input", 1), "w_0": ("weight", 0), "θ": ("weight", 1)}
    _assert_same_up_to_phase(_state(c2, torch.tensor(xs)[None], torch.tensor(ws))[0], _qiskit_state(bound))


def test_our_qiskit_export_through_qiskit_qasm3_exporter():
    from qiskit import qasm3

    c = every_gate_circuit()  # Qiskit writes the 2-qubit unitary as a gate definition
    text = qasm3.dumps(to_qiskit(c))
    c2, mapping = loads(text, return_mapping=True)
    assert mapping["_w_2_"] == ("weight", 2) and mapping["_x_0_"] == ("input", 0)
    x, w = _data(c, batch=3, seed=2)
    _assert_same_up_to_phase(_state(c, x, w), _state(c2, x, w))


def dynamic_circuit() -> Circuit:
    c = Circuit(3, name="dynamic")
    w = c.weights(3)
    c.h(0).ry(1, w[0]).cnot(0, 2)
    c.measure(0)
    c.measure(1, reset=True)
    c.x(2, condition=0).rx(1, w[1], condition=0)
    c.ry(0, w[2], condition=(1, 0))
    c.reset(0, condition=1)
    c.h(0)
    c.measure(0, 2)
    c.rz(2, 0.4, condition=((0, 1, 2), 5)).h(2, condition=((0, 1, 2), 5))
    c.ry(1, 0.3, condition=((2, 0), 1))
    c.measure(1, 1)
    c.measure(2, 0)
    return c


def test_dynamic_circuit_round_trips_and_aer():
    from qiskit_aer import AerSimulator

    c = dynamic_circuit()
    w = torch.tensor([0.7, -1.2, 2.1], dtype=torch.float64)
    exact = run(c, None, w).clbit_probs[0]

    # exactly equal through qlstm on both sides of each round trip
    c_q = from_qiskit(to_qiskit(c))
    assert torch.allclose(run(c_q, None, w).clbit_probs[0], exact, atol=TOL)
    c_t = loads(dumps(c))
    assert torch.allclose(run(c_t, None, w).clbit_probs[0], exact, atol=TOL)

    # Aer, with shots, within 5 sigma
    qc = to_qiskit(c, bind_weights=w)
    shots = 20000
    counts = AerSimulator(seed_simulator=1234).run(qc, shots=shots).result().get_counts()
    for i, p in enumerate(exact.tolist()):
        key = format(i, "03b")
        freq = counts.get(key, 0) / shots
        sigma = math.sqrt(max(p * (1 - p), 1e-12) / shots)
        assert abs(freq - p) <= 5 * sigma + 1e-9, (key, freq, p)


def test_qiskit_native_if_else_and_expr_conditions():
    from qiskit.circuit import ClassicalRegister, QuantumRegister
    from qiskit.circuit.classical import expr
    from qiskit_aer import AerSimulator

    q = QuantumRegister(3, "q")
    a = ClassicalRegister(2, "a")
    b = ClassicalRegister(1, "b")
    qc = QuantumCircuit(q, a, b)
    qc.h(0)
    qc.rx(1.1, 1)
    qc.measure(0, a[0])
    qc.measure(1, a[1])
    with qc.if_test((a[0], 1)) as else_:
        qc.x(2)
    with else_:
        qc.ry(0.8, 2)
    with qc.if_test((a, 2)) as else_:
        qc.h(0)
    with else_:
        qc.rz(0.3, 0)
        qc.reset(1)
    qc.measure(2, b[0])
    with qc.if_test(expr.logic_and(expr.lift(a[1]), expr.logic_not(b[0]))):
        qc.x(0)
    with qc.if_test(expr.not_equal(a, 3)):
        qc.h(1)
    qc.barrier()
    qc.delay(10, 0)
    qc.measure([0, 1], [a[0], a[1]])

    c = from_qiskit(qc)
    exact = run(c).clbit_probs[0]
    shots = 20000
    counts = AerSimulator(seed_simulator=99).run(qc, shots=shots).result().get_counts()
    flat = {}
    for key, n in counts.items():
        flat[key.replace(" ", "")] = flat.get(key.replace(" ", ""), 0) + n
    for i, p in enumerate(exact.tolist()):
        freq = flat.get(format(i, "03b"), 0) / shots
        sigma = math.sqrt(max(p * (1 - p), 1e-12) / shots)
        assert abs(freq - p) <= 5 * sigma + 1e-9
    # Qiskit's own OpenQASM 3 text of the same circuit (if (a[0]) / else, a == 2, &&, !, !=)
    from qiskit import qasm3

    assert torch.allclose(run(loads(qasm3.dumps(qc))).clbit_probs[0], exact, atol=TOL)
    # and back out through qlstm's exporters
    assert torch.allclose(run(from_qiskit(to_qiskit(c))).clbit_probs[0], exact, atol=TOL)
    assert torch.allclose(run(loads(dumps(c))).clbit_probs[0], exact, atol=TOL)


def test_amplitude_encoding_to_qiskit():
    c = Circuit(3)
    c.amplitude_encoding(6, (2, 0, 1))
    c.cnot(0, 1)
    x = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(CircuitError, match="bind_inputs"):
        to_qiskit(c)
    qc = to_qiskit(c, bind_inputs=x[0])
    _assert_same_up_to_phase(_state(c, x), _qiskit_state(qc))
    c2 = from_qiskit(qc)  # StatePreparation decomposes to basic gates
    _assert_same_up_to_phase(_state(c, x), _state(c2))


def test_noise_channels_to_aer():
    pytest.importorskip("qiskit_aer")
    from qiskit_aer import AerSimulator

    c = Circuit(2)
    c.h(0).cnot(0, 1).ry(1, 0.3)
    c.channel("depolarizing", 0, 0.2).channel("bit_flip", 1, 0.1).channel("phase_flip", 0, 0.15)
    c.channel("bit_phase_flip", 1, 0.05).channel("amplitude_damping", 0, 0.3).channel("phase_damping", 1, 0.25)
    k = 0.4
    xz = torch.kron(torch.tensor([[0, 1], [1, 0]], dtype=torch.complex128),
                    torch.tensor([[1, 0], [0, -1]], dtype=torch.complex128))
    c.kraus([math.sqrt(1 - k) * torch.eye(4, dtype=torch.complex128), math.sqrt(k) * xz], (0, 1))
    c.h(1)
    c.kraus([torch.tensor([[1, 0], [0, math.sqrt(0.5)]]), torch.tensor([[0, math.sqrt(0.5)], [0, 0]])], 1)
    rho = run(c, return_state=True).state[0]
    qc = to_qiskit(c)
    qc.save_density_matrix()
    res = AerSimulator(method="density_matrix").run(qc).result()
    theirs = np.asarray(res.data()["density_matrix"])
    # reverse the qubit order of both indices
    n = 2
    t = theirs.reshape([2] * (2 * n)).transpose(list(range(n))[::-1] + list(range(n, 2 * n))[::-1])
    assert np.allclose(rho.numpy(), t.reshape(4, 4), atol=1e-10)
    # and back: Aer noise instructions become Kraus channels
    c2 = from_qiskit(to_qiskit(c))
    assert torch.allclose(run(c2, return_state=True).state[0], rho, atol=1e-10)


def test_from_qiskit_mapping_options_and_errors():
    a, b, cc = Parameter("alpha"), Parameter("b[10]"), Parameter("b[2]")
    odd = Parameter("my angle")
    qc = QuantumCircuit(1)
    qc.rx(a + b, 0)
    qc.ry(cc * odd, 0)
    _, m = from_qiskit(qc, return_mapping=True)
    assert m == {"alpha": ("weight", 0), "b[2]": ("weight", 1), "b[10]": ("weight", 2), "my angle": ("weight", 3)}
    c, m = from_qiskit(qc, input_params=["my angle", "alpha"], return_mapping=True)
    assert m["my angle"] == ("input", 0) and m["alpha"] == ("input", 1) and m["b[2]"] == ("weight", 0)
    x = torch.tensor([[0.3, 0.5]], dtype=torch.float64)
    w = torch.tensor([0.7, -0.2], dtype=torch.float64)
    bound = qc.assign_parameters({odd: 0.3, a: 0.5, cc: 0.7, b: -0.2})
    assert torch.allclose(_state(c, x, w)[0], _qiskit_state(bound), atol=TOL)
    c3 = from_qiskit(qc, input_params=["my angle", "alpha", "unused"])
    assert c3.n_inputs == 3
    _, m = from_qiskit(qc, weight_params=["my angle", "b[10]", "b[2]", "alpha"], return_mapping=True)
    assert m["my angle"] == ("weight", 0) and m["alpha"] == ("weight", 3)

    clash = QuantumCircuit(1)
    clash.rx(Parameter("w_0") + Parameter("w[0]"), 0)
    with pytest.raises(CircuitError, match="both map to weight 0"):
        from_qiskit(clash)

    from qiskit.circuit import Gate as QGate

    opaque = QuantumCircuit(2)
    opaque.append(QGate("mystery", 2, [Parameter("t")]), [0, 1])
    with pytest.raises(CircuitError, match="'mystery'"):
        from_qiskit(opaque)

    loop = QuantumCircuit(1, 1)
    with loop.for_loop(range(2)):
        loop.x(0)
    with pytest.raises(CircuitError, match="'for_loop'"):
        from_qiskit(loop)

    cond_measure = QuantumCircuit(1, 1)
    cond_measure.measure(0, 0)
    with cond_measure.if_test((cond_measure.clbits[0], 1)):
        cond_measure.measure(0, 0)
    with pytest.raises(CircuitError, match="measurement inside an if_test"):
        from_qiskit(cond_measure)

    nonreal = QuantumCircuit(1)
    nonreal.rx(Parameter("t").sign(), 0)
    with pytest.raises(CircuitError, match="sign"):
        from_qiskit(nonreal)


def test_qasm_definition_of_a_standard_name_is_honoured():
    base = "OPENQASM 3.0;\nqubit[2] q;\ninput float[64] w_0;\n"
    call = "h q[0];\nrzz(w_0) q[0], q[1];\n"
    same = base + "gate rzz(t) a, b { cx a, b; rz(t) b; cx a, b; }\n" + call
    other = base + "gate rzz(t) a, b { cx a, b; rz(2 * t) b; cx a, b; }\n" + call
    c_same, c_other = loads(same), loads(other)
    assert [g.name for g in c_same.ops] == ["h", "isingzz"]  # recognised as the built-in
    assert [g.name for g in c_other.ops] == ["h", "cnot", "rz", "cnot"]  # a different gate: expanded
    ref = Circuit(2)
    ref.h(0).isingzz(0, 1, 2 * ref.weights(1)[0])
    w = torch.tensor([0.83], dtype=torch.float64)
    assert torch.allclose(_state(c_other, None, w), _state(ref, None, w), atol=TOL)


def test_qasm_output_reads_in_qiskit_importer():
    """Where qiskit_qasm3_import is installed: Qiskit reads what dumps writes (bound angles)."""
    pytest.importorskip("qiskit_qasm3_import")
    from qiskit import qasm3

    c = every_gate_circuit(multi_qubit_unitary=False)
    x, w = _data(c, batch=1)
    qc = qasm3.loads(dumps(c, bind_weights=w, bind_inputs=x[0]))
    _assert_same_up_to_phase(_state(c, x, w)[0], _qiskit_state(qc))
    d = dynamic_circuit()
    wd = torch.tensor([0.7, -1.2, 2.1], dtype=torch.float64)
    qd = qasm3.loads(dumps(d, bind_weights=wd))
    assert torch.allclose(run(from_qiskit(qd)).clbit_probs, run(d, None, wd).clbit_probs, atol=TOL)
