"""Every noise channel against PennyLane's channels and Qiskit Aer's errors (as superoperators)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

qml = pytest.importorskip("pennylane")
pytest.importorskip("qiskit")
qiskit_aer = pytest.importorskip("qiskit_aer")

from qiskit.quantum_info import DensityMatrix  # noqa: E402

from conftest import apply_kraus, pennylane_channel, qiskit_error, random_density, random_unitary  # noqa: E402
from qlstm import ChannelError, Circuit, run  # noqa: E402
from qlstm.sim import kernels as K  # noqa: E402
from qlstm.sim.channels import CHANNELS, channel_kraus, check_kraus  # noqa: E402

NAMES = sorted(CHANNELS)
PROBS = [0.0, 0.05, 0.37, 0.8, 1.0]


def ours(name, p) -> list[np.ndarray]:
    return list(channel_kraus(name, p, dtype=torch.complex128).numpy())


def test_reference_tables_cover_every_channel():
    for name in CHANNELS:  # a KeyError here means a new channel lacks its reference
        assert len(pennylane_channel(name, 0.1, 0).kraus_matrices()) >= 2
        assert qiskit_error(name, 0.1).num_qubits == 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", PROBS)
def test_channel_matches_pennylane_and_qiskit(name, p, rng):
    kraus = ours(name, p)
    assert all(k.shape == (2, 2) for k in kraus)
    pl_kraus = pennylane_channel(name, p, 0).kraus_matrices()
    qk_channel = qiskit_error(name, p).to_quantumchannel()
    for _ in range(3):
        rho = random_density(2, rng)
        out = apply_kraus(kraus, rho)
        # both references are ~1e-8 off at gamma = 1 for amplitude damping: PennyLane uses
        # sqrt(1 - gamma + 1e-14) to keep gradients finite, Aer converts through a superoperator
        np.testing.assert_allclose(out, apply_kraus(pl_kraus, rho), atol=1e-7, err_msg=f"{name}({p}) vs PennyLane")
        np.testing.assert_allclose(out, DensityMatrix(rho).evolve(qk_channel).data, atol=1e-7,
                                   err_msg=f"{name}({p}) vs Qiskit Aer")


@pytest.mark.parametrize("name", NAMES)
def test_superoperator_kernel_matches_kraus_sum(name, rng):
    kraus = channel_kraus(name, 0.23)
    sup = K.superoperator(kraus).numpy()
    rho = random_density(2, rng)
    # sup acts on the row-major vectorisation of rho
    np.testing.assert_allclose((sup @ rho.reshape(-1)).reshape(2, 2), apply_kraus(kraus.numpy(), rho), atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", PROBS)
def test_completeness(name, p):
    kraus = channel_kraus(name, p)
    total = torch.einsum("mji,mjk->ik", kraus.conj(), kraus)
    torch.testing.assert_close(total, torch.eye(2, dtype=torch.complex128), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_batched_probabilities_stack_single_sets(name):
    p = torch.tensor([0.0, 0.1, 0.5, 0.99], dtype=torch.float64)
    batched = channel_kraus(name, p)
    assert batched.shape[0] == 4 and batched.shape[-2:] == (2, 2)
    singles = torch.stack([channel_kraus(name, float(v)) for v in p])
    torch.testing.assert_close(batched, singles, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_float_probability_keeps_double_precision(name):
    """Regression: a Python float used to pass through float32 on its way to complex128."""
    p = 0.1 + 1e-9
    k = channel_kraus(name, p).numpy()
    pl = pennylane_channel(name, p, 0).kraus_matrices()
    rho = np.array([[0.3, 0.2 - 0.1j], [0.2 + 0.1j, 0.7]])
    # (the old float32 detour was off by ~1e-8; PennyLane itself adds 1e-14 inside a sqrt)
    np.testing.assert_allclose(apply_kraus(k, rho), apply_kraus(pl, rho), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_complex64_kraus(name):
    k64 = channel_kraus(name, 0.3, dtype=torch.complex64)
    assert k64.dtype == torch.complex64
    np.testing.assert_allclose(k64.numpy(), channel_kraus(name, 0.3).numpy(), atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf")])
def test_invalid_probability_raises(name, bad):
    with pytest.raises(ChannelError, match=r"probability in \[0, 1\]"):
        channel_kraus(name, bad)
    with pytest.raises(ChannelError, match=r"probability in \[0, 1\]"):
        Circuit(1).channel(name, 0, bad)


def test_invalid_probability_in_a_tensor_raises():
    with pytest.raises(ChannelError):
        channel_kraus("bit_flip", torch.tensor([0.1, 1.2]))
    with pytest.raises(ChannelError):
        channel_kraus("depolarizing", torch.tensor([0.1, float("nan")]))


def test_unknown_channel_name_lists_valid_ones():
    with pytest.raises(ChannelError, match="valid channels: .*bit_flip"):
        channel_kraus("bitflipz", 0.1)
    with pytest.raises(ChannelError, match="unknown noise channel"):
        Circuit(1).channel("bitflipz", 0, 0.1)


def test_channel_name_normalisation():
    np.testing.assert_array_equal(channel_kraus("Bit-Flip", 0.2).numpy(), channel_kraus("bit_flip", 0.2).numpy())


# ---------------------------------------------------------------------------
# user-given Kraus sets

def _stinespring(rng, d, m):
    v = random_unitary(m * d, rng)[:, :d]
    return [v[j * d:(j + 1) * d] for j in range(m)]


def test_check_kraus_accepts_cptp_and_rejects_the_rest(rng):
    good = _stinespring(rng, 4, 3)
    out = check_kraus(good)
    assert out.shape == (3, 4, 4) and out.dtype == torch.complex128
    with pytest.raises(ChannelError, match="not trace preserving"):
        check_kraus([0.5 * k for k in good])
    with pytest.raises(ChannelError, match="not trace preserving"):
        Circuit(1).kraus([np.sqrt(0.5) * np.eye(2)], 0)
    with pytest.raises(ChannelError, match="not trace preserving"):
        Circuit(2).kraus([np.eye(4), np.eye(4)], (0, 1))
    with pytest.raises(ChannelError, match="2\\^k x 2\\^k"):
        Circuit(2).kraus([np.eye(3)], (0,))
    with pytest.raises(ChannelError, match="NaN or infinite"):
        Circuit(1).kraus([np.array([[np.nan, 0], [0, 1]])], 0)
    with pytest.raises(ChannelError, match="must be 4x4"):
        Circuit(2).kraus([np.eye(2)], (0, 1))


def test_the_papers_eq7_depolarizing_kraus_set_is_rejected():
    """The docstring of qlstm's depolarizing channel says Eq. (7) of Xu et al. is not CPTP; check that."""
    p = 0.1
    z = np.diag([1.0, -1.0])
    y = np.array([[0, -1j], [1j, 0]])
    eq7 = [np.sqrt(1 - 3 * p) / 2 * np.eye(2), np.sqrt(p) / 2 * z, np.sqrt(p) / 2 * y, np.sqrt(p) / 2 * z]
    assert np.abs(sum(k.conj().T @ k for k in eq7) - np.eye(2)).max() > 1e-3
    with pytest.raises(ChannelError):
        check_kraus(eq7)


@pytest.mark.parametrize("wires", [(0, 1), (2, 0), (1, 2)])
def test_two_qubit_kraus_in_a_circuit_matches_pennylane_default_mixed(wires, rng):
    n = 3
    kraus = _stinespring(rng, 4, 3)
    angles = rng.uniform(-3, 3, size=6)
    c = Circuit(n)
    for q in range(n):
        c.ry(q, float(angles[q])).rz(q, float(angles[n + q]))
    c.cnot(0, 1).cnot(1, 2)
    c.kraus(kraus, wires)
    c.channel("amplitude_damping", 1, 0.3)
    c.expval_each("Z", range(n)).expval("XY", (0, 2)).expval("YZX", (0, 1, 2))
    res = run(c, method="density", return_state=True)

    dev = qml.device("default.mixed", wires=n)

    @qml.qnode(dev)
    def circuit():
        for q in range(n):
            qml.RY(angles[q], wires=q)
            qml.RZ(angles[n + q], wires=q)
        qml.CNOT([0, 1])
        qml.CNOT([1, 2])
        qml.QubitChannel(kraus, wires=list(wires))
        qml.AmplitudeDamping(0.3, wires=1)
        obs = [qml.PauliZ(q) for q in range(n)] + [qml.PauliX(0) @ qml.PauliY(2),
                                                   qml.PauliY(0) @ qml.PauliZ(1) @ qml.PauliX(2)]
        return [qml.expval(o) for o in obs] + [qml.density_matrix(wires=list(range(n)))]

    out = circuit()
    np.testing.assert_allclose(res.expvals[0].numpy(), np.array(out[:-1], dtype=float), atol=1e-10)
    np.testing.assert_allclose(res.state[0].numpy(), out[-1], atol=1e-10)
    # the channel really acted: without it the state differs
    without = Circuit(n)
    for op in c.ops:
        if op.name != "kraus":
            without.append(op)
    assert np.abs(run(without, method="density", return_state=True).state[0].numpy() - out[-1]).max() > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_channel_on_each_wire_in_a_circuit_matches_pennylane(name):
    n, p = 3, 0.27
    c = Circuit(n)
    for q in range(n):
        c.rx(q, 0.4 + q).ry(q, 0.9 - 0.3 * q)
    c.channel(name, range(n), p)
    c.cnot(0, 2)
    c.expval_each("Z", range(n)).expval_each("X", range(n)).expval_each("Y", range(n))
    got = run(c).expvals[0].numpy()

    @qml.qnode(qml.device("default.mixed", wires=n))
    def circuit():
        for q in range(n):
            qml.RX(0.4 + q, wires=q)
            qml.RY(0.9 - 0.3 * q, wires=q)
        for q in range(n):
            pennylane_channel(name, p, q)
        qml.CNOT([0, 2])
        return [qml.expval(P(q)) for P in (qml.PauliZ, qml.PauliX, qml.PauliY) for q in range(n)]

    np.testing.assert_allclose(got, np.array(circuit(), dtype=float), atol=1e-10)
    assert not math.isnan(got.sum())
