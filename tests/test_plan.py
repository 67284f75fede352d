"""The compiled fast paths (qlstm.circuit.plan, qlstm.circuit.adjoint) against the plain reference path."""

import random

import pytest
import torch

from qlstm import Circuit, compile_program, run
from qlstm.circuit.expr import atan
from qlstm.circuit.plan import BoundProgram
from qlstm.circuit.templates import angle_encoding, chen_vqc, dense_angle_encoding
from qlstm.sim.gates import GATES

ONE_QUBIT = sorted({s.name for s in GATES.values() if s.num_wires == 1})
TWO_QUBIT = sorted({s.name for s in GATES.values() if s.num_wires == 2})


def random_pure_circuit(n: int, rng: random.Random, n_gates: int = 20) -> Circuit:
    """Chen-style encoding prefix, then random gates whose angles mix weights, inputs and constants."""
    c = Circuit(n)
    x = c.inputs(n)
    for w in range(n):
        c.h(w).ry(w, atan(x[w])).rz(w, atan(x[w] ** 2))
    for _ in range(n_gates):
        pool = ONE_QUBIT + (TWO_QUBIT if n > 1 else []) + (["toffoli"] if n > 2 else [])
        name = rng.choice(pool)
        spec = GATES[name]
        wires = rng.sample(range(n), spec.num_wires)
        params = []
        for _ in range(spec.num_params):
            r = rng.random()
            params.append(c.weights(1)[0] if r < 0.6 else 0.5 * x[rng.randrange(n)] if r < 0.8 else rng.uniform(-3, 3))
        c.gate(name, wires, *params)
    c.expval_each("Z", range(n))
    if n > 1:
        c.expval("XY", (0, n - 1))
    return c


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 8])
def test_program_matches_reference(n):
    rng = random.Random(n)
    for trial in range(4):
        c = random_pure_circuit(n, rng)
        x = torch.randn(3, n, dtype=torch.float64)
        w = torch.randn(c.n_weights, dtype=torch.float64)
        ref = run(c, x, w, method="reference").expvals
        fast = compile_program(c).bind(w).expvals(x)
        assert torch.allclose(fast, ref, atol=1e-10), (n, trial, c.draw())
        # the same through run(): the planner picks the compiled program for pure circuits
        assert torch.allclose(run(c, x, w).expvals, ref, atol=1e-10)


@pytest.mark.parametrize("n", [2, 4, 7])
def test_grouped_weights_equal_one_run_per_group(n):
    c = random_pure_circuit(n, random.Random(10 + n))
    x = torch.randn(4, n, dtype=torch.float64)
    w = torch.randn(3, c.n_weights, dtype=torch.float64)
    grouped = compile_program(c).bind(w).expvals(x)
    assert grouped.shape == (3, 4, len(c.observables))
    for g in range(3):
        assert torch.allclose(grouped[g], run(c, x, w[g], method="reference").expvals, atol=1e-10)


def test_subset_of_groups():
    c = chen_vqc(3, 2)
    x = torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(6, c.n_weights, dtype=torch.float64)
    bound = compile_program(c).bind(w)
    full = bound.expvals(x)
    assert torch.allclose(bound.subset(slice(4, 6)).expvals(x), full[4:6], atol=1e-12)
    assert torch.allclose(bound.subset(1).expvals(x)[0], full[1], atol=1e-12)


def test_complex64_close_to_complex128():
    c = random_pure_circuit(5, random.Random(3))
    x = torch.randn(4, 5, dtype=torch.float64)
    w = torch.randn(c.n_weights, dtype=torch.float64)
    e64 = compile_program(c).bind(w.float(), dtype=torch.complex64).expvals(x.float())
    e128 = run(c, x, w, method="reference").expvals
    assert e64.dtype == torch.float32
    assert torch.allclose(e64.double(), e128, atol=1e-4)


def test_wide_register_constant_blocks_are_gathers_not_dense():
    # 12 qubits: the CNOT rings must become index gathers (a dense 4096x4096 block would be built otherwise)
    c = chen_vqc(12, 1, measure_wires=[0, 5])
    prog = compile_program(c)
    w = torch.randn(c.n_weights, dtype=torch.float64)
    kinds = [op[0] for op in prog.bind(w).ops]
    assert "dense" not in kinds and "perm" in kinds
    x = torch.randn(2, 12, dtype=torch.float64)
    assert torch.allclose(prog.bind(w).expvals(x), run(c, x, w, method="reference").expvals, atol=1e-10)


def partial_encoding() -> Circuit:
    """Rotations on some wires only, a fixed gate after a data gate, and a constant angle."""
    c = Circuit(3)
    x = c.inputs(2)
    c.ry(0, x[0]).h(0).rx(2, atan(x[1])).phase(2, 0.7).rz(0, x[1] * 2)
    return c


@pytest.mark.parametrize("make", [lambda: chen_vqc(4, 2), lambda: chen_vqc(2, 1, [0]), lambda: angle_encoding(3, "X"),
                                  lambda: dense_angle_encoding(4), partial_encoding])
@pytest.mark.parametrize("copies", [None, 3])
def test_hand_written_backward_matches_autograd(make, copies):
    c = make()
    if not c.observables:  # a bare encoding: add a trainable layer and read-outs
        c.cnot(0, 1).rot(1, *c.weights(3))
        c.expval_each("Z", range(c.n_qubits))
    shape = (c.n_weights,) if copies is None else (copies, c.n_weights)
    w = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, c.n_inputs, dtype=torch.float64, requires_grad=True)
    results = []
    try:
        for fused in (True, False):
            BoundProgram.fused = fused
            bound = compile_program(c).bind(w)
            if fused:
                assert bound._fused_spec() is not None
            e = bound.expvals(x)
            weights = torch.linspace(-1, 1, e.numel(), dtype=e.dtype).reshape(e.shape)
            gw, gx = torch.autograd.grad((e * weights).sum(), (w, x))
            results.append((e.detach(), gw, gx))
    finally:
        BoundProgram.fused = True
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-12)


def test_hand_written_backward_gradcheck():
    c = chen_vqc(3, 1)
    w = torch.randn(2, c.n_weights, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: compile_program(c).bind(w).expvals(x), (x, w))


def test_program_is_cached_and_invalidated_by_edits():
    c = chen_vqc(2, 1)
    assert compile_program(c) is compile_program(c)
    before = compile_program(c)
    c.rx(0, 0.3)
    assert compile_program(c) is not before


def test_light_cone_restriction_keeps_expectations():
    from qlstm.circuit.transform import light_cone

    c = Circuit(6)
    x = c.inputs(6)
    w = c.weights(6)
    for i in range(6):
        c.ry(i, atan(x[i])).rz(i, w[i])
    c.cnot(0, 1).cnot(2, 3).crx(4, 5, 0.3).cnot(1, 2)
    c.expval("Z", 2).expval("XZ", (1, 3)).probs([0])
    assert light_cone(c) == [0, 1, 2, 3]
    prog = compile_program(c, light_cone=True)
    assert prog.wires == (0, 1, 2, 3) and prog.circuit.n_qubits == 4
    xs = torch.randn(5, 6, dtype=torch.float64)
    ws = torch.randn(6, dtype=torch.float64)
    assert torch.allclose(prog.bind(ws).expvals(xs), run(c, xs, ws, method="reference").expvals, atol=1e-12)
    # a read-out reaching every wire leaves the circuit as it is
    c.expval("Z", 5)
    assert compile_program(c, light_cone=True).wires is None


@pytest.mark.parametrize("n,layers,copies", [(1, 2, None), (3, 2, 4), (4, 2, 2), (5, 1, None), (6, 1, 2)])
def test_fused_run_backward_matches_autograd(n, layers, copies):
    c = chen_vqc(n, layers)
    c.ry(0, c.weights(1)[0])  # a trailing partial layer (identity on the other wires)
    prog = compile_program(c)
    shape = (c.n_weights,) if copies is None else (copies, c.n_weights)
    w = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, n, dtype=torch.float64)
    results = []
    try:
        for adjoint in (True, False):
            prog.use_adjoint = adjoint
            e = prog.bind(w).expvals(x)
            weights = torch.linspace(-1, 1, e.numel(), dtype=e.dtype).reshape(e.shape)
            (gw,) = torch.autograd.grad((e * weights).sum(), (w,))
            results.append((e.detach(), gw))
    finally:
        prog.use_adjoint = True
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-12)


def test_fused_run_gradcheck():
    c = chen_vqc(3, 2)
    x = torch.randn(2, 3, dtype=torch.float64)
    w = torch.randn(2, c.n_weights, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: compile_program(c).bind(w).expvals(x), (w,))


@pytest.mark.parametrize("template", ["chen", "basic_entangler", "strongly_entangling"])
@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("lead", [(3, 1), (), (2,)])
def test_plain_transfer_table_equals_the_hand_written_one(template, n, lead):
    """Program.transfer_table_fn (plain operations, what QLSTM(compiled=True) compiles) against
    Program.transfer_table (hand-written backwards): same table, same weight gradient, for grouped
    ([G, 1, n_w], as QuantumLayer binds copies), ungrouped and [G, n_w] weights."""
    c = chen_vqc(n, 2, template=template)
    prog = compile_program(c, light_cone=True)
    gen = torch.Generator().manual_seed(n)
    w = torch.randn(*lead, c.n_weights, dtype=torch.float64, generator=gen, requires_grad=True)
    fast = prog.transfer_table(w, torch.complex128, None)
    fn = prog.transfer_table_fn(torch.complex128, None)
    assert fn is not None
    plain = fn(w)
    assert plain.shape == fast.shape
    torch.testing.assert_close(plain, fast, atol=1e-12, rtol=0)
    g = torch.randn(fast.shape, dtype=torch.float64, generator=gen)
    g_fast, = torch.autograd.grad((fast * g).sum(), w)
    g_plain, = torch.autograd.grad((plain * g).sum(), w)
    torch.testing.assert_close(g_plain, g_fast, atol=1e-12, rtol=0)


def test_plain_transfer_table_is_none_where_the_rows_path_does_not_apply():
    c = Circuit(2)
    x = c.inputs(2)
    c.ry(0, x[0]).ry(1, x[1]).crx(0, 1, c.weights(1)[0])  # a two-qubit weight gate: no one-qubit layers
    c.expval("Z", 0)
    assert compile_program(c).transfer_table_fn(torch.complex128, None) is None
