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

from ..sim.gates import lookup

__all__ = ["FusedExpval", "GENERATORS", "eligible_gate"]

# generator G with dR/dtheta = G R, as (row-major) 2x2 entries
GENERATORS = {
    "rx": ((0, -0.5j), (-0.5j, 0)),
    "ry": ((0, -0.5), (0.5, 0)),
    "rz": ((-0.5j, 0), (0, 0.5j)),
    "phaseshift": ((0, 0), (0, 1j)),
}


def eligible_gate(name: str) -> bool:
    """Gates the hand-written backward handles: fixed single-qubit gates and one-angle rotations."""
    spec = lookup(name)
    return spec.num_wires == 1 and (spec.num_params == 0 or name in GENERATORS)


def _apply2(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``m [..., 2, 2]`` times ``v [..., 2]`` (broadcast)."""
    return (m * v.unsqueeze(-2)).sum(-1)


def _kron_vectors(vs: list[torch.Tensor]) -> torch.Tensor:
    out = vs[0]
    for v in vs[1:]:
        out = (out.unsqueeze(-1) * v.unsqueeze(-2)).flatten(-2)
    return out


class FusedExpval(torch.autograd.Function):
    """``e [*G, B, K]`` from per-position angles, a fused unitary and a sign table.

    Arguments of :meth:`apply` (after ``spec``):
        vecs0: ``[n, 2]`` complex start vectors per wire (no gradient).
        m: ``[*G, D, D]`` or ``[D, D]`` complex, *rows* form (``state @ m`` applies U), or None.
        signs: ``[D, K]`` real eigenvalue table.
        *angles: one real ``[m_j, B]`` tensor per (position, gate group) of ``spec``.

    ``spec`` is a list of ``(name, wires, const_matrix_or_None)`` per gate group,
    in application order; fixed gates carry their ``2 x 2`` matrix and no angle.
    """

    @staticmethod
    def forward(ctx, spec, vecs0, m, signs, *angles):
        n = vecs0.shape[0]
        batch = next((a.shape[-1] for a in angles), 1)
        v = vecs0.unsqueeze(1).expand(n, batch, 2).clone()  # [n, B, 2]
        history = []  # (group index, wires, matrices [m, B, 2, 2], output vectors)
        it = iter(angles)
        cdtype = vecs0.dtype
        for gi, (name, wires, fixed) in enumerate(spec):
            idx = list(wires)
            if fixed is not None:
                mats = fixed.to(cdtype)
            else:
                theta = next(it)
                mats = lookup(name).matrix([theta], dtype=cdtype, device=theta.device)  # [m, B, 2, 2]
            out = _apply2(mats, v[idx])
            v[idx] = out
            history.append((gi, idx, mats, out if fixed is None else None))
        psi = _kron_vectors(list(v.unbind(0)))  # [B, D]
        phi = psi if m is None else psi @ m  # [*G, B, D]
        probs = phi.real.square() + phi.imag.square()
        e = probs @ signs
        ctx.spec, ctx.history = spec, history
        ctx.save_for_backward(v, psi, phi, m, signs)
        ctx.has_m = m is not None
        return e

    @staticmethod
    def backward(ctx, ge):
        v, psi, phi, m, signs = ctx.saved_tensors
        n, batch = v.shape[0], v.shape[1]
        gphi = 2 * (ge @ signs.T) * phi  # [*G, B, D] conjugate-Wirtinger gradient of |phi|^2
        gm = None
        if ctx.has_m:
            if ctx.needs_input_grad[2]:
                gm = psi.conj().T @ gphi  # [*G, D, D]
                if m.dim() == 2 and gm.dim() > 2:
                    gm = gm.reshape(-1, *gm.shape[-2:]).sum(0)
            gpsi = gphi @ m.conj().transpose(-1, -2)
        else:
            gpsi = gphi
        gpsi = gpsi.reshape(-1, batch, gpsi.shape[-1]).sum(0)  # [B, D]
        # d psi / d v_w: contract with the conjugate of every other wire's vector
        vc = v.conj()
        prefix = [None] * n
        suffix = [None] * n
        acc = None
        for w in range(n):
            prefix[w] = acc
            acc = vc[w] if acc is None else (acc.unsqueeze(-1) * vc[w].unsqueeze(-2)).flatten(-2)
        acc = None
        for w in range(n - 1, -1, -1):
            suffix[w] = acc
            acc = vc[w] if acc is None else (vc[w].unsqueeze(-1) * acc.unsqueeze(-2)).flatten(-2)
        gv = []
        for w in range(n):
            left = 2**w
            g = gpsi.reshape(batch, left, 2, -1)
            if suffix[w] is not None:
                g = (g * suffix[w].unsqueeze(1).unsqueeze(1)).sum(-1)
            else:
                g = g.squeeze(-1)
            if prefix[w] is not None:
                g = (g * prefix[w].unsqueeze(-1)).sum(1)
            else:
                g = g.squeeze(1)
            gv.append(g)
        gv = torch.stack(gv)  # [n, B, 2] gradient w.r.t. the final per-wire vectors
        grads = []
        for gi, idx, mats, out in reversed(ctx.history):
            name, _, fixed = ctx.spec[gi]
            gout = gv[idx]
            if fixed is None:
                gen = torch.tensor(GENERATORS[name], dtype=out.dtype, device=out.device)
                dout = out @ gen.T  # G v' for each sample
                grads.append((gout.conj() * dout).sum(-1).real)  # [m, B]
            gv[idx] = _apply2(mats.conj().transpose(-1, -2), gout)
        grads.reverse()
        return (None, None, gm, None, *grads)


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
    einsum each instead of one ``k``-operand einsum per factor).
    """
    if len(conj_mats) == 1:
        return [g]
    h = len(conj_mats) // 2
    left, right = conj_mats[:h], conj_mats[h:]
    dl, dr = 2**h, 2 ** (len(conj_mats) - h)
    g4 = g.reshape(*g.shape[:-2], dl, dr, dl, dr)
    g_left = torch.einsum("...iajb,...ab->...ij", g4, _kron_matrices(right))
    g_right = torch.einsum("...iajb,...ij->...ab", g4, _kron_matrices(left))
    return _kron_grads(g_left, left) + _kron_grads(g_right, right)
