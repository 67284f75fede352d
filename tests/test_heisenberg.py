"""The Heisenberg-picture evaluation (qlstm.circuit.heisenberg) against the statevector paths.

Each fast piece is checked against a plain one: closed-form Bloch rotations against the
general SO(3) map of the gate's matrix, the wire-cycling ``TransferRows`` against
``conjugate_rows`` wire by wire, ``BlochExpval`` against ``bloch_prefix`` + ``PauliExpval``,
and whole circuits against ``run(..., method="reference")`` (gate by gate on a statevector).
"""

import math
import random

import pytest
import torch

from qlstm import Circuit, compile_program, run
from qlstm.circuit.expr import atan
from qlstm.circuit.heisenberg import (
    BlochExpval, PauliExpval, TransferRows, transfer_rows_plain, bloch_of, bloch_prefix, bloch_rotation, conjugate_rows,
    constant_transfer, observable_vectors, pauli_transfer, rotation_spec, so3_of,
)
from qlstm.circuit.plan import BoundProgram
from qlstm.circuit.templates import chen_vqc
from qlstm.nn import QuantumLayer
from qlstm.sim import kernels as K
from qlstm.sim.gates import lookup

F64 = torch.float64


def random_unitary(d: int, gen: torch.Generator) -> torch.Tensor:
    z = torch.randn(d, d, dtype=torch.complex128, generator=gen)
    q, r = torch.linalg.qr(z)
    return q * (torch.diagonal(r) / torch.diagonal(r).abs())


def product_state(vecs: torch.Tensor) -> torch.Tensor:
    """Statevector of per-wire states ``[n, 2]`` (wire 0 most significant)."""
    psi = vecs[0]
    for v in vecs[1:]:
        psi = torch.kron(psi, v)
    return psi


class _Obs:
    def __init__(self, paulis, wires):
        self.paulis, self.wires = paulis, tuple(wires)


def test_pauli_transfer_reproduces_expectation_values_of_product_states():
    gen = torch.Generator().manual_seed(0)
    n = 3
    u = random_unitary(2**n, gen)
    obs = [_Obs("Z", [0]), _Obs("XY", [1, 2]), _Obs("YZX", [0, 1, 2])]
    table = pauli_transfer(u.T, obs, n, torch.complex128, None)  # rows form: m = U^T
    assert table.shape == (4**n, 3) and table.dtype == F64
    for _ in range(5):
        vecs = torch.randn(n, 2, dtype=torch.complex128, generator=gen)
        vecs = vecs / vecs.norm(dim=1, keepdim=True)
        phi = u @ product_state(vecs)
        direct = torch.stack([K.expval_pauli(phi.unsqueeze(0), o.paulis, o.wires, n)[0] for o in obs])
        r = bloch_of(vecs).unsqueeze(1)  # [n, 1, 3]
        via_table = PauliExpval.apply(r, table)[0]
        assert torch.allclose(via_table, direct, atol=1e-12)


def test_constant_transfer_is_a_signed_permutation_for_clifford_blocks_and_dense_otherwise():
    n = 2
    c = Circuit(n).cnot(0, 1).h(1).s(0)
    m = torch.eye(4, dtype=torch.complex128)
    for g in c.ops:
        m = K.apply_matrix(m, lookup(g.name).matrix((), dtype=torch.complex128), g.wires, n)
    kind, source, sign = constant_transfer(m, n)
    assert kind == "perm" and sorted(source.tolist()) == list(range(16))
    assert set(sign.abs().tolist()) == {1.0}
    # with a T gate the block is not Clifford: a dense map, still orthogonal
    t = K.apply_matrix(m, lookup("t").matrix((), dtype=torch.complex128), [0], n)
    kind, q, _ = constant_transfer(t, n)
    assert kind == "dense"
    assert torch.allclose(q @ q.T, torch.eye(16, dtype=F64), atol=1e-12)


@pytest.mark.parametrize("name", ["rx", "ry", "rz", "phaseshift", "rot", "u3"])
def test_closed_form_bloch_rotations_match_the_general_map(name):
    gen = torch.Generator().manual_seed(1)
    spec = lookup(name)
    params = [torch.rand(5, dtype=F64, generator=gen) * 4 * math.pi - 2 * math.pi for _ in range(spec.num_params)]
    fast = bloch_rotation(name, params)
    general = so3_of(spec.matrix(params, dtype=torch.complex128))
    assert torch.allclose(fast, general, atol=1e-12)
    assert torch.allclose(fast @ fast.transpose(-1, -2), torch.eye(3, dtype=F64).expand(5, 3, 3), atol=1e-12)


def _random_rots(shape, gen):
    return so3_of(torch.stack([random_unitary(2, gen) for _ in range(math.prod(shape))]).reshape(*shape, 2, 2))


def test_transfer_rows_equals_conjugate_rows_wire_by_wire_and_its_backward_is_exact():
    gen = torch.Generator().manual_seed(2)
    n, groups = 3, 2
    perm_m = torch.eye(8, dtype=torch.complex128)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        perm_m = K.apply_matrix(perm_m, lookup("cnot").matrix((), dtype=torch.complex128), [a, b], n)
    kind, source, sign = constant_transfer(perm_m, n)
    inverse = torch.empty_like(source)
    inverse[source] = torch.arange(source.numel())
    rots = _random_rots((6, groups), gen).requires_grad_(True)  # six gates (one unused), two weight groups
    dense = torch.randn(4**n, 4**n, dtype=F64, generator=gen)  # a "dense" step (a non-Clifford block's map)
    # reverse order of application: a layer on wires 0, 2 (no gate on 1), the CNOT ring, a dense map,
    # a full layer; gate 5 appears in no step (its gradient must be zero)
    plan = [("rot", 0, 0, 0), ("rot", 1, None, None), ("rot", 2, 0, 1), ("perm", source, sign, inverse),
            ("dense", dense), ("rot", 0, 0, 2), ("rot", 1, 0, 3), ("rot", 2, 0, 4)]
    o = observable_vectors([_Obs("Z", [0]), _Obs("XZ", [1, 2])], n, F64, None)
    fast = TransferRows.apply(plan, n, o, rots)

    ref = o
    for step in plan:
        if step[0] == "perm":
            ref = ref[..., step[1]] * step[2]
        elif step[0] == "dense":
            ref = ref @ step[1]
        elif step[2] is not None:
            ref = conjugate_rows(ref, rots[step[3]], step[1], n)
    assert fast.shape == (groups, 2, 4**n)
    assert torch.allclose(fast, ref, atol=1e-12)
    weights = torch.randn(fast.shape, dtype=F64, generator=gen)
    g_fast, = torch.autograd.grad((fast * weights).sum(), rots)
    g_ref, = torch.autograd.grad((ref * weights).sum(), rots)
    assert torch.allclose(g_fast, g_ref, atol=1e-12)
    assert bool((g_fast[5] == 0).all())
    # groups of different weight shapes are refused, not broadcast against each other
    with pytest.raises(ValueError, match="same weight-group shape"):
        TransferRows.apply(plan, n, o, rots, rots[:, 0])
    # the plain-operation version (what torch.compile traces) gives the same rows and, by autograd, gradients
    plain = transfer_rows_plain(plan, n, o, rots)
    assert torch.allclose(plain, ref, atol=1e-12)
    g_plain, = torch.autograd.grad((plain * weights).sum(), rots)
    assert torch.allclose(g_plain, g_ref, atol=1e-12)


def test_bloch_expval_equals_the_autograd_composition_and_passes_gradcheck():
    n = 3
    c = Circuit(n)
    x = c.inputs(n)
    for w in range(n):
        c.h(w).ry(w, atan(x[w])).rz(w, atan(x[w] ** 2)).s(w).rx(w, 0.5 * x[w])
    c.cnot(0, 1).cnot(1, 2).rot(2, *c.weights(3)).cnot(2, 0)
    c.expval("Z", 0).expval("XY", (1, 2))
    prog = compile_program(c)
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(c.n_weights, dtype=F64, generator=gen)
    bound = prog.bind(w)
    groups = prog.heisenberg_groups()
    assert groups is not None
    spec = rotation_spec(groups, torch.complex128, None)
    assert spec is not None and any(fixed is not None for _, _, fixed in spec)  # S is a fixed rotation
    table = bound._transfer().reshape(4**n, -1).detach().requires_grad_(True)
    r0 = bloch_of(bound._vecs0)
    xs = torch.randn(4, n, dtype=F64, generator=gen)
    angles = [grp.slots[0].evaluate(xs, None, F64, None) for grp in groups if lookup(grp.name).num_params]
    angles = [a.detach().requires_grad_(True) for a in angles]

    def composed(table, *angles):
        it = iter(angles)
        r = r0.unsqueeze(1).expand(n, xs.shape[0], 3)
        from qlstm.circuit.heisenberg import rotate_bloch
        for grp in groups:
            if lookup(grp.name).num_params:
                r = rotate_bloch(grp.name, next(it), r)
            else:
                r = (r @ so3_of(lookup(grp.name).matrix((), dtype=torch.complex128)).T)
        return PauliExpval.apply(r, table)

    fused = BlochExpval.apply(spec, r0, table, *angles)
    ref = composed(table, *angles)
    assert torch.allclose(fused, ref, atol=1e-12)
    assert torch.allclose(fused, run(c, xs, w, method="reference").expvals, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t, *a: BlochExpval.apply(spec, r0, t, *a), (table, *angles))
    # bloch_prefix (the generic path) gives the same Bloch vectors as the rotations above
    r_generic = bloch_prefix(r0, groups, xs, torch.complex128)
    assert torch.allclose(PauliExpval.apply(r_generic, table), ref, atol=1e-12)


def random_encoded_circuit(n: int, rng: random.Random, two_qubit_weights: bool) -> Circuit:
    """Random product-state encoding reading the inputs, then random weight-only gates, Pauli read-outs.

    Without ``two_qubit_weights`` the weight gates are one-qubit (the table is propagated through
    them); with it CRX and IsingZZ join (the table comes from the fused matrix).
    """
    c = Circuit(n)
    x = c.inputs(n)
    data_gates = ["rx", "ry", "rz", "phaseshift", "u3", "rot"]
    for w in range(n):
        if rng.random() < 0.5:
            c.h(w)
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(data_gates + ["s", "sx", "t"])
            spec = lookup(name)
            params = [rng.choice([atan(x[w]), 0.7 * x[w], atan(x[w] ** 2), rng.uniform(-2, 2)])
                      for _ in range(spec.num_params)]
            c.gate(name, [w], *params)
    for w in range(n):  # entangle every wire first, so that the weight gates below are not part of the encoding
        c.cnot(w, (w + 1) % n)
    pool = ["cnot", "cz", "swap", "rot", "ry", "h", "t", "rx"] + (["crx", "isingzz"] if two_qubit_weights else [])
    for _ in range(4 * n):
        name = rng.choice(pool)
        spec = lookup(name)
        wires = rng.sample(range(n), spec.num_wires)
        params = [c.weights(1)[0] if rng.random() < 0.7 else rng.uniform(-2, 2) for _ in range(spec.num_params)]
        c.gate(name, wires, *params)
    for _ in range(3):
        k = rng.randint(1, n)
        wires = rng.sample(range(n), k)
        c.expval("".join(rng.choice("XYZ") for _ in wires), wires)
    return c


@pytest.mark.parametrize("n", [2, 3, 4])
def test_heisenberg_path_matches_reference_on_random_encoded_circuits(n):
    rng = random.Random(40 + n)
    gen = torch.Generator().manual_seed(n)
    checked = set()
    for trial in range(6):
        c = random_encoded_circuit(n, rng, two_qubit_weights=trial % 2 == 1)
        prog = compile_program(c)
        xs = torch.randn(4, n, dtype=F64, generator=gen, requires_grad=True)
        w = torch.randn(3, c.n_weights, dtype=F64, generator=gen, requires_grad=True)
        bound = prog.bind(w)
        assert bound._heis is not None, c.draw()
        checked.add("propagated" if prog.steps[0].adjoint_ready(n) else "decomposed")
        fast = bound.expvals(xs)
        ref = torch.stack([run(c, xs, wg, method="reference").expvals for wg in w])
        assert torch.allclose(fast, ref, atol=1e-10), (n, trial, c.draw())
        slow = prog.bind(w)
        slow.heisenberg = False
        sv = slow.expvals(xs)
        cot = torch.randn(sv.shape, dtype=F64, generator=gen)
        g_fast = torch.autograd.grad((fast * cot).sum(), [xs, w])
        g_sv = torch.autograd.grad((sv * cot).sum(), [xs, w])
        for a, b in zip(g_fast, g_sv):
            assert torch.allclose(a, b, atol=1e-10), (n, trial, c.draw())
    # both ways of building the table were exercised: propagation through constant blocks and
    # one-qubit layers, and the Pauli decomposition of the fused matrix (two-qubit weight gates)
    assert checked == {"propagated", "decomposed"}


def test_planner_uses_heisenberg_for_small_encoded_circuits_only():
    w4 = torch.zeros(4, chen_vqc(4, 2).n_weights)
    assert compile_program(chen_vqc(4, 2)).bind(w4)._heis is not None
    w5 = torch.zeros(chen_vqc(5, 2).n_weights)
    assert compile_program(chen_vqc(5, 2)).bind(w5)._heis is None  # above heisenberg_max_qubits
    amp = Circuit(2)
    amp.inputs(4)
    amp.amplitude_encoding(range(4), [0, 1])
    amp.ry(0, amp.weights(1)[0]).expval("Z", 0)
    assert compile_program(amp).bind(torch.zeros(1))._heis is None  # not a product-state encoding
    # data read after the entangling gates: not a fixed transfer table
    late = Circuit(2)
    xl = late.inputs(2)
    late.ry(0, xl[0]).cnot(0, 1).ry(1, xl[1]).rx(0, late.weights(1)[0]).expval("Z", 1)
    assert compile_program(late).bind(torch.zeros(1))._heis is None


def test_one_bind_serves_every_time_step_and_subsets_cut_the_table():
    torch.manual_seed(5)
    layer = QuantumLayer(chen_vqc(3, 2), copies=6, dtype=F64)
    with torch.no_grad():
        layer.weight.normal_()
    bound = layer.bind()
    xs = [torch.randn(5, 3, dtype=F64) for _ in range(3)]
    first = bound.subset(slice(0, 4))
    rest = bound.subset(slice(4, 6))
    assert bound._ops is None  # no statevector matrices were built
    for x in xs:
        ref = torch.stack([run(layer.circuit, x, wg, method="reference").expvals for wg in layer.weight])
        assert torch.allclose(first.expvals(x), ref[:4], atol=1e-12)
        assert torch.allclose(rest.expvals(x), ref[4:], atol=1e-12)
    # statevector access still works on a Heisenberg-bound program (built on demand)
    assert bound.state(xs[0]).shape == (6, 5, 8)


def test_float32_heisenberg_matches_float64():
    torch.manual_seed(6)
    c = chen_vqc(4, 2)
    w = torch.randn(4, c.n_weights, dtype=F64)
    x = torch.randn(7, 4, dtype=F64)
    e64 = compile_program(c).bind(w).expvals(x)
    e32 = compile_program(c).bind(w.float(), dtype=torch.complex64).expvals(x.float())
    assert e32.dtype == torch.float32
    assert torch.allclose(e32.double(), e64, atol=1e-5)


def test_switching_heisenberg_off_uses_the_statevector_path():
    c = chen_vqc(3, 1)
    w = torch.randn(c.n_weights, dtype=F64)
    x = torch.randn(2, 3, dtype=F64)
    b = compile_program(c).bind(w)
    b.heisenberg = False
    assert torch.allclose(b.expvals(x), run(c, x, w, method="reference").expvals, atol=1e-12)
    assert b._table is None
    assert isinstance(b, BoundProgram)


def test_zyz_rotation_closed_form_backward_matches_autograd():
    """The Rot gate's Bloch rotation (hand-written backward) against autograd over the same formula, and gradcheck."""
    from qlstm.circuit.heisenberg import ZYZRotation, _zyz

    gen = torch.Generator().manual_seed(3)
    phi, theta, omega = (torch.randn(4, 2, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(ZYZRotation.apply, (phi, theta, omega))
    cs = torch.stack([phi, theta, omega])
    (c1, c2, c3), (s1, s2, s3) = torch.cos(cs), torch.sin(cs)
    plain = _zyz(c1, s1, c2, s2, c3, s3)
    fast = ZYZRotation.apply(phi, theta, omega)
    torch.testing.assert_close(fast, plain, atol=0, rtol=0)
    g = torch.randn(plain.shape, dtype=torch.float64, generator=gen)
    for a, b in zip(torch.autograd.grad((fast * g).sum(), (phi, theta, omega)),
                    torch.autograd.grad((plain * g).sum(), (phi, theta, omega))):
        torch.testing.assert_close(a, b, atol=1e-14, rtol=0)
    # bloch_rotation's plain form (for torch.compile) is the same formula, also for Qiskit's U
    torch.testing.assert_close(bloch_rotation("rot", [phi, theta, omega], plain=True), fast, atol=0, rtol=0)
    torch.testing.assert_close(bloch_rotation("u3", [theta, omega, phi], plain=True),
                               bloch_rotation("u3", [theta, omega, phi]), atol=0, rtol=0)
    # a rotation: orthogonal with determinant 1
    torch.testing.assert_close(fast @ fast.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand_as(fast),
                               atol=1e-14, rtol=0)


def test_weight_zyz_rotation_equals_zyz_rotation_and_passes_gradcheck():
    """Rot gates on plain weights (lookup, rotation and the [9, 27] monomial product in one node)
    against ZYZRotation over the same angles; a weight shared by two gates collects both gradients."""
    from qlstm.circuit.heisenberg import WeightZYZRotation, ZYZRotation

    gen = torch.Generator().manual_seed(7)
    w = torch.randn(3, 1, 7, dtype=F64, generator=gen, requires_grad=True)
    index = torch.tensor([[0, 3, 6], [1, 4, 0], [2, 5, 6]])  # weights 0 and 6 used twice
    fast = WeightZYZRotation.apply(w, index)
    phi, theta, omega = (w[..., i].movedim(-1, 0) for i in index)
    ref = ZYZRotation.apply(phi, theta, omega)
    assert fast.shape == ref.shape == (3, 3, 1, 3, 3)
    torch.testing.assert_close(fast, ref, atol=1e-14, rtol=0)
    g = torch.randn(fast.shape, dtype=F64, generator=gen)
    g_fast, = torch.autograd.grad((fast * g).sum(), w)
    g_ref, = torch.autograd.grad((ref * g).sum(), w)
    torch.testing.assert_close(g_fast, g_ref, atol=1e-14, rtol=0)
    assert torch.autograd.gradcheck(lambda v: WeightZYZRotation.apply(v, index), (w,))
    # ungrouped weights [n_w]
    w1 = w[0, 0].detach().requires_grad_(True)
    torch.testing.assert_close(WeightZYZRotation.apply(w1, index), ZYZRotation.apply(*(w1[i] for i in index)),
                               atol=1e-14, rtol=0)
    assert torch.autograd.gradcheck(lambda v: WeightZYZRotation.apply(v, index), (w1,))
