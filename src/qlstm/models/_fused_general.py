r"""The faithful-QLSTM recurrence as one autograd node, for any mix of VQC evaluators.

The four gate VQCs (``n = I + H`` qubits) and the two processing VQCs (``H`` qubits) are each
evaluated by an evaluator of :mod:`._evaluators`: the Pauli transfer table at most 4 qubits, the
layered statevector at 5 to 8. So every faithful QLSTM of up to 8 qubits per VQC runs its
recurrence in one node, including mixed sizes (5-qubit gates, 3-qubit processing). Where both
groups are at most 4 qubits the model uses :class:`~qlstm.models._fused.FusedFaithfulQLSTM`
instead (the same arithmetic, written for ``torch.compile``).

Per step, with :math:`v = [x_t, h_{t-1}]`: the four gate VQCs on ``v`` (``[4, B, H]`` read-outs),
the LSTM update, then the two processing VQCs on ``o * tanh(c)``: ``[h_t, y_t]``. Nothing is
recorded in the forward pass; the backward through time is written out by hand, and the
evaluators' weight tensors (table or gate matrices) get their gradients, which autograd carries
on to the weights.
"""

from __future__ import annotations

import torch

from ..circuit._autograd import first_order_only
from ._evaluators import evaluator
from ._fused import cell_backward, cell_forward

__all__ = ["FusedGeneralQLSTM"]

_GATES, _PROC = (slice(0, 4),), (slice(0, 2),)


class FusedGeneralQLSTM(torch.autograd.Function):
    """``apply(x [B, T, I], h0 [B, H], c0 [B, H], vqc_gates, vqc_proc, plan_gates, plan_proc)``
    -> ``(outputs [B, T, H], h_T [B, H], c_T [B, H])``.

    ``vqc_*``: the transfer table ``[4**n, G, H]`` (``plan_*`` None) or the per-wire gate matrices
    ``[L, n, G, 2, 2]`` with their :class:`~qlstm.models._fused_layered.LayeredPlan`; ``G`` is 4
    for the gates and 2 for the processing VQCs.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, vqc_gates, vqc_proc, plan_gates, plan_proc):
        eg, ep = evaluator(vqc_gates, plan_gates, _GATES), evaluator(vqc_proc, plan_proc, _PROC)
        h, c = h0, c0
        outs, steps = [], []
        for t in range(x.shape[1]):
            g, s1 = eg.forward(torch.cat([x[:, t], h], 1), 0)  # [4, B, H]
            c, u, cell = cell_forward(g[0], g[1], g[2], g[3], c)
            p, s2 = ep.forward(u, 0)  # [2, B, H]
            h = p[0]
            outs.append(p[1])
            steps.append((s1, cell, s2))
        ctx.evaluators, ctx.steps, ctx.n_in = (eg, ep), steps, x.shape[2]
        return torch.stack(outs, 1), h, c

    @staticmethod
    @first_order_only
    def backward(ctx, g_out, gh, gc):
        (eg, ep), steps, n_in = ctx.evaluators, ctx.steps, ctx.n_in
        eg.reset()
        ep.reset()
        like = steps[0][1][0]  # sigmoid(f) of step 0: [B, H]
        gh = torch.zeros_like(like) if gh is None else gh
        gc = torch.zeros_like(like) if gc is None else gc
        gx = [None] * len(steps)
        for t in range(len(steps) - 1, -1, -1):
            s1, cell, s2 = steps[t]
            gp = torch.stack([gh, torch.zeros_like(gh) if g_out is None else g_out[:, t]])  # [2, B, H]
            grads, gc = cell_backward(ep.backward(gp, s2, 0), gc, cell)
            gv = eg.backward(torch.stack(grads), s1, 0)
            gx[t] = gv[:, :n_in]
            gh = gv[:, n_in:]
        g_vg = eg.weight_grad() if ctx.needs_input_grad[3] else None
        g_vp = ep.weight_grad() if ctx.needs_input_grad[4] else None
        return (torch.stack(gx, 1) if ctx.needs_input_grad[0] else None, gh, gc, g_vg, g_vp, None, None)
