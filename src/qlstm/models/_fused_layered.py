r"""The faithful-QLSTM recurrence at 5 to 8 qubits as one autograd node (statevector, layered form).

The 4-qubit counterpart is :mod:`qlstm.models._fused` (Heisenberg picture). Here each VQC is
simulated as a statevector with :func:`~qlstm.circuit.layered.layered_forward` (constant
permutations and two-factor Kronecker layers, :mod:`qlstm.circuit.layered`); the whole recurrence
runs without autograd recording, and the backward through time is written out by hand.

Per step, with :math:`v = [x_t, h_{t-1}]` and the Chen encoding on every wire:

* each wire's vector in closed form, :math:`v_w = R_Z(\phi) R_Y(\theta) H|0\rangle` with
  :math:`\theta = \arctan v_w`, :math:`\phi = \arctan v_w^2`, and the product state
  :math:`\psi_0[i] = \prod_w v_w[i_w]` (a gather and a product over wires per half of the register);
* the four gate VQCs as one layered call, ``[4, B, H]`` read-outs, the LSTM update, then the two
  processing VQCs on ``o * tanh(c)``.

Encoding backward: :math:`\partial\psi_0/\partial v_w = M_w \psi_0` with the one-qubit operator
:math:`M_w = \theta' R_Z K R_Z^\dagger + \phi'(-iZ/2)` (:math:`K = -iY/2`), so
:math:`\partial L/\partial v_w = \mathrm{Re}\sum_i \bar g_i (M_w\psi_0)_i` needs one bit-flip
gather per half of the register (after contracting the other half away) instead of a Kronecker-tree sweep.

Gradients reach the per-wire gate matrices ``[L, n, G, 2, 2]`` of the weight layers
(:meth:`~qlstm.circuit.plan.BoundProgram.layer_matrices`), whose construction from the weights
autograd handles. :func:`layered_plan` checks numerically that a bound VQC is this shape before
the model uses the node; ``QLSTM.fused = False`` switches it off and the tests compare the paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..circuit._autograd import first_order_only
from ..circuit.layered import (kron_factors, kron_factors_back, layered_backward, layered_forward, probs_back,
                               probs_times, split_of, stack_factor_grads)
from ._fused import cell_backward, cell_forward

__all__ = ["FusedLayeredQLSTM", "LayeredPlan", "layered_plan", "chen_product_state"]

_R2 = 0.5**0.5
#: smallest register the node takes (4 qubits and fewer go to the Heisenberg-picture node)
MIN_QUBITS = 5


@dataclass(frozen=True)
class _Half:
    """Index tables of one half of the register (its wires are the bits of a ``2**m`` index)."""

    bits: Tensor  # [m, d] long: bit of wire w in basis index i (the half's first wire most significant)
    flip: Tensor  # [m, d] long: i with the bit of wire w flipped
    onehot: Tensor  # [m, d, 2] complex: one-hot of that bit
    zall: Tensor  # [d, m] complex: +1 / -1 (Z eigenvalue of wire w)

    @staticmethod
    def build(m: int, cdtype, device) -> "_Half":
        idx = torch.arange(2**m, device=device)
        shifts = torch.arange(m - 1, -1, -1, device=device)
        bits = (idx.unsqueeze(0) >> shifts.unsqueeze(1)) & 1
        flip = idx.unsqueeze(0) ^ (1 << shifts).unsqueeze(1)
        return _Half(bits, flip, torch.stack([1 - bits, bits], -1).to(cdtype), (1 - 2 * bits).T.to(cdtype))


@dataclass(frozen=True)
class LayeredPlan:
    """What the fused node needs to know about one bound VQC shape (see :func:`layered_plan`)."""

    n: int
    stages: list
    signs: Tensor  # [D, K] real
    split: tuple[int, int]
    n0: int
    halves: tuple[_Half, _Half]  # wires [0, n0) and [n0, n): the row and column index of split

    @staticmethod
    def build(n: int, stages: list, signs: Tensor, cdtype, device) -> "LayeredPlan":
        n0 = (n + 1) // 2
        return LayeredPlan(n, stages, signs, split_of(n), n0,
                           (_Half.build(n0, cdtype, device), _Half.build(n - n0, cdtype, device)))


def chen_product_state(v: Tensor, plan: LayeredPlan) -> tuple[Tensor, tuple]:
    """``psi_0`` of the Chen encoding of ``v [B, n]`` in the column layout ``[d0, B, d1]``
    (:func:`~qlstm.circuit.layered.layered_forward`), and what :func:`chen_product_back` needs.

    ``psi_0 = a (x) b`` with ``a`` the product state of the first ``n0`` wires and ``b`` of the rest,
    each one gather and one product over wires.
    """
    th, ph = torch.atan(v), torch.atan(v * v)
    c, s = torch.cos(0.5 * th), torch.sin(0.5 * th)
    vec = torch.stack([torch.polar((c - s) * _R2, -0.5 * ph), torch.polar((c + s) * _R2, 0.5 * ph)], -1)  # [B, n, 2]
    batch, n0 = v.shape[0], plan.n0
    h0, h1 = plan.halves
    a = torch.gather(vec[:, :n0], 2, h0.bits.expand(batch, -1, -1)).prod(1)  # [B, d0]
    b = torch.gather(vec[:, n0:], 2, h1.bits.expand(batch, -1, -1)).prod(1)  # [B, d1]
    s0 = a.T.contiguous().unsqueeze(2) * b.unsqueeze(0)  # [d0, B, d1]: the column layout of layered_forward
    return s0, (v, ph, a, b)


def _half_sums(g: Tensor, psi: Tensor, half: _Half) -> tuple[Tensor, Tensor, Tensor]:
    """For the wires of one half (states ``psi [..., B, d]``, gradients ``g [..., B, d]``):
    ``Im sum_i z_w(i) conj(g_i) psi_i`` and ``sum_(i_w = a) conj(g_i) psi_(i ^ bit_w)`` for
    ``a = 0, 1``, each ``[..., B, m]``."""
    gc = g.conj()
    diag = ((gc * psi) @ half.zall).imag
    m, d = half.bits.shape
    flipped = torch.gather(psi.unsqueeze(-2).expand(*psi.shape[:-1], m, d), -1,
                           half.flip.expand(*psi.shape[:-1], m, d))  # [..., B, m, d]
    s01 = (gc.unsqueeze(-2) * flipped).unsqueeze(-2) @ half.onehot  # [..., B, m, 1, 2]
    return diag, s01[..., 0, 0], s01[..., 0, 1]


def chen_product_back(g: Tensor, saved: tuple, plan: LayeredPlan) -> Tensor:
    """Gradient ``[B, n]`` of ``v`` from that of ``psi_0`` (``g [d0, B, d1]``); see the module docstring.

    The gradient of each half (``g_a = g conj(b)``, ``g_b = g^T conj(a)``) carries everything its
    wires need: ``d psi_0 / d v_w = (M_w a) (x) b`` for a wire of the first half. Halves of equal
    size are handled as one batch.
    """
    v, ph, a, b = saved
    ga = (g * b.conj().unsqueeze(0)).sum(-1).T  # [B, d0]
    gb = (g * a.conj().T.unsqueeze(2)).sum(0)  # [B, d1]
    if plan.split[0] == plan.split[1]:
        diag, s0, s1 = _half_sums(torch.stack([ga, gb]), torch.stack([a, b]), plan.halves[0])  # [2, B, m]
        diag, s0, s1 = (t.transpose(0, 1).reshape(v.shape) for t in (diag, s0, s1))
    else:
        parts = [_half_sums(ga, a, plan.halves[0]), _half_sums(gb, b, plan.halves[1])]
        diag, s0, s1 = (torch.cat(t, 1) for t in zip(*parts))
    v2 = v * v
    d_th = 1 / (1 + v2)
    d_ph = 2 * v / (1 + v2 * v2)
    e = torch.polar(torch.ones_like(ph), ph)
    return 0.5 * d_ph * diag + 0.5 * d_th * (e * s1 - e.conj() * s0).real


def layered_plan(bound, n: int) -> LayeredPlan | None:
    """The :class:`LayeredPlan` of a bound Chen-encoded VQC, or None where the node does not apply.

    Needs the layered form (:meth:`~qlstm.circuit.plan.BoundProgram.layered_spec`, from
    :data:`MIN_QUBITS` qubits on), ``<Z>``
    read-outs and exactly the Chen encoding (checked on probe inputs against
    :meth:`~qlstm.circuit.plan.BoundProgram.encode`, once per program, dtype and device).
    """
    spec = bound.layered_spec(MIN_QUBITS) if bound.fused and bound._zsigns is not None else None
    if spec is None:
        return None
    key = ("layered_plan", bound.dtype, str(bound.device))
    cache = bound.program._cache
    if key not in cache:
        plan = LayeredPlan.build(n, spec[1], bound._zsigns, bound.dtype, bound.device)
        rd = torch.float64 if bound.dtype == torch.complex128 else torch.float32
        probe = torch.linspace(-2.0, 1.5, 3 * n, dtype=rd, device=bound.device).reshape(3, n)
        with torch.no_grad():
            try:
                mine = chen_product_state(probe, plan)[0].transpose(0, 1).reshape(3, -1)  # [B, D]
                ok = torch.allclose(bound.encode(probe), mine, atol=1e-5)
            except Exception:  # an encoding this check cannot evaluate: not the Chen encoding
                ok = False
        cache[key] = plan if ok else None
    return cache[key]


class FusedLayeredQLSTM(torch.autograd.Function):
    """``apply(x [B, T, I], h0 [B, H], c0 [B, H], w_gates [L, I+H, 4, 2, 2], w_proc [L', H, 2, 2, 2],
    plan_gates, plan_proc)`` -> ``(outputs [B, T, H], h_T [B, H], c_T [B, H])``; see the module docstring.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_gates, w_proc, pg: LayeredPlan, pp: LayeredPlan):
        ag, cg = kron_factors(w_gates, pg.n0)
        ap, cp = kron_factors(w_proc, pp.n0)
        hidden = h0.shape[1]
        h, c = h0, c0
        outs, steps = [], []
        for t in range(x.shape[1]):
            psi, esave = chen_product_state(torch.cat([x[:, t], h], 1), pg)
            phi, sv = layered_forward(psi, pg.stages, ag, cg, pg.split)  # [4, B, D]
            g = probs_times(phi, pg.signs)  # [4, B, H]
            c, u, cell = cell_forward(g[0], g[1], g[2], g[3], c)
            psi2, esave2 = chen_product_state(u, pp)
            phi2, sv2 = layered_forward(psi2, pp.stages, ap, cp, pp.split)  # [2, B, D']
            p = probs_times(phi2, pp.signs)  # [2, B, H]
            h = p[0]
            outs.append(p[1])
            steps.append((esave, phi, sv, cell, esave2, phi2, sv2))
        ctx.steps, ctx.plans, ctx.n_in, ctx.hidden = steps, (pg, pp), x.shape[2], hidden
        ctx.save_for_backward(w_gates, w_proc, ag, cg, ap, cp)
        return torch.stack(outs, 1), h, c

    @staticmethod
    @first_order_only
    def backward(ctx, g_out, gh, gc):
        w_gates, w_proc, ag, cg, ap, cp = ctx.saved_tensors
        pg, pp = ctx.plans
        steps, n_in = ctx.steps, ctx.n_in
        batch, hidden = steps[0][3][0].shape
        zeros = torch.zeros(batch, hidden, dtype=steps[0][3][0].dtype, device=steps[0][3][0].device)
        g_out = torch.zeros(batch, len(steps), hidden, dtype=zeros.dtype, device=zeros.device) if g_out is None else g_out
        gh = zeros if gh is None else gh
        gc = zeros if gc is None else gc
        acc_g = ([None] * ag.shape[0], [None] * cg.shape[0])
        acc_p = ([None] * ap.shape[0], [None] * cp.shape[0])
        gx = [None] * len(steps)
        for t in range(len(steps) - 1, -1, -1):
            esave, phi, sv, cell, esave2, phi2, sv2 = steps[t]
            gp = torch.stack([gh, g_out[:, t]])  # [2, B, H]
            gpsi2 = layered_backward(probs_back(gp, phi2, pp.signs), pp.stages, ap, cp, sv2, pp.split, acc=acc_p)[0]
            gu = chen_product_back(gpsi2.sum(0), esave2, pp)
            grads, gc = cell_backward(gu, gc, cell)
            gg = torch.stack(grads)  # [4, B, H]
            gpsi = layered_backward(probs_back(gg, phi, pg.signs), pg.stages, ag, cg, sv, pg.split, acc=acc_g)[0]
            gv = chen_product_back(gpsi.sum(0), esave, pg)
            gx[t] = gv[:, :n_in]
            gh = gv[:, n_in:]
        gwg = kron_factors_back(*stack_factor_grads(acc_g, ag, cg), w_gates, pg.n0) if ctx.needs_input_grad[3] else None
        gwp = kron_factors_back(*stack_factor_grads(acc_p, ap, cp), w_proc, pp.n0) if ctx.needs_input_grad[4] else None
        return (torch.stack(gx, 1) if ctx.needs_input_grad[0] else None, gh, gc, gwg, gwp, None, None)
