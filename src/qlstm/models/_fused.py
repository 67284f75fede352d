r"""The whole faithful-QLSTM recurrence as one autograd node (the fast path of :class:`~qlstm.models.qlstm.QLSTM`).

Why: with the VQCs in the Heisenberg picture (:mod:`qlstm.circuit.heisenberg`) a time
step is a handful of small tensor operations, and at 4 qubits their count, not their
arithmetic, is the cost -- autograd records and replays every one. Here the forward pass
runs all ``T`` steps without recording, keeps what the backward needs, and the backward
is written out by hand (backpropagation through time).

What it computes, per step, with :math:`v = [x_t, h_{t-1}]` (``n = I + H`` values) and the
Chen encoding ``H, RY(atan v), RZ(atan v^2)`` on every wire:

* each wire's Bloch vector in closed form: with :math:`a = (1+v^2)^{-1/2}` and
  :math:`b = (1+v^4)^{-1/2}`, :math:`r = (ab,\ ab\,v^2,\ -a v)` (``RY`` then ``RZ`` applied to
  ``|+>``'s ``(1, 0, 0)``);
* the four gate VQCs at once: ``features(r) @ T_gates`` -> ``[B, 4, H]`` (``T_gates`` the
  Pauli transfer table of the four weight copies, built once per forward pass);
* ``c = sigmoid(f) c + sigmoid(i) tanh(g)``, ``u = sigmoid(o) tanh(c)``;
* the two processing VQCs on ``u`` (``H`` wires, same encoding): ``[h_t, y_t]``.

The tables stay autograd tensors: the gradient this node returns for them flows on into
the table build (:class:`~qlstm.circuit.heisenberg.TransferRows`) and so to the weights.
:func:`chen_heisenberg_tables` checks that a bound layer really is this shape (numerically,
on probe inputs) before the model uses the node; ``QLSTM.fused = False`` switches it off and
the tests compare the two paths.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..circuit._autograd import first_order_only

__all__ = ["FusedFaithfulQLSTM", "chen_heisenberg", "chen_heisenberg_tables", "chen_bloch", "chen_features"]

# torch.compile'd recurrences (:mod:`._compiled_general`), made once per process (and programs, dtype, device)
_COMPILED: dict = {}


def chen_bloch(v: Tensor) -> tuple[Tensor, tuple]:
    """Bloch vectors ``[n, B, 3]`` of the Chen encoding of ``v [B, n]``, and what the backward needs."""
    v2 = v * v
    a = torch.rsqrt(1 + v2)
    b = torch.rsqrt(1 + v2 * v2)
    ab = a * b
    r = torch.stack([ab, ab * v2, -a * v], -1).transpose(0, 1)
    return r, (v, v2, a, ab)


def chen_features(v: Tensor) -> tuple[Tensor, tuple]:
    """Features ``(1, r_0) (x) ... (x) (1, r_{n-1})`` ``[B, 4**n]`` of the Chen encoding of ``v [B, n]``
    (the Bloch vectors of :func:`chen_bloch`), and what :func:`chen_features_back` needs.

    ``features @ table`` gives the VQC's expectation values. The same numbers as
    :func:`~qlstm.circuit.heisenberg.bloch_features` of :func:`chen_bloch`, in fewer operations:
    the per-wire 4-vectors are stacked once and multiplied out pairwise, all pairs of a level
    at once (:func:`_pair_product`).
    """
    v2 = v * v
    a = torch.rsqrt(1 + v2)
    ab = a * torch.rsqrt(1 + v2 * v2)
    q = torch.stack([torch.ones_like(v), ab, ab * v2, -a * v], -1)  # [B, n, 4]
    f, tree = _pair_product(q)
    return f, (v, v2, a, ab, tree)


def chen_features_back(gf: Tensor, saved) -> Tensor:
    """Gradient ``[B, n]`` of ``v`` from that of :func:`chen_features`' features ``gf [B, 4**n]``."""
    v, v2, a, ab, tree = saved
    gq = _pair_product_back(gf, tree)  # [B, n, 4]
    # d(ab)/dv = -ab v (a^2 + 2 v^2 b^2), with b^2 = (ab / a)^2; d(ab v^2)/dv = dab v^2 + 2 v ab; d(-a v)/dv = -a^3
    dab = -ab * v * (a * a + 2 * v2 * (ab / a).square())
    return gq[..., 1] * dab + gq[..., 2] * (dab * v2 + 2 * v * ab) - gq[..., 3] * (a * a * a)


def _pair_product(q: Tensor) -> tuple[Tensor, tuple]:
    """Kronecker product ``[B, d**n]`` of the rows of ``q [B, n, d]`` (row 0 most significant),
    by levels: the pairs ``(0, 1), (2, 3), ...`` in one multiplication, then pairs of those."""
    b, n, d = q.shape
    if n == 1:
        return q.reshape(b, d), (q, None, None, None)
    m = n // 2
    x = q[:, : 2 * m].reshape(b, m, 2, d)
    p = (x[:, :, 0, :, None] * x[:, :, 1, None, :]).reshape(b, m, d * d)
    inner, inner_tree = _pair_product(p)
    if n % 2 == 0:
        return inner, (q, x, inner_tree, None)
    last = q[:, -1]  # an odd row out: the least significant factor
    return (inner.unsqueeze(-1) * last.unsqueeze(-2)).reshape(b, -1), (q, x, inner_tree, (inner, last))


def _pair_product_back(gf: Tensor, tree) -> Tensor:
    """Gradient ``[B, n, d]`` of :func:`_pair_product`'s rows from that of its product ``gf [B, d**n]``."""
    q, x, inner_tree, odd = tree
    b, n, d = q.shape
    if x is None:
        return gf.reshape(b, 1, d)
    g_last = None
    if odd is not None:
        inner, last = odd
        g2 = gf.reshape(b, -1, d)  # [B, d**(n-1), d]
        g_last = torch.bmm(inner.unsqueeze(1), g2)  # [B, 1, d]
        gf = torch.bmm(g2, last.unsqueeze(-1)).reshape(b, -1)
    m = n // 2
    gp = _pair_product_back(gf, inner_tree).reshape(b * m, d, d)
    xs = x.reshape(b * m, 2, d)
    g_a = torch.bmm(gp, xs[:, 1].unsqueeze(-1)).reshape(b, m, 1, d)
    g_b = torch.bmm(xs[:, 0].unsqueeze(1), gp).reshape(b, m, 1, d)
    gq = torch.cat([g_a, g_b], 2).reshape(b, 2 * m, d)
    return gq if g_last is None else torch.cat([gq, g_last], 1)


def chen_heisenberg(bound, n: int) -> bool:
    """Whether a bound VQC evaluates in the Heisenberg picture with exactly the Chen encoding.

    Checked on probe inputs against :func:`chen_bloch`, once per compiled program.
    """
    from ..circuit.heisenberg import bloch_of, bloch_prefix

    if getattr(bound, "_heis", None) is None or not bound.heisenberg or bound._vecs0.requires_grad:
        return False
    key = ("chen_encoding", bound.dtype, str(bound.device))
    cache = bound.program._cache
    if key not in cache:  # the encoding depends on the circuit only
        dtype = torch.float64 if bound.dtype == torch.complex128 else torch.float32
        probe = torch.linspace(-2.0, 1.5, 3 * n, dtype=dtype, device=bound.device).reshape(3, n)
        try:
            generic = bloch_prefix(bloch_of(bound._vecs0), bound._heis, probe, bound.dtype)  # [n, 3, 3]
            cache[key] = generic.shape == (n, 3, 3) and torch.allclose(generic, chen_bloch(probe)[0], atol=1e-5)
        except Exception:  # a prefix this check cannot evaluate: not the Chen encoding
            cache[key] = False
    return bool(cache[key])


def chen_heisenberg_tables(bound, n: int) -> Tensor | None:
    """The flattened transfer table ``[4**n, G * K]`` of a bound Chen-encoded VQC, or None
    (:func:`chen_heisenberg`)."""
    if not chen_heisenberg(bound, n):
        return None
    table = bound._transfer()  # [4**n, *G, K]
    return table.reshape(table.shape[0], -1)


def cell_forward(gf: Tensor, gi: Tensor, gg: Tensor, go: Tensor, c: Tensor):
    """The LSTM update from the four gate pre-activations: ``(c_t, u = o * tanh(c_t), saved)``.

    Shared by the fused recurrences (this module, :mod:`._fused_general`, :mod:`._fused_adapter`).
    """
    sf, si, so, tg = torch.sigmoid(gf), torch.sigmoid(gi), torch.sigmoid(go), torch.tanh(gg)
    c_new = sf * c + si * tg
    tc = torch.tanh(c_new)
    return c_new, so * tc, (sf, si, so, tg, c, tc)


def cell_backward(gu: Tensor, gc: Tensor, saved) -> tuple[tuple[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """Gradients of the four pre-activations and of ``c_(t-1)`` from those of ``u`` and ``c_t``."""
    sf, si, so, tg, c_prev, tc = saved
    gcc = gc + gu * so * (1 - tc * tc)
    grads = (gcc * c_prev * sf * (1 - sf), gcc * tg * si * (1 - si), gcc * si * (1 - tg * tg), gu * tc * so * (1 - so))
    return grads, gcc * sf


def _forward_steps(x, h0, c0, t_gates, t_proc):
    """The recurrence; returns ``(outputs, h_T, c_T, steps)`` with what the backward needs."""
    hidden = h0.shape[1]
    steps = []
    h, c = h0, c0
    outs = []
    for t in range(x.shape[1]):
        f, fsave = chen_features(torch.cat([x[:, t], h], 1))
        g = (f @ t_gates).view(-1, 4, hidden)
        c, u, cell = cell_forward(g[:, 0], g[:, 1], g[:, 2], g[:, 3], c)
        f2, fsave2 = chen_features(u)
        p = f2 @ t_proc  # [B, 2H]
        h = p[:, :hidden]
        outs.append(p[:, hidden:])
        steps.append((f, fsave, cell, f2, fsave2))
    return torch.stack(outs, 1), h, c, steps


def _backward_steps(steps, n_in: int, n: int, t_gates, t_proc, g_out, gh, gc, want_tg: bool, want_tp: bool):
    """Backpropagation through time over ``steps``; returns ``(g_x, g_h0, g_c0, g_t_gates, g_t_proc)``.

    The table gradients are one product each over all steps at the end (``F^T G`` with the
    steps' features and output gradients stacked), not one per step.
    """
    gx = [None] * len(steps)
    ggs, gps = [None] * len(steps), [None] * len(steps)
    for t in range(len(steps) - 1, -1, -1):
        f, fsave, cell, f2, fsave2 = steps[t]
        gp = gps[t] = torch.cat([gh, g_out[:, t]], 1)  # [B, 2H]
        grads, gc = cell_backward(chen_features_back(gp @ t_proc.T, fsave2), gc, cell)
        gg = ggs[t] = torch.cat(grads, 1)  # [B, 4H]
        gv = chen_features_back(gg @ t_gates.T, fsave)
        gx[t] = gv[:, :n_in]
        gh = gv[:, n_in:]
    g_tg = torch.cat([st[0] for st in steps]).T @ torch.cat(ggs) if want_tg else None
    g_tp = torch.cat([st[3] for st in steps]).T @ torch.cat(gps) if want_tp else None
    return torch.stack(gx, 1), gh, gc, g_tg, g_tp


class FusedFaithfulQLSTM(torch.autograd.Function):
    """``apply(x [B, T, I], h0 [B, H], c0 [B, H], t_gates [4**(I+H), 4H], t_proc [4**H, 2H])``
    -> ``(outputs [B, T, H], h_T [B, H], c_T [B, H])``; see the module docstring.

    ``QLSTM(compiled=True)`` runs the same recurrence through
    :func:`~qlstm.models._compiled_general.compiled_general_recurrence` instead.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, t_gates, t_proc):
        out, h, c, steps = _forward_steps(x, h0, c0, t_gates, t_proc)
        ctx.steps, ctx.sizes = steps, (x.shape[2], x.shape[2] + h0.shape[1])
        ctx.save_for_backward(t_gates, t_proc)
        return out, h, c

    @staticmethod
    @first_order_only
    def backward(ctx, g_out, g_h, g_c):
        t_gates, t_proc = ctx.saved_tensors
        batch, hidden = ctx.steps[0][2][0].shape  # the cell state saved by the first step
        zeros = torch.zeros(batch, hidden, dtype=t_gates.dtype, device=t_gates.device)
        if g_out is None:
            g_out = torch.zeros(batch, len(ctx.steps), hidden, dtype=t_gates.dtype, device=t_gates.device)
        g_h = zeros if g_h is None else g_h
        g_c = zeros if g_c is None else g_c
        n_in, n = ctx.sizes
        g_x, g_h0, g_c0, g_tg, g_tp = _backward_steps(ctx.steps, n_in, n, t_gates, t_proc, g_out, g_h, g_c,
                                                      ctx.needs_input_grad[3], ctx.needs_input_grad[4])
        return (g_x if ctx.needs_input_grad[0] else None, g_h0, g_c0, g_tg, g_tp)
