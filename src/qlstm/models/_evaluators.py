"""VQC evaluators for the fused recurrences (:mod:`._fused_general`, :mod:`._fused_adapter`).

An evaluator holds one bound VQC shape with ``G`` weight copies, split into *parts* (slices of
the copies evaluated together, e.g. the four gate VQCs and the two processing VQCs of an
adapter-mode cell). Interface, without autograd:

* ``forward(q [B, n], part) -> (e [C, B, K], saved)``: the ``<Z>`` read-outs of the part's ``C``
  copies for Chen-encoded inputs ``q``;
* ``backward(ge [C, B, K], saved, part) -> g_q [B, n]``, accumulating the gradient of the
  evaluator's weight tensor;
* ``weight_grad()``: that gradient (zeros where a part was never used); ``reset()`` clears it
  (call it at the start of every backward: gradcheck and ``retain_graph`` run a backward twice).

:class:`HeisenbergVQC` (at most 4 qubits) works from the Pauli transfer table ``[4**n, G, K]``,
:class:`LayeredVQC` (5 to 8 qubits) from the per-wire gate matrices ``[L, n, G, 2, 2]`` and a
:class:`~qlstm.models._fused_layered.LayeredPlan`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..circuit.layered import (kron_factors, kron_factors_back, layered_backward, layered_forward, probs_back,
                               probs_times, stack_factor_grads)
from ._fused import chen_features, chen_features_back
from ._fused_layered import chen_product_back, chen_product_state

__all__ = ["HeisenbergVQC", "LayeredVQC", "evaluator"]


class HeisenbergVQC:
    """Copies evaluated through the Pauli transfer table ``[4**n, G, K]``."""

    def __init__(self, table: Tensor, parts: tuple[slice, ...]):
        self.table, self.parts = table, parts
        self.flat = [table[:, p].reshape(table.shape[0], -1) for p in parts]  # [4**n, C * K]
        self.reset()

    def reset(self) -> None:
        self.grads = [None] * len(self.parts)

    def forward(self, q: Tensor, part: int):
        f, fsave = chen_features(q)
        e = (f @ self.flat[part]).view(q.shape[0], -1, self.table.shape[2]).transpose(0, 1)  # [C, B, K]
        return e, (f, fsave)

    def backward(self, ge: Tensor, saved, part: int) -> Tensor:
        f, fsave = saved
        g2 = ge.transpose(0, 1).reshape(ge.shape[1], -1)  # [B, C * K]
        gt = f.T @ g2
        self.grads[part] = gt if self.grads[part] is None else self.grads[part] + gt
        return chen_features_back(g2 @ self.flat[part].T, fsave)

    def weight_grad(self) -> Tensor:
        k, kk = self.table.shape[0], self.table.shape[2]
        return torch.cat([torch.zeros(k, p.stop - p.start, kk, dtype=self.table.dtype, device=self.table.device)
                          if g is None else g.view(k, p.stop - p.start, kk) for g, p in zip(self.grads, self.parts)], 1)


class LayeredVQC:
    """Copies evaluated as column-layout statevectors from the per-wire gate matrices ``[L, n, G, 2, 2]``."""

    def __init__(self, w: Tensor, plan, parts: tuple[slice, ...]):
        self.w, self.plan, self.parts = w, plan, parts
        a, c = kron_factors(w, plan.n0)
        self.factors = [(a[:, p], c[:, p]) for p in parts]
        self.reset()

    def reset(self) -> None:
        n_layers = self.w.shape[0]
        self.acc = [([None] * n_layers, [None] * n_layers) for _ in self.parts]

    def forward(self, q: Tensor, part: int):
        plan = self.plan
        a, c = self.factors[part]
        s0, esave = chen_product_state(q, plan)
        phi, sv = layered_forward(s0, plan.stages, a, c, plan.split)
        return probs_times(phi, plan.signs), (esave, phi, sv)

    def backward(self, ge: Tensor, saved, part: int) -> Tensor:
        plan = self.plan
        esave, phi, sv = saved
        a, c = self.factors[part]
        gs = layered_backward(probs_back(ge, phi, plan.signs), plan.stages, a, c, sv, plan.split,
                              acc=self.acc[part])[0]
        return chen_product_back(gs.sum(0), esave, plan)

    def weight_grad(self) -> Tensor:
        grads = [stack_factor_grads(acc, *f) for acc, f in zip(self.acc, self.factors)]
        return kron_factors_back(torch.cat([g[0] for g in grads], 1), torch.cat([g[1] for g in grads], 1),
                                 self.w, self.plan.n0)


def evaluator(vqc: Tensor, plan, parts: tuple[slice, ...]):
    """:class:`HeisenbergVQC` when ``plan`` is None (``vqc`` the table), else :class:`LayeredVQC`."""
    return HeisenbergVQC(vqc, parts) if plan is None else LayeredVQC(vqc, plan, parts)
