"""QCNN two-qubit modules (Hur, Kim & Park 2022) and the tree builder.

Each module's unitary is compared with an independent Qiskit construction of
the same gate sequence, written out here gate by gate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlstm.circuit import Circuit, run
from qlstm.circuit.templates import PAPER_CHOICE, PAPER_MODULES, TWO_QUBIT_MODULES, module, module_circuit, qcnn_tree
from qlstm.circuit.templates.qcnn import POOL_PARAMS, tree_levels
from qlstm.errors import CircuitError

@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def haar_unitary(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    q, r = np.linalg.qr(a)
    return q * (np.diag(r) / np.abs(np.diag(r)))


PARAM_COUNTS = {"U_TTN": 2, "U_5": 10, "U_6": 10, "U_9": 2, "U_13": 6, "U_14": 6, "U_15": 4, "U_SO4": 6,
                "U_SU4": 15}


def qiskit_module(name: str, p) -> np.ndarray:
    """The module on qubits (a, b) = (0, 1), built in Qiskit from the paper's gate list;
    returned as a matrix in qlstm's order (wire 0 most significant)."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Operator

    qc = QuantumCircuit(2)
    a, b = 0, 1
    if name == "U_TTN":
        qc.ry(p[0], a); qc.ry(p[1], b); qc.cx(a, b)  # noqa: E702
    elif name in ("U_5", "U_6"):
        crot = qc.crz if name == "U_5" else qc.crx
        qc.rx(p[0], a); qc.rx(p[1], b); qc.rz(p[2], a); qc.rz(p[3], b)  # noqa: E702
        crot(p[4], b, a); crot(p[5], a, b)  # noqa: E702
        qc.rx(p[6], a); qc.rx(p[7], b); qc.rz(p[8], a); qc.rz(p[9], b)  # noqa: E702
    elif name == "U_9":
        qc.h(a); qc.h(b); qc.cz(a, b); qc.rx(p[0], a); qc.rx(p[1], b)  # noqa: E702
    elif name in ("U_13", "U_14"):
        crot = qc.crz if name == "U_13" else qc.crx
        qc.ry(p[0], a); qc.ry(p[1], b); crot(p[2], b, a)  # noqa: E702
        qc.ry(p[3], a); qc.ry(p[4], b); crot(p[5], a, b)  # noqa: E702
    elif name == "U_15":
        qc.ry(p[0], a); qc.ry(p[1], b); qc.cx(b, a); qc.ry(p[2], a); qc.ry(p[3], b); qc.cx(a, b)  # noqa: E702
    elif name == "U_SO4":
        qc.ry(p[0], a); qc.ry(p[1], b); qc.cx(a, b)  # noqa: E702
        qc.ry(p[2], a); qc.ry(p[3], b); qc.cx(a, b)  # noqa: E702
        qc.ry(p[4], a); qc.ry(p[5], b)  # noqa: E702
    elif name == "U_SU4":
        qc.u(p[0], p[1], p[2], a); qc.u(p[3], p[4], p[5], b)  # noqa: E702
        qc.cx(a, b); qc.ry(p[6], a); qc.rz(p[7], b); qc.cx(b, a); qc.ry(p[8], a); qc.cx(a, b)  # noqa: E702
        qc.u(p[9], p[10], p[11], a); qc.u(p[12], p[13], p[14], b)  # noqa: E702
    else:  # pragma: no cover
        raise KeyError(name)
    return Operator(qc.reverse_bits()).data


def qlstm_unitary(c: Circuit, weights) -> np.ndarray:
    """Columns = final states from the basis states (prepared with X gates in front)."""
    n = c.n_qubits
    cols = []
    for k in range(2**n):
        prep = Circuit(n)
        for q in range(n):
            if (k >> (n - 1 - q)) & 1:
                prep.x(q)
        prep.compose(c)
        cols.append(run(prep, None, torch.as_tensor(weights, dtype=torch.float64), return_state=True,
                        dtype=torch.float64).state[0].numpy())
    return np.stack(cols, axis=1)


def test_parameter_counts():
    assert {k: m.n_params for k, m in TWO_QUBIT_MODULES.items()} == PARAM_COUNTS
    for name, k in PARAM_COUNTS.items():
        assert module_circuit(name).n_weights == k


@pytest.mark.parametrize("name", list(PARAM_COUNTS))
def test_module_matches_independent_qiskit_construction(name, rng):
    pytest.importorskip("qiskit")
    p = rng.uniform(-math.pi, math.pi, PARAM_COUNTS[name])
    ours = qlstm_unitary(module_circuit(name), p)
    ref = qiskit_module(name, p)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_module_lookup_aliases_and_errors():
    assert module("so4") is TWO_QUBIT_MODULES["U_SO4"]
    assert module("SO(4)") is TWO_QUBIT_MODULES["U_SO4"]
    assert module("TTN").name == "U_TTN" and module("u_15").name == "U_15" and module("15").name == "U_15"
    with pytest.raises(CircuitError, match="unknown two-qubit module"):
        module("U_7")
    c = Circuit(2)
    with pytest.raises(CircuitError, match="takes 6 parameters"):
        module("U_SO4")(c, (0, 1), c.weights(5))
    with pytest.raises(CircuitError, match="two wires"):
        module("U_SO4")(Circuit(3), (0, 1, 2), [0.0] * 6)


def test_module_on_other_wires_and_expressions():
    # a module applies to any pair, with any expressions as angles
    c = Circuit(3)
    w = c.weights(1)
    module("U_TTN")(c, (2, 0), [w[0] * 2, 0.5])
    assert [(op.name, op.wires) for op in c.ops] == [("ry", (2,)), ("ry", (0,)), ("cnot", (2, 0))]
    assert c.ops[0].params[0].to_str() == "w_0 * 2"


def test_so4_is_real_orthogonal(rng):
    for _ in range(5):
        u = qlstm_unitary(module_circuit("U_SO4"), rng.uniform(-math.pi, math.pi, 6))
        np.testing.assert_allclose(u.imag, 0, atol=1e-12)
        np.testing.assert_allclose(u.real.T @ u.real, np.eye(4), atol=1e-12)
        assert np.linalg.det(u.real) == pytest.approx(1.0, abs=1e-10)


def test_su4_reaches_a_random_unitary(rng):
    """Fit the 15 angles of U_SU4 to a Haar-random two-qubit unitary: fidelity > 0.99."""
    target = torch.as_tensor(haar_unitary(4, rng), dtype=torch.complex128)
    best = 0.0
    gen = torch.Generator().manual_seed(5)
    for _ in range(4):  # a few random starts
        w = (torch.rand(15, generator=gen, dtype=torch.float64) * 2 * math.pi).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=0.1)
        for _ in range(400):
            cols = []
            for k in range(4):
                prep = _basis_prep(k)
                cols.append(run(prep, None, w, return_state=True, dtype=torch.float64).state[0])
            u = torch.stack(cols, dim=1)
            fid = (torch.trace(target.conj().T @ u).abs() / 4) ** 2
            loss = 1 - fid
            opt.zero_grad()
            loss.backward()
            opt.step()
            if fid.item() > 0.999:
                break
        best = max(best, fid.item())
        if best > 0.99:
            break
    assert best > 0.99


_PREPS: dict = {}


def _basis_prep(k: int) -> Circuit:
    if k not in _PREPS:
        c = Circuit(2)
        if k & 2:
            c.x(0)
        if k & 1:
            c.x(1)
        c.compose(module_circuit("U_SU4"))
        _PREPS[k] = c
    return _PREPS[k]


# ---------------------------------------------------------------------------
# the tree


@pytest.mark.parametrize("n,per_level", [(2, [1]), (4, [2, 1]), (8, [4, 2, 1]), (16, [8, 4, 2, 1])])
def test_tree_structure(n, per_level):
    levels = tree_levels(n)
    assert [len(p) for p in levels] == per_level
    # the second qubit of each pair goes on; the last one is read out
    for prev, nxt in zip(levels, levels[1:]):
        kept = [b for _, b in prev]
        assert [q for pair in nxt for q in pair] == kept
    c = qcnn_tree(n, "U_TTN", encoding=None)
    cnots = [op.wires for op in c.ops if op.name == "cnot"]
    assert len(cnots) == n - 1  # one module per pair, U_TTN has one CNOT
    assert cnots == [pair for lv in levels for pair in lv]
    assert [o.wires for o in c.observables] == [(n - 1,)]
    assert c.n_weights == 2 * (n - 1)


def test_tree_weight_counts_layers_and_sharing():
    assert qcnn_tree(4, "U_SO4", encoding=None).n_weights == 3 * 6
    assert qcnn_tree(4, "U_SO4", layers_per_level=2, encoding=None).n_weights == 2 * 3 * 6
    assert qcnn_tree(8, "U_SU4", layers_per_level=3, encoding=None).n_weights == 3 * 7 * 15
    # shared: one set per (level, layer)
    assert qcnn_tree(8, "U_SO4", share_weights=True, encoding=None).n_weights == 3 * 6
    assert qcnn_tree(8, "U_SO4", pool="measure", share_weights=True, encoding=None).n_weights == 3 * 6 + 3 * 2
    assert qcnn_tree(8, "U_SO4", pool="measure", encoding=None).n_weights == 7 * 6 + 7 * POOL_PARAMS["measure"]
    c = qcnn_tree(4, "U_9", layers_per_level=2, encoding=None)
    assert sum(op.name == "cz" for op in c.ops) == 2 * 3


def test_tree_encodings():
    amp = qcnn_tree(4, encoding="amplitude")
    assert amp.n_inputs == 16 and type(amp.ops[0]).__name__ == "AmplitudeEncoding"
    ang = qcnn_tree(4, encoding="angle")
    assert ang.n_inputs == 4 and [op.name for op in ang.ops[:4]] == ["ry"] * 4
    assert qcnn_tree(4, encoding=None).n_inputs == 0
    x = torch.rand(3, 16, dtype=torch.float64) + 0.1
    w = torch.rand(amp.n_weights, dtype=torch.float64)
    assert run(amp, x, w).expvals.shape == (3, 1)


@pytest.mark.parametrize("bad", [0, 1, 3, 6, 12, 2.0, True])
def test_tree_needs_power_of_two(bad):
    with pytest.raises(CircuitError, match="power-of-two"):
        qcnn_tree(bad)


def test_tree_argument_errors():
    with pytest.raises(CircuitError, match="unknown pooling"):
        qcnn_tree(4, pool="max")
    with pytest.raises(CircuitError, match="unknown encoding"):
        qcnn_tree(4, encoding="basis")
    with pytest.raises(CircuitError, match="layers_per_level"):
        qcnn_tree(4, layers_per_level=0)
    with pytest.raises(CircuitError, match="unknown two-qubit module"):
        qcnn_tree(4, module="U_99")


@pytest.mark.parametrize("mod", ["U_SO4", "U_TTN", "U_13"])
def test_measure_pooling_with_zero_angles_equals_discard(mod, gen):
    """Measuring a qubit that is never used again does not change the others' reduced state."""
    disc = qcnn_tree(4, mod, encoding="angle")
    meas = qcnn_tree(4, mod, pool="measure", encoding="angle")
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    wd = torch.rand(disc.n_weights, generator=gen, dtype=torch.float64) * 6
    # measure-pool weights: the module weights of each level, then 2 zero pooling angles
    k = module(mod).n_params
    parts, pos = [], 0
    for pairs in tree_levels(4):
        parts.append(wd[pos: pos + k * len(pairs)])
        pos += k * len(pairs)
        parts.append(torch.zeros(2 * len(pairs), dtype=torch.float64))
    wm = torch.cat(parts)
    assert wm.numel() == meas.n_weights
    torch.testing.assert_close(run(meas, x, wm).expvals, run(disc, x, wd).expvals, atol=1e-12, rtol=0)
    # with nonzero pooling angles they differ
    wm2 = wm.clone()
    wm2[k * 2: k * 2 + 4] = torch.tensor([0.7, 1.3, -0.4, 2.0], dtype=torch.float64)
    assert (run(meas, x, wm2).expvals - run(disc, x, wd).expvals).abs().max() > 1e-3


def test_measure_pooling_equals_controlled_pooling(gen):
    """Deferred measurement: measure + classically conditioned rotation == controlled rotation."""
    meas = qcnn_tree(8, "U_15", pool="measure", encoding="angle")
    ctrl = qcnn_tree(8, "U_15", pool="controlled", encoding="angle")
    assert meas.n_weights == ctrl.n_weights
    x = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    w = torch.rand(meas.n_weights, generator=gen, dtype=torch.float64) * 6
    torch.testing.assert_close(run(meas, x, w).expvals, run(ctrl, x, w).expvals, atol=1e-12, rtol=0)
    assert sum(type(op).__name__ == "Measure" for op in meas.ops) == 7
    assert sum(op.condition is not None for op in meas.ops if hasattr(op, "condition")) == 14


def test_tree_matches_pennylane_hierarchical(gen):
    """The 8-qubit tree equals a PennyLane build of Hur et al.'s hierarchical classifier (U_SO4)."""
    qml = pytest.importorskip("pennylane")
    c = qcnn_tree(8, "U_SO4", encoding="angle")
    x = torch.randn(8, generator=gen, dtype=torch.float64)
    w = torch.rand(c.n_weights, generator=gen, dtype=torch.float64) * 6

    def so4(p, a, b):
        qml.RY(p[0], wires=a); qml.RY(p[1], wires=b); qml.CNOT(wires=[a, b])  # noqa: E702
        qml.RY(p[2], wires=a); qml.RY(p[3], wires=b); qml.CNOT(wires=[a, b])  # noqa: E702
        qml.RY(p[4], wires=a); qml.RY(p[5], wires=b)  # noqa: E702

    dev = qml.device("default.qubit", wires=8)

    @qml.qnode(dev)
    def tree(xv, wv):
        for i in range(8):
            qml.RY(xv[i], wires=i)
        pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (1, 3), (5, 7), (3, 7)]
        for k, (a, b) in enumerate(pairs):
            so4(wv[6 * k: 6 * k + 6], a, b)
        return qml.expval(qml.PauliZ(7))

    ref = float(tree(x.numpy(), w.numpy()))
    assert run(c, x[None], w).expvals.item() == pytest.approx(ref, abs=1e-10)


def test_paper_modules_table():
    assert set(PAPER_MODULES) == set("abcdef")
    assert len(set(PAPER_MODULES.values())) == 6
    assert all(v in TWO_QUBIT_MODULES for v in PAPER_MODULES.values())
    # the inference: the six modules of Hur et al.'s catalogue with at most six parameters, in catalogue order
    light = [k for k, m in TWO_QUBIT_MODULES.items() if m.n_params <= 6]
    assert list(PAPER_MODULES.values()) == light
    assert PAPER_MODULES[PAPER_CHOICE] == "U_13"
    assert qcnn_tree(4, PAPER_MODULES[PAPER_CHOICE], layers_per_level=2).n_weights == 2 * 3 * 6
