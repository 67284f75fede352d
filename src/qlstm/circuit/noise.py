"""Noise placement: a pure function from a circuit to a noisy copy of it."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CircuitError
from ..sim.channels import CHANNELS, check_probability
from .circuit import Circuit
from .draw import layers
from .ops import Channel, Gate, Measure

__all__ = ["NoiseModel", "insert_noise", "PLACEMENTS"]

PLACEMENTS = ("end", "layer", "gate")


@dataclass(frozen=True)
class NoiseModel:
    """A single-qubit channel applied with probability ``p`` at ``placement``.

    Placements:
        ``"end"``: on every wire at the end of the circuit (before the final measurements), as in the
        QConvLSTM paper's noise study; ``"layer"``: on every wire after each circuit
        layer (moment); ``"gate"``: on the wires of every gate, right after it.
    """

    channel: str
    p: float
    placement: str = "end"

    def __post_init__(self):
        key = self.channel.lower().replace("-", "_")
        if key not in CHANNELS:
            raise CircuitError(f"unknown noise channel {self.channel!r}; valid channels: {', '.join(CHANNELS)}")
        object.__setattr__(self, "channel", key)
        check_probability(self.p, "noise probability")
        if self.placement not in PLACEMENTS:
            raise CircuitError(f"unknown noise placement {self.placement!r}; valid: {', '.join(PLACEMENTS)}")

    @staticmethod
    def coerce(value) -> "NoiseModel | None":
        """A :class:`NoiseModel` from a model, a mapping or a ``"channel:p[:placement]"`` string.

        The string and mapping forms let configuration files and command-line overrides
        say ``model.kwargs.noise=depolarizing:0.01:layer`` or
        ``{"channel": "bit_flip", "p": 0.05}``. ``None`` means no noise.
        """
        if value is None or isinstance(value, NoiseModel):
            return value
        forms = "a NoiseModel, 'channel:p[:placement]' (e.g. 'depolarizing:0.01:end') or {'channel': ..., 'p': ...}"
        if isinstance(value, str):
            parts = value.split(":")
            if len(parts) not in (2, 3):
                raise CircuitError(f"noise {value!r} is not 'channel:p[:placement]'; give {forms}")
            try:
                p = float(parts[1])
            except ValueError:
                raise CircuitError(f"noise {value!r}: probability {parts[1]!r} is not a number") from None
            return NoiseModel(parts[0], p, *parts[2:])
        if isinstance(value, dict):
            unknown = set(value) - {"channel", "p", "placement"}
            if unknown or not {"channel", "p"} <= set(value):
                raise CircuitError(f"noise mapping needs keys 'channel' and 'p' (and optionally 'placement'), "
                                   f"got {sorted(value)}")
            return NoiseModel(**value)
        raise CircuitError(f"noise must be {forms}; got {type(value).__name__}")


def insert_noise(circuit: Circuit, noise: NoiseModel | None) -> Circuit:
    """A copy of ``circuit`` with ``noise`` channels inserted (the circuit itself is unchanged).

    ``noise`` is anything :meth:`NoiseModel.coerce` accepts.
    """
    noise = NoiseModel.coerce(noise)
    if noise is None or noise.p == 0:
        return circuit
    out = circuit.copy()
    out.ops = []
    out.name = f"{circuit.name}+{noise.channel}({noise.p:g})@{noise.placement}"
    n = circuit.n_qubits

    def add(wires):
        for w in wires:
            out.ops.append(Channel(noise.channel, (w,), float(noise.p)))

    if noise.placement == "gate":
        for op in circuit.ops:
            out.ops.append(op)
            if isinstance(op, Gate):
                add(op.wires)
    elif noise.placement == "layer":
        for layer in layers(circuit):
            touched = set()
            for i in layer:
                out.ops.append(circuit.ops[i])
                if isinstance(circuit.ops[i], Gate):
                    touched.update(circuit.ops[i].wires)
            if touched:
                add(range(n))
    else:
        # before the trailing block of measurements (mid-circuit ones stay where they are)
        tail = len(circuit.ops)
        while tail > 0 and isinstance(circuit.ops[tail - 1], Measure):
            tail -= 1
        out.ops.extend(circuit.ops[:tail])
        add(range(n))
        out.ops.extend(circuit.ops[tail:])
    out._version = circuit._version + 1
    return out
