"""Random circuits against PennyLane and Qiskit Aer, and the simulator's methods against each other.

References:

* PennyLane ``default.qubit`` (pure circuits, and mid-circuit measurements with
  ``qml.measure`` / ``qml.cond``, deferred) and ``default.mixed`` (noise);
* Qiskit Aer ``statevector`` (pure circuits) and ``density_matrix``. For exact
  classical distributions the circuit is converted with the deferred-measurement
  principle (every measurement copies its wire onto a fresh ancilla with a CNOT,
  conditions become controls on those ancillas, conditioned resets/channels
  become controlled Kraus maps), so one Aer density-matrix run gives the exact
  joint state of the wires and the classical record;
* Aer with real dynamic circuits (measure / ``if_test`` / reset) and many shots
  as a statistical check.

qlstm wire ``w`` is Qiskit qubit ``N - 1 - w`` (qlstm's wire 0 is the most
significant bit); with that mapping Aer's matrices are directly in qlstm's order.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pytest
import torch

qml = pytest.importorskip("pennylane")
pytest.importorskip("qiskit")
pytest.importorskip("qiskit_aer")

from qiskit import QuantumCircuit, transpile  # noqa: E402
from qiskit.circuit.library import StatePreparation, UnitaryGate  # noqa: E402
from qiskit.quantum_info import Kraus  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402

from conftest import (  # noqa: E402
    eval_params,
    pauli_string_matrix,
    pennylane_channel,
    pennylane_op,
    qiskit_error,
    qiskit_gate,
    random_unitary,
    sigma_tol,
)
from qlstm import Circuit, CircuitError, InputError, compile_program, run  # noqa: E402
from qlstm.circuit import expr as E  # noqa: E402
from qlstm.circuit.ops import AmplitudeEncoding, Channel, Gate, Measure, Reset  # noqa: E402
from qlstm.sim.channels import CHANNELS  # noqa: E402
from qlstm.sim.gates import GATES  # noqa: E402

GATE_NAMES = sorted({spec.name for spec in GATES.values()}) + ["unitary"]
CHANNEL_NAMES = sorted(CHANNELS)
F64 = torch.float64


# ---------------------------------------------------------------------------
# random circuits


def _random_angle(rng, x, w):
    """A random angle expression over inputs ``x`` and weights ``w`` (or a constant)."""
    i, j = int(rng.integers(len(w))), int(rng.integers(len(x)))
    kind = int(rng.integers(8))
    if kind == 0:
        return float(rng.uniform(-math.pi, math.pi))
    if kind == 1:
        return w[i]
    if kind == 2:
        return x[j]
    if kind == 3:
        return x[j].atan() * 2 + w[i]
    if kind == 4:
        return E.sin(x[j]) * w[i] - 0.3
    if kind == 5:
        return E.atan(x[j] ** 2) + E.cos(w[i]) / 2
    if kind == 6:
        return E.sqrt(x[j] ** 2 + 1) * w[i] + E.ln(E.exp(w[(i + 1) % len(w)]) + 1)
    return 1.7 * w[i] - x[j]


def _random_condition(rng, c):
    if c.n_clbits == 0 or rng.random() < 0.5:
        return None
    if c.n_clbits == 1 or rng.random() < 0.5:
        return int(rng.integers(c.n_clbits))
    k = int(rng.integers(2, min(3, c.n_clbits) + 1))
    bits = tuple(int(b) for b in rng.permutation(c.n_clbits)[:k])
    return bits, int(rng.integers(2**k))


def _random_kraus(rng, d):
    m = int(rng.integers(1, 4))
    v = random_unitary(m * d, rng)[:, :d]
    return [v[j * d:(j + 1) * d] for j in range(m)]


def random_circuit(rng, n, n_ops, *, noise=False, mcm=False, cond_reset=False, cond_channel=False,
                   n_inputs=3, n_weights=5, n_obs=4, max_meas=3):
    """A seeded random circuit; every gate in the set can appear, angles depend on x and w.

    ``mcm`` adds mid-circuit measurements (with and without reset), resets and conditioned
    gates; ``cond_reset`` / ``cond_channel`` also condition resets / noise on measured bits.
    At most ``max_meas`` mid-circuit measurements (plus one terminal one) keep the
    deferred-measurement references small.
    """
    c = Circuit(n)
    x = c.inputs(n_inputs)
    w = c.weights(n_weights)
    names = [g for g in GATE_NAMES if g == "unitary" or GATES[g].num_wires <= n]
    for step in range(n_ops):
        r = rng.random()
        n_meas = sum(isinstance(op, Measure) for op in c.ops)
        if mcm and n_meas < max_meas and (r < 0.15 or (step == n_ops // 3 and n_meas == 0)):
            clbit = None if (c.n_clbits == 0 or rng.random() < 0.7) else int(rng.integers(c.n_clbits))
            c.measure(int(rng.integers(n)), clbit, reset=bool(rng.random() < 0.4))
        elif mcm and r < 0.22:
            cond = _random_condition(rng, c) if cond_reset else None
            c.reset(int(rng.integers(n)), condition=cond)
        elif noise and r < 0.35:
            cond = _random_condition(rng, c) if cond_channel else None
            if rng.random() < 0.25:
                k = 1 if n == 1 or rng.random() < 0.5 else 2
                wires = tuple(int(v) for v in rng.permutation(n)[:k])
                c.kraus(_random_kraus(rng, 2**k), wires, condition=cond)
            else:
                name = CHANNEL_NAMES[int(rng.integers(len(CHANNEL_NAMES)))]
                c.channel(name, int(rng.integers(n)), float(rng.uniform(0, 1)), condition=cond)
        else:
            name = names[int(rng.integers(len(names)))]
            cond = _random_condition(rng, c) if mcm else None
            if name == "unitary":
                k = int(rng.integers(1, min(2, n) + 1))
                wires = tuple(int(v) for v in rng.permutation(n)[:k])
                c.unitary(random_unitary(2**k, rng), wires, condition=cond)
            else:
                spec = GATES[name]
                wires = tuple(int(v) for v in rng.permutation(n)[: spec.num_wires])
                params = [_random_angle(rng, x, w) for _ in range(spec.num_params)]
                c.gate(name, wires, *params, condition=cond)
    if mcm:  # terminal measurements, read off the final state
        n_meas = sum(isinstance(op, Measure) for op in c.ops)
        for q in rng.permutation(n)[: min(int(rng.integers(0, 3)), max_meas + 1 - n_meas)]:
            c.measure(int(q))
    for _ in range(n_obs):
        k = int(rng.integers(1, n + 1))
        wires = tuple(int(v) for v in rng.permutation(n)[:k])
        c.expval("".join("IXYZ"[int(v)] for v in rng.integers(0 if k > 1 else 1, 4, size=k)), wires)
    inputs = torch.tensor(rng.normal(size=(3, n_inputs)), dtype=F64)
    weights = torch.tensor(rng.uniform(-math.pi, math.pi, size=n_weights), dtype=F64)
    return c, inputs, weights


# ---------------------------------------------------------------------------
# PennyLane reference (native mid-circuit measurements, deferred)


def _pl_condition(cond, mcms):
    """(MeasurementValue expression or None, static truth value when no measured bit is read)."""
    terms = []
    for i, b in enumerate(cond.clbits):
        want = (cond.value >> i) & 1
        if b in mcms:
            terms.append(mcms[b] == want)
        elif want:  # a bit never measured reads 0
            return None, False
    if not terms:
        return None, True
    return reduce(lambda a, b: a & b, terms), None


def pl_reference(c, xrow, w, *, mixed: bool):
    """Expvals, classical distribution and final density matrix of ``c`` from PennyLane."""
    n = c.n_qubits
    observables = [reduce(lambda a, b: a @ b, [pennylane_op({"X": "x", "Y": "y", "Z": "z", "I": "i"}[p], [q], [])
                                               for p, q in zip(o.paulis, o.wires)]) for o in c.observables]

    def body():
        mcms = {}
        for op in c.ops:
            cond = getattr(op, "condition", None)
            if isinstance(op, Gate):
                params = eval_params(op, xrow, w)
                if op.name == "unitary":
                    def make(op=op):
                        return qml.QubitUnitary(op.matrix.numpy(), wires=list(op.wires))
                else:
                    def make(op=op, params=params):
                        return pennylane_op(op.name, op.wires, params)
                if cond is None:
                    make()
                else:
                    expr, static = _pl_condition(cond, mcms)
                    if expr is not None:
                        qml.cond(expr, make)()
                    elif static:
                        make()
            elif isinstance(op, AmplitudeEncoding):
                feats = np.array([float(xrow[i]) for i in op.inputs])
                qml.AmplitudeEmbedding(feats, wires=list(op.wires), normalize=True, pad_with=0.0)
            elif isinstance(op, Measure):
                mcms[op.clbit] = qml.measure(op.wire, reset=op.reset)
            elif isinstance(op, Reset):
                assert cond is None, "PennyLane has no conditioned reset; use the Aer reference"
                qml.measure(op.wire, reset=True)
            elif isinstance(op, Channel):
                assert cond is None, "conditioned channels: use the Aer reference"
                if op.name == "kraus":
                    qml.QubitChannel(list(op.kraus.numpy()), wires=list(op.wires))
                else:
                    pennylane_channel(op.name, op.p, op.wires[0])
        return mcms

    dev = qml.device("default.mixed" if mixed else "default.qubit")

    @qml.qnode(dev, **({} if mixed else {"mcm_method": "deferred"}))
    def qnode():
        mcms = body()
        clbits = sorted(mcms)
        out = [qml.expval(o) for o in observables] + [qml.density_matrix(wires=list(range(n)))]
        if clbits:
            out.append(qml.probs(op=[mcms[b] for b in clbits]))
        return out

    res = qnode()
    ev = np.array([float(v) for v in res[: len(observables)]])
    rho = np.asarray(res[len(observables)])
    probs = None
    if c.n_clbits:
        mcm_probs = np.asarray(res[len(observables) + 1])
        clbits = sorted({op.clbit for op in c.ops if isinstance(op, Measure)})
        probs = np.zeros(2**c.n_clbits)
        for j, pj in enumerate(mcm_probs):  # the first listed measurement is the most significant bit
            idx = sum(((j >> (len(clbits) - 1 - t)) & 1) << b for t, b in enumerate(clbits))
            probs[idx] += pj
    return ev, probs, rho


# ---------------------------------------------------------------------------
# Qiskit Aer references


def _qiskit_gate_and_qargs(op, params, qubit):
    """(Qiskit gate, qargs) for a qlstm Gate; ``qubit(w)`` maps a qlstm wire to a Qiskit qubit."""
    if op.name == "unitary":  # qlstm's first wire is the matrix's most significant bit
        return UnitaryGate(op.matrix.numpy()), [qubit(q) for q in reversed(op.wires)]
    return qiskit_gate(op.name, params), [qubit(q) for q in op.wires]


def qiskit_deferred(c, xrow, w):
    """Deferred-measurement Qiskit circuit; returns (circuit, total wires, {clbit: ancilla wire})."""
    n = c.n_qubits
    n_anc = sum(isinstance(op, Measure) for op in c.ops)
    big = n + n_anc
    qc = QuantumCircuit(big)

    def qubit(q):
        return big - 1 - q

    latest: dict[int, int] = {}
    next_anc = n

    def controls(cond):
        """[(ancilla wire, wanted bit)], or None when the condition can never hold."""
        if cond is None:
            return []
        out = []
        for i, b in enumerate(cond.clbits):
            want = (cond.value >> i) & 1
            if b in latest:
                out.append((latest[b], want))
            elif want:
                return None
        return out

    def append_kraus(kraus, wires, ctl):
        if ctl:
            k = len(ctl)
            proj = np.zeros((2**k, 2**k))
            proj[sum(bit << (k - 1 - t) for t, (_, bit) in enumerate(ctl)),
                 sum(bit << (k - 1 - t) for t, (_, bit) in enumerate(ctl))] = 1
            d = kraus[0].shape[0]
            kraus = [np.kron(proj, kk) for kk in kraus] + [np.kron(np.eye(2**k) - proj, np.eye(d))]
            wires = [a for a, _ in ctl] + list(wires)
        qc.append(Kraus(list(kraus)).to_instruction(), [qubit(q) for q in reversed(wires)])

    for op in c.ops:
        cond = getattr(op, "condition", None)
        ctl = controls(cond)
        if ctl is None:
            continue
        if isinstance(op, Gate):
            gate, qargs = _qiskit_gate_and_qargs(op, eval_params(op, xrow, w), qubit)
            if ctl:
                state = sum(bit << t for t, (_, bit) in enumerate(ctl))
                gate = gate.control(len(ctl), ctrl_state=state, annotated=False)
                qargs = [qubit(a) for a, _ in ctl] + qargs
            qc.append(gate, qargs)
        elif isinstance(op, AmplitudeEncoding):
            a = np.array([float(xrow[i]) for i in op.inputs])
            a = np.concatenate([a, np.zeros(2 ** len(op.wires) - len(a))]) / np.linalg.norm(a)
            qc.append(StatePreparation(a), [qubit(q) for q in reversed(op.wires)])
        elif isinstance(op, Measure):
            anc = next_anc
            next_anc += 1
            qc.cx(qubit(op.wire), qubit(anc))
            if op.reset:
                qc.cx(qubit(anc), qubit(op.wire))
            latest[op.clbit] = anc
        elif isinstance(op, Reset):
            append_kraus([np.array([[1, 0], [0, 0]]), np.array([[0, 1], [0, 0]])], [op.wire], ctl)
        elif isinstance(op, Channel):
            if op.name == "kraus":
                append_kraus(list(op.kraus.numpy()), op.wires, ctl)
            elif ctl:
                append_kraus(Kraus(qiskit_error(op.name, op.p).to_quantumchannel()).data, op.wires, ctl)
            else:
                qc.append(qiskit_error(op.name, op.p), [qubit(op.wires[0])])
    return qc, big, latest


_AER_DM = None
_AER_SV = None


def aer_density_reference(c, xrow, w):
    """Exact (expvals, clbit distribution, reduced density matrix) from one Aer density-matrix run."""
    global _AER_DM
    _AER_DM = _AER_DM or AerSimulator(method="density_matrix")
    qc, big, latest = qiskit_deferred(c, xrow, w)
    qc.save_density_matrix()
    res = _AER_DM.run(transpile(qc, _AER_DM, optimization_level=0), shots=1, seed_simulator=1).result()
    full = np.asarray(res.data()["density_matrix"])
    n, na = c.n_qubits, big - c.n_qubits
    r4 = full.reshape(2**n, 2**na, 2**n, 2**na)
    rho = np.einsum("iaja->ij", r4)
    probs = None
    if c.n_clbits:
        anc_probs = np.einsum("iaia->a", r4).real  # ancilla n is the most significant bit
        probs = np.zeros(2**c.n_clbits)
        for a, pa in enumerate(anc_probs):
            idx = sum(((a >> (na - 1 - (anc - n))) & 1) << b for b, anc in latest.items())
            probs[idx] += pa
    ev = np.array([np.trace(pauli_string_matrix(o.paulis, o.wires, n) @ rho).real for o in c.observables])
    return ev, probs, rho


def aer_statevector(c, xrow, w):
    global _AER_SV
    _AER_SV = _AER_SV or AerSimulator(method="statevector")
    qc, big, _ = qiskit_deferred(c, xrow, w)
    assert big == c.n_qubits
    qc.save_statevector()
    res = _AER_SV.run(transpile(qc, _AER_SV, optimization_level=0), shots=1, seed_simulator=1).result()
    return np.asarray(res.data()["statevector"])


def qiskit_dynamic(c, xrow, w):
    """A real dynamic Qiskit circuit: measure, reset and nested ``if_test`` on single bits."""
    n = c.n_qubits
    qc = QuantumCircuit(n, c.n_clbits)

    def qubit(q):
        return n - 1 - q

    def emit(op):
        if isinstance(op, Gate):
            gate, qargs = _qiskit_gate_and_qargs(op, eval_params(op, xrow, w), qubit)
            qc.append(gate, qargs)
        elif isinstance(op, Reset):
            qc.reset(qubit(op.wire))
        elif isinstance(op, Channel):
            if op.name == "kraus":
                qc.append(Kraus(list(op.kraus.numpy())).to_instruction(), [qubit(q) for q in reversed(op.wires)])
            else:
                qc.append(qiskit_error(op.name, op.p), [qubit(op.wires[0])])
        else:
            raise AssertionError(op)

    def nested(bits, op):
        if not bits:
            emit(op)
            return
        (b, want), rest = bits[0], bits[1:]
        with qc.if_test((qc.clbits[b], want)):
            nested(rest, op)

    for op in c.ops:
        if isinstance(op, Measure):
            qc.measure(qubit(op.wire), op.clbit)
            if op.reset:
                qc.reset(qubit(op.wire))
            continue
        cond = getattr(op, "condition", None)
        bits = [] if cond is None else [(b, (cond.value >> i) & 1) for i, b in enumerate(cond.clbits)]
        nested(bits, op)
    return qc


# ---------------------------------------------------------------------------
# helpers


def _state_as_density(state: torch.Tensor) -> np.ndarray:
    s = state.numpy()
    return np.einsum("i,j->ij", s, s.conj()) if s.ndim == 1 else s


def _seeds(base, k):
    return [base + i for i in range(k)]


PURE_CASES = [(seed, 1 + seed % 5) for seed in _seeds(100, 20)]
NOISY_CASES = [(seed, 1 + seed % 4) for seed in _seeds(200, 10)]
MCM_CASES = [(seed, 1 + seed % 4) for seed in _seeds(300, 12)]


# ---------------------------------------------------------------------------
# pure circuits


@pytest.mark.parametrize("seed,n", PURE_CASES)
def test_pure_random_circuit_matches_pennylane_and_aer(seed, n):
    rng = np.random.default_rng(seed)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 4)
    res = run(c, x, w, return_state=True)
    assert res.method == "statevector" and res.state.shape == (3, 2**n)
    for b in range(x.shape[0]):
        ev, _, rho = pl_reference(c, x[b], w, mixed=False)
        np.testing.assert_allclose(res.expvals[b].numpy(), ev, atol=1e-10)
        np.testing.assert_allclose(_state_as_density(res.state[b]), rho, atol=1e-10)
        # Aer: same gate definitions (global phases included), so the statevectors agree exactly
        sv = aer_statevector(c, x[b], w)
        np.testing.assert_allclose(res.state[b].numpy(), sv, atol=1e-10)


@pytest.mark.parametrize("seed,n", PURE_CASES[:10])
def test_pure_random_circuit_all_methods_agree(seed, n):
    rng = np.random.default_rng(seed)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 4)
    results = {m: run(c, x, w, method=m, return_state=True) for m in ("auto", "reference", "statevector", "density")}
    assert results["reference"].method == "reference-statevector"
    assert results["density"].method == "density"
    ref = results["reference"]
    for m, r in results.items():
        torch.testing.assert_close(r.expvals, ref.expvals, rtol=0, atol=1e-10, msg=m)
        for b in range(x.shape[0]):
            np.testing.assert_allclose(_state_as_density(r.state[b]), _state_as_density(ref.state[b]), atol=1e-10)


# ---------------------------------------------------------------------------
# noisy circuits


@pytest.mark.parametrize("seed,n", NOISY_CASES)
def test_noisy_random_circuit_matches_pennylane_mixed_and_aer_density(seed, n):
    rng = np.random.default_rng(seed)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 6, noise=True)
    assert any(isinstance(op, Channel) for op in c.ops)
    res = run(c, x[:2], w, return_state=True)
    assert res.method == "density"
    ref = run(c, x[:2], w, method="reference", return_state=True)
    torch.testing.assert_close(res.expvals, ref.expvals, rtol=0, atol=1e-10)
    torch.testing.assert_close(res.state, ref.state, rtol=0, atol=1e-10)
    for b in range(2):
        ev, _, rho = pl_reference(c, x[b], w, mixed=True)
        np.testing.assert_allclose(res.expvals[b].numpy(), ev, atol=1e-6)
        np.testing.assert_allclose(res.state[b].numpy(), rho, atol=1e-6)
        ev_a, _, rho_a = aer_density_reference(c, x[b], w)
        np.testing.assert_allclose(res.expvals[b].numpy(), ev_a, atol=1e-6)
        np.testing.assert_allclose(res.state[b].numpy(), rho_a, atol=1e-6)


# ---------------------------------------------------------------------------
# mid-circuit measurement, reset, classical control (and noise)


@pytest.mark.parametrize("seed,n", MCM_CASES)
def test_mcm_random_circuit_matches_pennylane_deferred(seed, n):
    """Measurements (with/without reset), resets, single-bit and register conditions vs qml.measure/qml.cond."""
    rng = np.random.default_rng(seed)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 6, mcm=True)
    assert c.n_clbits > 0
    res = run(c, x[:2], w, return_state=True)
    for b in range(2):
        ev, probs, rho = pl_reference(c, x[b], w, mixed=False)
        np.testing.assert_allclose(res.expvals[b].numpy(), ev, atol=1e-6)
        np.testing.assert_allclose(res.clbit_probs[b].numpy(), probs, atol=1e-6)
        np.testing.assert_allclose(_state_as_density(res.state[b]), rho, atol=1e-6)


@pytest.mark.parametrize("seed,n", MCM_CASES)
def test_noisy_mcm_random_circuit_matches_aer_deferred_density(seed, n):
    """Everything at once, incl. conditioned resets and conditioned channels, vs an exact Aer run."""
    rng = np.random.default_rng(seed + 1000)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 6, mcm=True, noise=True, cond_reset=True, cond_channel=True)
    res = run(c, x[:2], w, return_state=True)
    for b in range(2):
        ev, probs, rho = aer_density_reference(c, x[b], w)
        np.testing.assert_allclose(res.expvals[b].numpy(), ev, atol=1e-6)
        np.testing.assert_allclose(res.clbit_probs[b].numpy(), probs, atol=1e-6)
        np.testing.assert_allclose(_state_as_density(res.state[b]), rho, atol=1e-6)


@pytest.mark.parametrize("seed,n", [(s, n) for s, n in MCM_CASES if n <= 3][:6])  # deferred MCMs on
def test_noisy_mcm_matches_pennylane_default_mixed(seed, n):  # default.mixed cost 4^(n + #measurements)
    rng = np.random.default_rng(seed + 2000)
    c, x, w = random_circuit(rng, n, n_ops=5 * n + 6, mcm=True, noise=True)
    res = run(c, x[:1], w, return_state=True)
    ev, probs, rho = pl_reference(c, x[0], w, mixed=True)
    np.testing.assert_allclose(res.expvals[0].numpy(), ev, atol=1e-6)
    np.testing.assert_allclose(res.clbit_probs[0].numpy(), probs, atol=1e-6)
    np.testing.assert_allclose(res.state[0].numpy(), rho, atol=1e-6)


@pytest.mark.parametrize("seed,n", MCM_CASES)
def test_mcm_methods_agree(seed, n):
    rng = np.random.default_rng(seed + 1000)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 6, mcm=True, cond_reset=True)
    results = {m: run(c, x, w, method=m, return_state=True) for m in ("auto", "reference", "statevector", "density")}
    ref = results["density"]
    for m, r in results.items():
        torch.testing.assert_close(r.expvals, ref.expvals, rtol=0, atol=1e-10, msg=m)
        torch.testing.assert_close(r.clbit_probs, ref.clbit_probs, rtol=0, atol=1e-10, msg=m)
        for b in range(x.shape[0]):
            np.testing.assert_allclose(_state_as_density(r.state[b]), ref.state[b].numpy(), atol=1e-10)
    # the distribution is a distribution
    torch.testing.assert_close(ref.clbit_probs.sum(1), torch.ones(x.shape[0], dtype=F64))
    assert (ref.clbit_probs >= -1e-12).all()


def test_handwritten_mcm_example_register_condition():
    """A fully hand-checked case: measure two |+> wires, flip wire 2 iff (c0, c1) reads 2 (c1=1, c0=0)."""
    c = Circuit(3)
    c.h(0).h(1)
    b0 = c.measure(0)
    b1 = c.measure(1, reset=True)
    c.x(2, condition=((b0, b1), 2))
    c.measure(2)
    c.expval_each("Z", range(3))
    for m in ("auto", "reference", "density", "statevector"):
        res = run(c, method=m)
        # register index sum_c bit_c 2^c; bit2 = (b0 == 0 and b1 == 1)
        expect = np.zeros(8)
        for v0 in (0, 1):
            for v1 in (0, 1):
                expect[v0 + 2 * v1 + 4 * (v0 == 0 and v1 == 1)] = 0.25
        np.testing.assert_allclose(res.clbit_probs[0].numpy(), expect, atol=1e-12)
        np.testing.assert_allclose(res.expvals[0].numpy(), [0, 1, 0.5], atol=1e-12)
        assert res.counts(0) == pytest.approx({"000": 0.25, "001": 0.25, "110": 0.25, "011": 0.25})


def test_x_and_y_observables_on_a_terminally_measured_wire_see_the_collapse():
    """Regression: the terminal-measurement shortcut used to read <X> off the unmeasured state."""
    c = Circuit(2)
    c.ry(0, 0.7).rx(1, 0.4).cnot(0, 1)
    c.measure(0)
    c.measure(1)
    c.expval("X", 0).expval("Y", 1).expval("Z", 0).expval("ZX", (1, 0))
    ev, probs, rho = pl_reference(c, torch.zeros(0), None, mixed=False)
    for m in ("auto", "reference", "statevector", "density"):
        res = run(c, method=m, return_state=True)
        np.testing.assert_allclose(res.expvals[0].numpy(), ev, atol=1e-12)
        np.testing.assert_allclose(res.clbit_probs[0].numpy(), probs, atol=1e-12)
        # the final state is the measured (dephased) one on every path
        np.testing.assert_allclose(_state_as_density(res.state[0]), rho, atol=1e-12)
    assert abs(ev[0]) < 1e-12 and abs(ev[2]) > 0.1
    # without return_state the shortcut still gives the same numbers
    torch.testing.assert_close(run(c).expvals, run(c, method="reference").expvals, rtol=0, atol=1e-12)


def test_single_qubit_unitary_in_the_product_state_prefix():
    """Regression: a one-wire ``unitary`` before any entangling gate crashed the compiled path."""
    rng = np.random.default_rng(77)
    u0, u1 = random_unitary(2, rng), random_unitary(2, rng)
    c = Circuit(2)
    x = c.inputs(1)
    c.unitary(u0, 0).ry(1, x[0]).unitary(u1, 1).cnot(0, 1).unitary(u1, 0)
    c.expval("Z", 0).expval("X", 1)
    xs = torch.tensor([[0.3], [-1.2]], dtype=F64)
    ref = run(c, xs, method="reference")
    torch.testing.assert_close(run(c, xs).expvals, ref.expvals, rtol=0, atol=1e-12)
    for b in range(2):
        ev, _, _ = pl_reference(c, xs[b], None, mixed=False)
        np.testing.assert_allclose(ref.expvals[b].numpy(), ev, atol=1e-12)


def test_register_conditioned_reset_and_channel_match_aer():
    c = Circuit(3)
    c.h(0).h(1).ry(2, 1.1)
    b0 = c.measure(0)
    b1 = c.measure(1)
    c.channel("amplitude_damping", 2, 0.6, condition=((b0, b1), 3))
    c.kraus([np.sqrt(0.5) * np.eye(4), np.sqrt(0.5) * np.kron(np.eye(2), [[0, 1], [1, 0]])], (2, 0),
            condition=((b1, b0), 1))
    c.reset(2, condition=((b0, b1), 2))
    c.rx(2, 0.3, condition=((b1,), 0))
    c.measure(2)
    c.expval_each("Z", range(3)).expval("XY", (2, 0))
    ev, probs, rho = aer_density_reference(c, torch.zeros(0), None)
    for m in ("auto", "reference", "density"):
        res = run(c, method=m, return_state=True)
        np.testing.assert_allclose(res.expvals[0].numpy(), ev, atol=1e-10)
        np.testing.assert_allclose(res.clbit_probs[0].numpy(), probs, atol=1e-10)
        np.testing.assert_allclose(res.state[0].numpy(), rho, atol=1e-10)


@pytest.mark.parametrize("seed,n", [(400, 2), (401, 3), (402, 3), (403, 4)])
def test_mcm_noise_vs_aer_dynamic_circuit_with_shots(seed, n):
    """Statistical check against a real dynamic circuit on Aer (5 sigma)."""
    rng = np.random.default_rng(seed)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 6, mcm=True, noise=True, cond_reset=True)
    exact = run(c, x[:1], w).clbit_probs[0].numpy()
    shots = 10000
    sim = AerSimulator(method="density_matrix")
    counts = sim.run(transpile(qiskit_dynamic(c, x[0], w), sim, optimization_level=0), shots=shots, seed_simulator=seed).result().get_counts()
    freq = np.zeros(2**c.n_clbits)
    for key, v in counts.items():
        freq[int(key.replace(" ", ""), 2)] += v / shots  # clbit 0 is the rightmost character
    assert np.all(np.abs(freq - exact) <= sigma_tol(exact, shots))


# ---------------------------------------------------------------------------
# trajectories and shots


@pytest.mark.parametrize("seed,n", [(500, 2), (501, 3), (502, 3)])
def test_trajectory_method_within_5_sigma_of_exact(seed, n):
    rng = np.random.default_rng(seed)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 6, mcm=True, noise=True, cond_reset=True, cond_channel=True)
    exact = run(c, x[:2], w)
    shots = 4000
    gen = torch.Generator().manual_seed(seed)
    traj = run(c, x[:2], w, method="trajectory", shots=shots, generator=gen, return_state=True)
    assert traj.method == "trajectory"
    assert traj.samples.shape == (2, shots)
    e = exact.expvals.numpy()
    assert np.all(np.abs(traj.expvals.numpy() - e) <= 5 * np.sqrt(np.clip(1 - e**2, 0, None) / shots) + 1e-3)
    p = exact.clbit_probs.numpy()
    assert np.all(np.abs(traj.clbit_probs.numpy() - p) <= sigma_tol(p, shots))
    # the returned state is the mean of the shots' projectors: its diagonal estimates the probabilities
    exact_state = run(c, x[:2], w, return_state=True).state
    for b in range(2):
        diag = torch.diagonal(exact_state[b]).real.numpy()
        assert np.all(np.abs(torch.diagonal(traj.state[b]).real.numpy() - diag) <= sigma_tol(diag, shots))
    # same seed -> same trajectories
    again = run(c, x[:2], w, method="trajectory", shots=shots, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(again.expvals, traj.expvals, rtol=0, atol=0)
    torch.testing.assert_close(again.clbit_probs, traj.clbit_probs, rtol=0, atol=0)


@pytest.mark.parametrize("noise,mcm", [(False, False), (True, False), (False, True), (True, True)])
def test_shot_estimates_reproducible_and_within_5_sigma(noise, mcm):
    rng = np.random.default_rng(600 + 2 * noise + mcm)
    c, x, w = random_circuit(rng, 3, n_ops=20, noise=noise, mcm=mcm, n_obs=6)
    c.measure(0)  # at least one classical bit to sample
    exact = run(c, x, w)
    shots = 3000
    a = run(c, x, w, shots=shots, generator=torch.Generator().manual_seed(7))
    b = run(c, x, w, shots=shots, generator=torch.Generator().manual_seed(7))
    d = run(c, x, w, shots=shots, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a.expvals, b.expvals, rtol=0, atol=0)
    torch.testing.assert_close(a.clbit_probs, b.clbit_probs, rtol=0, atol=0)
    assert torch.equal(a.samples, b.samples)
    assert not torch.equal(a.samples, d.samples)
    assert a.samples.shape == (x.shape[0], shots)
    e = exact.expvals.numpy()
    assert np.all(np.abs(a.expvals.detach().numpy() - e) <= 5 * np.sqrt(np.clip(1 - e**2, 0, None) / shots) + 1e-3)
    p = exact.clbit_probs.numpy()
    assert np.all(np.abs(a.clbit_probs.numpy() - p) <= sigma_tol(p, shots))
    # the estimates are multiples of 1/shots (frequencies)
    np.testing.assert_allclose(a.clbit_probs.numpy() * shots, np.round(a.clbit_probs.numpy() * shots), atol=1e-8)


def test_shot_estimate_gradient_is_exact_gradient_straight_through():
    """With shots the estimate carries the exact gradient: exact + (estimate - exact).detach()."""
    rng = np.random.default_rng(650)
    c, x, w = random_circuit(rng, 3, n_ops=18, noise=True)
    wq = w.clone().requires_grad_(True)
    xq = x.clone().requires_grad_(True)
    est = run(c, xq, wq, shots=500, generator=torch.Generator().manual_seed(3)).expvals
    g_est = torch.autograd.grad(est.sum(), (xq, wq))
    ex = run(c, xq, wq).expvals
    g_ex = torch.autograd.grad(ex.sum(), (xq, wq))
    assert not torch.allclose(est.detach(), ex.detach(), atol=1e-6)  # the values are estimates
    for a, b in zip(g_est, g_ex):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# batching


@pytest.mark.parametrize("kind", ["pure", "noise", "mcm", "mcm+noise"])
@pytest.mark.parametrize("method", ["auto", "reference", "density"])
def test_batch_equals_single_runs(kind, method):
    rng = np.random.default_rng({"pure": 700, "noise": 701, "mcm": 702, "mcm+noise": 703}[kind])
    c, _, w = random_circuit(rng, 3, n_ops=22, noise="noise" in kind, mcm="mcm" in kind, cond_reset=True)
    x = torch.tensor(rng.normal(size=(5, c.n_inputs)), dtype=F64)
    batch = run(c, x, w, method=method, return_state=True)
    for b in range(5):
        single = run(c, x[b:b + 1], w, method=method, return_state=True)
        torch.testing.assert_close(batch.expvals[b], single.expvals[0], rtol=0, atol=1e-12)
        if c.n_clbits:
            torch.testing.assert_close(batch.clbit_probs[b], single.clbit_probs[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(batch.state[b], single.state[0], rtol=0, atol=1e-12)
    # a 1-D input is one sample
    one = run(c, x[2], w, method=method)
    torch.testing.assert_close(one.expvals[0], batch.expvals[2], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# fast paths vs the plain reference path


def structured_circuit(rng, n, *, layers=3):
    """Data-dependent single-qubit prefixes, weight-only entangling runs and data-dependent gates interleaved."""
    c = Circuit(n)
    x = c.inputs(n)
    w = c.weights(6 * n * layers)
    wi = iter(w)
    for q in range(n):  # product-state prefix: data encoding on every wire
        c.h(q).ry(q, x[q].atan() * 2).rz(q, x[(q + 1) % n] ** 2 * next(wi))
    for layer in range(layers):
        for q in range(n):  # weight-only run: fusable
            c.rot(q, next(wi), next(wi), next(wi))
        for q in range(n - 1):
            c.cnot(q, q + 1)
        if n > 1:
            c.isingzz(0, n - 1, next(wi)).crx(n - 1, 0, next(wi))
        for q in rng.permutation(n)[:2]:  # data re-uploading between runs
            c.rx(int(q), x[int(q)] * next(wi))
        if n > 1:
            c.cry(0, 1, E.sin(x[0]) + 0.2)
        c.rz(int(rng.integers(n)), 0.3).s(int(rng.integers(n)))
    c.expval_each("Z", range(n))
    if n > 1:
        c.expval("ZZ", (0, n - 1)).expval("XY", (n - 1, 0))
    return c


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_compiled_program_matches_reference(n):
    rng = np.random.default_rng(800 + n)
    c = structured_circuit(rng, n)
    prog = compile_program(c)
    assert any(prog.prefix), "the circuit should exercise the data-dependent product-state prefix"
    if n > 1:
        assert any(not isinstance(s, Gate) for s in prog.steps), "the circuit should have weight-only runs"
        assert any(isinstance(s, Gate) and s.uses_input for s in prog.steps), "and data-dependent gates between"
    assert prog.fuse == (n <= 6)
    x = torch.tensor(rng.normal(size=(4, c.n_inputs)), dtype=F64)
    w = torch.tensor(rng.uniform(-math.pi, math.pi, size=c.n_weights), dtype=F64)
    ref = run(c, x, w, method="reference")
    fast = prog.bind(w, dtype=torch.complex128).expvals(x)
    torch.testing.assert_close(fast, ref.expvals, rtol=0, atol=1e-10)
    torch.testing.assert_close(run(c, x, w).expvals, ref.expvals, rtol=0, atol=1e-10)
    fast32 = prog.bind(w.float(), dtype=torch.complex64).expvals(x.float())
    assert fast32.dtype == torch.float32
    torch.testing.assert_close(fast32.double(), ref.expvals, rtol=0, atol=1e-4)
    ref32 = run(c, x.float(), w.float(), method="reference")
    assert ref32.expvals.dtype == torch.float32
    torch.testing.assert_close(fast32, ref32.expvals, rtol=0, atol=1e-4)
    # the other fusion setting agrees too
    other = compile_program(c, fuse_max_qubits=0 if n <= 6 else 7)
    assert other.fuse != prog.fuse
    torch.testing.assert_close(other.bind(w).expvals(x), ref.expvals, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [2, 4, 7])
def test_grouped_weights_match_separate_reference_runs(n):
    """Weights [G, n_weights] evaluate G circuits of one structure at once."""
    rng = np.random.default_rng(870 + n)
    c = structured_circuit(rng, n, layers=2)
    x = torch.tensor(rng.normal(size=(3, c.n_inputs)), dtype=F64)
    wg = torch.tensor(rng.uniform(-math.pi, math.pi, size=(4, c.n_weights)), dtype=F64)
    out = compile_program(c).bind(wg).expvals(x)
    assert out.shape == (4, 3, len(c.observables))
    for g in range(4):
        torch.testing.assert_close(out[g], run(c, x, wg[g], method="reference").expvals, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed,n", PURE_CASES[:12])
def test_compiled_program_on_random_circuits(seed, n):
    rng = np.random.default_rng(seed)
    c, x, w = random_circuit(rng, n, n_ops=6 * n + 4)
    ref = run(c, x, w, method="reference", return_state=True)
    state = compile_program(c).bind(w).state(x)
    torch.testing.assert_close(state, ref.state, rtol=0, atol=1e-10)


def test_terminal_measurement_shortcut_matches_reference():
    rng = np.random.default_rng(850)
    c, x, w = random_circuit(rng, 4, n_ops=24)
    c.measure(2)
    c.measure(0)
    c.measure(3, 5)  # a gap in the register: bits 2..4 stay 0
    auto = run(c, x, w)
    ref = run(c, x, w, method="reference")
    assert ref.method.startswith("reference")
    torch.testing.assert_close(auto.clbit_probs, ref.clbit_probs, rtol=0, atol=1e-12)
    torch.testing.assert_close(auto.expvals, ref.expvals, rtol=0, atol=1e-12)
    assert auto.clbit_probs.shape == (3, 64)
    assert float(auto.clbit_probs[:, [i for i in range(64) if i & 0b011100]].abs().max()) == 0.0


# ---------------------------------------------------------------------------
# amplitude encoding


@pytest.mark.parametrize("wires,n_in,noise", [((0, 1), 3, False), ((2, 0), 4, False), ((1, 3, 2), 5, False),
                                              ((0, 2), 3, True)])
def test_amplitude_encoding_matches_pennylane(wires, n_in, noise):
    n = 4
    rng = np.random.default_rng(900 + n_in)
    c = Circuit(n)
    x = c.inputs(n_in + 1)
    w = c.weights(3)
    others = [q for q in range(n) if q not in wires]
    for q in others:
        c.ry(q, x[n_in].atan() + w[0])
    c.amplitude_encoding(list(range(n_in)), wires)
    c.cnot(wires[0], others[0]).rot(wires[-1], w[0], w[1], w[2]).crz(others[0], wires[0], x[0] * w[1])
    if noise:
        c.channel("depolarizing", wires[0], 0.2).channel("amplitude_damping", others[0], 0.3)
    c.expval_each("Z", range(n)).expval("XX", (wires[0], wires[-1])).expval("YZ", (others[0], wires[0]))
    xs = torch.tensor(rng.normal(size=(3, n_in + 1)), dtype=F64)
    ws = torch.tensor(rng.uniform(-3, 3, size=3), dtype=F64)
    results = [run(c, xs, ws, method=m) for m in ("auto", "reference", "density")]
    for r in results[1:]:
        torch.testing.assert_close(r.expvals, results[0].expvals, rtol=0, atol=1e-10)
    for b in range(3):
        ev, _, _ = pl_reference(c, xs[b], ws, mixed=noise)
        np.testing.assert_allclose(results[0].expvals[b].numpy(), ev, atol=1e-8)


def test_amplitude_encoding_errors():
    c = Circuit(2)
    c.inputs(3)
    c.amplitude_encoding([0, 1, 2], (0, 1))
    c.expval("Z", 0)
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)
    for m in ("auto", "reference", "density"):
        with pytest.raises(InputError, match="zero vector at batch index 1"):
            run(c, x, method=m)
    with pytest.raises(CircuitError, match="amplitude encoding of 5 values needs at least 3 wires"):
        Circuit(3).amplitude_encoding(5, (0, 1))


@pytest.mark.parametrize("seed,n,density", [(700, 3, False), (701, 4, False), (702, 4, True), (703, 5, False)])
def test_branch_simulator_fused_runs_equal_gate_by_gate(seed, n, density, monkeypatch):
    """Runs of unconditional, data-free gates multiplied out once (execute._fused_runs) against the same
    circuit gate by gate (FUSE_MAX_WIRES = 0): distributions, expectation values and gradients."""
    import qlstm.circuit.execute as ex

    rng = np.random.default_rng(seed)
    c = Circuit(n)
    x = c.inputs(n)
    w = c.weights(4 * n)
    for q in range(n):
        c.ry(q, E.atan(x[q]))
    for block in range(3):  # weight-only blocks, then a mid-circuit measurement, a reset and conditioned gates
        for q in range(n):
            c.rot(q, w[(block * n + q) % (4 * n)], float(rng.uniform(-1, 1)), w[(block + q) % (4 * n)])
        for q in range(n - 1):
            c.cnot(q, q + 1)
        c.crz(0, n - 1, w[block])
        bit = c.measure(block % n, reset=block == 1)
        c.rx(n - 1, w[3 * n + block], condition=bit)  # if that bit is 1
        if density:
            c.channel("depolarizing", int(rng.integers(n)), 0.1)
    c.expval("Z", 0).expval("XY", (1, n - 1))
    xs = torch.tensor(rng.normal(size=(3, n)), dtype=F64, requires_grad=True)
    ws = torch.tensor(rng.uniform(-math.pi, math.pi, size=4 * n), dtype=F64, requires_grad=True)
    assert any(i == "fused" for i, _ in ex._fused_runs(c))
    out = {}
    for k in (0, 5):
        monkeypatch.setattr(ex, "FUSE_MAX_WIRES", k)
        r = run(c, xs, ws, method="density" if density else "statevector")
        loss = r.expvals.square().sum() + (r.clbit_probs * torch.arange(r.clbit_probs.shape[1])).sum()
        out[k] = (r.expvals, r.clbit_probs, *torch.autograd.grad(loss, [xs, ws]))
    for a, b in zip(out[0], out[5]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
