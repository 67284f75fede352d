"""Variational-layer templates (VQC_TEMPLATES) against PennyLane, and the QLSTM's template option."""

import numpy as np
import pytest
import torch

from qlstm import Circuit, run
from qlstm.circuit.templates import (VQC_TEMPLATES, basic_entangler_layers, chen_vqc, strongly_entangling_layers,
                                     variational_layers)
from qlstm.errors import CircuitError, QlstmError
from qlstm.models import build
from qlstm.models.qlstm import QLSTM

F64 = torch.float64


def _pennylane_reference(n, template, x, w, n_layers):
    """<Z_i> of Chen encoding + a PennyLane template, one sample."""
    qml = pytest.importorskip("pennylane")
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev)
    def circuit():
        for i in range(n):
            qml.Hadamard(wires=i)
            qml.RY(np.arctan(x[i]), wires=i)
            qml.RZ(np.arctan(x[i] ** 2), wires=i)
        if template == "strongly_entangling":
            qml.StronglyEntanglingLayers(w.reshape(n_layers, n, 3), wires=range(n))
        else:
            qml.BasicEntanglerLayers(w.reshape(n_layers, n), wires=range(n), rotation=qml.RY)  # the registry's choice
        return [qml.expval(qml.PauliZ(i)) for i in range(n)]

    return np.array(circuit(), dtype=float)


@pytest.mark.parametrize("template", ["strongly_entangling", "basic_entangler"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_templates_match_pennylane(template, n):
    gen = torch.Generator().manual_seed(10 * n)
    n_layers = 3
    c = chen_vqc(n, n_layers, template=template)
    w = torch.rand(c.n_weights, generator=gen, dtype=F64) * 6
    x = torch.randn(3, n, generator=gen, dtype=F64)
    ours = run(c, x, w).expvals  # planner's choice (Heisenberg path for <= 4 qubits)
    ref = run(c, x, w, method="reference").expvals
    assert torch.allclose(ours, ref, atol=1e-10)
    for b in range(3):
        expect = _pennylane_reference(n, template, x[b].numpy(), w.numpy(), n_layers)
        np.testing.assert_allclose(ours[b].numpy(), expect, atol=1e-10)


def test_pennylanes_rx_basic_entangler_is_dead_behind_the_chen_encoding():
    """Why the registry's basic_entangler uses RY: with RX, zero inputs stay |+> and every <Z> is 0."""
    c = chen_vqc(3, 2, template=lambda n, layers: basic_entangler_layers(n, layers, rotation="X"))
    w = torch.randn(c.n_weights, dtype=F64, generator=torch.Generator().manual_seed(0))
    x = torch.zeros(2, 3, dtype=F64)
    x[:, 0] = torch.tensor([0.3, -1.2])  # x_t on wire 0, a zero hidden state on the others
    assert run(c, x, w, method="reference").expvals.abs().max() < 1e-12
    ry = chen_vqc(3, 2, template="basic_entangler")
    assert run(ry, x, w).expvals.abs().max() > 1e-3


def test_template_sizes_and_ranges():
    assert basic_entangler_layers(4, 2).n_weights == 8
    assert strongly_entangling_layers(4, 2).n_weights == 24
    # layer l entangles at range l mod (n-1) + 1
    c = strongly_entangling_layers(4, 3)
    pairs = [tuple(op.wires) for op in c.ops if getattr(op, "name", "") == "cnot"]
    assert pairs[:4] == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert pairs[4:8] == [(0, 2), (1, 3), (2, 0), (3, 1)]
    assert pairs[8:12] == [(0, 3), (1, 0), (2, 1), (3, 2)]
    assert set(VQC_TEMPLATES) == {"chen", "basic_entangler", "strongly_entangling"}


def test_bad_templates_name_the_problem():
    with pytest.raises(CircuitError, match="unknown VQC template 'ring'.*chen, basic_entangler, strongly_entangling"):
        variational_layers("ring", 3, 1)
    with pytest.raises(CircuitError, match="built 2 qubits, expected 3"):
        variational_layers(lambda n, l: Circuit(2), 3, 1)

    def reads_data(n, layers):
        c = Circuit(n)
        c.ry(0, c.inputs(1)[0])
        return c

    with pytest.raises(CircuitError, match="weights only"):
        variational_layers(reads_data, 2, 1)
    with pytest.raises(CircuitError, match="returned int"):
        variational_layers(lambda n, l: 3, 2, 1)
    with pytest.raises(CircuitError, match="rotation must be X, Y or Z"):
        basic_entangler_layers(2, 1, rotation="W")
    with pytest.raises(CircuitError, match="n_layers >= 0"):
        strongly_entangling_layers(2, -1)


@pytest.mark.parametrize("mode", ["faithful", "adapter"])
@pytest.mark.parametrize("template", ["strongly_entangling", "basic_entangler"])
def test_qlstm_template_option_trains_every_parameter(mode, template):
    gen = torch.Generator().manual_seed(3)
    model = QLSTM(1, 3, n_layers=2, mode=mode, template=template, generator=gen, dtype=F64)
    per_qubit = 3 if template == "strongly_entangling" else 1
    nq = model.n_qubits
    if mode == "faithful":
        assert model.gates.weight.shape == (4, per_qubit * nq * 2)
        assert model.process.weight.shape == (2, per_qubit * 3 * 2)
    else:
        assert model.vqc.weight.shape == (6, per_qubit * nq * 2)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(generator=gen)
    out, (h, c) = model(torch.randn(5, 4, 1, generator=gen, dtype=F64))
    assert out.shape == (5, 4, 3) and h.shape == (1, 5, 3)
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert f"template={template!r}" in repr(model)


def test_qlstm_custom_template_equals_the_named_one():
    gen = torch.Generator().manual_seed(4)
    named = QLSTM(1, 2, n_layers=1, template="basic_entangler", generator=gen, dtype=F64)
    custom = QLSTM(1, 2, n_layers=1, template=lambda n, l: basic_entangler_layers(n, l, rotation="Y"), dtype=F64)
    custom.load_state_dict(named.state_dict())
    x = torch.randn(3, 5, 1, generator=gen, dtype=F64)
    assert torch.allclose(named(x)[0], custom(x)[0], atol=1e-12)


def test_registry_takes_explicit_keywords_and_names_a_wrong_one():
    model = build("qlstm", input_size=1, hidden_size=2, n_layers=1, template="strongly_entangling")
    assert isinstance(model, QLSTM) and model.template == "strongly_entangling"
    with pytest.raises(QlstmError, match="has no argument 'hiden_size'; did you mean 'hidden_size'"):
        build("qlstm", input_size=1, hiden_size=2)
    with pytest.raises(QlstmError, match="unknown model 'qlstmm'.*did you mean 'qlstm'"):
        build("qlstmm")
    with pytest.raises(CircuitError, match="unknown VQC template"):
        build("qlstm", input_size=1, hidden_size=2, template="nope")
