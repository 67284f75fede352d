r"""Noisy circuits in the Heisenberg picture: observables pulled back once per weight bind.

A noisy circuit whose data enters only in a pure *prefix* (encodings and any
gates before the first noise channel) followed by a data-free *suffix* (gates
with weights or constants, noise channels, unconditioned resets) has

.. math::
    \langle O \rangle(x) = \mathrm{Tr}\big(O\, \Phi(|\psi(x)\rangle\langle\psi(x)|)\big)
                         = \langle\psi(x)|\, \Phi^\dagger(O)\, |\psi(x)\rangle ,

where :math:`\Phi` is the suffix channel and :math:`\psi(x)` the prefix
statevector. :math:`\Phi^\dagger(O)` depends on the weights only, so it is
built once per bind -- by sweeping the suffix backwards on dense
``2**n x 2**n`` matrices (a gate :math:`U`: :math:`O \to U^\dagger O U`; a
channel with Kraus operators :math:`K_j`: :math:`O \to \sum_j K_j^\dagger O K_j`)
-- and then every call costs one statevector prefix and one quadratic form per
observable. The density-matrix simulator instead carries ``B`` density
matrices through every operation of every weight copy, one copy at a time.

So a recurrent model with noisy VQCs builds :math:`\Phi^\dagger(O)` once per
forward pass and reuses it at every time step (the "superoperator of a
data-independent segment, built once" of the planner), and
:func:`qlstm.circuit.run` uses it when the circuit has no more observables
than batch rows, or at most 4 qubits (:func:`prefers_heisenberg`).

Everything is plain autograd over a few batched matrix products per
operation. The density-matrix path (``run(..., method="density")``) is the
reference; ``tests/test_heisenberg_mixed.py`` checks the two agree and
checks gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..sim import kernels as K
from .circuit import Circuit
from .heisenberg import observable_matrices
from .ops import AmplitudeEncoding, Channel, Gate, Measure, Reset

__all__ = ["NoisySplit", "split_noisy", "prefers_heisenberg", "NoisyBound", "bind_noisy", "pulled_back_observables"]

#: widest register for which the pulled-back observables (``[*G, K, 4**n]`` complex numbers) are built
MAX_QUBITS = 10


def _reads_data(op) -> bool:
    return isinstance(op, AmplitudeEncoding) or getattr(op, "uses_input", False)


@dataclass
class NoisySplit:
    """Where a noisy circuit splits: the data-reading prefix and the data-free suffix.

    ``kind`` is ``"pure"`` (``prefix`` is a pure circuit run as a statevector) or
    ``"product"`` (``prefix`` holds single-qubit gates and channels only, run as one
    ``2 x 2`` density matrix per wire).
    """

    kind: str
    prefix: Circuit
    suffix: list


def split_noisy(circuit: Circuit) -> NoisySplit | None:
    """The :class:`NoisySplit` of ``circuit`` if it has one of the two forms, else None.

    Both forms need: noise channels present; no measurements, classical
    conditions or probability requests; at most :data:`MAX_QUBITS` qubits; at
    least one observable; a suffix after the last data-reading operation that
    holds only gates, channels and unconditioned resets.

    * ``"pure"``: no channel or reset before the last operation that reads data
      (noise at the end of the circuit, or after the encoding); the prefix is
      everything before the first channel.
    * ``"product"``: everything up to the last data-reading operation acts on
      one qubit (gates or channels; e.g. a product-state encoding with noise
      after every gate or layer); the prefix runs up to the first multi-qubit
      operation.
    """
    cache = circuit.__dict__.setdefault("_noisy_split_cache", {})
    if circuit._version not in cache:
        cache.clear()
        cache[circuit._version] = _split(circuit)
    return cache[circuit._version]


def _split(circuit: Circuit) -> NoisySplit | None:
    if circuit.n_qubits > MAX_QUBITS or not circuit.observables or circuit.prob_wires or circuit.n_clbits:
        return None
    ops = circuit.ops
    if not any(isinstance(op, Channel) for op in ops):
        return None
    if any(isinstance(op, Measure) or getattr(op, "condition", None) is not None for op in ops):
        return None
    last_data = max((i for i, op in enumerate(ops) if _reads_data(op)), default=-1)
    first_noise = min(i for i, op in enumerate(ops) if isinstance(op, (Channel, Reset)))
    if first_noise > last_data:
        kind, cut = "pure", first_noise
    else:
        cut = next((i for i, op in enumerate(ops) if len(op.wires) > 1 or isinstance(op, AmplitudeEncoding)),
                   len(ops))
        if cut <= last_data:
            return None
        kind = "product"
    prefix = circuit.copy()
    prefix.ops = list(ops[:cut])
    prefix.name = f"{circuit.name}[prefix]"
    return NoisySplit(kind, prefix, list(ops[cut:]))


def prefers_heisenberg(circuit: Circuit, batch: int) -> bool:
    """Whether pulling back beats carrying density matrices: ``K <= batch`` observables (or n <= 4)."""
    return len(circuit.observables) <= batch or circuit.n_qubits <= 4


_RESET_KRAUS = ((1, 0, 0, 0), (0, 1, 0, 0))  # |0><0|, |0><1|


def _kraus(op, cdtype, device) -> torch.Tensor:
    """Kraus operators ``[m, 2**k, 2**k]`` of a channel, or of an unconditioned reset."""
    from .execute import channel_kraus_of

    if isinstance(op, Reset):
        return torch.tensor(_RESET_KRAUS, dtype=cdtype, device=device).reshape(2, 2, 2)
    return channel_kraus_of(op, cdtype, device)


def pulled_back_observables(circuit: Circuit, suffix: list, weights, cdtype, device) -> torch.Tensor:
    r""":math:`\Phi^\dagger(O_k)` for every observable: ``[*G, K, 2**n, 2**n]`` (``[1, K, ...]`` without groups).

    ``weights`` is ``[n_weights]``, ``[*G, n_weights]`` (groups of weight sets) or None.
    """
    from .execute import gate_matrix_of

    n = circuit.n_qubits
    o = observable_matrices(circuit.observables, n, cdtype, device)  # [K, d, d]
    grouped = weights is not None and weights.dim() > 1
    o = o.unsqueeze(0) if not grouped else o.expand(*([1] * (weights.dim() - 1)), *o.shape)
    for op in reversed(suffix):
        if isinstance(op, Gate):
            u = gate_matrix_of(op, None, weights, cdtype, device)
            if u.dim() > 2:  # [*G, dk, dk] -> broadcast over the observable dimension
                u = u.unsqueeze(-3)
            # U^dag O U == the density-matrix update rho -> V rho V^dag with V = U^dag
            o = K.apply_matrix_dm(o, u.conj().transpose(-1, -2), op.wires, n)
        else:
            kraus = _kraus(op, cdtype, device)
            o = K.apply_kraus_dm(o, kraus.conj().transpose(-1, -2), op.wires, n)
    return o


def _product_density(prefix: Circuit, x, w, cdtype, device) -> torch.Tensor:
    """The prefix's state as a density matrix ``[*L, 2**n, 2**n]``, built wire by wire."""
    from .execute import gate_matrix_of

    n = prefix.n_qubits
    zero = torch.zeros(2, 2, dtype=cdtype, device=device)
    zero[0, 0] = 1
    rhos = [zero] * n
    for op in prefix.ops:
        q = op.wires[0]
        if isinstance(op, Gate):
            u = gate_matrix_of(op, x, w, cdtype, device)
            rhos[q] = u @ rhos[q] @ u.conj().transpose(-1, -2)
        else:
            kraus = _kraus(op, cdtype, device)  # [m, 2, 2]
            r = rhos[q].unsqueeze(-3)
            rhos[q] = (kraus @ r @ kraus.conj().transpose(-1, -2)).sum(-3)
    rho = rhos[0]
    for r in rhos[1:]:
        d = rho.shape[-1]
        rho = (rho[..., :, None, :, None] * r[..., None, :, None, :]).reshape(
            *torch.broadcast_shapes(rho.shape[:-2], r.shape[:-2]), 2 * d, 2 * d)
    return rho


class NoisyBound:
    """A noisy circuit with its weights bound: :meth:`expvals` on data (same face as ``BoundProgram``).

    Built by :func:`bind_noisy`. ``weights`` ``[n_weights]`` or ``[G, n_weights]``;
    ``expvals(x)`` returns ``[B, K]`` or ``[G, B, K]``.
    """

    def __init__(self, circuit: Circuit, split: NoisySplit, weights, cdtype, device):
        from .plan import compile_program

        self.circuit, self.split, self.weights, self.dtype, self.device = circuit, split, weights, cdtype, device
        self._prefix = (compile_program(split.prefix).bind(weights, dtype=cdtype, device=device)
                        if split.kind == "pure" else None)
        if self._prefix is not None:  # only its statevector is used: never build its transfer table
            self._prefix.heisenberg = False
        self._obs = pulled_back_observables(circuit, split.suffix, weights, cdtype, device)  # [G|1, K, d, d]

    def subset(self, index: slice | int) -> "NoisyBound":
        """The bound circuit of a subset of the weight groups (as :meth:`BoundProgram.subset`)."""
        if self.weights is None or self.weights.dim() < 2:
            from ..errors import CircuitError

            raise CircuitError("subset() needs grouped weights [G, n_weights]")
        if isinstance(index, int):
            index = slice(index, index + 1)
        out = object.__new__(NoisyBound)
        out.circuit, out.split, out.dtype, out.device = self.circuit, self.split, self.dtype, self.device
        out.weights = self.weights[index]
        pre = self._prefix
        out._prefix = pre.subset(index) if pre is not None and pre.weights is not None and pre.weights.dim() > 2 \
            else pre
        out._obs = self._obs[index] if self._obs.shape[0] > 1 else self._obs
        return out

    def expvals(self, x: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        grouped = self.weights is not None and self.weights.dim() > 1
        o = self._obs  # [G|1, K, d, d]
        if self._prefix is not None:  # pure prefix: <psi| O |psi>
            psi = self._prefix.state(x, batch)  # [B, d] or [G, B, d]
            pt = (psi if psi.dim() == 3 else psi.unsqueeze(0)).transpose(-1, -2).unsqueeze(1)  # [G|1, 1, d, B]
            vals = (pt.conj() * (o @ pt)).sum(-2).real.transpose(-1, -2)  # [G|1, K, d, B] -> [G|1, B, K]
        else:  # product prefix: Tr(O rho) = sum_ij O_ij rho_ji
            w = self.weights.unsqueeze(-2) if grouped else self.weights  # [G, 1, n_w]: broadcasts with the batch
            rho = _product_density(self.split.prefix, x, w, self.dtype, self.device)  # [(G,) B|1, d, d]
            if rho.dim() == 2:
                rho = rho.unsqueeze(0)
            if batch is not None and rho.shape[-3] == 1:
                rho = rho.expand(*rho.shape[:-3], batch, *rho.shape[-2:])
            d = rho.shape[-1]
            flat = rho.transpose(-1, -2).reshape(*rho.shape[:-2], d * d)  # [(G,) B, d*d]
            vals = (flat @ o.reshape(o.shape[0], o.shape[1], d * d).transpose(-1, -2)).real  # [G|1, B, K]
        if grouped:
            return vals.expand(self.weights.shape[0], *vals.shape[1:]) if vals.shape[0] == 1 else vals
        return vals[0]


def bind_noisy(circuit: Circuit, weights, *, dtype=torch.complex128, device=None) -> NoisyBound | None:
    """:class:`NoisyBound` for ``circuit`` if :func:`split_noisy` accepts it, else None."""
    split = split_noisy(circuit)
    if split is None:
        return None
    return NoisyBound(circuit, split, weights, dtype, device)
