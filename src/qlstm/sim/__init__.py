"""Pure-torch simulation kernels.

Nothing here knows about circuits, modules or qiskit: a state is a batch-first
complex tensor and every function returns a new tensor.

Qubit ordering
--------------
Wire 0 is the **most significant** bit of a basis-state index (PennyLane's
convention): for ``n`` wires the amplitude of ``|b_0 b_1 ... b_{n-1}>`` sits at
index ``sum_w b_w 2^(n-1-w)``. Qiskit orders the other way (qubit 0 is the
least significant bit); :mod:`qlstm.interop` converts.

Shapes
------
* statevector: ``[..., 2**n]`` (any number of leading batch dimensions)
* density matrix: ``[..., 2**n, 2**n]``
* gate matrix: ``[2**k, 2**k]`` or batched ``[..., 2**k, 2**k]`` broadcastable
  against the state's leading dimensions.
"""

from . import channels, gates, kernels

__all__ = ["gates", "channels", "kernels"]
