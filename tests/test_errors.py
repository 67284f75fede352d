"""Bad input fails early with a qlstm error whose message says what is wrong.

This file needs neither qiskit nor pennylane; the last test checks that the core
imports and runs when they are missing.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from qlstm import ChannelError, Circuit, CircuitError, InputError, QlstmError, compile_program, expval, run
from qlstm.sim.gates import gate_matrix


def _circuit():
    c = Circuit(2, name="mycirc")
    x = c.inputs(3)
    w = c.weights(2)
    c.ry(0, x[0]).ry(1, x[1] * w[0]).rx(0, x[2] + w[1]).cnot(0, 1)
    c.expval("Z", 0)
    return c


def test_error_hierarchy():
    for cls in (CircuitError, InputError, ChannelError):
        assert issubclass(cls, QlstmError) and issubclass(cls, ValueError)


# ---------------------------------------------------------------------------
# inputs and weights


def test_wrong_number_of_inputs_names_expected_shape():
    c = _circuit()
    with pytest.raises(InputError, match=r"mycirc expects inputs shaped \[batch, 3\], got \[4, 2\]"):
        run(c, torch.zeros(4, 2), torch.zeros(2))
    with pytest.raises(InputError, match=r"expects inputs shaped \[batch, 3\]"):
        run(c, torch.zeros(2, 3, 1), torch.zeros(2))
    with pytest.raises(InputError, match=r"needs 3 input\(s\) per sample; got no inputs"):
        run(c, None, torch.zeros(2))


def test_wrong_number_of_weights_names_expected_shape():
    c = _circuit()
    with pytest.raises(InputError, match=r"mycirc expects weights shaped \[2\], got \[3\]"):
        run(c, torch.zeros(4, 3), torch.zeros(3))
    with pytest.raises(InputError, match=r"expects weights shaped \[2\], got \[1, 2\]"):
        run(c, torch.zeros(4, 3), torch.zeros(1, 2))
    with pytest.raises(InputError, match=r"has 2 weight\(s\); got no weights"):
        run(c, torch.zeros(4, 3), None)


def test_inputs_or_weights_given_to_a_circuit_without_them():
    c = Circuit(1)
    c.rx(0, 0.1).expval("Z", 0)
    with pytest.raises(InputError, match=r"takes no inputs, got a tensor shaped \[2, 2\]"):
        run(c, torch.zeros(2, 2))
    with pytest.raises(InputError, match="has no weights, got 2"):
        run(c, None, torch.zeros(2))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_name_batch_index_and_input(bad):
    c = _circuit()
    x = torch.zeros(4, 3)
    x[2, 1] = bad
    with pytest.raises(InputError, match=r"input x_1 at batch index 2 is (nan|inf|-inf); inputs must be finite"):
        run(c, x, torch.zeros(2))


def test_non_finite_or_complex_weights_and_inputs():
    c = _circuit()
    with pytest.raises(InputError, match="weights contain NaN or infinite values"):
        run(c, torch.zeros(1, 3), torch.tensor([0.0, math.nan]))
    with pytest.raises(InputError, match="inputs must be real"):
        run(c, torch.zeros(1, 3, dtype=torch.complex64), torch.zeros(2))
    with pytest.raises(InputError, match="weights must be real"):
        run(c, torch.zeros(1, 3), torch.zeros(2, dtype=torch.complex128))


# ---------------------------------------------------------------------------
# circuit construction


@pytest.mark.parametrize("wires", [(2,), (-1,), (0, 5)])
def test_wire_out_of_range(wires):
    c = Circuit(2)
    bad = [w for w in wires if not 0 <= w < 2][0]
    with pytest.raises(CircuitError, match=f"wire {bad} is out of range for a 2-qubit circuit"):
        c.gate("cnot" if len(wires) == 2 else "x", wires)
    assert c.ops == []  # nothing half-appended


def test_out_of_range_wires_in_every_builder():
    c = Circuit(2)
    with pytest.raises(CircuitError, match="measure: wire 3 is out of range"):
        c.measure(3)
    with pytest.raises(CircuitError, match="reset: wire 2 is out of range"):
        c.reset(2)
    with pytest.raises(CircuitError, match="channel 'bit_flip': wire 2 is out of range"):
        c.channel("bit_flip", 2, 0.1)
    with pytest.raises(CircuitError, match="observable: wire 4 is out of range"):
        c.expval("Z", 4)
    with pytest.raises(CircuitError, match="amplitude encoding: wire 2 is out of range"):
        c.amplitude_encoding(2, (2,))
    with pytest.raises(CircuitError, match="is not an integer"):
        c.gate("x", (0.5,))


def test_repeated_wire():
    with pytest.raises(CircuitError, match=r"wires \[1, 1\] repeat a wire"):
        Circuit(2).cnot(1, 1)
    with pytest.raises(CircuitError, match="repeat a wire"):
        Circuit(3).toffoli(0, 2, 0)
    with pytest.raises(CircuitError, match="repeat a wire"):
        Circuit(2).expval("ZZ", (0, 0))


def test_unknown_gate_lists_valid_gates():
    with pytest.raises(CircuitError, match=r"unknown gate 'foo'; valid gates: .*cnot.*rx.*toffoli.*unitary"):
        Circuit(2).gate("foo", 0)
    with pytest.raises(CircuitError, match="unknown gate 'bar'"):
        gate_matrix("bar")


def test_wrong_parameter_or_wire_count():
    with pytest.raises(CircuitError, match=r"gate 'rx' takes 1 parameter\(s\), got 0"):
        Circuit(1).gate("rx", 0)
    with pytest.raises(CircuitError, match=r"gate 'rot' takes 3 parameter\(s\), got 2"):
        Circuit(1).gate("rot", 0, 0.1, 0.2)
    with pytest.raises(CircuitError, match=r"gate 'h' takes 0 parameter\(s\), got 1"):
        Circuit(1).gate("h", 0, 0.1)
    with pytest.raises(CircuitError, match=r"gate 'cnot' acts on 2 wire\(s\), got wires \[0\]"):
        Circuit(2).gate("cnot", 0)
    with pytest.raises(CircuitError, match=r"takes 1 parameter\(s\), got 2"):
        gate_matrix("ry", [0.1, 0.2])


def test_bad_gate_parameters():
    with pytest.raises(CircuitError, match="must be finite, got nan"):
        Circuit(1).rx(0, float("nan"))
    with pytest.raises(CircuitError, match="must be a number or an Expr"):
        Circuit(1).rx(0, "abc")


def test_bad_unitary():
    with pytest.raises(CircuitError, match="not unitary"):
        Circuit(1).unitary(np.ones((2, 2)), 0)
    with pytest.raises(CircuitError, match=r"unitary on 1 wire\(s\) needs a 2x2 matrix, got \(4, 4\)"):
        Circuit(2).unitary(np.eye(4), 0)


def test_bad_observables():
    with pytest.raises(CircuitError, match="one letter from IXYZ per wire"):
        Circuit(2).expval("ZQ", (0, 1))
    with pytest.raises(CircuitError, match="use expval_each"):
        Circuit(2).expval("Z", (0, 1))
    c = Circuit(1)
    c.rx(0, 0.1)
    with pytest.raises(CircuitError, match="has no observables"):
        expval(c)


def test_bad_qubit_count():
    for n in (0, -1, 1.5):
        with pytest.raises(CircuitError, match="positive integer number of qubits"):
            Circuit(n)


# ---------------------------------------------------------------------------
# noise


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_probability_outside_unit_interval(p):
    with pytest.raises(ChannelError, match=r"must be a probability in \[0, 1\]"):
        Circuit(1).channel("depolarizing", 0, p)


def test_non_cptp_kraus():
    with pytest.raises(ChannelError, match="not trace preserving"):
        Circuit(1).kraus([np.eye(2), np.array([[0, 1], [0, 0]])], 0)
    with pytest.raises(ChannelError, match="not trace preserving"):
        Circuit(1).kraus([0.9 * np.eye(2)], 0)


def test_statevector_forced_on_noisy_circuit():
    c = Circuit(1)
    c.h(0).channel("bit_flip", 0, 0.1).expval("Z", 0)
    with pytest.raises(CircuitError, match="noise channels; simulate it with method='density' or 'auto'"):
        run(c, method="statevector")
    assert run(c).method == "heisenberg"  # exact expectation values: observable pulled back
    assert run(c, return_state=True).method == "density"


# ---------------------------------------------------------------------------
# amplitude encoding


def test_amplitude_encoding_zero_vector_names_batch_index():
    c = Circuit(2)
    c.amplitude_encoding(3, (0, 1))
    c.expval("Z", 0)
    x = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(InputError, match="zero vector at batch index 2"):
        run(c, x)


def test_amplitude_encoding_too_long_or_late():
    with pytest.raises(CircuitError, match="amplitude encoding of 5 values needs at least 3 wires, got 2"):
        Circuit(3).amplitude_encoding(5, (0, 1))
    c = Circuit(2)
    c.h(0)
    with pytest.raises(CircuitError, match="must come before any other operation on its wires"):
        c.amplitude_encoding(2, (0,))
    with pytest.raises(CircuitError, match="at least one input"):
        Circuit(1).amplitude_encoding([], (0,))


def test_amplitude_encoding_without_normalisation_checks_the_norm():
    c = Circuit(1)
    c.amplitude_encoding(2, (0,), normalize=False)
    c.expval("Z", 0)
    assert abs(run(c, torch.tensor([[0.6, 0.8]], dtype=torch.float64)).expvals.item() - (0.36 - 0.64)) < 1e-12
    with pytest.raises(InputError, match="norm 1.41421 at batch index 1"):
        run(c, torch.tensor([[0.6, 0.8], [1.0, 1.0]]))


# ---------------------------------------------------------------------------
# classical control


def test_condition_on_missing_clbit():
    with pytest.raises(CircuitError, match="condition reads classical bit 0, but only 0 exist; measure into it first"):
        Circuit(2).x(0, condition=0)
    c = Circuit(2)
    c.measure(0)
    with pytest.raises(CircuitError, match="condition reads classical bit 1, but only 1 exist"):
        c.x(1, condition=((0, 1), 1))
    with pytest.raises(CircuitError, match="reset: condition reads classical bit 3"):
        c.reset(1, condition=3)
    with pytest.raises(CircuitError, match="condition reads classical bit 2"):
        c.channel("bit_flip", 1, 0.1, condition=2)
    with pytest.raises(CircuitError, match=r"condition value 2 does not fit in 1 bit\(s\)"):
        c.x(1, condition=((0,), 2))
    with pytest.raises(CircuitError, match="classical bit -1 is negative"):
        c.measure(0, -1)


def test_compile_program_rejects_impure_circuits():
    c = Circuit(2)
    b = c.measure(0)
    c.x(1, condition=b)
    with pytest.raises(CircuitError, match="pure circuits only"):
        compile_program(c)


# ---------------------------------------------------------------------------
# run() options


@pytest.mark.parametrize("shots", [0, -1, 1.5, True])
def test_bad_shots(shots):
    c = Circuit(1)
    c.h(0).expval("Z", 0)
    with pytest.raises(InputError, match=r"shots must be a positive integer or None, got"):
        run(c, shots=shots)


def test_unknown_method_lists_valid_ones():
    c = Circuit(1)
    c.h(0).expval("Z", 0)
    with pytest.raises(CircuitError, match="unknown method 'magic'; valid methods: auto, statevector, density, "
                                           "reference, trajectory"):
        run(c, method="magic")


def test_trajectory_needs_shots():
    c = Circuit(1)
    c.h(0).expval("Z", 0)
    with pytest.raises(InputError, match="give shots=N"):
        run(c, method="trajectory")


# ---------------------------------------------------------------------------
# optional dependencies


def test_core_imports_and_runs_without_qiskit_and_pennylane():
    code = textwrap.dedent(
        """
        import sys

        BLOCKED = ("qiskit", "qiskit_aer", "qiskit_qasm3_import", "pennylane", "pennylane_lightning")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked for this test")
                return None

        sys.meta_path.insert(0, Block())
        for name in BLOCKED:
            sys.modules.pop(name, None)
        try:
            import qiskit  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the import blocker does not work")

        import qlstm, qlstm.sim, qlstm.circuit  # noqa: E401
        from qlstm import Circuit, run

        c = Circuit(2)
        x = c.inputs(1)
        c.h(0).cnot(0, 1).ry(1, x[0]).channel("depolarizing", 0, 0.1)
        b = c.measure(0)
        c.x(1, condition=b)
        c.expval("ZZ", (0, 1))
        res = run(c, [[0.3]])
        assert res.expvals.shape == (1, 1) and res.clbit_probs.shape == (1, 2)
        leaked = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not leaked, leaked
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
