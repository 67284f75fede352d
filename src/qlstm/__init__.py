"""qlstm: quantum LSTMs on a fast, exact, differentiable, batched circuit simulator.

Layers, bottom up (dependencies point one way):

* :mod:`qlstm.sim` -- pure-torch kernels (gates, channels, state updates)
* :mod:`qlstm.circuit` -- circuits as data, the planner and simulators, templates
* :mod:`qlstm.interop` -- Qiskit and OpenQASM 3 (needs the ``qiskit`` extra for Qiskit objects)
* :mod:`qlstm.nn` -- :class:`~qlstm.nn.QuantumLayer`, the torch module face
* :mod:`qlstm.models`, :mod:`qlstm.train`, :mod:`qlstm.cli`
"""

from .circuit import Circuit, compile_program, expval, run
from .errors import ChannelError, CircuitError, InputError, QlstmError

__version__ = "0.1.0"

__all__ = ["Circuit", "run", "expval", "compile_program", "QlstmError", "CircuitError", "InputError", "ChannelError",
           "__version__"]
