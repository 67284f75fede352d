"""Noisy circuits in the Heisenberg picture (qlstm.circuit.heisenberg_mixed).

Checked against the density-matrix simulator (``run(..., method="density")``, the
reference path), against PennyLane ``default.mixed``, and by gradcheck.
"""

import numpy as np
import pytest
import torch

from conftest import eval_params, pennylane_channel, pennylane_op
from qlstm import Circuit, run
from qlstm.circuit.heisenberg_mixed import bind_noisy, prefers_heisenberg, split_noisy
from qlstm.circuit.noise import NoiseModel, insert_noise
from qlstm.circuit.ops import Channel, Gate
from qlstm.circuit.templates import chen_vqc, qcnn_tree
from qlstm.errors import CircuitError
from qlstm.models.qlstm import QLSTM
from qlstm.nn import QuantumLayer

F64 = torch.float64
CHANNELS = ["bit_flip", "phase_flip", "bit_phase_flip", "depolarizing", "amplitude_damping", "phase_damping"]
ONE = ["rx", "ry", "rz", "h", "s", "rot", "u3", "phaseshift", "sx"]
TWO = ["cnot", "cz", "crx", "cry", "isingxx", "isingzz", "swap"]


def _params(c, name, rng, data: bool):
    from qlstm.sim.gates import lookup

    k = lookup(name).num_params
    x, w = c.x, c.w
    out = []
    for _ in range(k):
        e = w[int(rng.integers(4))] * float(rng.uniform(0.5, 2))
        if data:
            e = e + x[int(rng.integers(3))].atan()
        out.append(e)
    return out


def random_noisy(rng, n: int, kind: str) -> Circuit:
    """A random circuit of the "pure" form (data, then noise) or the "product" one
    (one-qubit gates reading data, interleaved with noise, then entanglers and noise)."""
    c = Circuit(n)
    c.x, c.w = c.inputs(3), c.weights(4)
    if kind == "pure":
        c.amplitude_encoding(range(min(3, 2**n)), range(min(2, n)))
        for _ in range(3 * n):  # data-reading gates, entangling
            if n > 1 and rng.random() < 0.4:
                name = str(rng.choice(TWO))
                a, b = rng.choice(n, 2, replace=False)
                c.gate(name, [int(a), int(b)], *_params(c, name, rng, True))
            else:
                name = str(rng.choice(ONE))
                c.gate(name, int(rng.integers(n)), *_params(c, name, rng, True))
    else:
        c.channel(str(rng.choice(CHANNELS)), 0, float(rng.uniform(0.05, 0.3)))  # noise before the data
        c.ry(0, c.x[0].atan())
        for _ in range(3 * n):
            q = int(rng.integers(n))
            if rng.random() < 0.3:
                c.channel(str(rng.choice(CHANNELS)), q, float(rng.uniform(0, 0.3)))
            else:
                name = str(rng.choice(ONE))
                c.gate(name, q, *_params(c, name, rng, True))
    for _ in range(4 * n):  # data-free rest: weights, constants, noise
        r = rng.random()
        if r < 0.3:
            c.channel(str(rng.choice(CHANNELS)), int(rng.integers(n)), float(rng.uniform(0, 0.3)))
        elif r < 0.55 and n > 1:
            name = str(rng.choice(TWO))
            a, b = rng.choice(n, 2, replace=False)
            c.gate(name, [int(a), int(b)], *_params(c, name, rng, False))
        else:
            name = str(rng.choice(ONE))
            c.gate(name, int(rng.integers(n)), *_params(c, name, rng, False))
    c.channel("depolarizing", 0, 0.05)
    c.kraus([np.sqrt(0.7) * np.eye(2), np.sqrt(0.3) * np.array([[0, 1], [1, 0]])], n - 1)
    c.expval_each("Z", range(n))
    c.expval("X" * n, range(n)).expval("Y", 0)
    return c


CASES = [(s, n, k) for s in range(4) for n in (1, 2, 3) for k in ("pure", "product")]


@pytest.mark.parametrize("seed,n,kind", CASES)
def test_random_noisy_circuits_match_the_density_matrix_path(seed, n, kind):
    rng = np.random.default_rng(100 * seed + 10 * n + (kind == "pure"))
    c = random_noisy(rng, n, kind)
    split = split_noisy(c)
    assert split is not None and split.kind == kind
    x = torch.as_tensor(rng.uniform(0.1, 1.0, (4, c.n_inputs)))
    w = torch.as_tensor(rng.normal(size=c.n_weights))
    res = run(c, x, w)
    assert res.method == "heisenberg"
    ref = run(c, x, w, method="density").expvals
    torch.testing.assert_close(res.expvals, ref, atol=1e-12, rtol=0)
    # grouped weights: three weight sets at once, and a subset of them
    ws = torch.as_tensor(rng.normal(size=(3, c.n_weights)))
    bound = bind_noisy(c, ws)
    refs = torch.stack([run(c, x, wg, method="density").expvals for wg in ws])
    torch.testing.assert_close(bound.expvals(x), refs, atol=1e-12, rtol=0)
    torch.testing.assert_close(bound.subset(slice(1, 3)).expvals(x), refs[1:], atol=1e-12, rtol=0)


@pytest.mark.parametrize("seed,kind", [(0, "pure"), (1, "product"), (2, "product")])
def test_random_noisy_circuits_match_pennylane_default_mixed(seed, kind):
    qml = pytest.importorskip("pennylane")
    rng = np.random.default_rng(seed + 700)
    n = 3
    c = random_noisy(rng, n, kind)
    x = rng.uniform(0.1, 1.0, c.n_inputs)
    w = rng.normal(size=c.n_weights)
    dev = qml.device("default.mixed", wires=n)

    @qml.qnode(dev)
    def qnode():
        for op in c.ops:
            if isinstance(op, Gate):
                pennylane_op(op.name, op.wires, eval_params(op, torch.as_tensor(x), torch.as_tensor(w)))
            elif isinstance(op, Channel):
                if op.name == "kraus":
                    qml.QubitChannel([k.numpy() for k in op.kraus], wires=list(op.wires))
                else:
                    pennylane_channel(op.name, op.p, op.wires[0])
            else:  # amplitude encoding
                qml.AmplitudeEmbedding(x[list(op.inputs)], wires=list(op.wires), normalize=True, pad_with=0.0)
        obs = [qml.PauliZ(i) for i in range(n)]
        obs.append(qml.PauliX(0) @ qml.PauliX(1) @ qml.PauliX(2))
        obs.append(qml.PauliY(0))
        return [qml.expval(o) for o in obs]

    expect = np.array([float(v) for v in qnode()])
    ours = run(c, torch.as_tensor(x)[None].expand(2, -1), torch.as_tensor(w))
    assert ours.method == "heisenberg"
    np.testing.assert_allclose(ours.expvals[0].numpy(), expect, atol=1e-10)


@pytest.mark.parametrize("kind", ["pure", "product"])
def test_gradcheck_inputs_and_grouped_weights(kind):
    rng = np.random.default_rng(11 if kind == "pure" else 12)
    c = random_noisy(rng, 2, kind)
    x = torch.as_tensor(rng.uniform(0.2, 1.0, (3, c.n_inputs))).requires_grad_(True)
    w = torch.as_tensor(rng.normal(size=(2, c.n_weights))).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: bind_noisy(c, b).expvals(a), (x, w), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["pure", "product"])
def test_resets_in_the_data_free_part_are_channels(kind):
    c = Circuit(2)
    x = c.inputs(2)
    if kind == "pure":
        c.ry(0, x[0]).ry(1, x[1]).channel("bit_flip", 0, 0.1)
    else:
        c.ry(0, x[0]).channel("bit_flip", 0, 0.1).ry(1, x[1]).reset(0).ry(0, x[1])
    c.cnot(0, 1).reset(0).h(0).cry(0, 1, c.weights(1)[0])
    c.channel("amplitude_damping", 1, 0.2).expval_each("Z", [0, 1]).expval("XX", [0, 1])
    x_ = torch.rand(5, 2, dtype=F64)
    w = torch.tensor([0.7], dtype=F64)
    assert split_noisy(c).kind == kind
    torch.testing.assert_close(run(c, x_, w).expvals, run(c, x_, w, method="density").expvals, atol=1e-12, rtol=0)


def test_what_does_not_split_falls_back_to_density_matrices():
    late = Circuit(2)  # data read after an entangling gate and a channel
    xl = late.inputs(2)
    late.ry(0, xl[0]).cnot(0, 1).channel("bit_flip", 1, 0.1).ry(1, xl[1]).expval("Z", 1)
    assert split_noisy(late) is None
    assert run(late, torch.rand(3, 2)).method == "density"
    measured = Circuit(2)
    measured.h(0).channel("bit_flip", 0, 0.1)
    b = measured.measure(0)
    measured.x(1, condition=b).expval("Z", 1)
    assert split_noisy(measured) is None
    pure = chen_vqc(2, 1)
    assert split_noisy(pure) is None  # no noise: the pure planner's business
    noisy = insert_noise(chen_vqc(3, 1), "depolarizing:0.1:end")
    assert run(noisy, torch.rand(2, 3), torch.rand(noisy.n_weights), return_state=True).method == "density"
    assert run(noisy, torch.rand(2, 3), torch.rand(noisy.n_weights), shots=100,
               generator=torch.Generator().manual_seed(0)).method == "density"
    wide = insert_noise(chen_vqc(6, 1), "bit_flip:0.1:end")  # 6 observables, 2 rows: density is cheaper
    assert not prefers_heisenberg(wide, 2) and prefers_heisenberg(wide, 6)
    assert run(wide, torch.rand(2, 6), torch.rand(wide.n_weights)).method == "density"


@pytest.mark.parametrize("placement", ["end", "layer", "gate"])
def test_noisy_quantum_layer_binds_and_equals_the_per_copy_density_path(placement):
    layer = QuantumLayer(chen_vqc(3, 2), copies=4, init="normal", noise=NoiseModel("depolarizing", 0.05, placement),
                         generator=torch.Generator().manual_seed(1), dtype=F64)
    assert layer.bindable
    x = torch.randn(6, 3, dtype=F64)
    fast = layer(x)
    layer.heisenberg = False
    assert not layer.bindable
    with pytest.raises(CircuitError, match="runs through forward"):
        layer.bind()
    slow = layer(x)
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)


def test_noisy_qlstm_equals_its_density_matrix_reference_values_and_gradients():
    def make():
        return QLSTM(1, 2, n_layers=1, noise="amplitude_damping:0.1:layer", generator=torch.Generator().manual_seed(2),
                     dtype=F64)

    fast, slow = make(), make()
    for layer in (slow.gates, slow.process):
        layer.heisenberg = False
    x = torch.randn(3, 4, 1, dtype=F64, generator=torch.Generator().manual_seed(3))
    a, b = fast(x)[0], slow(x)[0]
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    a.square().sum().backward()
    b.square().sum().backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-10, rtol=0, msg=name)


def test_noisy_qcnn_tree_with_amplitude_encoding():
    c = insert_noise(qcnn_tree(4, "U_SO4", layers_per_level=2, encoding="amplitude"), "bit_phase_flip:0.1:layer")
    x = torch.rand(9, 16, dtype=F64)
    w = torch.rand(c.n_weights, dtype=F64) * 6
    assert split_noisy(c).kind == "pure"
    torch.testing.assert_close(run(c, x, w).expvals, run(c, x, w, method="density").expvals, atol=1e-12, rtol=0)
