"""MCM-QLSTM: contract, exact values against independent computations, circuit structure
(x encoded once, classical control from the forget block, qubit count), shots, Qiskit Aer,
and a training smoke test.

Sizes are the default ones (input 1, hidden 2: 7 qubits, 8 mid-circuit measurements,
256 simulation branches) with batches of 2-4 so that the file runs in well under a minute.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qlstm.circuit import Circuit, run
from qlstm.circuit.expr import Input
from qlstm.circuit.ops import Gate, Measure
from qlstm.errors import InputError
from qlstm.models import build
from qlstm.models.mcm_qlstm import BLOCKS, CONTROL_ROLES, GATE_BLOCKS, MCMQLSTM, mcm_qlstm_cell

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # the branch simulation is many small kernels: on a shared 2-core machine one thread is faster
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _model(**kw) -> MCMQLSTM:
    kw.setdefault("generator", torch.Generator().manual_seed(0))
    kw.setdefault("dtype", F64)
    return MCMQLSTM(kw.pop("input_size", 1), kw.pop("hidden_size", 2), **kw)


def _data(b: int, t: int, f: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, f, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _marginal_z(probs: np.ndarray, clbit: int) -> np.ndarray:
    """<Z> of one classical bit: P(bit=0) - P(bit=1), written with explicit bit tests."""
    idx = np.arange(probs.shape[-1])
    one = ((idx >> clbit) & 1).astype(bool)
    return probs[..., ~one].sum(-1) - probs[..., one].sum(-1)


# ---------------------------------------------------------------------------
# contract


def test_shapes_registry_and_state_continuation():
    model = build("mcm-qlstm", input_size=1, hidden_size=2, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert isinstance(model, MCMQLSTM)
    x = _data(2, 6)
    out, (h, c) = model(x)
    assert out.shape == (2, 6, 2) and h.shape == (1, 2, 2) and c.shape == (1, 2, 2)
    assert out.abs().max() <= 1 and h.abs().max() <= 1  # <Z> values
    out1, state = model(x[:, :3])
    out2, (h2, c2) = model(x[:, 3:], state)
    torch.testing.assert_close(torch.cat([out1, out2], 1), out, rtol=0, atol=1e-12)
    torch.testing.assert_close(h2, h, rtol=0, atol=1e-12)
    torch.testing.assert_close(c2, c, rtol=0, atol=1e-12)
    # time-major input gives the same numbers
    tm = _model(batch_first=False)
    out_t, _ = tm(x.transpose(0, 1))
    torch.testing.assert_close(out_t.transpose(0, 1), out, rtol=0, atol=1e-12)


def test_parameters_are_registered_per_group():
    model = _model()
    names = {n for n, _ in model.named_parameters()}
    assert names == {f"weights.{g}" for g in ("control",) + BLOCKS}
    circ = model.cell_circuit()
    assert sum(p.numel() for p in model.parameters()) == circ.n_weights
    assert model.weights["control"].numel() == len(CONTROL_ROLES) * 2
    # an optimizer sees every weight of the circuit
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == circ.n_weights


@pytest.mark.parametrize(
    "x, state, match",
    [
        (torch.zeros(2, 3), None, r"3-D input \[batch, time, input\].*got \[2, 3\]"),
        (torch.zeros(2, 3, 2), None, r"2 features in dimension 2, expected input_size=1.*\[B, T, 1\]"),
        (torch.tensor([[[0.1], [float("nan")]]]), None, "NaN"),
        (torch.zeros(2, 3, 1), (torch.zeros(1, 2, 3), torch.zeros(1, 2, 2)),
         r"h_0 must be \[1, 2, 2\].*got \[1, 2, 3\]"),
        (torch.zeros(2, 3, 1), (torch.zeros(1, 2, 2), torch.zeros(2, 2)), r"c_0 must be \[1, 2, 2\].*got \[2, 2\]"),
        (torch.zeros(2, 3, 1), torch.zeros(1, 2, 2), r"pair \(h_0, c_0\)"),
        (torch.zeros(2, 3, 1), (torch.zeros(1, 2, 2), torch.full((1, 2, 2), float("inf"))), "c_0 contains NaN or Inf"),
    ],
)
def test_input_errors(x, state, match):
    with pytest.raises(InputError, match=match):
        _model()(x.to(F64), state)


# ---------------------------------------------------------------------------
# exact values


def _prefix_expvals(circ: Circuit, layout, block: str, x_in, w) -> torch.Tensor:
    """<Z> of the block's measured wires just before its measurement, from a truncated circuit."""
    first = min(i for i, op in enumerate(circ.ops) if isinstance(op, Measure) and op.clbit in layout.clbits[block])
    pre = circ.copy()
    pre.ops = pre.ops[:first]
    for op in circ.ops[first:first + len(layout.clbits[block])]:
        pre.expval("Z", op.wire)
    return run(pre, x_in, w, method="reference").expvals


@pytest.mark.parametrize("hidden, method", [(2, "reference"), (1, "density")])
def test_cell_values_match_independent_computations(hidden, method):
    # the density-matrix path costs 4**n per branch: 4 qubits (hidden 1) take a moment, 7 take ~20 s
    model = _model(hidden_size=hidden)
    layout = model.layout
    x_t = torch.tensor([[0.4], [-1.3]], dtype=F64)
    h = torch.tensor([[0.2, -0.7], [0.9, 0.1]], dtype=F64)[:, :hidden]
    c = torch.tensor([[1.5, -0.3], [-2.0, 0.6]], dtype=F64)[:, :hidden]
    with torch.no_grad():
        cell = model.cell(x_t, h, c)
        circ, w = model.cell_circuit(), model.weight_vector()
        x_in = model.cell_inputs(x_t, h, c)
        # (1) the whole circuit on another simulation path (gate by gate, every measurement
        # branching, or density matrices with merged branches); marginals by hand
        other = run(circ, x_in, w, method=method)
        assert other.method in ("reference-statevector", "density")
        probs = other.clbit_probs.numpy()
        for block in BLOCKS:
            z = np.stack([_marginal_z(probs, b) for b in layout.clbits[block]], -1)
            np.testing.assert_allclose(cell.z[block].numpy(), z, atol=1e-10)
        # (2) each gate value is <Z> of the work qubits at the moment of measurement: a truncated
        # circuit with observables instead of the measurement, on the plain reference path
        for block in BLOCKS:
            np.testing.assert_allclose(cell.z[block].numpy(), _prefix_expvals(circ, layout, block, x_in, w).numpy(),
                                       atol=1e-10)
    # (3) the classical part of the cell, by hand
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    zf, zi, zg = (cell.z[b].numpy() for b in ("forget", "input", "candidate"))
    np.testing.assert_allclose(cell.c.numpy(), sig(zf) * c.numpy() + sig(zi) * np.tanh(zg), atol=1e-12)
    np.testing.assert_allclose(cell.h.numpy(), cell.z["hidden_processing"].numpy(), atol=0)
    np.testing.assert_allclose(cell.y.numpy(), cell.z["output_processing"].numpy(), atol=0)
    assert set(cell.gates) == {"f", "i", "g", "o"}


def test_gradients_reach_every_parameter_tensor():
    model = _model()
    out, (h, c) = model(_data(2, 2))
    (out.sum() + h.sum() + c.sum()).backward()
    layout = model.layout
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.norm() > 1e-4, name
    # Entries that are zero by construction, in the last Chen layer of a block (Rot = RZ(omega) RY RZ(phi)):
    # * omega on a wire measured right after the block: an RZ commutes with a Z measurement;
    # * every angle on the wires of the last block that are not measured (C and X in
    #   output_processing): nothing after them reaches a measurement.
    expected = {name: set() for name in ("control",) + BLOCKS}
    for block in BLOCKS:
        wires = layout.block_wires[block]
        last = (layout.n_layers - 1) * len(wires) * 3
        measured = {op.wire for op in model.cell_circuit().ops
                    if isinstance(op, Measure) and op.clbit in layout.clbits[block]}
        for k, wire in enumerate(wires):
            if wire in measured:
                expected[block].add(last + 3 * k + 2)
            elif block == "output_processing":
                expected[block].update(last + 3 * k + j for j in range(3))
    for name, p in model.weights.items():
        zero = set((p.grad.abs() < 1e-12).nonzero().flatten().tolist())
        assert zero == expected[name], name


# ---------------------------------------------------------------------------
# circuit structure


def test_x_is_encoded_once_and_chen_encodes_it_four_times():
    model = _model(input_size=2)
    circ = model.cell_circuit()
    layout = model.layout
    x_cols = set(layout.x_columns)

    def reads_x(op) -> bool:
        return isinstance(op, Gate) and any(isinstance(leaf, Input) and leaf.index in x_cols
                                             for p in op.params for leaf in p.leaves())

    readers = [(i, op) for i, op in enumerate(circ.ops) if reads_x(op)]
    # one Chen encoding (RY(atan x), RZ(atan x^2)) per feature, on the X register, before any measurement
    assert sorted(op.name for _, op in readers) == ["ry", "ry", "rz", "rz"]
    assert {op.wires[0] for _, op in readers} == set(layout.x_wires)
    first_measure = min(i for i, op in enumerate(circ.ops) if isinstance(op, Measure))
    assert max(i for i, _ in readers) < first_measure
    res = model.resources()
    assert res["x_encoding_ops"] == {"mcm_qlstm": 4, "chen_qlstm": 16}
    assert res["circuits_encoding_x"] == {"mcm_qlstm": 1, "chen_qlstm": 4}
    assert res["circuit_executions"] == {"mcm_qlstm": 1, "chen_qlstm": 6}


def test_forget_measurement_classically_controls_later_blocks():
    circ, layout = mcm_qlstm_cell(1, 2)
    f_bits = set(layout.clbits["forget"])
    measured_at = {op.clbit: i for i, op in enumerate(circ.ops) if isinstance(op, Measure)}
    controlled = [(i, op) for i, op in enumerate(circ.ops)
                  if getattr(op, "condition", None) is not None and f_bits & set(op.condition.clbits)]
    assert controlled
    assert all(i > max(measured_at[b] for b in f_bits) for i, _ in controlled)
    # they act on the work qubits of the input and candidate blocks and on the cell register
    targets = {op.wires[0] for _, op in controlled}
    assert set(layout.w_wires) <= targets and set(layout.c_wires) <= targets
    first_input_measure = min(measured_at[b] for b in layout.clbits["input"])
    assert any(i < first_input_measure for i, op in controlled if op.wires[0] in layout.w_wires)
    # every measurement of a gate block resets its work qubit for the next block
    for block in GATE_BLOCKS:
        ms = [op for op in circ.ops if isinstance(op, Measure) and op.clbit in layout.clbits[block]]
        assert [m.wire for m in ms] == list(layout.w_wires) and all(m.reset for m in ms)


def test_control_changes_the_later_blocks():
    model = _model()
    x_t = torch.tensor([[0.3]], dtype=F64)
    h = torch.tensor([[0.5, -0.2]], dtype=F64)
    c = torch.tensor([[0.8, 1.1]], dtype=F64)
    with torch.no_grad():
        a = model.cell(x_t, h, c)
        w = model.weight_vector().clone()
        w[model.layout.weights["control"]] = 0
        b = model.cell(x_t, h, c, w)
    torch.testing.assert_close(a.z["forget"], b.z["forget"])  # before any controlled operation
    for block in ("input", "candidate", "hidden_processing", "output_processing"):
        assert (a.z[block] - b.z[block]).abs().max() > 1e-3, block


def test_resources_fewer_qubits_than_chen_side_by_side():
    model = _model()
    res = model.resources()
    assert res["qubits"] == {"mcm_qlstm": 7, "chen_qlstm": 16}
    assert res["qubits"]["mcm_qlstm"] < res["qubits"]["chen_qlstm"]
    assert res["mid_circuit_measurements"] == {"mcm_qlstm": 8, "chen_qlstm": 0}
    assert res["resets"] == {"mcm_qlstm": 8, "chen_qlstm": 0}
    assert res["conditional_ops"]["mcm_qlstm"] == len(CONTROL_ROLES) * 2
    assert res["idle_qubits"]["mcm_qlstm"] == 0
    assert 0 <= res["idle_share"]["mcm_qlstm"] < 1 and 0 <= res["idle_share"]["chen_qlstm"] < 1
    drawing = model.cell_circuit().draw()
    assert "M->c0|0>" in drawing and "if c0==1" in drawing


# ---------------------------------------------------------------------------
# shots, noise, Qiskit


def test_shots_reproducible_within_five_sigma_and_equal_to_run():
    shots = 4000
    x = _data(3, 1, seed=5)
    exact = _model()
    a = _model(shots=shots, generator=torch.Generator().manual_seed(0))
    a.load_state_dict(exact.state_dict())
    zero = torch.zeros(3, 2, dtype=F64)
    a.generator = torch.Generator().manual_seed(11)
    ca = a.cell(x[:, 0], zero, zero)
    a.generator = torch.Generator().manual_seed(11)
    cb = a.cell(x[:, 0], zero, zero)
    for block in BLOCKS:
        torch.testing.assert_close(ca.z[block], cb.z[block], rtol=0, atol=0)
    ce = exact.cell(x[:, 0], zero, zero)
    for block in BLOCKS:
        e, s = ce.z[block].detach().numpy(), ca.z[block].detach().numpy()
        assert np.all(np.abs(s - e) <= 5 * np.sqrt(np.clip(1 - e**2, 0, None) / shots) + 1e-3), block
        assert not np.allclose(s, e, atol=1e-9)  # really sampled
    # the same draws as run(..., shots=N, generator=g) from the same seed
    ref = run(a.cell_circuit(), a.cell_inputs(x[:, 0], zero, zero), a.weight_vector().detach(), shots=shots,
              generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(ca.clbit_probs, ref.clbit_probs, rtol=0, atol=0)
    # straight-through: the gradient of the estimate is the exact gradient (one step: y = z_y)
    a.generator = torch.Generator().manual_seed(3)
    out_s, _ = a(x)
    out_s.sum().backward()
    out_e, _ = exact(x)
    out_e.sum().backward()
    for (n, pa), (_, pe) in zip(a.named_parameters(), exact.named_parameters()):
        torch.testing.assert_close(pa.grad, pe.grad, msg=n)


def test_noise_runs_on_density_matrices():
    from qlstm.circuit.noise import NoiseModel

    clean = _model(hidden_size=1)
    noisy = _model(hidden_size=1, noise=NoiseModel("depolarizing", 0.05, "end"))
    noisy.load_state_dict(clean.state_dict())
    assert any(type(op).__name__ == "Channel" for op in noisy.cell_circuit().ops)
    x = _data(2, 2)
    out_c, _ = clean(x)
    out_n, _ = noisy(x)
    assert torch.isfinite(out_n).all() and (out_n - out_c).abs().max() > 1e-4
    assert out_n.abs().max() < out_c.abs().max()  # depolarising shrinks <Z>


def test_qiskit_aer_dynamic_circuit_agrees():
    pytest.importorskip("qiskit_aer")
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    from qlstm.interop import to_qiskit

    model = _model()
    circ, w = model.cell_circuit(), model.weight_vector().detach()
    x_in = torch.tensor([[0.3, -0.4, 0.6, 0.8, -1.2]], dtype=F64)
    exact = run(circ, x_in, w).clbit_probs[0].numpy()
    qc = to_qiskit(circ, bind_weights=w.numpy(), bind_inputs=x_in[0].numpy())
    assert qc.num_qubits == 7 and qc.num_clbits == 12
    assert qc.count_ops().get("if_else", 0) > 0 and qc.count_ops().get("reset", 0) == 8
    shots = 8000
    sim = AerSimulator(method="statevector")
    counts = sim.run(transpile(qc, sim, optimization_level=0), shots=shots, seed_simulator=1234).result().get_counts()
    freq = np.zeros_like(exact)
    for key, v in counts.items():
        freq[int(key.replace(" ", ""), 2)] += v / shots  # clbit 0 is the rightmost character
    assert np.all(np.abs(freq - exact) <= 5 * np.sqrt(exact * (1 - exact) / shots) + 1e-3)
    for b in range(circ.n_clbits):
        e, s = _marginal_z(exact, b), _marginal_z(freq, b)
        assert abs(s - e) <= 5 * np.sqrt(max(1 - e**2, 0) / shots) + 1e-3, b


# ---------------------------------------------------------------------------
# training


def test_training_smoke_sine_windows():
    from qlstm.data.series import make_windows, sine
    from qlstm.models.wrappers import SeriesForecaster

    xs, ys = make_windows(sine(40, t_max=4.0, frequency=0.25), window=3)
    x = torch.tensor(xs, dtype=torch.float32)[:, :, None]
    y = torch.tensor(ys, dtype=torch.float32)[:, None]
    core = MCMQLSTM(1, 2, generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the linear head draws from the global generator
        model = SeriesForecaster(core)
    start = {n: p.detach().clone() for n, p in core.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    batch = torch.arange(0, len(x), 4)[:8]

    def loss_fn():
        return torch.nn.functional.mse_loss(model(x[batch]), y[batch])

    with torch.no_grad():
        before = loss_fn().item()
    for _ in range(6):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = loss_fn().item()
    assert after < 0.8 * before
    for n, p in core.named_parameters():  # every group of circuit weights was trained
        assert (p.detach() - start[n]).abs().max() > 1e-3, n
