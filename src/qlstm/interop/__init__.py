"""Qiskit and OpenQASM 3, both directions.

* :func:`to_qiskit` / :func:`from_qiskit` -- ``qiskit.QuantumCircuit`` export
  and import (Qiskit is imported inside these functions only, so ``import
  qlstm.interop`` works without it); :func:`observables_to_sparse_pauli` for
  the observables; :func:`reverse_qubit_order` converts statevectors.
* :func:`dumps` / :func:`dump` / :func:`loads` / :func:`load` -- OpenQASM 3
  text, with qlstm's own pure-Python writer and parser (no qiskit needed);
  :func:`simulate_qasm_file` runs a file and returns its bitstring distribution.

Conventions (details in :mod:`qlstm.interop.qiskit` and :mod:`qlstm.interop.qasm3`):

* qlstm wire ``w`` = Qiskit qubit ``w`` = ``q[w]`` in OpenQASM. qlstm orders
  basis states with wire 0 as the most significant bit, Qiskit with qubit 0 as
  the least significant, so ``qlstm_state == Statevector(qc).reverse_qargs().data``.
* clbit ``k`` = Qiskit clbit ``k`` = ``c[k]``; bitstrings are in Qiskit order
  (clbit 0 rightmost) everywhere.
* Parameters: weights are ``w_i`` (``ParameterVector("w")`` in Qiskit, ``input
  float[64] w_i;`` in OpenQASM), data inputs ``x_i``. On import, names like
  ``x_i`` / ``x[i]`` / ``_x_i_`` are inputs, all others weights (``w_i``-like
  names keep their index, the rest follow in natural sorted order); pass
  ``input_params`` / ``weight_params`` to choose, ``return_mapping=True`` to see
  the mapping.
* Global phases are dropped on import (unobservable; qlstm has none).
"""

from ._lex import QasmError
from .qasm3 import dump, dumps, load, loads, simulate_qasm_file
from .qiskit import from_qiskit, observables_to_sparse_pauli, reverse_qubit_order, to_qiskit

__all__ = ["to_qiskit", "from_qiskit", "observables_to_sparse_pauli", "reverse_qubit_order", "dumps", "dump",
           "loads", "load", "simulate_qasm_file", "QasmError"]
