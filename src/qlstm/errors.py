"""Exception types raised by qlstm.

All of them subclass :class:`ValueError` so that code written against plain
PyTorch/NumPy input checking keeps working; catch :class:`QlstmError` to catch
only ours.
"""


class QlstmError(ValueError):
    """Base class of every error qlstm raises on bad input."""


class CircuitError(QlstmError):
    """A circuit is malformed: bad wires, unknown gate, wrong parameter count."""


class InputError(QlstmError):
    """Data or weights fed to a circuit or model have the wrong shape or values."""


class ChannelError(QlstmError):
    """A noise channel is invalid: probability outside [0, 1], non-CPTP Kraus set."""
