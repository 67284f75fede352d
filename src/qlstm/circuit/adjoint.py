"""Hand-written forward/backward for the commonest VQC shape.

Most QML circuits (Chen's QLSTM VQC, angle-encoded classifiers) are: a
product-state encoding whose angles read the data, one fused
weight-dependent unitary ``U``, and ``<Z>`` read-outs. Autograd over such a
circuit records dozens of tiny complex operations per call, and replaying
them costs more than the simulation. :class:`FusedExpval` computes

.. math::
    \\psi = \\bigotimes_w v_w(\\theta),\\qquad \\phi_g = U_g \\psi,\\qquad
    e_{g,k} = \\sum_i |\\phi_{g,i}|^2 S_{ik}

in one autograd node and back-propagates by hand: ``dL/dU`` from
:math:`\\psi^\\dagger \\bar\\phi`, ``dL/dpsi`` through :math:`U^\\dagger`, the
Kronecker product by contracting with the other wires' vectors, and each
rotation angle through :math:`dR/d\\theta = G R` with the gate's generator
``G`` (``-i P/2`` for ``R_P``, ``i|1><1|`` for the phase gate).

:class:`~qlstm.circuit.plan.BoundProgram` uses it when a circuit has this
shape (see :func:`eligible`); the generic autograd path is its reference and a
test checks that values and gradients agree.
"""

from __future__ import annotations

import torch
from ._autograd import first_order_only

from ..sim.gates import lookup

__all__ = ["FusedExpval", "GENERATORS", "eligible_gate", "encode_forward", "encode_backward"]

# generator G with dR/dtheta = G R, as (row-major) 2x2 entries
GENERATORS = {
    "rx": ((0, -0.5j), (-0.5j, 0)),
    "ry": ((0, -0.5), (0.5, 0)),
    "rz": ((-0.5j, 0), (0, 0.5j)),
    "phaseshift": ((0, 0), (0, 1j)),
}

_CONST: dict = {}


def _const(key: str, values, dtype, device) -> torch.Tensor:
    """Small constant tensors, built once per dtype and device (never written to)."""
    k = (key, dtype, str(device))
    t = _CONST.get(k)
    if t is None:
        t = _CONST[k] = torch.tensor(values, dtype=dtype, device=device)
    return t


def eligible_gate(name: str) -> bool:
    """Gates the hand-written backward handles: fixed single-qubit gates and one-angle rotations."""
    spec = lookup(name)
    return spec.num_wires == 1 and (spec.num_params == 0 or name in GENERATORS)


def _apply2(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``m [..., 2, 2]`` times ``v [..., 2]`` (broadcast)."""
    return (m * v.unsqueeze(-2)).sum(-1)


def _rotate(name: str, theta: torch.Tensor, v: torch.Tensor):
    """``R_name(theta) v`` for per-wire vectors ``v [m, B, 2]``; returns (new v, what backward needs).

    Closed forms avoid building 2x2 complex matrices: RY is a real rotation of the
    (re, im) pairs, RZ and the phase gate multiply by phases, RX mixes with -i.
    """
    half = theta * 0.5
    if name == "ry":
        c, s = torch.cos(half), torch.sin(half)
        r = torch.stack([c, -s, s, c], -1).unflatten(-1, (2, 2))  # [m, B, 2, 2] real
        out = torch.view_as_complex(r @ torch.view_as_real(v))
        return out, r
    if name == "rz":
        ph = torch.polar(torch.ones_like(half).unsqueeze(-1), torch.stack([-half, half], -1))
        return v * ph, ph
    if name == "phaseshift":
        ph = torch.polar(torch.ones_like(theta).unsqueeze(-1), torch.stack([torch.zeros_like(theta), theta], -1))
        return v * ph, ph
    m = lookup(name).matrix([theta], dtype=v.dtype, device=v.device)  # rx and others: explicit matrix
    return _apply2(m, v), m


def _rotate_back(name: str, saved: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``R^dag g`` for the rotation saved by :func:`_rotate`."""
    if name == "ry":
        return torch.view_as_complex(saved.transpose(-1, -2) @ torch.view_as_real(g))
    if name in ("rz", "phaseshift"):
        return g * saved.conj()
    return _apply2(saved.conj().transpose(-1, -2), g)


def _generator_times(name: str, out: torch.Tensor) -> torch.Tensor:
    """``G v'`` with ``dR/dtheta = G R`` applied to the rotated vectors ``v' [m, B, 2]``."""
    dtype, device = out.dtype, out.device
    if name == "ry":
        return out.flip(-1) * _const("ry_gen", [-0.5, 0.5], dtype, device)
    if name == "rx":
        return out.flip(-1) * _const("rx_gen", [-0.5j, -0.5j], dtype, device)
    if name == "rz":
        return out * _const("rz_gen", [-0.5j, 0.5j], dtype, device)
    return out * _const("ps_gen", [0, 1j], dtype, device)


def _put_wires(full: torch.Tensor, wires, whole: bool, new: torch.Tensor) -> torch.Tensor:
    """``full [n, ...]`` with the rows of ``wires`` replaced by ``new`` (``new`` itself if ``whole``)."""
    if whole:
        return new
    out = full.clone()
    out[list(wires)] = new
    return out


def _kron_tree(vs: list[torch.Tensor]):
    """Kronecker product of vectors ``[B, d_i]`` by halves; returns (product, tree for backward)."""
    if len(vs) == 1:
        return vs[0], None
    h = len(vs) // 2
    left, lt = _kron_tree(vs[:h])
    right, rt = _kron_tree(vs[h:])
    return (left.unsqueeze(-1) * right.unsqueeze(-2)).flatten(-2), (left, right, lt, rt, h)


def _kron_tree_back(g: torch.Tensor, tree, n: int) -> list[torch.Tensor]:
    """Gradients w.r.t. the factor vectors of :func:`_kron_tree` given ``g [B, D]``."""
    if tree is None:
        return [g]
    left, right, lt, rt, h = tree
    g2 = g.unflatten(-1, (left.shape[-1], right.shape[-1]))  # [B, dL, dR]
    g_left = (g2 @ right.conj().unsqueeze(-1)).squeeze(-1)
    g_right = (left.conj().unsqueeze(-2) @ g2).squeeze(-2)
    return _kron_tree_back(g_left, lt, h) + _kron_tree_back(g_right, rt, n - h)


class FusedExpval(torch.autograd.Function):
    """``e [*G, B, K]`` from per-position angles, a fused unitary and a sign table.

    Arguments of :meth:`apply` (after ``spec``):
        vecs0: ``[n, 2]`` complex start vectors per wire (no gradient).
        m: ``[*G, D, D]`` or ``[D, D]`` complex, *rows* form (``state @ m`` applies U), or None.
        signs: ``[D, K]`` real eigenvalue table.
        *angles: one real ``[m_j, B]`` tensor per rotation group of ``spec``.

    ``spec`` is a list of ``(name, wires, const_matrix_or_None)`` per gate group,
    in application order; fixed gates carry their ``2 x 2`` matrix and no angle.
    """

    @staticmethod
    def forward(ctx, spec, vecs0, m, signs, *angles):
        n = vecs0.shape[0]
        v, history = encode_forward(spec, vecs0, angles)
        psi, tree = _kron_tree(list(v.unbind(0)))  # [B, D]
        phi = psi if m is None else psi @ m  # [*G, B, D]
        e = torch.view_as_real(phi).square().sum(-1) @ signs
        ctx.history, ctx.tree, ctx.n = history, tree, n
        ctx.save_for_backward(psi, phi, m, signs)
        ctx.has_m = m is not None
        return e

    @staticmethod
    @first_order_only
    def backward(ctx, ge):
        psi, phi, m, signs = ctx.saved_tensors
        batch = psi.shape[0]
        gphi = 2 * (ge @ signs.T) * phi  # [*G, B, D]: conjugate-Wirtinger gradient of |phi|^2
        gm = None
        if ctx.has_m:
            if ctx.needs_input_grad[2]:
                gm = psi.conj().T @ gphi  # [*G, D, D]
                if m.dim() == 2 and gm.dim() > 2:
                    gm = gm.reshape(-1, *gm.shape[-2:]).sum(0)
            gpsi = gphi @ m.conj().transpose(-1, -2)
        else:
            gpsi = gphi
        if gpsi.dim() > 2:
            gpsi = gpsi.reshape(-1, batch, gpsi.shape[-1]).sum(0)  # [B, D]
        gv = torch.stack(_kron_tree_back(gpsi, ctx.tree, ctx.n))  # [n, B, 2]
        return (None, None, gm, None, *encode_backward(gv, ctx.history))


def encode_forward(spec, vecs0: torch.Tensor, angles):
    """Per-wire vectors ``[n, B, 2]`` after the encoding gate groups of ``spec``, and the history
    :func:`encode_backward` needs. ``spec``/``angles`` as in :class:`FusedExpval`."""
    n = vecs0.shape[0]
    batch = next((a.shape[-1] for a in angles), 1)
    v = vecs0.unsqueeze(1).expand(n, batch, 2)  # [n, B, 2]
    history = []
    it = iter(angles)
    for name, wires, fixed in spec:
        whole = len(wires) == n and all(w == i for i, w in enumerate(wires))
        sub = v if whole else v[list(wires)]
        if fixed is not None:
            out, saved = _apply2(fixed, sub), fixed
        else:
            out, saved = _rotate(name, next(it), sub)
        v = _put_wires(v, wires, whole, out)
        history.append((name, wires, whole, saved, out if fixed is None else None))
    return v, history


def encode_backward(gv: torch.Tensor, history) -> list[torch.Tensor]:
    """Angle gradients ``[m_j, B]`` (one per rotation group) from those of the per-wire vectors ``gv [n, B, 2]``."""
    grads = []
    for name, wires, whole, saved, out in reversed(history):
        gout = gv if whole else gv[list(wires)]
        if out is not None:
            grads.append((gout.conj() * _generator_times(name, out)).real.sum(-1))  # [m, B]
            gin = _rotate_back(name, saved, gout)
        else:
            gin = _apply2(saved.conj().transpose(-1, -2), gout)
        gv = _put_wires(gv, wires, whole, gin)
    grads.reverse()
    return grads


class FusedRun(torch.autograd.Function):
    """Multiply a run of constant blocks and single-qubit layers into one ``[*G, D, D]`` matrix.

    Forward: ``M = I``; a constant block ``A`` gives ``M <- M A`` (rows form), an
    index gather ``M <- M[..., index] * phase``; a layer of single-qubit matrices
    ``R_w`` gives ``M <- M (R_0 (x) ... (x) R_{n-1})^T``.

    Backward (adjoint sweep): ``dL/dM_prev = dL/dM A^dag`` for a block, the
    inverse gather for a permutation, and for a layer ``dL/dK = (M_prev^dag dL/dM)^T``,
    then ``dL/dR_w`` by contracting ``dL/dK`` with the conjugates of the other
    wires' matrices (one einsum per wire). Gradients reach the gate matrices,
    whose (small) construction from the weights autograd handles.

    Arguments of :meth:`apply`: ``plan`` (list of ``("dense", A)``, ``("perm",
    index, phase)`` or ``("layer", [(wire, group, position), ...])``), ``n``,
    ``dtype``, then the stacked gate-matrix tensors ``[m_g, *batch, 2, 2]`` of each group.
    """

    @staticmethod
    def forward(ctx, plan, n, dtype, *groups):
        dim = 2**n
        device = groups[0].device if groups else None
        m = torch.eye(dim, dtype=dtype, device=device)
        saved = []
        eye2 = torch.eye(2, dtype=dtype, device=device)
        for op in plan:
            saved.append(m)
            if op[0] == "dense":
                m = m @ op[1]
            elif op[0] == "perm":
                m = m[..., op[1]] if op[2] is None else m[..., op[1]] * op[2]
            else:
                per_wire = {wire: groups[gi][pos] for wire, gi, pos in op[1]}
                k = _kron_matrices([per_wire.get(w, eye2) for w in range(n)])
                if k.dim() > 2 and k.shape[-3] == 1:
                    k = k.squeeze(-3)
                m = m @ k.transpose(-1, -2)
        ctx.plan, ctx.n = plan, n
        ctx.saved_ms = saved
        ctx.save_for_backward(*groups)
        return m

    @staticmethod
    @first_order_only
    def backward(ctx, gm):
        groups = ctx.saved_tensors
        n, plan = ctx.n, ctx.plan
        eye2 = torch.eye(2, dtype=gm.dtype, device=gm.device)
        ggroups = [torch.zeros_like(g) for g in groups]
        for op, m_prev in zip(reversed(plan), reversed(ctx.saved_ms)):
            if op[0] == "dense":
                gm = gm @ op[1].conj().transpose(-1, -2)
            elif op[0] == "perm":
                g = gm if op[2] is None else gm * op[2].conj()
                gm = g[..., op[3]]  # op[3] is the inverse permutation
            else:
                per_wire = {wire: groups[gi][pos] for wire, gi, pos in op[1]}
                mats = [per_wire.get(w, eye2) for w in range(n)]
                k = _kron_matrices(mats)
                squeezed = k.dim() > 2 and k.shape[-3] == 1
                if squeezed:
                    k = k.squeeze(-3)
                gk = (m_prev.conj().transpose(-1, -2) @ gm).transpose(-1, -2)
                gm = gm @ k.conj()
                while gk.dim() > k.dim():
                    gk = gk.sum(0)
                if squeezed:
                    gk = gk.unsqueeze(-3)
                grads = _kron_grads(gk, [mt.conj() for mt in mats])
                for wire, gi, pos in op[1]:
                    ggroups[gi][pos] += grads[wire]
        return (None, None, None, *ggroups)


def _kron_matrices(mats: list[torch.Tensor]) -> torch.Tensor:
    out = mats[0]
    for m in mats[1:]:
        a, b = out.shape[-1], m.shape[-1]
        prod = out[..., :, None, :, None] * m[..., None, :, None, :]
        out = prod.reshape(*prod.shape[:-4], a * b, a * b)
    return out


def _kron_grads(g: torch.Tensor, conj_mats: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients w.r.t. the factors of ``K = M_0 (x) ... (x) M_{k-1}`` given ``dL/dK`` ``[..., d, d]``.

    ``dL/dM_w`` contracts ``dL/dK`` with the conjugates of the other factors.
    Splitting the factors in halves shares the work: contract the right half
    away once for all left factors and vice versa (``O(log k)`` levels of one
    product and sum each instead of one ``k``-operand contraction per factor).
    """
    if len(conj_mats) == 1:
        return [g]
    h = len(conj_mats) // 2
    left, right = conj_mats[:h], conj_mats[h:]
    dl, dr = 2**h, 2 ** (len(conj_mats) - h)
    g4 = g.reshape(*g.shape[:-2], dl, dr, dl, dr)
    # products and sums, not einsum: these tensors are tiny and einsum's set-up costs several times more
    kr, kl = _kron_matrices(right), _kron_matrices(left)
    g_left = (g4 * kr.unsqueeze(-2).unsqueeze(-4)).sum((-3, -1))
    g_right = (g4 * kl.unsqueeze(-1).unsqueeze(-3)).sum((-4, -2))
    return _kron_grads(g_left, left) + _kron_grads(g_right, right)
