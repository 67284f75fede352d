"""QuantumLayer, noise placement and the QLSTM model."""

import pytest
import torch

from qlstm import Circuit, run
from qlstm.circuit.noise import NoiseModel, insert_noise
from qlstm.circuit.ops import Channel
from qlstm.circuit.templates import chen_vqc, init_weights
from qlstm.errors import CircuitError, InputError, QlstmError
from qlstm.models.qlstm import QLSTM
from qlstm.nn import QuantumLayer


def test_layer_matches_run_and_registers_weights():
    layer = QuantumLayer(chen_vqc(3, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.randn(7, 3, dtype=torch.float64)
    assert torch.allclose(layer(x), run(layer.circuit, x, layer.weight.detach(), method="reference").expvals)
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_layer_copies_are_independent_circuits():
    layer = QuantumLayer(chen_vqc(2, 1), copies=3, init="normal", dtype=torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64)
    out = layer(x)
    assert out.shape == (3, 4, 2)
    for g in range(3):
        assert torch.allclose(out[g], run(layer.circuit, x, layer.weight[g].detach()).expvals, atol=1e-12)


def test_layer_gradients_reach_every_weight_that_can_matter():
    layer = QuantumLayer(chen_vqc(4, 2), copies=4, init="normal", dtype=torch.float64)
    layer(torch.randn(8, 4, dtype=torch.float64)).square().sum().backward()
    grad = layer.weight.grad
    assert torch.isfinite(grad).all()
    # Rot(a, b, g) = RZ(g) RY(b) RZ(a): the last layer's RZ(g) commutes with the <Z> read-out,
    # so exactly those 4 weights per copy (indices 12 + 3k + 2) have zero gradient; all others do not.
    redundant = torch.zeros(24, dtype=torch.bool)
    redundant[[14, 17, 20, 23]] = True
    assert (grad[:, redundant].abs() < 1e-12).all()
    assert (grad[:, ~redundant].abs() > 0).all()


def test_init_is_seeded_and_scheme_checked():
    a = init_weights(10, "chen", generator=torch.Generator().manual_seed(1))
    b = init_weights(10, "chen", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.abs().max() < 0.1
    with pytest.raises(CircuitError, match="unknown weight init scheme"):
        init_weights(3, "glorot")


def test_noisy_layer_is_density_matrix_and_noise_shrinks_expectations():
    c = chen_vqc(2, 1)
    x = torch.randn(5, 2, dtype=torch.float64)
    clean = QuantumLayer(c, init="normal", generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noisy = QuantumLayer(c, init="normal", generator=torch.Generator().manual_seed(2), dtype=torch.float64,
                         noise=NoiseModel("depolarizing", 0.3))
    # depolarizing at the end scales every single-qubit <Z> by (1 - 4p/3)
    assert torch.allclose(noisy(x), clean(x) * (1 - 4 * 0.3 / 3), atol=1e-10)


@pytest.mark.parametrize("placement,expected", [("end", 2), ("gate", None), ("layer", None)])
def test_noise_placements(placement, expected):
    c = chen_vqc(2, 1)
    noisy = insert_noise(c, NoiseModel("bit_flip", 0.1, placement))
    channels = [op for op in noisy.ops if isinstance(op, Channel)]
    if placement == "end":
        assert len(channels) == expected and all(isinstance(op, Channel) for op in noisy.ops[-2:])
    elif placement == "gate":
        assert len(channels) == sum(len(op.wires) for op in c.ops)
    else:
        assert len(channels) % 2 == 0 and len(channels) >= 2 * 4
    assert len(c.ops) + len(channels) == len(noisy.ops)
    assert not any(isinstance(op, Channel) for op in c.ops)  # the original is untouched


def test_noise_model_validation():
    with pytest.raises(QlstmError, match="valid channels"):
        NoiseModel("thermal", 0.1)
    with pytest.raises(QlstmError, match=r"\[0, 1\]"):
        NoiseModel("depolarizing", 1.5)
    with pytest.raises(QlstmError, match="placement"):
        NoiseModel("depolarizing", 0.1, "everywhere")


def test_layer_input_errors():
    layer = QuantumLayer(chen_vqc(3, 1))
    with pytest.raises(InputError, match=r"\[batch, 3\]"):
        layer(torch.randn(4, 2))
    with pytest.raises(InputError, match="finite"):
        layer(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(CircuitError, match="no observables"):
        QuantumLayer(Circuit(2))


def test_shot_layer_is_seeded_and_close_to_exact():
    c = chen_vqc(2, 1)
    exact = QuantumLayer(c, init="normal", generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64)
    outs = []
    for _ in range(2):
        shot = QuantumLayer(c, init="normal", generator=torch.Generator().manual_seed(3), dtype=torch.float64,
                            shots=4000)
        outs.append(shot(x))
    assert torch.equal(outs[0], outs[1])
    assert (outs[0] - exact(x)).abs().max() < 5 / 4000**0.5


# -- QLSTM ------------------------------------------------------------------------------


def reference_qlstm_step(model: QLSTM, x_t, h, c):
    """Chen's cell written out with one reference-path run per VQC."""
    w_g, w_p = model.gates.weight.detach(), model.process.weight.detach()
    v = torch.cat([x_t, h], 1)
    g = [run(model.gates.circuit, v, w_g[k], method="reference").expvals for k in range(4)]
    c = torch.sigmoid(g[0]) * c + torch.sigmoid(g[1]) * torch.tanh(g[2])
    hv = torch.sigmoid(g[3]) * torch.tanh(c)
    h_new = run(model.process.circuit, hv, w_p[0], method="reference").expvals
    y = run(model.process.circuit, hv, w_p[1], method="reference").expvals
    return y, h_new, c


def test_qlstm_faithful_matches_reference_cell():
    model = QLSTM(1, 3, n_layers=2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5, generator=torch.Generator().manual_seed(p.numel()))
    x = torch.randn(4, 5, 1, dtype=torch.float64)
    out, (h_n, c_n) = model(x)
    h = c = torch.zeros(4, 3, dtype=torch.float64)
    for t in range(5):
        y, h, c = reference_qlstm_step(model, x[:, t], h, c)
        assert torch.allclose(out[:, t], y, atol=1e-10)
    assert torch.allclose(h_n[0], h, atol=1e-10) and torch.allclose(c_n[0], c, atol=1e-10)


@pytest.mark.parametrize("mode", ["faithful", "adapter"])
def test_qlstm_contract_state_and_gradients(mode):
    kw = dict(n_qubits=4, mode="adapter") if mode == "adapter" else {}
    model = QLSTM(2, 3, n_layers=1, generator=torch.Generator().manual_seed(1), **kw)
    x = torch.randn(5, 6, 2)
    out, (h, c) = model(x)
    assert out.shape == (5, 6, 3) and h.shape == c.shape == (1, 5, 3)
    # running 3 + 3 steps with the returned state equals 6 at once
    out_a, state = model(x[:, :3])
    out_b, (h2, c2) = model(x[:, 3:], state)
    assert torch.allclose(torch.cat([out_a, out_b], 1), out, atol=1e-6)
    assert torch.allclose(h2, h, atol=1e-6)
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_qlstm_bad_input():
    model = QLSTM(1, 3)
    with pytest.raises(InputError, match="3-D"):
        model(torch.randn(4, 1))
    with pytest.raises(InputError, match="input_size=1"):
        model(torch.randn(4, 2, 2))
    with pytest.raises(InputError, match="NaN"):
        model(torch.full((1, 2, 1), float("nan")))
    with pytest.raises(InputError, match=r"\[1, 4, 3\]"):
        model(torch.randn(4, 2, 1), (torch.zeros(1, 4, 2), torch.zeros(1, 4, 2)))
    with pytest.raises(QlstmError, match="input_size \\+ hidden_size"):
        QLSTM(1, 3, n_qubits=6)
