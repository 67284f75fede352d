"""Gradients through run(): finite differences (gradcheck), the parameter-shift rule, PennyLane."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlstm import Circuit, compile_program, run
from qlstm.circuit import expr as E

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _x(b, k, seed=0):
    return torch.randn(b, k, generator=_gen(seed), dtype=F64)


def _w(k, seed=1):
    return (torch.rand(k, generator=_gen(seed), dtype=F64) * 2 - 1) * math.pi


def pure_circuit(n=3):
    c = Circuit(n)
    x = c.inputs(n)
    w = c.weights(4 * n + 2)
    for q in range(n):
        c.h(q).ry(q, x[q].atan() * 2).rz(q, E.sin(x[q]) * w[q])
    for q in range(n):
        c.rot(q, w[n + 3 * q], w[n + 3 * q + 1], w[n + 3 * q + 2])
    for q in range(n - 1):
        c.cnot(q, q + 1)
    c.crx(n - 1, 0, x[0] * w[-2]).isingyy(0, 1, w[-1] + E.cos(x[1]))
    c.u3(1, w[0] ** 2, x[2], 0.3)
    c.expval_each("Z", range(n)).expval("XY", (0, n - 1)).expval("ZZ", (0, 1))
    return c


def noisy_circuit(n=3):
    c = pure_circuit(n)
    c.channel("depolarizing", 0, 0.1).channel("amplitude_damping", 1, 0.25)
    c.cry(1, 2, c.weights(1)[0])
    c.channel("phase_damping", 2, 0.3).channel("bit_flip", 0, 0.05)
    c.kraus([np.sqrt(0.8) * np.eye(2), np.sqrt(0.2) * np.array([[0, 1], [1, 0]])], 1)
    return c


def branch_circuit(n=3):
    """Mid-circuit measurements, a reset and gates conditioned on the outcomes."""
    c = Circuit(n)
    x = c.inputs(2)
    w = c.weights(6)
    c.ry(0, x[0].atan() * 2 + w[0]).rx(1, w[1] * x[1]).cnot(0, 2)
    b0 = c.measure(0)
    c.ry(2, w[2], condition=b0).rz(1, w[3])
    b1 = c.measure(1, reset=True)
    c.crx(2, 0, w[4], condition=((b0, b1), 1))
    c.reset(2, condition=b1)
    c.rx(2, w[5] + x[0])
    c.measure(2)
    c.expval_each("Z", range(n)).expval("XZ", (0, 2)).expval("Y", 1)
    return c


def _gradcheck(c, x, w, method="auto", what="expvals", fast=True):
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)

    def f(xx, ww):
        return getattr(run(c, xx, ww, method=method), what)

    # fast_mode checks a random projection of the Jacobian (one backward pass) against finite differences
    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=fast)


@pytest.mark.parametrize("method", ["auto", "reference", "statevector", "density"])
def test_gradcheck_pure(method):
    c = pure_circuit()
    _gradcheck(c, _x(2, c.n_inputs), _w(c.n_weights), method)


@pytest.mark.parametrize("method", ["auto", "reference", "density"])
def test_gradcheck_density_noise(method):
    c = noisy_circuit()
    expect = {"auto": "heisenberg", "reference": "reference-density", "density": "density"}[method]
    assert run(c, _x(1, c.n_inputs), _w(c.n_weights), method=method).method == expect
    _gradcheck(c, _x(2, c.n_inputs), _w(c.n_weights), method)


@pytest.mark.parametrize("method", ["auto", "statevector", "density", "reference"])
@pytest.mark.parametrize("what", ["expvals", "clbit_probs"])
def test_gradcheck_branches_mcm(method, what):
    c = branch_circuit()
    _gradcheck(c, _x(2, c.n_inputs), _w(c.n_weights), method, what)


@pytest.mark.parametrize("circuit", [pure_circuit, noisy_circuit, branch_circuit])
def test_full_jacobian_gradcheck(circuit):
    c = circuit()
    _gradcheck(c, _x(1, c.n_inputs), _w(c.n_weights), fast=False)


def fused_shape_circuit(n=3):
    """Data-encoding rotations, one weight-only run, Z read-outs: the shape with a hand-written backward."""
    c = Circuit(n)
    x = c.inputs(n)
    w = c.weights(3 * n + 1)
    for q in range(n):
        c.h(q).ry(q, x[q].atan()).rz(q, E.atan(x[q] ** 2)).phase(q, 0.4)
    for q in range(n):
        c.cnot(q, (q + 1) % n)
    for q in range(n):  # after the first entangling gate: part of the weight-only run, not the prefix
        c.rot(q, w[3 * q], w[3 * q + 1], w[3 * q + 2])
    c.crz(0, n - 1, w[-1])
    c.expval_each("Z", range(n)).expval("ZZ", (0, n - 1))
    return c


def test_hand_written_backward_path_gradcheck_and_matches_reference_gradients():
    c = fused_shape_circuit()
    x = _x(3, c.n_inputs, seed=31)
    w = _w(c.n_weights, seed=32)
    bound = compile_program(c).bind(w)
    if hasattr(bound, "_fused_spec"):  # make sure the fast path is really taken
        assert bound._fused_spec() is not None
    _gradcheck(c, x, w)
    grads = {}
    for method in ("auto", "reference"):
        xx, ww = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        out = run(c, xx, ww, method=method).expvals
        cot = torch.linspace(-1, 1, out.numel(), dtype=F64).reshape(out.shape)
        grads[method] = torch.autograd.grad((out * cot).sum(), (xx, ww))
    for a, b in zip(grads["auto"], grads["reference"]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_gradcheck_amplitude_encoding_inputs():
    c = Circuit(3)
    x = c.inputs(5)
    w = c.weights(3)
    c.amplitude_encoding([0, 1, 2], (0, 2))
    c.ry(1, x[3] * w[0] + x[4]).cnot(1, 0).rot(2, w[0], w[1], w[2])
    c.expval_each("Z", range(3)).expval("XX", (0, 2))
    xs = _x(2, 5) + 0.5
    _gradcheck(c, xs, _w(3))
    _gradcheck(c, xs, _w(3), method="density")


def test_gradcheck_compiled_program_with_grouped_weights():
    c = pure_circuit(4)
    prog = compile_program(c)
    x = _x(2, c.n_inputs).requires_grad_(True)
    w = torch.stack([_w(c.n_weights, s) for s in (3, 4)]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda xx, ww: prog.bind(ww).expvals(xx), (x, w), eps=1e-6, atol=1e-6,
                                    fast_mode=True)


def test_unused_weight_gets_a_zero_gradient():
    """A weight that no gate reads gets a zero gradient (not None / not NaN)."""
    c = Circuit(2)
    w = c.weights(2)
    c.rx(0, w[0]).cnot(0, 1).expval("Z", 1)
    ww = _w(2).requires_grad_(True)
    run(c, None, ww).expvals.sum().backward()
    assert ww.grad is not None and ww.grad[1] == 0 and ww.grad[0] != 0


# ---------------------------------------------------------------------------
# parameter-shift rule


def shift_circuit(kind: str):
    """Every weight enters exactly one RX/RY/RZ/Rot angle (so the two-term shift rule holds)."""
    c = Circuit(3)
    x = c.inputs(3)
    w = c.weights(12)
    for q in range(3):
        c.ry(q, x[q].atan() * 2)
    c.rx(0, w[0]).ry(1, w[1]).rz(2, w[2])
    c.cnot(0, 1).cnot(1, 2)
    c.rot(0, w[3], w[4], w[5]).rot(2, w[6], w[7], w[8])
    c.cz(2, 0)
    if kind in ("noise", "noise+mcm"):
        c.channel("depolarizing", 1, 0.15).channel("amplitude_damping", 0, 0.2)
    if kind in ("mcm", "noise+mcm"):
        b = c.measure(1)
        c.rx(2, w[9], condition=b)
        c.ry(0, w[10])
    else:
        c.rx(2, w[9]).ry(0, w[10])
    c.rz(1, w[11]).h(1)
    c.expval_each("Z", range(3)).expval("XY", (0, 2))
    return c


@pytest.mark.parametrize("kind", ["pure", "noise", "mcm", "noise+mcm"])
def test_parameter_shift_rule_equals_autograd(kind):
    c = shift_circuit(kind)
    x = _x(2, 3, seed=5)
    w = _w(12, seed=6).requires_grad_(True)
    out = run(c, x, w).expvals  # [B, n_obs]
    jac = torch.stack([torch.autograd.grad(out[:, j].sum(), w, retain_graph=True)[0] for j in range(out.shape[1])])
    shift = torch.zeros(12, dtype=F64)
    ps = []
    with torch.no_grad():
        for i in range(12):
            shift.zero_()
            shift[i] = math.pi / 2
            plus = run(c, x, w + shift).expvals.sum(0)
            minus = run(c, x, w - shift).expvals.sum(0)
            ps.append((plus - minus) / 2)
    ps = torch.stack(ps, dim=1)  # [n_obs, n_weights]
    torch.testing.assert_close(jac, ps, rtol=0, atol=1e-10)
    assert ps.abs().max() > 1e-3


# ---------------------------------------------------------------------------
# against PennyLane


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("diff_method", ["backprop", "parameter-shift"])
def test_gradients_match_pennylane(diff_method):
    qml = pytest.importorskip("pennylane")
    c = pure_circuit(3)
    n = 3
    xs = _x(2, n, seed=11)
    ws = _w(c.n_weights, seed=12)

    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="torch", diff_method=diff_method)
    def circuit(xrow, w):
        for q in range(n):
            qml.Hadamard(q)
            qml.RY(torch.atan(xrow[q]) * 2, wires=q)
            qml.RZ(torch.sin(xrow[q]) * w[q], wires=q)
        for q in range(n):
            qml.Rot(w[n + 3 * q], w[n + 3 * q + 1], w[n + 3 * q + 2], wires=q)
        for q in range(n - 1):
            qml.CNOT([q, q + 1])
        qml.CRX(xrow[0] * w[-2], wires=[n - 1, 0])
        qml.IsingYY(w[-1] + torch.cos(xrow[1]), wires=[0, 1])
        qml.U3(w[0] ** 2, xrow[2], 0.3, wires=1)
        obs = [qml.PauliZ(q) for q in range(n)] + [qml.PauliX(0) @ qml.PauliY(n - 1), qml.PauliZ(0) @ qml.PauliZ(1)]
        return [qml.expval(o) for o in obs]

    for b in range(2):
        xr = xs[b].clone().requires_grad_(True)
        wr = ws.clone().requires_grad_(True)
        ref = torch.stack(list(circuit(xr, wr)))
        ours_x = xs[b:b + 1].clone().requires_grad_(True)
        ours_w = ws.clone().requires_grad_(True)
        ours = run(c, ours_x, ours_w).expvals[0]
        torch.testing.assert_close(ours.detach(), ref.detach().to(F64), rtol=0, atol=1e-10)
        for j in range(len(ref)):
            gx_ref, gw_ref = torch.autograd.grad(ref[j], (xr, wr), retain_graph=True)
            gx, gw = torch.autograd.grad(ours[j], (ours_x, ours_w), retain_graph=True)
            torch.testing.assert_close(gx[0], gx_ref.to(F64), rtol=0, atol=1e-8)
            torch.testing.assert_close(gw, gw_ref.to(F64), rtol=0, atol=1e-8)


def test_noisy_gradients_match_pennylane_default_mixed():
    qml = pytest.importorskip("pennylane")
    c = Circuit(2)
    x = c.inputs(2)
    w = c.weights(4)
    c.ry(0, x[0].atan() * 2).ry(1, x[1] * w[0]).cnot(0, 1)
    c.channel("depolarizing", 0, 0.2).channel("amplitude_damping", 1, 0.3)
    c.rot(1, w[1], w[2], w[3]).channel("phase_flip", 1, 0.1)
    c.expval("Z", 0).expval("X", 1).expval("YZ", (1, 0))
    xs = _x(1, 2, seed=21)[0]
    ws = _w(4, seed=22)

    @qml.qnode(qml.device("default.mixed", wires=2), interface="torch", diff_method="backprop")
    def circuit(xrow, wv):
        qml.RY(torch.atan(xrow[0]) * 2, wires=0)
        qml.RY(xrow[1] * wv[0], wires=1)
        qml.CNOT([0, 1])
        qml.DepolarizingChannel(0.2, wires=0)
        qml.AmplitudeDamping(0.3, wires=1)
        qml.Rot(wv[1], wv[2], wv[3], wires=1)
        qml.PhaseFlip(0.1, wires=1)
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliX(1)), qml.expval(qml.PauliY(1) @ qml.PauliZ(0))]

    xr, wr = xs.clone().requires_grad_(True), ws.clone().requires_grad_(True)
    ref = torch.stack(list(circuit(xr, wr))).to(F64)
    ox, ow = xs[None].clone().requires_grad_(True), ws.clone().requires_grad_(True)
    ours = run(c, ox, ow).expvals[0]
    torch.testing.assert_close(ours.detach(), ref.detach(), rtol=0, atol=1e-10)
    for j in range(3):
        gx_ref, gw_ref = torch.autograd.grad(ref[j], (xr, wr), retain_graph=True)
        gx, gw = torch.autograd.grad(ours[j], (ox, ow), retain_graph=True)
        torch.testing.assert_close(gx[0], gx_ref.to(F64), rtol=0, atol=1e-8)
        torch.testing.assert_close(gw, gw_ref.to(F64), rtol=0, atol=1e-8)
