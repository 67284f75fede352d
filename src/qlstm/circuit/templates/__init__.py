"""Circuit templates: plain functions that return a :class:`~qlstm.circuit.Circuit`.

* encodings: :func:`angle_encoding`, :func:`dense_angle_encoding`,
  :func:`amplitude_encoding`, :func:`chen_encoding`
* variational layers: :func:`chen_layers`; the full Chen-2020 VQC :func:`chen_vqc`
"""

from .encodings import amplitude_encoding, angle_encoding, chen_encoding, dense_angle_encoding
from .layers import INIT_SCHEMES, chen_layers, chen_vqc, init_weights

__all__ = [
    "angle_encoding", "dense_angle_encoding", "amplitude_encoding", "chen_encoding",
    "chen_layers", "chen_vqc", "init_weights", "INIT_SCHEMES",
]
