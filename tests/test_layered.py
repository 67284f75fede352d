"""The layered statevector path (qlstm.circuit.layered) against the plain autograd path of the planner.

The autograd path (``BoundProgram.fused = False``) is itself checked against PennyLane and Qiskit in
test_plan.py / test_reference_*.py; here the hand-written forward and backward must agree with it.
"""

import pytest
import torch

from qlstm import Circuit, compile_program
from qlstm.circuit.expr import atan
from qlstm.circuit.layered import KronFactors, kron_factors
from qlstm.circuit.plan import BoundProgram
from qlstm.circuit.templates import chen_vqc


def _both_paths(prog, w, x, probe):
    """Values and gradients (weights, inputs) of ``sum(probe * expvals)`` on the fused and the autograd path."""
    out = {}
    try:
        for fused in (True, False):
            BoundProgram.fused = fused
            prog.use_adjoint = fused  # the reference must not use FusedRun (n <= 6) either
            ww, xx = w.detach().requires_grad_(), x.detach().requires_grad_()
            bound = prog.bind(ww, dtype=torch.complex128)
            if fused:
                assert bound.layered_spec() is not None, "the layered path was not taken"
            e = bound.expvals(xx)
            gw, gx = torch.autograd.grad((probe * e).sum(), (ww, xx))
            out[fused] = (e, gw, gx)
    finally:
        BoundProgram.fused = True
        prog.use_adjoint = True
    return out[True], out[False]


@pytest.mark.parametrize("n", [5, 6, 7, 8])
@pytest.mark.parametrize("template", ["chen", "basic_entangler", "strongly_entangling"])
@pytest.mark.parametrize("groups", [(), (4,), (2, 3)])
def test_layered_matches_autograd_path(n, template, groups):
    torch.manual_seed(n + len(groups))
    c = chen_vqc(n, 2, range(n - 1), template=template)
    w = torch.randn(*groups, c.n_weights, dtype=torch.float64)
    x = torch.randn(5, n, dtype=torch.float64)
    probe = torch.randn(*groups, 5, n - 1, dtype=torch.float64)
    fast, ref = _both_paths(compile_program(c), w, x, probe)
    assert fast[0].shape == (*groups, 5, n - 1)
    for a, b in zip(fast, ref):
        assert torch.allclose(a, b, atol=1e-10)


def test_layered_with_phased_permutation_and_partial_layers():
    """Constant blocks that are permutations *with phases* (CZ, S, X), a layer that skips wires, and
    rotations on only some wires in the encoding."""
    n = 7
    c = Circuit(n)
    x = c.inputs(n)
    for q in range(n):
        c.h(q)
        if q % 2 == 0:
            c.rx(q, atan(x[q]))
        c.rz(q, x[q])
    w = c.weights(12)
    c.cz(0, 3).s(2).x(5).cnot(6, 1).cz(4, 5)
    for q in (0, 2, 3, 6):
        c.ry(q, w[q])
    c.t(1).cnot(2, 4).swap(0, 6)
    for k, q in enumerate(range(1, 6)):
        c.rot(q, w[4 + k], w[6], w[7 + k % 5])
    c.expval_each("Z", [0, 3, 6])
    prog = compile_program(c)
    assert prog.layered_stages(torch.complex128, None) is not None
    assert any(st[0] == "perm" and st[2] is not None for st in prog.layered_stages(torch.complex128, None))
    fast, ref = _both_paths(prog, torch.randn(3, 12, dtype=torch.float64), torch.randn(4, n, dtype=torch.float64),
                            torch.randn(3, 4, 3, dtype=torch.float64))
    for a, b in zip(fast, ref):
        assert torch.allclose(a, b, atol=1e-10)


def test_layered_not_taken_where_it_does_not_apply():
    # a weight-dependent two-qubit gate, a non-monomial constant gate, 4 and 9 qubits
    for build, n in ((lambda c, w: c.crx(0, 1, w[0]), 7), (lambda c, w: c.h(3).ry(0, w[0]), 7),
                     (lambda c, w: c.cnot(0, 1).ry(0, w[0]), 4), (lambda c, w: c.cnot(0, 1).ry(0, w[0]), 9)):
        c = Circuit(n)
        x = c.inputs(n)
        for q in range(n):
            c.ry(q, x[q])
        build(c, c.weights(1))
        c.expval_each("Z", range(n))
        assert compile_program(c).layered_stages(torch.complex128, None) is None


def test_layered_gradcheck():
    c = chen_vqc(7, 1, range(3))
    prog = compile_program(c)
    w = torch.randn(2, c.n_weights, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 7, dtype=torch.float64, requires_grad=True)
    assert prog.bind(w.detach()).layered_spec() is not None
    assert torch.autograd.gradcheck(lambda w, x: prog.bind(w, dtype=torch.complex128).expvals(x), (w, x))


def test_kron_factors_gradcheck():
    w = torch.randn(2, 5, 3, 2, 2, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: KronFactors.apply(w, 3), (w,))
    left, right = kron_factors(w.detach(), 3)
    assert left.shape == (2, 3, 8, 8) and right.shape == (2, 3, 4, 4)
    ref = torch.kron(torch.kron(w[1, 0, 2], w[1, 1, 2]), w[1, 2, 2])
    assert torch.allclose(left[1, 2], ref)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_constant_gate_parameters_with_grouped_weights(n):
    """A gate mixing weights and constants (``rot(w, 0.3, w)``) with grouped weights: each group
    must equal its own single run, on the fast path (Heisenberg at 3, layered at 5 and 7 qubits)
    and on the reference path."""
    c = Circuit(n)
    x = c.inputs(n)
    for q in range(n):
        c.h(q).ry(q, atan(x[q]))
    w = c.weights(2 * n)
    for q in range(n):
        c.cnot(q, (q + 1) % n)
    for q in range(n):
        c.rot(q, w[2 * q], 0.3, w[2 * q + 1])
    c.expval_each("Z", range(n))
    prog = compile_program(c)
    weights = torch.randn(3, 2 * n, dtype=torch.float64)
    xs = torch.randn(4, n, dtype=torch.float64)
    try:
        for fused in (True, False):
            BoundProgram.fused = BoundProgram.heisenberg = fused
            prog.use_adjoint = fused
            grouped = prog.bind(weights).expvals(xs)
            for g in range(3):
                single = prog.bind(weights[g]).expvals(xs)
                torch.testing.assert_close(grouped[g], single, atol=1e-12, rtol=0)
    finally:
        BoundProgram.fused = BoundProgram.heisenberg = True
        prog.use_adjoint = True


@pytest.mark.parametrize("n", [3, 5, 8])
def test_second_derivatives_through_hand_written_backwards_are_refused(n):
    """Heisenberg (3), layered (5, 8): the backward nodes read what the forward kept, so they refuse
    a second derivative instead of returning a wrong one."""
    c = chen_vqc(n, 1)
    w = torch.randn(c.n_weights, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, n, dtype=torch.float64, requires_grad=True)
    e = compile_program(c).bind(w).expvals(x)
    (g,) = torch.autograd.grad(e.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no second derivative"):
        g.sum().backward()
