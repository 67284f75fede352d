"""Tests of the classical baselines: peephole LSTM, ConvLSTM and the task wrappers."""

import io

import pytest
import torch
import torch.nn.functional as F

from qlstm.models.convlstm import ConvLSTM
from qlstm.models.lstm import LSTM
from qlstm.models.wrappers import FramePredictor, SeriesForecaster, reshape_patch, reshape_patch_back

F64 = torch.float64
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def _roundtrip(model, build):
    """A fresh model from ``build`` loaded with ``model``'s state_dict via bytes."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    other = build()
    with torch.no_grad():
        # Move every weight away so that only the load can restore them.
        for p in other.parameters():
            p.add_(1.0)
    other.load_state_dict(torch.load(buf, weights_only=True))
    return other


# --------------------------------------------------------------------------- references


def _ref_peephole_lstm(model, x, state=None):
    """Eq. (1) step by step from per-gate weight blocks, batch-first, any layers."""
    n, hid = model.num_layers, model.hidden_size
    bsz, steps, _ = x.shape
    if state is None:
        state = (x.new_zeros(n, bsz, hid), x.new_zeros(n, bsz, hid))
    inp, hs, cs = x, [], []
    for k in range(n):
        w_x = getattr(model, f"weight_ih_l{k}").split(hid)
        w_h = getattr(model, f"weight_hh_l{k}").split(hid)
        b = (getattr(model, f"bias_ih_l{k}") + getattr(model, f"bias_hh_l{k}")).split(hid)
        w_ci, w_cf, w_co = (getattr(model, f"weight_{g}_l{k}") for g in ("ci", "cf", "co"))
        h, c = state[0][k], state[1][k]
        outs = []
        for t in range(steps):
            xt = inp[:, t]
            i = torch.sigmoid(xt @ w_x[0].T + h @ w_h[0].T + w_ci * c + b[0])
            f = torch.sigmoid(xt @ w_x[1].T + h @ w_h[1].T + w_cf * c + b[1])
            c = f * c + i * torch.tanh(xt @ w_x[2].T + h @ w_h[2].T + b[2])
            o = torch.sigmoid(xt @ w_x[3].T + h @ w_h[3].T + w_co * c + b[3])
            h = o * torch.tanh(c)
            outs.append(h)
        inp = torch.stack(outs, 1)
        hs.append(h)
        cs.append(c)
    return inp, (torch.stack(hs), torch.stack(cs))


def _ref_convlstm(model, x, state=None):
    """Eq. (2) step by step with separate input and state convolutions, batch-first."""
    bsz, steps, _, height, width = x.shape
    kh, kw = model.kernel_size
    pad = (kh // 2, kw // 2)
    inp, hs, cs = x, [], []
    for k, hid in enumerate(model.layer_hidden_channels):
        w = getattr(model, f"weight_l{k}")
        cin = inp.shape[2]
        w_x, w_h = w[:, :cin], w[:, cin:]
        b = getattr(model, f"bias_l{k}").split(hid)
        if state is None:
            h = x.new_zeros(bsz, hid, height, width)
            c = x.new_zeros(bsz, hid, height, width)
        else:
            h, c = state[0][k], state[1][k]
        outs = []
        for t in range(steps):
            conv = [
                F.conv2d(inp[:, t], wx, padding=pad) + F.conv2d(h, wh, padding=pad) + bb.view(-1, 1, 1)
                for wx, wh, bb in zip(w_x.split(hid), w_h.split(hid), b)
            ]
            if model.peephole:
                w_ci, w_cf, w_co = (getattr(model, f"weight_{g}_l{k}") for g in ("ci", "cf", "co"))
            else:
                w_ci = w_cf = w_co = torch.zeros(())
            i = torch.sigmoid(conv[0] + w_ci * c)
            f = torch.sigmoid(conv[1] + w_cf * c)
            c = f * c + i * torch.tanh(conv[2])
            o = torch.sigmoid(conv[3] + w_co * c)
            h = o * torch.tanh(c)
            outs.append(h)
        inp = torch.stack(outs, 1)
        hs.append(h)
        cs.append(c)
    return inp, (hs, cs)


# --------------------------------------------------------------------------- LSTM


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("peephole", [True, False])
def test_lstm_shapes(batch_first, peephole):
    model = LSTM(3, 5, num_layers=2, peephole=peephole, batch_first=batch_first, generator=_gen())
    x = _randn(4, 7, 3)
    out, (h, c) = model(x if batch_first else x.transpose(0, 1))
    assert out.shape == ((4, 7, 5) if batch_first else (7, 4, 5))
    assert h.shape == c.shape == (2, 4, 5)
    if not batch_first:
        out = out.transpose(0, 1)
    ref, _ = LSTM(3, 5, num_layers=2, peephole=peephole, generator=_gen())(x)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_without_peephole_equals_torch(num_layers, with_state):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 6, num_layers, batch_first=True, dtype=F64)
    model = LSTM(3, 6, num_layers, peephole=False, dtype=F64)
    # Same parameter names and shapes: torch's state_dict loads as is, both ways.
    model.load_state_dict(ref.state_dict())
    ref.load_state_dict(model.state_dict())
    x = _randn(4, 9, 3, dtype=F64)
    state = None
    if with_state:
        state = (_randn(num_layers, 4, 6, seed=1, dtype=F64), _randn(num_layers, 4, 6, seed=2, dtype=F64))
    out, (h, c) = model(x, state)
    ref_out, (ref_h, ref_c) = ref(x, state)
    for a, b in ((out, ref_out), (h, ref_h), (c, ref_c)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("with_state", [False, True])
def test_peephole_lstm_matches_eq1_reference(with_state):
    model = LSTM(3, 5, num_layers=2, dtype=F64, generator=_gen())
    with torch.no_grad():
        # Peepholes as large as the other weights so that a dropped or misplaced one shows.
        for seed, (name, p) in enumerate(model.named_parameters()):
            if name.startswith(("weight_ci", "weight_cf", "weight_co")):
                p.copy_(_randn(*p.shape, seed=seed, dtype=F64))
    x = _randn(3, 6, 3, dtype=F64)
    state = None
    if with_state:
        state = (_randn(2, 3, 5, seed=1, dtype=F64), _randn(2, 3, 5, seed=2, dtype=F64))
    out, (h, c) = model(x, state)
    ref_out, (ref_h, ref_c) = _ref_peephole_lstm(model, x, state)
    for a, b in ((out, ref_out), (h, ref_h), (c, ref_c)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_lstm_dropout_only_in_training():
    model = LSTM(3, 8, num_layers=2, dropout=0.5, generator=_gen())
    x = _randn(2, 5, 3)
    torch.manual_seed(0)
    a, _ = model(x)
    b, _ = model(x)
    assert not torch.equal(a, b)
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0], atol=0, rtol=0)
    with pytest.warns(UserWarning, match="no effect"):
        LSTM(3, 8, dropout=0.5)


def test_generator_gives_reproducible_init_without_global_rng():
    before = torch.random.get_rng_state()
    a = LSTM(3, 5, 2, generator=_gen(7))
    b = ConvLSTM(1, 4, frame_size=(4, 4), generator=_gen(7))
    assert torch.equal(torch.random.get_rng_state(), before)
    for m, build in ((a, lambda: LSTM(3, 5, 2, generator=_gen(7))),
                     (b, lambda: ConvLSTM(1, 4, frame_size=(4, 4), generator=_gen(7)))):
        for p, q in zip(m.parameters(), build().parameters()):
            assert torch.equal(p, q)


# --------------------------------------------------------------------------- ConvLSTM


def test_convlstm_shapes_uniform_and_mixed_channels():
    x = _randn(2, 4, 3, 6, 5)
    model = ConvLSTM(3, 4, kernel_size=3, num_layers=2, frame_size=(6, 5), generator=_gen())
    out, (h, c) = model(x)
    assert out.shape == (2, 4, 4, 6, 5)
    assert h.shape == c.shape == (2, 2, 4, 6, 5)
    assert model.hidden_channels == 4

    mixed = ConvLSTM(3, [4, 2], kernel_size=(3, 5), peephole=False, generator=_gen())
    out, (h, c) = mixed(_randn(2, 4, 3, 7, 9))  # no peephole: any frame size
    assert out.shape == (2, 4, 2, 7, 9)
    assert isinstance(h, tuple) and [t.shape for t in h] == [(2, 4, 7, 9), (2, 2, 7, 9)]
    assert mixed.hidden_channels == 2 and mixed.layer_hidden_channels == (4, 2)

    time_major = ConvLSTM(3, 4, num_layers=2, frame_size=(6, 5), batch_first=False, generator=_gen())
    out_tm, _ = time_major(x.transpose(0, 1))
    torch.testing.assert_close(out_tm.transpose(0, 1), model(x)[0])


@pytest.mark.parametrize("peephole", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_convlstm_matches_eq2_reference(peephole, with_state):
    model = ConvLSTM(2, [3, 4], kernel_size=(3, 5), frame_size=(5, 6), peephole=peephole, dtype=F64,
                     generator=_gen())
    x = _randn(2, 4, 2, 5, 6, dtype=F64)
    state = None
    if with_state:
        state = ([_randn(2, h, 5, 6, seed=h, dtype=F64) for h in (3, 4)],
                 [_randn(2, h, 5, 6, seed=10 + h, dtype=F64) for h in (3, 4)])
    out, (h, c) = model(x, state)
    ref_out, (ref_h, ref_c) = _ref_convlstm(model, x, state)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    for a, b in zip(h + c, ref_h + ref_c):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- shared contract


def _models():
    """(name, build, input) for every model; builds are deterministic."""
    return [
        ("lstm", lambda: LSTM(3, 5, 2, generator=_gen()), _randn(2, 6, 3)),
        ("lstm_plain", lambda: LSTM(3, 5, 1, peephole=False, generator=_gen()), _randn(2, 6, 3)),
        ("convlstm", lambda: ConvLSTM(2, 3, 3, 2, frame_size=(4, 4), generator=_gen()), _randn(2, 6, 2, 4, 4)),
        ("convlstm_mixed", lambda: ConvLSTM(2, [3, 2], 3, frame_size=(4, 4), generator=_gen()),
         _randn(2, 6, 2, 4, 4)),
    ]


def _wrapped():
    """(name, build, input) for the wrappers around small cores."""
    def frames():
        torch.manual_seed(0)
        core = ConvLSTM(4, 3, 3, frame_size=(3, 3), generator=_gen())
        return FramePredictor(core, n_out=3, out_channels=1, patch_size=2)

    def series():
        torch.manual_seed(0)
        return SeriesForecaster(LSTM(2, 4, generator=_gen()), out_features=2)

    return [
        ("frames", frames, torch.rand(2, 4, 1, 6, 6, generator=_gen())),
        ("series", series, _randn(3, 5, 2)),
    ]


def _all():
    return _models() + _wrapped()


@pytest.mark.parametrize("name,build,x", _all(), ids=[m[0] for m in _all()])
def test_every_parameter_gets_finite_nonzero_gradient(name, build, x):
    model = build()
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    # A weighted sum so no gradient cancels by symmetry.
    (out * _randn(*out.shape, seed=3)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name,build,x", _all(), ids=[m[0] for m in _all()])
def test_float64_and_state_dict_roundtrip(name, build, x):
    model = build().double()
    x = x.double()
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    assert out.dtype == F64
    other = _roundtrip(model, lambda: build().double())
    again = other(x)
    again = again[0] if isinstance(again, tuple) else again
    torch.testing.assert_close(again, out, atol=0, rtol=0)


@pytest.mark.parametrize("name,build,x", _models(), ids=[m[0] for m in _models()])
def test_state_continues_sequence(name, build, x):
    model = build()
    full, (h, c) = model(x)
    first, state = model(x[:, :3])
    second, (h2, c2) = model(x[:, 3:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), full, atol=1e-6, rtol=0)
    for a, b in zip((h, c), (h2, c2)):
        a = a if isinstance(a, tuple) else (a,)
        b = b if isinstance(b, tuple) else (b,)
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- wrappers


@pytest.mark.parametrize("patch_size", [1, 2, 4])
def test_reshape_patch_roundtrip_and_layout(patch_size):
    x = _randn(2, 3, 2, 8, 12)
    y = reshape_patch(x, patch_size)
    p = patch_size
    assert y.shape == (2, 3, 2 * p * p, 8 // p, 12 // p)
    torch.testing.assert_close(reshape_patch_back(y, patch_size), x, atol=0, rtol=0)
    # Channel c*p*p + i*p + j holds pixel (i, j) of each patch of channel c.
    for c, i, j in ((0, 0, 0), (1, p - 1, 0), (1, 0, p - 1)):
        torch.testing.assert_close(y[:, :, c * p * p + i * p + j], x[:, :, c, i::p, j::p], atol=0, rtol=0)


def test_frame_predictor_shapes_range_and_feedback():
    torch.manual_seed(0)
    core = ConvLSTM(4, [5, 3], 3, frame_size=(4, 4), generator=_gen())
    model = FramePredictor(core, n_out=5, out_channels=1, patch_size=2)
    x = torch.rand(2, 4, 1, 8, 8, generator=_gen())
    y = model(x)
    assert y.shape == (2, 5, 1, 8, 8)
    assert ((y > 0) & (y < 1)).all()
    # The first prediction depends only on the observed frames, not on n_out.
    model.n_out = 1
    torch.testing.assert_close(model(x)[:, 0], y[:, 0])

    # Without patching, any frame size works with a peephole-free core.
    plain = FramePredictor(ConvLSTM(2, 3, peephole=False, generator=_gen()), n_out=2, out_channels=2)
    assert plain(torch.rand(1, 3, 2, 5, 7, generator=_gen())).shape == (1, 2, 2, 5, 7)


def test_wrappers_work_with_any_contract_core():
    class Echo(torch.nn.Module):
        """A minimal core: outputs are the running mean of the inputs."""

        def __init__(self, width):
            super().__init__()
            self.hidden_size = width
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, state=None):
            total = x.cumsum(1) + (0 if state is None else state[0])
            return self.scale * total, (total[:, -1:], None)

    model = SeriesForecaster(Echo(3), out_features=1)
    assert model(_randn(2, 4, 3)).shape == (2, 1)
    with pytest.raises(ValueError, match="no positive int attribute 'hidden_channels'"):
        FramePredictor(Echo(3))
    assert FramePredictor(ConvLSTM(1, 2, peephole=False), hidden_channels=2).hidden_channels == 2


def test_wrapper_heads_follow_core_dtype():
    model = SeriesForecaster(LSTM(2, 4, dtype=F64))
    assert model.head.weight.dtype == F64
    assert model(_randn(1, 3, 2, dtype=F64)).dtype == F64


# --------------------------------------------------------------------------- bad input


def _raises(fn, *patterns):
    with pytest.raises(ValueError) as info:
        fn()
    for pat in patterns:
        assert pat in str(info.value), (pat, str(info.value))


def test_lstm_bad_input_messages():
    model = LSTM(3, 5, 2)
    _raises(lambda: model(torch.zeros(4, 3)), "3-D", "[B, T, input_size]", "[4, 3]")
    _raises(lambda: model(torch.zeros(4, 6, 2)), "input_size=3", "last dimension", "[4, 6, 2]")
    _raises(lambda: model(torch.zeros(4, 0, 3)), "time step")
    _raises(lambda: model(torch.zeros(4, 6, 3, dtype=F64)), "dtype")
    bad_state = (torch.zeros(1, 4, 5), torch.zeros(2, 4, 5))
    _raises(lambda: model(torch.zeros(4, 6, 3), bad_state), "h_0", "[2, 4, 5]", "[1, 4, 5]")
    _raises(lambda: model(torch.zeros(4, 6, 3), torch.zeros(2, 4, 5)), "tuple (h_0, c_0)", "[2, 4, 5]")
    x = torch.zeros(4, 6, 3)
    x[1, 2, 0] = float("nan")
    _raises(lambda: model(x), "x contains NaN")
    nan_state = (torch.zeros(2, 4, 5), torch.full((2, 4, 5), float("nan")))
    _raises(lambda: model(torch.zeros(4, 6, 3), nan_state), "c_0 contains NaN")
    _raises(lambda: LSTM(3, 0), "hidden_size")
    _raises(lambda: LSTM(3, 5, dropout=1.5), "dropout")


def test_convlstm_bad_input_messages():
    model = ConvLSTM(2, 3, 3, 2, frame_size=(4, 4))
    _raises(lambda: model(torch.zeros(2, 5, 2, 4)), "5-D", "[B, T, C, H, W]", "[2, 5, 2, 4]")
    _raises(lambda: model(torch.zeros(2, 5, 3, 4, 4)), "input_channels=2", "dimension 2")
    _raises(lambda: model(torch.zeros(2, 5, 2, 4, 6)), "frame_size=(4, 4)", "dimensions 3, 4", "[2, 5, 2, 4, 6]")
    good = torch.zeros(2, 5, 2, 4, 4)
    _raises(lambda: model(good, (torch.zeros(2, 2, 3, 4, 5), torch.zeros(2, 2, 3, 4, 4))),
            "h_0", "[2, 3, 4, 4]", "[2, 3, 4, 5]")
    _raises(lambda: model(good, (torch.zeros(3, 2, 3, 4, 4),) * 2), "h_0", "[2, 2, 3, 4, 4]")
    bad = good.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    _raises(lambda: model(bad), "x contains NaN")
    _raises(lambda: ConvLSTM(2, 3), "frame_size")
    _raises(lambda: ConvLSTM(2, [3, 4], num_layers=3, peephole=False), "num_layers=3", "2 layers")
    _raises(lambda: ConvLSTM(2, 3, kernel_size=0, peephole=False), "kernel_size")


def test_wrapper_bad_input_messages():
    frames = FramePredictor(ConvLSTM(4, 3, frame_size=(2, 2)), n_out=2, patch_size=2)
    _raises(lambda: frames(torch.zeros(1, 3, 4, 4)), "5-D", "[B, T_in, C=1, H, W]")
    _raises(lambda: frames(torch.zeros(1, 3, 2, 4, 4)), "out_channels=1", "dimension 2")
    _raises(lambda: frames(torch.zeros(1, 3, 1, 5, 4)), "patch_size=2", "(5, 4)")
    _raises(lambda: frames(torch.full((1, 3, 1, 4, 4), float("nan"))), "NaN")
    series = SeriesForecaster(LSTM(2, 4))
    _raises(lambda: series(torch.zeros(3, 2)), "3-D", "[B, window, F]")
    _raises(lambda: series(torch.zeros(3, 5, 3)), "input_size=2")
    _raises(lambda: SeriesForecaster(LSTM(2, 4, batch_first=False)), "batch_first=True")
    _raises(lambda: reshape_patch(torch.zeros(1, 1, 1, 6, 6), 4), "not divisible by patch_size=4")


# --------------------------------------------------------------------------- training


def test_series_training_loss_decreases():
    torch.manual_seed(0)
    model = SeriesForecaster(LSTM(1, 8, generator=_gen()))
    x = torch.rand(64, 6, 1, generator=_gen(1))
    y = x[:, -1]  # trivial task: recall the last value of the window
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    # Better than the best constant guess, whose loss is the target variance.
    assert losses[-1] < 0.3 * y.var().item()


def test_frame_training_loss_decreases():
    torch.manual_seed(0)
    core = ConvLSTM(4, 4, 3, frame_size=(4, 4), generator=_gen())
    model = FramePredictor(core, n_out=2, patch_size=2)
    x = torch.rand(8, 3, 1, 8, 8, generator=_gen(1))
    # Trivial task: the future is the last observed frame.
    y = x[:, -1:].expand(-1, 2, -1, -1, -1)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


# --------------------------------------------------------------------------- CUDA


@CUDA
@pytest.mark.parametrize("name,build,x", _all(), ids=[m[0] for m in _all()])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_cuda_matches_cpu(name, build, x, dtype):
    model = build().to(dtype)
    x = x.to(dtype)
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    gpu = model.to("cuda")
    out_gpu = gpu(x.cuda())
    out_gpu = out_gpu[0] if isinstance(out_gpu, tuple) else out_gpu
    assert out_gpu.device.type == "cuda" and out_gpu.dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(out_gpu.cpu(), out, atol=tol, rtol=0)
    out_gpu.sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in gpu.parameters())
