r"""The adapter-mode QLSTM recurrence as one autograd node (up to 8 qubits).

Adapter mode (:class:`~qlstm.models.qlstm.QLSTM` with ``mode="adapter"``) puts classical linear
maps around one VQC shape with six weight copies: per step

.. math::
    q_t = W_g [x_t, h_{t-1}] + b_g,\quad e = \mathrm{VQC}_{1..4}(q_t),\quad
    g_k = e_k O_k + o_k\ (k = 1..4),\quad c_t = \sigma(g_1) c_{t-1} + \sigma(g_2)\tanh(g_3),

    u_t = \sigma(g_4)\tanh(c_t),\quad e' = \mathrm{VQC}_{5,6}(W_p u_t + b_p),\quad
    h_t = e'_5 O_5 + o_5,\quad y_t = e'_6 O_6 + o_6.

As in the faithful nodes (:mod:`._fused`, :mod:`._fused_general`), nothing is recorded in the
forward pass and the backward through time is written out. The VQCs are evaluated by one of the
evaluators of :mod:`._evaluators` (the Pauli transfer table ``[4**n, 6, n]`` at most 4 qubits, the
layered statevector at 5 to 8); part 0 is weight copies 0-3 (the gate VQCs), part 1 copies 4-5
(the processing VQCs).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..circuit._autograd import first_order_only
from ._evaluators import evaluator
from ._fused import cell_backward, cell_forward

__all__ = ["FusedAdapterQLSTM"]

_PARTS = (slice(0, 4), slice(4, 6))  # gate VQCs, processing VQCs


class FusedAdapterQLSTM(torch.autograd.Function):
    """``apply(x [B, T, I], h0 [B, H], c0 [B, H], wg [n, I+H], bg [n], wp [n, H], bp [n],
    w_out [6, n, H], b_out [6, 1, H], vqc, plan)`` -> ``(outputs [B, T, H], h_T, c_T)``.

    ``vqc``: the transfer table ``[4**n, 6, n]`` (``plan`` None) or the per-wire gate matrices
    ``[L, n, 6, 2, 2]`` with their :class:`~qlstm.models._fused_layered.LayeredPlan`.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, wg, bg, wp, bp, w_out, b_out, vqc, plan):
        ev = evaluator(vqc, plan, _PARTS)
        h, c = h0, c0
        outs, steps = [], []
        for t in range(x.shape[1]):
            v = torch.cat([x[:, t], h], 1)
            e, s1 = ev.forward(torch.addmm(bg, v, wg.T), 0)  # [4, B, n]
            g = torch.baddbmm(b_out[:4], e, w_out[:4])  # [4, B, H]
            c, u, cell = cell_forward(g[0], g[1], g[2], g[3], c)
            e2, s2 = ev.forward(torch.addmm(bp, u, wp.T), 1)  # [2, B, n]
            p = torch.baddbmm(b_out[4:], e2, w_out[4:])  # [2, B, H]
            h = p[0]
            outs.append(p[1])
            steps.append((v, e, s1, cell, u, e2, s2))
        ctx.ev, ctx.steps, ctx.n_in = ev, steps, x.shape[2]
        ctx.save_for_backward(wg, wp, w_out)
        return torch.stack(outs, 1), h, c

    @staticmethod
    @first_order_only
    def backward(ctx, g_out, gh, gc):
        wg, wp, w_out = ctx.saved_tensors
        ev, steps, n_in = ctx.ev, ctx.steps, ctx.n_in
        ev.reset()
        batch, hidden = steps[0][3][0].shape
        zeros = torch.zeros(batch, hidden, dtype=wg.dtype, device=wg.device)
        g_out = torch.zeros(batch, len(steps), hidden, dtype=wg.dtype, device=wg.device) if g_out is None else g_out
        gh = zeros if gh is None else gh
        gc = zeros if gc is None else gc
        g_wg, g_bg = torch.zeros_like(wg), torch.zeros_like(wg[:, 0])
        g_wp, g_bp = torch.zeros_like(wp), torch.zeros_like(wp[:, 0])
        g_wout, g_bout = torch.zeros_like(w_out), torch.zeros(w_out.shape[0], 1, hidden, dtype=wg.dtype,
                                                               device=wg.device)
        gx = [None] * len(steps)
        for t in range(len(steps) - 1, -1, -1):
            v, e, s1, cell, u, e2, s2 = steps[t]
            gp = torch.stack([gh, g_out[:, t]])  # [2, B, H]
            g_wout[4:] += e2.transpose(1, 2) @ gp
            g_bout[4:] += gp.sum(1, keepdim=True)
            gq2 = ev.backward(gp @ w_out[4:].transpose(1, 2), s2, 1)  # [B, n]
            g_wp += gq2.T @ u
            g_bp += gq2.sum(0)
            grads, gc = cell_backward(gq2 @ wp, gc, cell)
            gg = torch.stack(grads)  # [4, B, H]
            g_wout[:4] += e.transpose(1, 2) @ gg
            g_bout[:4] += gg.sum(1, keepdim=True)
            gq = ev.backward(gg @ w_out[:4].transpose(1, 2), s1, 0)  # [B, n]
            g_wg += gq.T @ v
            g_bg += gq.sum(0)
            gv = gq @ wg
            gx[t] = gv[:, :n_in]
            gh = gv[:, n_in:]
        g_vqc = ev.weight_grad() if ctx.needs_input_grad[9] else None
        return (torch.stack(gx, 1), gh, gc, g_wg, g_bg, g_wp, g_bp, g_wout, g_bout, g_vqc, None)
