"""The fused QLSTM recurrences (qlstm.models._fused, _fused_general, _fused_adapter) against the
step-by-step autograd path."""

import pytest
import torch

from qlstm.circuit.plan import BoundProgram
from qlstm.models._fused import FusedFaithfulQLSTM, chen_bloch, chen_heisenberg_tables
from qlstm.models._fused_general import FusedGeneralQLSTM
from qlstm.models._fused_layered import LayeredPlan, chen_product_back, chen_product_state
from qlstm.models.qlstm import QLSTM

F64 = torch.float64


def _model(i, h, layers=2, dtype=F64, seed=0, native=False, **kw):
    """A model with random weights; the native kernels off (tests/test_native_qlstm.py compares them
    with the torch nodes tested here)."""
    m = QLSTM(i, h, n_layers=layers, dtype=dtype, generator=torch.Generator().manual_seed(seed), **kw)
    m.native = native
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return m


def _assert_same(first, second, grad_atol):
    """Outputs (h, c included) to 1e-12, gradients to ``grad_atol``, of two ``_loss_and_grads`` results."""
    for a, b in zip(first[:3], second[:3]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    for a, b in zip(first[3], second[3]):
        torch.testing.assert_close(a, b, atol=grad_atol, rtol=0)


def _loss_and_grads(m, x, state):
    out, (h, c) = m(x, state)
    loss = out.square().sum() + (1.3 * h).sum() + c.square().sum()
    return out, h, c, torch.autograd.grad(loss, [x, *state, *m.parameters()])


@pytest.mark.parametrize("i,h,t,layers,template", [(1, 3, 4, 2, "chen"), (2, 2, 5, 1, "chen"), (1, 2, 1, 3, "chen"),
                                                   (3, 1, 3, 2, "chen"), (1, 3, 3, 2, "strongly_entangling"),
                                                   (1, 2, 3, 2, "basic_entangler")])
def test_fused_equals_step_by_step_values_and_gradients(i, h, t, layers, template):
    m = _model(i, h, layers, template=template)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(5, t, i, dtype=F64, generator=gen, requires_grad=True)
    state = (torch.randn(1, 5, h, dtype=F64, generator=gen, requires_grad=True),
             torch.randn(1, 5, h, dtype=F64, generator=gen, requires_grad=True))
    assert m._fused_args() is not None
    fast = _loss_and_grads(m, x, state)
    m.fused = False
    assert m._fused_args() is None
    _assert_same(fast, _loss_and_grads(m, x, state), 1e-11)


def test_fused_node_gradcheck():
    m = _model(1, 2, 1)
    tg = chen_heisenberg_tables(m.gates.bind(), 3).detach().requires_grad_(True)
    tp = chen_heisenberg_tables(m.process.bind(), 2).detach().requires_grad_(True)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 1, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    c0 = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(FusedFaithfulQLSTM.apply, (x, h0, c0, tg, tp), eps=1e-6, atol=1e-6)


def test_chen_bloch_closed_form():
    v = torch.linspace(-3, 3, 13, dtype=F64).reshape(1, 13)
    r, _ = chen_bloch(v)
    th, ph = torch.atan(v), torch.atan(v * v)
    expect = torch.stack([th.cos() * ph.cos(), th.cos() * ph.sin(), -th.sin()], -1).transpose(0, 1)
    torch.testing.assert_close(r, expect, atol=1e-14, rtol=0)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_chen_features_and_their_hand_written_derivative(n):
    """The pairwise Kronecker features of the Chen encoding (odd rows out at several levels for 5 and 7)
    against the plain feature map of the closed-form Bloch vectors, and the backward against autograd."""
    from qlstm.circuit.heisenberg import bloch_features
    from qlstm.models._fused import chen_features, chen_features_back

    gen = torch.Generator().manual_seed(n)
    v = (torch.randn(3, n, dtype=F64, generator=gen) * 1.5).requires_grad_(True)
    th, ph = torch.atan(v), torch.atan(v * v)
    r = torch.stack([th.cos() * ph.cos(), th.cos() * ph.sin(), -th.sin()], -1).transpose(0, 1)  # [n, B, 3]
    expect, _ = bloch_features(r)
    f, saved = chen_features(v.detach())
    assert f.shape == (3, 4**n)
    torch.testing.assert_close(f, expect, atol=1e-14, rtol=0)
    g = torch.randn(f.shape, dtype=F64, generator=gen)
    (auto,) = torch.autograd.grad((expect * g).sum(), v)
    torch.testing.assert_close(chen_features_back(g, saved), auto, atol=1e-12, rtol=0)


@pytest.mark.parametrize("hidden,node", [(3, FusedFaithfulQLSTM), (6, FusedGeneralQLSTM)])
def test_fused_float32_batch_first_false_and_continuation(hidden, node):
    m = _model(1, hidden, 2, dtype=torch.float32)
    assert m._fused_args()[0] == node.apply
    x = torch.randn(4, 6, 1)
    out, (h, c) = m(x)
    m.fused = False
    ref, (hr, cr) = m(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    m.fused = True
    # six steps at once == three, then three more from the returned state
    a, state = m(x[:, :3])
    b, (h2, c2) = m(x[:, 3:], state)
    torch.testing.assert_close(torch.cat([a, b], 1), out, atol=1e-5, rtol=0)
    torch.testing.assert_close(h2, h, atol=1e-5, rtol=0)
    tm = QLSTM(1, hidden, n_layers=2, batch_first=False)
    tm.native = False
    tm.load_state_dict(m.state_dict())
    o_t, _ = tm(x.transpose(0, 1))
    torch.testing.assert_close(o_t.transpose(0, 1), out, atol=1e-5, rtol=0)


def test_fused_path_is_skipped_where_it_does_not_apply():
    assert _model(1, 2, noise="depolarizing:0.01:end")._fused_args() is None  # noisy: NoisyBound path
    assert _model(1, 2, shots=100)._fused_args() is None
    assert _model(1, 2, mode="adapter")._fused_args() is None
    assert _model(2, 3)._fused_args()[0] == FusedGeneralQLSTM.apply  # mixed: layered gates, Heisenberg processing
    assert _model(1, 8)._fused_args() is None  # 9 qubits: past the layered node's 8


@pytest.mark.slow
@pytest.mark.parametrize("i,h,layers", [(1, 3, 2), (2, 3, 1)])
def test_compiled_recurrence_equals_eager(i, h, layers):
    """torch.compile of the whole recurrence (slow: compiles for tens of seconds each): 4 qubits in the
    Heisenberg picture, 5 qubits as real-arithmetic layered statevectors with Heisenberg processing."""
    m = _model(i, h, layers)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, i, dtype=F64, generator=gen, requires_grad=True)
    state = (torch.randn(1, 4, h, dtype=F64, generator=gen, requires_grad=True),
             torch.randn(1, 4, h, dtype=F64, generator=gen, requires_grad=True))
    eager = _loss_and_grads(m, x, state)
    m.compiled = True
    assert m._fused_args()[0] not in (FusedFaithfulQLSTM.apply, FusedGeneralQLSTM.apply)
    _assert_same(eager, _loss_and_grads(m, x, state), 1e-10)


def test_compiled_flag_is_checked():
    with pytest.raises(Exception, match="compiled must be True or False"):
        QLSTM(1, 2, compiled="yes")
    for kw in (dict(mode="adapter"), dict(noise="bit_flip:0.1"), dict(shots=10)):
        with pytest.raises(Exception, match="compiled=True needs the fused recurrence"):
            QLSTM(1, 2, compiled=True, **kw)
    m = QLSTM(1, 8, n_layers=1, compiled=True)  # 9 qubits: no fused recurrence, a warning, the step-by-step path
    with pytest.warns(UserWarning, match="does not apply to this model"):
        out, _ = m(torch.randn(2, 3, 1))
    assert out.shape == (2, 3, 8)


def test_second_derivatives_through_the_fused_node_are_refused():
    m = _model(1, 2, 1)
    x = torch.randn(2, 2, 1, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(m(x)[0].sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


# -- 5 to 8 qubits: the statevector node ------------------------------------------------------------------
@pytest.mark.parametrize("i,h,t,template", [(1, 7, 3, "chen"), (2, 6, 2, "chen"), (1, 6, 3, "strongly_entangling"),
                                            (3, 5, 2, "basic_entangler"), (1, 5, 4, "chen"),
                                            # mixed: 5-qubit gate VQCs (layered), 3- and 1-qubit processing (Heisenberg)
                                            (2, 3, 3, "chen"), (4, 1, 2, "strongly_entangling")])
def test_layered_fused_equals_plain_autograd_path(i, h, t, template):
    m = _model(i, h, 2, template=template)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(3, t, i, dtype=F64, generator=gen, requires_grad=True)
    state = (torch.randn(1, 3, h, dtype=F64, generator=gen, requires_grad=True),
             torch.randn(1, 3, h, dtype=F64, generator=gen, requires_grad=True))
    assert m._fused_args()[0] == FusedGeneralQLSTM.apply
    fast = _loss_and_grads(m, x, state)
    m.fused = False
    progs = [m.gates.bind().program, m.process.bind().program]
    try:  # the reference: plain autograd through the statevector (no Heisenberg tables, no FusedRun)
        BoundProgram.fused = BoundProgram.heisenberg = False
        for prog in progs:
            prog.use_adjoint = False
        ref = _loss_and_grads(m, x, state)
    finally:
        BoundProgram.fused = BoundProgram.heisenberg = True
        for prog in progs:
            prog.use_adjoint = True
    _assert_same(fast, ref, 1e-11)


@pytest.mark.parametrize("i,h", [(1, 5), (3, 2)])  # layered + layered; layered gates + Heisenberg processing
def test_general_fused_node_gradcheck(i, h):
    m = _model(i, h, 1)
    node, args = m._fused_args()
    assert node == FusedGeneralQLSTM.apply
    vg, vp = (a.detach().requires_grad_(True) for a in args[:2])
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 2, i, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(2, h, dtype=F64, generator=gen, requires_grad=True)
    c0 = torch.randn(2, h, dtype=F64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: FusedGeneralQLSTM.apply(*a, *args[2:]), (x, h0, c0, vg, vp),
                                    eps=1e-6, atol=1e-6)


def test_chen_product_state_and_its_derivative():
    n = 5
    plan = LayeredPlan.build(n, [], torch.ones(2**n, 1, dtype=F64), torch.complex128, None)
    v = torch.linspace(-3, 2.5, 3 * n, dtype=F64).reshape(3, n).requires_grad_(True)
    psi, saved = chen_product_state(v, plan)  # column layout [d0, B, d1]
    psi = psi.transpose(0, 1).reshape(3, -1)
    th, ph = torch.atan(v), torch.atan(v * v)
    one = torch.ones_like(th)
    # RZ(ph) RY(th) H|0>, wire 0 the most significant bit
    a = (torch.cos(th / 2) - torch.sin(th / 2)) / 2**0.5
    b = (torch.cos(th / 2) + torch.sin(th / 2)) / 2**0.5
    vec = torch.stack([torch.polar(a, -ph / 2), torch.polar(b, ph / 2)], -1)
    ref = vec[:, 0]
    for w in range(1, n):
        ref = (ref.unsqueeze(-1) * vec[:, w].unsqueeze(-2)).flatten(-2)
    torch.testing.assert_close(psi, ref, atol=1e-14, rtol=0)
    assert torch.allclose(psi.abs().square().sum(-1), one[:, 0])
    g = torch.randn(psi.shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(2))
    (auto,) = torch.autograd.grad((g.conj() * ref).real.sum(), v)
    g_columns = g.view(3, *plan.split).transpose(0, 1)
    torch.testing.assert_close(chen_product_back(g_columns, saved, plan), auto, atol=1e-13, rtol=0)


# -- adapter mode ------------------------------------------------------------------------------------------
def _adapter(i, h, nq, template="chen", **kw):
    return _model(i, h, 2, n_qubits=nq, mode="adapter", template=template, **kw)


@pytest.mark.parametrize("i,h,nq,template", [(1, 2, 3, "chen"), (2, 3, 4, "strongly_entangling"),
                                             (1, 3, 5, "chen"), (2, 4, 8, "basic_entangler")])
def test_adapter_fused_equals_plain_autograd_path(i, h, nq, template):
    m = _adapter(i, h, nq, template)
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(3, 3, i, dtype=F64, generator=gen, requires_grad=True)
    state = (torch.randn(1, 3, h, dtype=F64, generator=gen, requires_grad=True),
             torch.randn(1, 3, h, dtype=F64, generator=gen, requires_grad=True))
    assert m._fused_adapter_args() is not None
    fast = _loss_and_grads(m, x, state)
    m.fused = False
    prog = m.vqc.bind().program
    try:  # the reference: plain autograd through the statevector (no Heisenberg tables, no FusedRun)
        BoundProgram.fused, BoundProgram.heisenberg, prog.use_adjoint = False, False, False
        assert m._fused_adapter_args() is None
        ref = _loss_and_grads(m, x, state)
    finally:
        BoundProgram.fused, BoundProgram.heisenberg, prog.use_adjoint = True, True, True
    _assert_same(fast, ref, 1e-11)


@pytest.mark.parametrize("nq", [3, 5])
def test_adapter_fused_node_gradcheck(nq):
    from qlstm.models._fused_adapter import FusedAdapterQLSTM

    m = _adapter(1, 2, nq)
    node, args = m._fused_adapter_args()
    assert node == FusedAdapterQLSTM.apply
    args = [a.detach().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args]
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 2, 1, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    c0 = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: FusedAdapterQLSTM.apply(*a, args[-1]), (x, h0, c0, *args[:-1]),
                                    eps=1e-6, atol=1e-6)


def test_adapter_fused_skipped_where_it_does_not_apply():
    assert _adapter(1, 2, 3, noise="depolarizing:0.01:end")._fused_adapter_args() is None
    assert _adapter(1, 2, 3, shots=100)._fused_adapter_args() is None
    assert _adapter(1, 2, 9)._fused_adapter_args() is None  # past the layered node's 8 qubits
    for nq in (3, 6):  # no variational layers: nothing to fuse, the step-by-step path runs
        m = _model(1, 2, 0, n_qubits=nq, mode="adapter")
        assert m._fused_adapter_args() is None
        assert m(torch.randn(2, 3, 1, dtype=F64))[0].shape == (2, 3, 2)


def _assert_plain_run_matches(m, i, h, run, inputs):
    """``run(x, h0, c0, *inputs)`` (a plain-operation recurrence, run eagerly) against the model's
    fused node: outputs, final state and every gradient."""
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(3, 4, i, dtype=F64, generator=gen, requires_grad=True)
    state = (torch.randn(1, 3, h, dtype=F64, generator=gen, requires_grad=True),
             torch.randn(1, 3, h, dtype=F64, generator=gen, requires_grad=True))
    ref = _loss_and_grads(m, x, state)
    out, h_t, c_t = run(x, state[0][0], state[1][0], *inputs)
    loss = out.square().sum() + (1.3 * h_t).sum() + c_t.square().sum()
    grads = torch.autograd.grad(loss, [x, *state, *m.parameters()])
    _assert_same(ref, (out, h_t.unsqueeze(0), c_t.unsqueeze(0), grads), 1e-11)


def test_compiled_model_runs_the_eager_node_without_gradients():
    """Evaluation under no_grad compiles nothing (the eager node, same numbers)."""
    m = _model(1, 3, 1)
    m.compiled = True
    with torch.no_grad():
        assert m._fused_args()[0] == FusedFaithfulQLSTM.apply


@pytest.mark.parametrize("i,h,template", [(1, 3, "chen"), (2, 2, "strongly_entangling"), (3, 1, "basic_entangler"),
                                          (1, 7, "chen"), (2, 3, "chen"), (1, 4, "strongly_entangling"),
                                          (3, 2, "basic_entangler")])
def test_plain_recurrence_equals_the_fused_node(i, h, template):
    """What compiled=True compiles (plain operations: Heisenberg groups up to 4 qubits, complex numbers
    as real pairs from 5), run eagerly, against the fused nodes: 4 qubits, 8 qubits, 5 qubits with
    Heisenberg processing, three templates."""
    from qlstm.models._compiled_general import general_recurrence

    m = _model(i, h, 2, template=template)
    made = general_recurrence(m.gates.bind(), m.process.bind(), i + h, h)
    assert made is not None
    _assert_plain_run_matches(m, i, h, *made)


@pytest.mark.slow
def test_compiled_model_can_be_copied_and_saved_whole():
    """A compiled model deep-copies and pickles as a whole module (nothing compiled in its state)."""
    import copy
    import io

    m = _model(1, 2, 1)
    m.compiled = True
    x = torch.randn(2, 3, 1, dtype=F64)
    out, _ = m(x)
    out.sum().backward()
    torch.testing.assert_close(copy.deepcopy(m)(x)[0], out, atol=0, rtol=0)
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    torch.testing.assert_close(torch.load(buf, weights_only=False)(x)[0], out, atol=0, rtol=0)


def test_compiled_recurrences_of_two_models_are_separate_code_objects():
    """dynamo's recompile limit counts per code object: each model's compiled recurrence has its own
    (checked without compiling: torch.compile is lazy)."""
    from qlstm.models._compiled_general import compiled_general_recurrence

    runs = []
    for h in (2, 3):
        m = _model(1, h, 1)
        runs.append(compiled_general_recurrence(m.gates.bind(), m.process.bind(), 1 + h, h)[0])
    codes = [getattr(r, "_torchdynamo_orig_callable", r).__code__ for r in runs]
    assert codes[0] is not codes[1]
