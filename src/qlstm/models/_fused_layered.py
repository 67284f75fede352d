r"""The Chen-encoded statevector of 5 to 8 qubits for the fused recurrences (layered form).

Each VQC is simulated as a statevector with :func:`~qlstm.circuit.layered.layered_forward`
(constant permutations and two-factor Kronecker layers, :mod:`qlstm.circuit.layered`); this module
holds what the fused recurrences (:mod:`._fused_general`, :mod:`._fused_adapter`, through
:class:`~qlstm.models._evaluators.LayeredVQC`) need on top of it: the plan of a bound VQC and the
Chen encoding with its derivative.

* each wire's vector in closed form, :math:`v_w = R_Z(\phi) R_Y(\theta) H|0\rangle` with
  :math:`\theta = \arctan v_w`, :math:`\phi = \arctan v_w^2`, and the product state
  :math:`\psi_0[i] = \prod_w v_w[i_w]` (a gather and a product over wires per half of the register);
* encoding backward: :math:`\partial\psi_0/\partial v_w = M_w \psi_0` with the one-qubit operator
  :math:`M_w = \theta' R_Z K R_Z^\dagger + \phi'(-iZ/2)` (:math:`K = -iY/2`), so
  :math:`\partial L/\partial v_w = \mathrm{Re}\sum_i \bar g_i (M_w\psi_0)_i` needs one bit-flip
  gather per half of the register (after contracting the other half away) instead of a
  Kronecker-tree sweep.

Gradients reach the per-wire gate matrices ``[L, n, G, 2, 2]`` of the weight layers
(:meth:`~qlstm.circuit.plan.BoundProgram.layer_matrices`), whose construction from the weights
autograd handles. :func:`layered_plan` checks numerically that a bound VQC is this shape before
a model uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..circuit.layered import split_of

__all__ = ["LayeredPlan", "layered_plan", "chen_product_state", "chen_product_back"]

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


def layered_plan(bound, n: int, min_qubits: int = MIN_QUBITS, max_qubits: int | None = None) -> LayeredPlan | None:
    """The :class:`LayeredPlan` of a bound Chen-encoded VQC, or None where the node does not apply.

    Needs the layered form (:meth:`~qlstm.circuit.plan.BoundProgram.layered_spec`, from
    ``min_qubits`` to ``max_qubits`` qubits: :data:`MIN_QUBITS` to the program's
    ``layered_max_qubits`` for the torch nodes), ``<Z>``
    read-outs and exactly the Chen encoding (checked on probe inputs against
    :meth:`~qlstm.circuit.plan.BoundProgram.encode`, once per program, dtype and device).
    """
    spec = bound.layered_spec(min_qubits, max_qubits) if bound.fused and bound._zsigns is not None else None
    if spec is None:
        return None
    key = ("layered_plan", bound.dtype, str(bound.device), min_qubits, max_qubits)
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
