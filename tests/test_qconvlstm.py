"""QConvLSTM: contract, exactness of the quantum values, options, errors, a training smoke test."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from qlstm.circuit import run
from qlstm.circuit.noise import NoiseModel
from qlstm.circuit.templates import PAPER_MODULES
from qlstm.errors import InputError, QlstmError
from qlstm.models import build
from qlstm.models.convlstm import ConvLSTM
from qlstm.models.qconvlstm import QConvLSTM, QuantumConv2d, fold_coefficients, pair_features, probe_amplitudes
from qlstm.models.wrappers import FramePredictor


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: on a shared 2-core machine, intra-op threads only add contention.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small(**kw) -> QConvLSTM:
    kw.setdefault("frame_size", (3, 3))
    kw.setdefault("generator", gen())
    return QConvLSTM(16, 4, **kw)


def frames(b=2, t=3, c=16, h=3, w=3, seed=1, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(b, t, c, h, w, generator=gen(seed), dtype=dtype)


# ---------------------------------------------------------------------------
# contract


def test_shapes_and_contract():
    model = small()
    x = frames()
    out, (h, c) = model(x)
    assert out.shape == (2, 3, 4, 3, 3)
    assert h.shape == c.shape == (1, 2, 4, 3, 3)
    torch.testing.assert_close(out[:, -1], h[0])
    assert model.hidden_channels == 4 and model.num_layers == 1
    # state as a sequence of one [B, hidden, H, W] tensor, like ConvLSTM
    out2, _ = model(x, ([h[0]], [c[0]]))
    assert out2.shape == out.shape
    # time-first layout
    tf = small(batch_first=False)
    out_tf, (h_tf, _) = tf(x.transpose(0, 1))
    torch.testing.assert_close(out_tf.transpose(0, 1), out)
    torch.testing.assert_close(h_tf, h)
    # the registry builds it
    assert isinstance(build("qconvlstm", frame_size=(3, 3), generator=gen()), QConvLSTM)


def test_state_continuation():
    model = small()
    x = frames(t=6)
    out6, (h6, c6) = model(x)
    out_a, state = model(x[:, :3])
    out_b, (h_b, c_b) = model(x[:, 3:], state)
    torch.testing.assert_close(torch.cat([out_a, out_b], 1), out6, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h_b, h6, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c_b, c6, atol=1e-6, rtol=1e-5)


def test_every_parameter_gets_a_finite_nonzero_gradient():
    model = small()
    out, (h, c) = model(frames())
    (out.square().mean() + c.mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_one_step_follows_the_documented_equations():
    model = small(dtype=torch.float64)
    with torch.no_grad():  # non-trivial classical parameters
        for p in (model.scale_x, model.scale_h, model.norm_weight, model.bias,
                  model.weight_ci, model.weight_cf, model.weight_co):
            p.copy_(torch.randn(p.shape, generator=gen(5), dtype=p.dtype))
    x = frames(t=1, dtype=torch.float64)
    h0 = torch.rand(2, 4, 3, 3, generator=gen(6), dtype=torch.float64) * 2 - 1
    c0 = torch.randn(2, 4, 3, 3, generator=gen(7), dtype=torch.float64)
    _, (h1, c1) = model(x, (h0[None], c0[None]))
    col = lambda v: v[:, None, None]  # noqa: E731
    z = (col(model.scale_x) * model.conv_x(x[:, 0]) + col(model.scale_h) * model.conv_h(h0)
         + col(model.norm_weight) * x[:, 0].norm(dim=1, keepdim=True) + col(model.bias))
    zi, zf, zc, zo = z.chunk(4, 1)
    i = torch.sigmoid(zi + model.weight_ci * c0)
    f = torch.sigmoid(zf + model.weight_cf * c0)
    c = f * c0 + i * torch.tanh(zc)
    h = torch.sigmoid(zo + model.weight_co * c) * torch.tanh(c)
    torch.testing.assert_close(c1[0], c)
    torch.testing.assert_close(h1[0], h)


# ---------------------------------------------------------------------------
# the quantum values


def test_fold_reproduces_quadratic_forms():
    s = torch.randn(16, 16, 3, generator=gen(2), dtype=torch.float64)
    s = s + s.transpose(0, 1)
    quad = lambda psi: torch.einsum("ni,ijg,nj->ng", psi, s, psi)  # noqa: E731
    psi = torch.randn(5, 16, generator=gen(3), dtype=torch.float64)
    coef = fold_coefficients(quad(probe_amplitudes()))
    torch.testing.assert_close(pair_features(psi) @ coef, quad(psi))


@pytest.mark.parametrize("which", ["conv_x", "conv_h"])
def test_quantum_values_equal_the_reference_simulation(which):
    model = small(dtype=torch.float64, module="c")
    conv = getattr(model, which)
    if which == "conv_x":
        t = torch.rand(1, 16, 3, 3, generator=gen(4), dtype=torch.float64)
    else:
        t = torch.rand(1, 4, 3, 3, generator=gen(4), dtype=torch.float64) * 2 - 1
    s = conv.side
    psi = conv.amplitudes(t)
    assert psi.shape == (1, 3 + s - 1, 3 + s - 1, 16)
    values = conv.evaluator()(psi)
    assert values.shape == (1, 3 + s - 1, 3 + s - 1, conv.copies)
    padded = F.pad(t, (s - 1,) * 4)
    for p, q, k in [(0, 0, 0), (1, 2, 5), (2, 1, conv.copies - 1), (s, s, 7)]:
        # the amplitude vector of window (p, q): channel, row, column order, plus the offset, normalised
        u = padded[0, :, p: p + s, q: q + s].reshape(16) + conv.offset
        torch.testing.assert_close(psi[0, p, q], u / u.norm())
        ref = run(conv.circuit, psi[0, p, q].detach(), conv.layer.weight[k].detach(), method="reference")
        torch.testing.assert_close(values[0, p, q, k], ref.expvals[0, 0], atol=1e-10, rtol=1e-9)
    # output channel g at (y, x) sums the copies of the windows that contain (y, x)
    out = conv(t)
    g, y, x = 3, 1, 2
    expected = sum(values[0, y - dy + s - 1, x - dx + s - 1, (dy * s + dx) * conv.out_channels + g]
                   for dy in range(s) for dx in range(s))
    torch.testing.assert_close(out[0, g, y, x], expected)


def test_folded_equals_direct_simulation():
    x = frames(t=2)
    out_f, (h_f, c_f) = small()(x)
    out_d, (h_d, c_d) = small(sim="direct")(x)
    torch.testing.assert_close(out_f, out_d, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(c_f, c_d, atol=2e-6, rtol=1e-5)


def test_zero_patches_run():
    model = small()
    out, (h, c) = model(torch.zeros(2, 3, 16, 3, 3))
    assert torch.isfinite(out).all() and torch.isfinite(c).all()
    pred = FramePredictor(QConvLSTM(16, 4, (2, 2), generator=gen()), n_out=2, patch_size=4)
    y = pred(torch.zeros(1, 2, 1, 8, 8))
    assert y.shape == (1, 2, 1, 8, 8) and torch.isfinite(y).all()


# ---------------------------------------------------------------------------
# options


@pytest.mark.parametrize("letter,layers", list(itertools.product("abcdef", (1, 2, 3))))
def test_paper_modules_and_tree_layers(letter, layers):
    model = QConvLSTM(16, 4, (2, 2), module=letter, tree_layers=layers, generator=gen())
    assert model.module == PAPER_MODULES[letter]
    out, _ = model(frames(b=1, t=1, h=2, w=2))
    assert out.shape == (1, 1, 4, 2, 2) and torch.isfinite(out).all()


def test_other_channel_counts_and_modules():
    model = QConvLSTM(4, 16, (3, 3), module="U_SU4", tree_layers=1, generator=gen())
    assert model.conv_x.side == 2 and model.conv_h.side == 1
    out, _ = model(frames(b=1, t=2, c=4))
    assert out.shape == (1, 2, 16, 3, 3)
    model = QConvLSTM(1, 1, None, peephole=False, norm_feedback=False, generator=gen())
    assert model.conv_x.side == model.conv_h.side == 4
    out, _ = model(frames(b=1, t=2, c=1, h=5, w=4))
    assert out.shape == (1, 2, 1, 5, 4)
    assert not hasattr(model, "norm_weight") and not hasattr(model, "weight_ci")


def test_noise_changes_outputs_and_p0_is_noiseless():
    x = frames(b=1, t=1, h=2, w=2)
    kw = dict(frame_size=(2, 2), module="U_TTN", tree_layers=1)
    clean, _ = QConvLSTM(16, 1, generator=gen(), **kw)(x)
    zero, _ = QConvLSTM(16, 1, generator=gen(), noise=NoiseModel("bit_flip", 0.0), **kw)(x)
    noisy, _ = QConvLSTM(16, 1, generator=gen(), noise=NoiseModel("bit_flip", 0.2), **kw)(x)
    torch.testing.assert_close(zero, clean, atol=0, rtol=0)
    assert (noisy - clean).abs().max() > 1e-3


@pytest.mark.parametrize("placement", ["end", "layer"])
def test_noisy_fold_equals_direct_density_simulation(placement):
    noise = NoiseModel("depolarizing", 0.1, placement)
    h = torch.rand(1, 4, 2, 2, generator=gen(8)) * 2 - 1
    kw = dict(module="U_TTN", tree_layers=1, noise=noise, offset=1.5, offset_floor=1.0)
    folded = QuantumConv2d(4, 1, generator=gen(9), **kw)
    direct = QuantumConv2d(4, 1, sim="direct", generator=gen(9), **kw)
    direct.layer.heisenberg = False  # density matrices, copy by copy: the reference
    clean = QuantumConv2d(4, 1, generator=gen(9), **{**kw, "noise": None})
    a, b = folded(h), direct(h)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert (a - clean(h)).abs().max() > 1e-3


def test_shots_sample_the_readout_with_straight_through_gradients():
    t = torch.rand(1, 16, 3, 3, generator=gen(10))
    exact = QuantumConv2d(16, 2, generator=gen(11))
    psi = exact.amplitudes(t)
    q = exact.evaluator()(psi)
    sampled = QuantumConv2d(16, 2, shots=50, generator=gen(11))
    est = sampled.evaluator()(psi)
    counts = (1 - est) / 2 * 50
    torch.testing.assert_close(counts, counts.round(), atol=1e-4, rtol=0)  # whole numbers of shots
    assert (est - q).abs().max() > 0
    big = QuantumConv2d(16, 2, shots=20000, generator=gen(11)).evaluator()(psi)
    torch.testing.assert_close(big, q, atol=0.05, rtol=0)
    again = QuantumConv2d(16, 2, shots=50, generator=gen(11)).evaluator()(psi)
    torch.testing.assert_close(again, est)  # seeded
    est.sum().backward()
    assert sampled.layer.weight.grad.abs().sum() > 0
    out, _ = small(shots=100)(frames(t=2))
    assert torch.isfinite(out).all()


# ---------------------------------------------------------------------------
# parameter counts


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_are_comparable_to_convlstm():
    base = n_params(ConvLSTM(16, 4, kernel_size=3, frame_size=(16, 16)))
    assert base == 5968
    default = QConvLSTM(16, 4, (16, 16), generator=gen())
    assert n_params(default) == 6018
    # documented band: every paper module (a)-(f) with 1-3 tree layers within [0.5, 2] x the baseline
    for letter, layers in itertools.product("abcdef", (1, 2, 3)):
        n = n_params(QConvLSTM(16, 4, (16, 16), module=letter, tree_layers=layers, generator=gen()))
        print(f"QConvLSTM module ({letter})={PAPER_MODULES[letter]} tree_layers={layers}: {n} "
              f"parameters, ConvLSTM(16, 4, 3x3): {base}, ratio {n / base:.2f}")
        assert 0.5 <= n / base <= 2.0


# ---------------------------------------------------------------------------
# errors


def test_bad_inputs_raise_input_error():
    model = small()
    x = frames()
    with pytest.raises(InputError, match="5-D"):
        model(x[0])
    with pytest.raises(InputError, match=r"dimension 2 but input_channels=16"):
        model(frames(c=4))
    with pytest.raises(InputError, match=r"dimensions 3, 4 .*frame_size=\(3, 3\)"):
        model(frames(h=4))
    bad = x.clone()
    bad[0, 1, 2, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        model(bad)
    with pytest.raises(InputError, match="dtype"):
        model(x.double())
    h = torch.zeros(1, 2, 4, 3, 3)
    with pytest.raises(InputError, match=r"state h_0 must be .*\[1, 2, 4, 3, 3\]"):
        model(x, (torch.zeros(1, 2, 3, 3, 3), h))
    with pytest.raises(InputError, match="state c_0"):
        model(x, (h, torch.zeros(2, 2, 4, 3, 3)))
    with pytest.raises(InputError, match="pair"):
        model(x, h)
    with pytest.raises(InputError, match="zero vector"):  # negative frames can cancel the offset
        model(torch.full_like(x, -float(model.conv_x.offset.detach())))


def test_bad_construction_raises():
    with pytest.raises(QlstmError, match="16, 4 or 1"):
        QConvLSTM(16, 3)
    with pytest.raises(QlstmError, match="16, 4 or 1"):
        QConvLSTM(8, 4)
    with pytest.raises(QlstmError, match="unknown two-qubit module"):
        QConvLSTM(16, 4, module="g")
    with pytest.raises(QlstmError, match="hidden_offset"):
        QConvLSTM(16, 4, hidden_offset=1.0)
    with pytest.raises(QlstmError, match="sim"):
        QConvLSTM(16, 4, sim="fast")
    with pytest.raises(QlstmError, match="frame_size"):
        QConvLSTM(16, 4, None)


# ---------------------------------------------------------------------------
# training smoke test


def test_frame_predictor_training_reduces_the_loss():
    torch.manual_seed(0)
    # a bright 4x4 square moving one patch to the right per frame on an 8 x 12 canvas
    seq = torch.zeros(4, 4, 1, 8, 12)
    for b in range(4):
        for t in range(4):
            col = (t + b) % 3 * 4
            seq[b, t, 0, 2 * (b % 2) * 2: 2 * (b % 2) * 2 + 4, col: col + 4] = 1.0
    x, y = seq[:, :2], seq[:, 2:]
    model = FramePredictor(QConvLSTM(16, 4, (2, 3), generator=gen(12)), n_out=2, patch_size=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(losses)
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("channel,factor", [("phase_flip", lambda p: 1.0), ("bit_flip", lambda p: 1 - 2 * p),
                                            ("bit_phase_flip", lambda p: 1 - 2 * p),
                                            ("depolarizing", lambda p: 1 - 4 * p / 3)])
def test_end_noise_on_the_paper_channels_only_rescales_the_circuit_outputs(channel, factor):
    """Noise at the end of a one-qubit-<Z> circuit (the paper's placement) scales <Z> by a constant
    (phase flip: by 1), so the learnable scales a^x, a^h can undo it exactly."""
    p = 0.15
    x = torch.rand(2, 3, 16, 4, 4, generator=gen(20), dtype=torch.float64)
    kw = dict(frame_size=(4, 4), dtype=torch.float64)
    noisy = QConvLSTM(16, 4, generator=gen(21), noise=NoiseModel(channel, p, "end"), **kw)
    clean = QConvLSTM(16, 4, generator=gen(21), **kw)
    with torch.no_grad():
        clean.scale_x.mul_(factor(p))
        clean.scale_h.mul_(factor(p))
    a, b = noisy(x)[0], clean(x)[0]
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
