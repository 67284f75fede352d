"""The native QLSTM kernels (qlstm/_native, qlstm.models._native_qlstm) against the torch node they
replace (qlstm.models._fused.FusedFaithfulQLSTM, itself tested against the step-by-step path in
tests/test_fused_qlstm.py), against finite differences, and their fallbacks."""

import copy
from dataclasses import replace
import io
import pickle

import pytest
import torch

from qlstm import _native
from qlstm.errors import InputError
from qlstm.models._fused import FusedFaithfulQLSTM
from qlstm.models._fused_adapter import FusedAdapterQLSTM
from qlstm.models._fused_general import FusedGeneralQLSTM
from qlstm.models._native_qlstm import (NativeAdapterQLSTM, NativeFaithfulQLSTM, NativeLayeredAdapterQLSTM,
                                        NativeLayeredQLSTM, NativeSpec, _lanes, native_adapter_spec, native_layered_adapter_spec,
                                        native_layered_spec, native_spec)
from qlstm.models.qlstm import QLSTM

F64 = torch.float64

pytestmark = pytest.mark.skipif(not _native.available(), reason="no C++ compiler: the native kernels do not build")


def _model(i, h, layers=2, dtype=F64, seed=0, **kw):
    m = QLSTM(i, h, n_layers=layers, dtype=dtype, generator=torch.Generator().manual_seed(seed), **kw)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return m


def _run(m, x, state, native: bool):
    m.native = native
    out, (h, c) = m(x, state)
    loss = (out * torch.linspace(-1, 2, out.numel(), dtype=out.dtype).view_as(out)).sum() + (1.3 * h).sum() \
        + c.square().sum()
    return out, h, c, torch.autograd.grad(loss, [x, *state, *m.parameters()])


def _inputs(batch, t, i, h, dtype, seed):
    """``x [batch, t, i]`` and a state ``(h0, c0)``, each ``[1, batch, h]``, random, requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, t, i, dtype=dtype, generator=gen, requires_grad=True)
    return x, tuple(torch.randn(1, batch, h, dtype=dtype, generator=gen, requires_grad=True) for _ in range(2))


def _assert_matches(fast, ref, atol):
    """Outputs, h and c to ``atol``, every gradient (input, state, parameters) to ``10 atol``."""
    for a, b in zip(fast[:3], ref[:3]):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)
    for a, b in zip(fast[3], ref[3]):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=atol * 10, rtol=0)


@pytest.mark.parametrize("dtype,atol", [(F64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("i,h,t,layers,template,batch", [
    (1, 3, 4, 2, "chen", 5), (1, 1, 3, 1, "chen", 2), (3, 1, 2, 3, "chen", 3), (1, 2, 5, 2, "chen", 1),
    (1, 3, 3, 2, "strongly_entangling", 4),
    (1, 3, 2, 2, "chen", 70),  # enough samples for the kernels' parallel loops
])
def test_native_equals_the_torch_node(i, h, t, layers, template, batch, dtype, atol):
    m = _model(i, h, layers, dtype=dtype, template=template)
    assert m._native_args() is not None
    x, state = _inputs(batch, t, i, h, dtype, 7)
    fast = _run(m, x, state, native=True)
    m.native = False
    assert m._fused_args()[0] == FusedFaithfulQLSTM.apply  # the reference really is the torch node
    _assert_matches(fast, _run(m, x, state, native=False), atol)


@pytest.mark.parametrize("mode,hidden,nq", [("faithful", 3, None), ("faithful", 4, None), ("adapter", 3, 4),
                                            ("adapter", 3, 6)])  # Heisenberg, layered, each in both modes
@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("read", ["outputs", "h"])
def test_native_backward_without_input_or_state_gradients(mode, hidden, nq, batch, read):
    """A training step's usual case: x and the (default zero) state need no gradient and the loss
    reads only the outputs (or only h_T), so autograd passes None for g_h and g_c (or g_out and
    g_c); the kernels then read zeros and skip the gradients of x, h_0 and c_0. The parameters'
    gradients must not change."""
    m = _model(1, hidden, 2, n_qubits=nq, mode=mode) if mode == "adapter" else _model(1, hidden, 2)
    x = torch.randn(batch, 3, 1, dtype=F64, generator=torch.Generator().manual_seed(4))
    grads = []
    for native in (True, False):
        m.native = native
        out, (h, _) = m(x)
        loss = out[:, -1].sin().sum() if read == "outputs" else h.sin().sum()
        grads.append(torch.autograd.grad(loss, list(m.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("mode,hidden,nq", [("faithful", 3, None), ("faithful", 4, None), ("adapter", 3, 4),
                                            ("adapter", 3, 6)])  # Heisenberg, layered, each in both modes
@pytest.mark.parametrize("batch", [1, 16])
def test_native_zero_state_as_none(mode, hidden, nq, batch):
    """Without a state the model hands the native node None and the kernels start from zeros: the
    same outputs, states ``[1, B, H]`` and gradients as an explicit zero state."""
    m = _model(1, hidden, 2, n_qubits=nq, mode=mode) if mode == "adapter" else _model(1, hidden, 2)
    assert m._resolved() is not None and m._resolved()[0].native
    x = torch.randn(batch, 3, 1, dtype=F64, generator=torch.Generator().manual_seed(9), requires_grad=True)
    zeros = tuple(torch.zeros(1, batch, hidden, dtype=F64) for _ in range(2))
    runs = []
    for state in (None, zeros):
        out, (h, c) = m(x, state)
        assert h.shape == c.shape == (1, batch, hidden)
        loss = out.sin().sum() + (2 * h).sum() + c.square().sum()
        runs.append((out, h, c, *torch.autograd.grad(loss, [x, *m.parameters()])))
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)


def test_native_choice_follows_switches_and_parameters():
    """The model memoises which native node runs; switching it off, replacing a parameter, changing
    the dtype or asking for shots takes effect at the next call."""
    m = _model(1, 3, 2)
    x = torch.randn(4, 3, 1, dtype=F64, generator=torch.Generator().manual_seed(2))
    first = m(x)[0]
    assert m._resolved()[0].native
    m.native = False
    assert m._resolved()[0] == FusedFaithfulQLSTM.apply
    torch.testing.assert_close(m(x)[0], first, atol=1e-12, rtol=0)
    m.native = True
    new = torch.nn.Parameter(torch.randn(m.gates.weight.shape, dtype=F64, generator=torch.Generator().manual_seed(5)))
    m.gates.weight = new
    assert m._resolved()[1][0] is new
    fast = m(x)[0]
    m.native = False
    torch.testing.assert_close(fast, m(x)[0], atol=1e-12, rtol=0)
    assert (fast - first).abs().max() > 1e-3  # the new weights, not the memoised ones
    m.native = True
    m.float()
    assert m(x)[0].dtype == torch.float32 and m._resolved()[1][0].dtype == torch.float32
    m.gates.shots = 100
    assert m._resolved() is None  # finite shots: the step-by-step path


def test_native_node_gradcheck():
    """Finite differences against every input of the node: data, state and both weight groups."""
    m = _model(1, 2, 2)
    spec = native_spec(m.gates.bind(), m.process.bind(), 3, 2)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 1, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    c0 = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    wg = m.gates.weight.detach().clone().requires_grad_(True)
    wp = m.process.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda *a: NativeFaithfulQLSTM.apply(spec, *a), (x, h0, c0, wg, wp),
                                    eps=1e-6, atol=1e-6)
    # the zero state as None, and states [1, B, H] (the model's), whose gradients keep that shape
    assert torch.autograd.gradcheck(lambda x, wg, wp: NativeFaithfulQLSTM.apply(spec, x, None, None, wg, wp),
                                    (x, wg, wp), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda *a: NativeFaithfulQLSTM.apply(spec, *a),
                                    (x, h0[None].detach().requires_grad_(True), c0[None].detach().requires_grad_(True),
                                     wg, wp), eps=1e-6, atol=1e-6)


def _kind(m):
    """Which native node a model's forward runs: "heisenberg", "layered" or None."""
    args = m._native_args()
    if args is None:
        return None
    spec = m._native_specs[(m.gates.weight.dtype, m.gates.weight.device)]
    return "layered" if isinstance(spec, type(native_layered_spec(m.gates.bind(), m.process.bind(), m.n_qubits,
                                                                      m.hidden_size))) else "heisenberg"


def test_native_table_lanes_bound():
    """The kernels build a group's tables with copies x read-outs as at most 16 vector lanes: every
    model's groups fit (4 copies x 3 read-outs here), a wider group is refused, not mis-built."""
    m = _model(1, 3)
    spec = native_spec(m.gates.bind(), m.process.bind(), 4, 3)
    assert NativeSpec.fits(spec.gates, spec.process)
    n, _, _, *rest = spec.gates.dims
    wide = replace(spec.gates, dims=(n, 5, 4, *rest))
    assert not NativeSpec.fits(wide, spec.process)


def test_native_runs_where_it_applies_and_not_elsewhere():
    assert _kind(_model(1, 3)) == "heisenberg"  # 4 qubits, Rot layers: transfer tables in the kernel
    assert _kind(_model(2, 3)) == "layered"  # 5 gate qubits: statevectors
    assert _kind(_model(1, 2, template="basic_entangler")) == "layered"  # RX layers: no Rot tables
    assert _kind(_model(1, 12)) is None  # 13 qubits: past NATIVE_LAYERED_MAX_QUBITS
    m = _model(1, 3)
    m.compiled = True  # what the user asked for: torch.compile, not the kernels
    assert not getattr(m._fused_args()[0], "native", False)
    m = _model(1, 3)
    m.native = False
    assert m._fused_args()[0] == FusedFaithfulQLSTM.apply


@pytest.mark.parametrize("mode", ["faithful", "adapter"])
@pytest.mark.parametrize("where", ["x", "h", "c"])
def test_native_refuses_nan_and_inf(where, mode):
    m = _model(1, 2, dtype=torch.float32, mode=mode)
    x = torch.randn(3, 4, 1)
    h, c = torch.zeros(1, 3, 2), torch.zeros(1, 3, 2)
    bad = {"x": x, "h": h, "c": c}[where]
    bad.view(-1)[1] = float("nan") if where != "c" else float("inf")
    name = {"x": "QLSTM input", "h": "QLSTM state h_0", "c": "QLSTM state c_0"}[where]
    with pytest.raises(InputError, match=f"{name} contains NaN or Inf"):
        m(x, (h, c))


@pytest.mark.parametrize("mode", ["faithful", "adapter"])
@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("where", ["x", "h", "c"])
def test_input_on_another_device_is_refused(mode, native, where):
    """An input or state on another device than the parameters (here the meta device, which any
    CPU torch has) is refused with a clear error before any kernel reads it: the native kernels
    would read its data pointer as CPU memory (a segmentation fault before this check)."""
    m = _model(1, 3, 2, n_qubits=4, mode=mode) if mode == "adapter" else _model(1, 3, 2)
    m.native = native
    x, state = torch.randn(2, 3, 1, dtype=F64), (torch.zeros(1, 2, 3, dtype=F64), torch.zeros(1, 2, 3, dtype=F64))
    if where == "x":
        x = x.to("meta")
    else:
        state = tuple(t.to("meta") if k == "hc".index(where) else t for k, t in enumerate(state))
    name = {"x": "QLSTM input", "h": "QLSTM state h_0", "c": "QLSTM state c_0"}[where]
    with pytest.raises(InputError, match=f"{name} is on meta but the model parameters are on cpu"):
        m(x, state)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("shape", [(0, 4, 1), (3, 0, 1)])
def test_empty_batch_or_sequence_is_refused_on_both_paths(shape, native):
    m = _model(1, 2)
    m.native = native
    with pytest.raises(InputError, match="at least one batch element and one time step"):
        m(torch.zeros(shape, dtype=F64))


def test_native_model_pickles_copies_and_reloads():
    m = _model(1, 3, dtype=torch.float32)
    x = torch.randn(4, 3, 1)
    out, _ = m(x)  # caches the kernels' spec on the model and its programs
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        torch.testing.assert_close(clone(x)[0], out, atol=0, rtol=0)
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    again = torch.load(buf, weights_only=False)
    torch.testing.assert_close(again(x)[0], out, atol=0, rtol=0)
    fresh = QLSTM(1, 3, n_layers=2, dtype=torch.float32)
    fresh.load_state_dict(m.state_dict())
    torch.testing.assert_close(fresh(x)[0], out, atol=0, rtol=0)


def test_native_switch_and_missing_compiler_fall_back(monkeypatch, tmp_path):
    m = _model(1, 3)
    x = torch.randn(3, 2, 1, dtype=F64)
    ref, _ = m(x)
    monkeypatch.setenv("QLSTM_NATIVE", "0")
    assert _native.library() is None
    m2 = _model(1, 3)
    assert m2._native_args() is None
    torch.testing.assert_close(m2(x)[0], ref, atol=1e-12, rtol=0)
    monkeypatch.delenv("QLSTM_NATIVE")
    # a fresh build with a compiler that does not exist: a warning that names the problem, then None
    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setenv("QLSTM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.warns(UserWarning, match="native kernels unavailable"):
        assert _native.library() is None
    assert list(tmp_path.rglob("*.so")) == []


@pytest.mark.parametrize("dtype,atol", [(F64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("i,h,t,template,batch", [
    (1, 7, 3, "chen", 5),  # 8 qubits; 4 lanes, the last group partly padding
    (2, 3, 2, "chen", 37),  # 5 qubits; 16 / 8 lanes and a partial group
    (1, 4, 2, "strongly_entangling", 3),
    (1, 2, 3, "basic_entangler", 9),  # RX layers: the gate matrices come from torch
    (2, 2, 2, "basic_entangler", 1),
])
def test_native_layered_equals_the_torch_nodes(i, h, t, template, batch, dtype, atol):
    m = _model(i, h, 2, dtype=dtype, template=template)
    assert _kind(m) == "layered"
    x, state = _inputs(batch, t, i, h, dtype, 11)
    fast = _run(m, x, state, native=True)
    m.native = False
    assert m._fused_args()[0] in (FusedGeneralQLSTM.apply, FusedFaithfulQLSTM.apply)
    _assert_matches(fast, _run(m, x, state, native=False), atol)


def test_native_layered_past_the_torch_nodes_equals_step_by_step():
    """10 qubits: the torch path runs step by step (no fused node); the kernels are the same numbers."""
    m = _model(1, 9, 1)
    assert _kind(m) == "layered"
    x, state = _inputs(2, 2, 1, 9, F64, 2)
    fast = _run(m, x, state, native=True)
    m.native = False
    assert m._fused_args() is None
    _assert_matches(fast, _run(m, x, state, native=False), 1e-12)


@pytest.mark.parametrize("template", ["chen", "basic_entangler"])
def test_native_layered_node_gradcheck(template):
    """Finite differences: Rot weights (built in the kernel) and given gate matrices (from torch)."""
    m = _model(1, 2, 2, template=template)
    bg, bp = m.gates.bind(), m.process.bind()
    spec = native_layered_spec(bg, bp, 3, 2)
    assert spec.gates.from_weights == (template == "chen")
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 2, 1, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(3, 2, dtype=F64, generator=gen, requires_grad=True)
    c0 = torch.randn(3, 2, dtype=F64, generator=gen, requires_grad=True)
    if spec.gates.from_weights:
        ins = [m.gates.weight.detach().clone().requires_grad_(True), m.process.weight.detach().clone().requires_grad_(True)]
    else:
        ins = [bg.layer_matrices().detach().clone().requires_grad_(True),
               bp.layer_matrices().detach().clone().requires_grad_(True)]
    assert torch.autograd.gradcheck(lambda *a: NativeLayeredQLSTM.apply(spec, *a), (x, h0, c0, *ins),
                                    eps=1e-6, atol=1e-6)


def test_native_layered_lanes():
    torch_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert [_lanes(b, False) for b in (1, 3, 5, 16, 40, 128)] == [1, 1, 4, 8, 16, 16]
        assert [_lanes(b, True) for b in (1, 16, 128)] == [1, 8, 8]
        torch.set_num_threads(1)
        assert _lanes(16, False) == 16
    finally:
        torch.set_num_threads(torch_threads)


@pytest.mark.parametrize("dtype,atol", [(F64, 1e-12), (torch.float32, 5e-5)])
@pytest.mark.parametrize("i,h,nq,batch,template", [
    (1, 3, 4, 5, "chen"), (2, 4, 3, 37, "chen"), (1, 2, 4, 1, "strongly_entangling"), (3, 2, 2, 20, "chen"),
    # the layered form: past 4 qubits, or gates other than Rot (matrices from torch)
    (1, 3, 5, 5, "chen"), (2, 2, 8, 20, "strongly_entangling"), (1, 2, 3, 6, "basic_entangler"),
])
def test_native_adapter_equals_the_torch_node(i, h, nq, batch, template, dtype, atol):
    m = _model(i, h, 2, dtype=dtype, template=template, n_qubits=nq, mode="adapter")
    x, state = _inputs(batch, 3, i, h, dtype, 5)
    m.native = True
    assert getattr(m._fused_adapter_args()[0], "native", False)  # the native node
    fast = _run(m, x, state, native=True)
    m.native = False
    assert m._fused_adapter_args()[0] == FusedAdapterQLSTM.apply
    _assert_matches(fast, _run(m, x, state, native=False), atol)


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-13), (torch.float32, 2e-5)])
@pytest.mark.parametrize("scale", [1e-6, 40.0])
def test_native_gate_functions_near_zero_and_saturated(scale, dtype, tol):
    """The kernels' own vectorised sigmoid and tanh (not libm's) where the pre-activations are tiny
    or far into saturation (adapter mode: the output maps scale the VQCs' expectation values), in
    either dtype against the float64 torch node, relative to each tensor's largest entry."""
    ref_model = _model(1, 3, 1, n_qubits=4, mode="adapter")
    with torch.no_grad():
        ref_model.out_weight.mul_(scale)
        ref_model.out_bias.mul_(scale)
    m = _model(1, 3, 1, dtype=dtype, n_qubits=4, mode="adapter")
    m.load_state_dict({k: v.to(dtype) for k, v in ref_model.state_dict().items()})
    x, state = _inputs(20, 3, 1, 3, F64, 8)
    ref = _run(ref_model, x, state, native=False)
    x_d = x.detach().to(dtype).requires_grad_(True)
    fast = _run(m, x_d, tuple(t.detach().to(dtype).requires_grad_(True) for t in state), native=True)
    for a, b in zip([*fast[:3], *fast[3]], [*ref[:3], *ref[3]]):
        assert (a.double() - b).abs().max() <= tol * b.abs().max()


@pytest.mark.parametrize("template,layered", [("chen", False), ("chen", True), ("basic_entangler", True)])
def test_native_adapter_node_gradcheck(template, layered):
    m = _model(1, 2, 1, n_qubits=3, mode="adapter", template=template)
    bound = m.vqc.bind()
    spec = native_layered_adapter_spec(bound, 3) if layered else native_adapter_spec(bound, 3)
    node = NativeLayeredAdapterQLSTM if layered else NativeAdapterQLSTM
    x, (h0, c0) = _inputs(2, 2, 1, 2, F64, 6)
    vqc = m.vqc.weight if not layered or spec.gates.from_weights else bound.layer_matrices()
    params = [p.detach().clone().requires_grad_(True) for p in (
        m.proj_gates.weight, m.proj_gates.bias, m.proj_process.weight, m.proj_process.bias, m.out_weight,
        m.out_bias, vqc)]
    assert torch.autograd.gradcheck(lambda *a: node.apply(spec, *a), (x, h0[0], c0[0], *params), eps=1e-6, atol=1e-6)


def test_native_adapter_where_it_applies():
    assert getattr(_model(1, 2, 1, n_qubits=8, mode="adapter")._fused_adapter_args()[0], "native", False)
    m = _model(1, 2, 1, n_qubits=5, mode="adapter")
    m.native = False
    assert m._fused_adapter_args()[0] == FusedAdapterQLSTM.apply
