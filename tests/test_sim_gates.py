"""Every gate matrix against Qiskit and PennyLane, and the state kernels against dense algebra."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

qiskit = pytest.importorskip("qiskit")
qml = pytest.importorskip("pennylane")

from qiskit.quantum_info import Operator  # noqa: E402

from conftest import (  # noqa: E402
    apply_kraus,
    embed_dense,
    pauli_string_matrix,
    pennylane_op,
    qiskit_gate,
    random_density,
    random_unitary,
)
from qlstm.sim import kernels as K  # noqa: E402
from qlstm.sim.gates import GATES, gate_matrix, is_diagonal  # noqa: E402


CANONICAL = sorted({spec.name for spec in GATES.values()})
ALIASES = sorted(k for k, spec in GATES.items() if k != spec.name)


def qiskit_matrix(name: str, params) -> np.ndarray:
    """Qiskit's matrix in qlstm's order (first qarg = most significant bit)."""
    return Operator(qiskit_gate(name, params)).reverse_qargs().data


def pennylane_matrix(name: str, params) -> np.ndarray:
    k = GATES[name].num_wires
    return qml.matrix(pennylane_op(name, range(k), params), wire_order=list(range(k)))


def _angles(rng, k):
    return [float(a) for a in rng.uniform(-2 * math.pi, 2 * math.pi, size=k)]


def test_reference_tables_cover_every_gate():
    for name in CANONICAL:  # a KeyError here means a new gate lacks its reference
        params = [0.1] * GATES[name].num_params
        assert qiskit_matrix(name, params).shape == pennylane_matrix(name, params).shape


@pytest.mark.parametrize("name", CANONICAL)
def test_gate_matrix_matches_qiskit_and_pennylane(name, rng):
    spec = GATES[name]
    for _ in range(3):
        params = _angles(rng, spec.num_params)
        ours = gate_matrix(name, params, dtype=torch.complex128).numpy()
        assert ours.shape == (2**spec.num_wires,) * 2
        np.testing.assert_allclose(ours, qiskit_matrix(name, params), atol=1e-10, err_msg=f"{name} vs Qiskit")
        np.testing.assert_allclose(ours, pennylane_matrix(name, params), atol=1e-10, err_msg=f"{name} vs PennyLane")
        np.testing.assert_allclose(ours.conj().T @ ours, np.eye(len(ours)), atol=1e-12)
        if spec.num_params == 0:
            break


@pytest.mark.parametrize("alias", ALIASES)
def test_aliases_build_the_canonical_matrix(alias, rng):
    spec = GATES[alias]
    params = _angles(rng, spec.num_params)
    np.testing.assert_array_equal(gate_matrix(alias, params).numpy(), gate_matrix(spec.name, params).numpy())
    assert gate_matrix(alias.upper(), params).shape == gate_matrix(spec.name, params).shape


@pytest.mark.parametrize("name", [n for n in CANONICAL if GATES[n].num_params > 0])
def test_batched_angles_stack_single_matrices(name, rng):
    spec = GATES[name]
    b = 5
    angles = torch.tensor(rng.uniform(-4, 4, size=(spec.num_params, b)), dtype=torch.float64)
    batched = gate_matrix(name, list(angles))
    assert batched.shape == (b, 2**spec.num_wires, 2**spec.num_wires)
    singles = torch.stack([gate_matrix(name, [a[i] for a in angles]) for i in range(b)])
    torch.testing.assert_close(batched, singles, rtol=0, atol=1e-14)
    # broadcasting a scalar angle against a batched one (multi-parameter gates)
    if spec.num_params > 1:
        mixed = gate_matrix(name, [angles[0]] + [angles[j, 0] for j in range(1, spec.num_params)])
        expect = torch.stack([gate_matrix(name, [angles[0, i]] + [angles[j, 0] for j in range(1, spec.num_params)])
                              for i in range(b)])
        torch.testing.assert_close(mixed, expect, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", CANONICAL)
def test_complex64_matches_complex128(name, rng):
    params = _angles(rng, GATES[name].num_params)
    m64 = gate_matrix(name, params, dtype=torch.complex64)
    assert m64.dtype == torch.complex64
    np.testing.assert_allclose(m64.numpy(), gate_matrix(name, params).numpy(), atol=1e-6)


@pytest.mark.parametrize("name", CANONICAL)
def test_diagonal_flag_is_truthful(name, rng):
    m = qiskit_matrix(name, _angles(rng, GATES[name].num_params))
    off_diagonal = np.abs(m - np.diag(np.diag(m))).max()
    # a gate flagged diagonal takes the elementwise fast path, so the flag must be right;
    # every unflagged gate in the set really has off-diagonal entries
    assert (off_diagonal == 0) == is_diagonal(name)


def test_gate_matrix_is_differentiable_in_its_angles():
    theta = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    m = gate_matrix("ry", [theta])
    m[1, 0].real.backward()  # d/dtheta sin(theta/2) = cos(theta/2)/2
    assert theta.grad is not None
    assert abs(theta.grad.item() - 0.5 * math.cos(0.37 / 2)) < 1e-12


# ---------------------------------------------------------------------------
# kernels vs dense matrices built by index arithmetic

def _rand_state(rng, lead, n):
    s = rng.normal(size=(*lead, 2**n)) + 1j * rng.normal(size=(*lead, 2**n))
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


@pytest.mark.parametrize("n,k", [(1, 1), (3, 1), (3, 2), (4, 3), (5, 2)])
def test_apply_matrix_matches_dense_embedding(n, k, rng):
    for _ in range(3):
        wires = [int(v) for v in rng.permutation(n)[:k]]
        u = random_unitary(2**k, rng)
        psi = _rand_state(rng, (2,), n)
        out = K.apply_matrix(torch.tensor(psi), torch.tensor(u), wires, n).numpy()
        big = embed_dense(u, wires, n)
        np.testing.assert_allclose(out, psi @ big.T, atol=1e-12)
        # batched matrix [B, d, d] against batched state [B, 2^n]
        ub = np.stack([u, random_unitary(2**k, rng)])
        outb = K.apply_matrix(torch.tensor(psi), torch.tensor(ub), wires, n).numpy()
        for b in range(2):
            np.testing.assert_allclose(outb[b], embed_dense(ub[b], wires, n) @ psi[b], atol=1e-12)


@pytest.mark.parametrize("n,k", [(2, 1), (3, 2), (4, 2)])
def test_apply_diagonal_fast_path_matches_apply_matrix(n, k, rng):
    wires = [int(v) for v in rng.permutation(n)[:k]]
    diag = np.exp(1j * rng.uniform(0, 2 * math.pi, size=(3, 2**k)))
    psi = torch.tensor(_rand_state(rng, (3,), n))
    fast = K.apply_diagonal(psi, torch.tensor(diag), wires, n)
    plain = K.apply_matrix(psi, torch.diag_embed(torch.tensor(diag)), wires, n)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-13)


@pytest.mark.parametrize("n,k", [(1, 1), (2, 1), (3, 2), (3, 3)])
def test_density_kernels_match_dense(n, k, rng):
    wires = [int(v) for v in rng.permutation(n)[:k]]
    rho = random_density(2**n, rng)
    u = random_unitary(2**k, rng)
    big = embed_dense(u, wires, n)
    out = K.apply_matrix_dm(torch.tensor(rho), torch.tensor(u), wires, n).numpy()
    np.testing.assert_allclose(out, big @ rho @ big.conj().T, atol=1e-12)
    # a random CPTP map from a Stinespring isometry: K_j = (<j| (x) I) V
    m = 3
    v = random_unitary(m * 2**k, rng)[:, : 2**k]
    kraus = [v[j * 2**k:(j + 1) * 2**k] for j in range(m)]
    out = K.apply_kraus_dm(torch.tensor(rho), torch.tensor(np.stack(kraus)), wires, n).numpy()
    expect = apply_kraus([embed_dense(kk, wires, n) for kk in kraus], rho)
    np.testing.assert_allclose(out, expect, atol=1e-12)
    np.testing.assert_allclose(np.trace(out), 1.0, atol=1e-12)


def test_expval_and_probability_kernels_match_dense(rng):
    n = 3
    psi = _rand_state(rng, (), n)
    rho = random_density(2**n, rng)
    for paulis, wires in [("Z", (1,)), ("ZZ", (0, 2)), ("XY", (2, 0)), ("YZX", (1, 0, 2)), ("IX", (0, 1))]:
        p = pauli_string_matrix(paulis, wires, n)
        ev = K.expval_pauli(torch.tensor(psi), paulis, wires, n).item()
        assert abs(ev - (psi.conj() @ p @ psi).real) < 1e-12
        evd = K.expval_pauli_dm(torch.tensor(rho), paulis, wires, n).item()
        assert abs(evd - np.trace(p @ rho).real) < 1e-12
    probs = np.abs(psi) ** 2
    marg = K.marginal(torch.tensor(probs), [2, 0], n).numpy()
    expect = probs.reshape(2, 2, 2).sum(axis=1).T.reshape(4)  # order (wire 2, wire 0)
    np.testing.assert_allclose(marg, expect, atol=1e-14)
