r"""``QLSTM(compiled=True)``: the faithful recurrence, with the construction of its VQCs from the
weights, as one ``torch.compile`` region, for VQCs of up to 8 qubits.

Everything in the region is plain tensor operations, so the compiler derives one backward for
the whole step and fuses its small operations, which the eager nodes (:mod:`._fused`,
:mod:`._fused_general`, with their hand-written backwards) cannot. VQC groups of at most 4 qubits
take the Heisenberg picture (:meth:`~qlstm.circuit.plan.Program.transfer_table_fn`,
:func:`~qlstm.circuit.heisenberg.transfer_rows_plain`, the features of :mod:`._fused`).

From 5 qubits on the VQCs are layered statevectors (:mod:`._fused_layered`). ``torch.compile``'s
CPU code generator has no complex arithmetic, so the region holds every complex number as a
real pair. The layout of
a state is ``[G, 2, d0, B, d1]`` (``G`` weight copies, real and imaginary part, then the column
layout of :func:`~qlstm.circuit.layered.layered_forward`), which lets each complex product of a
layer, :math:`X \mapsto A X C^T`, be **one** real matrix product on each side:

* left: :math:`\begin{pmatrix} A_r & -A_i \\ A_i & A_r \end{pmatrix}` ``[G, 2 d0, 2 d0]`` times
  the state viewed as ``[G, 2 d0, B d1]``;
* right: the state viewed as ``[G, 2 d0 B, d1]`` times :math:`(C_r^T \mid C_i^T)` ``[G, d1, 2 d1]``,
  then :math:`Y_r = Z_{r,1} - Z_{i,2}`, :math:`Y_i = Z_{i,1} + Z_{r,2}` (elementwise, fused by the
  compiler).

The CNOT rings are index gathers over the flattened amplitudes, the Chen encoding is the closed
form of :mod:`._fused_layered` in real and imaginary parts, and ``<Z>`` reads
:math:`\sum_i (\mathrm{Re}^2 + \mathrm{Im}^2)\,Z_{ik}`.

The region is compiled for static shapes (each new batch size or sequence length compiles
once; one dynamic-shape graph measured up to 1.4x slower per step at 4 qubits) and, on CPU,
with inductor's C++ wrapper (about 10 % per step at 4 qubits). The eager nodes are the
reference: the uncompiled :func:`general_recurrence` is tested against them, and a slow test
compiles it.
"""

from __future__ import annotations

import types

import torch
from torch import Tensor

from ..circuit.heisenberg import bloch_features
from ..circuit.layered import _perm_full
from ._fused import cell_forward, chen_bloch, chen_heisenberg
from ._fused_layered import layered_plan

__all__ = ["compiled_general_recurrence", "general_recurrence"]

_R2 = 0.5**0.5
# the compiled recurrences, once per process and pair of programs, dtype, device (see
# compiled_general_recurrence for why not in the programs' own caches)
_COMPILED: dict = {}


def _features(v: Tensor) -> Tensor:
    """The Chen features ``[B, 4**n]`` of ``v [B, n]`` (:func:`~qlstm.models._fused.chen_features`'
    numbers) as :func:`~qlstm.circuit.heisenberg.bloch_features` of
    :func:`~qlstm.models._fused.chen_bloch`: inductor's kernels for this form were faster at batch
    128 (1.9 against 2.3 ms per step) and equal at batch 1 and 16."""
    return bloch_features(chen_bloch(v)[0])[0]


def _cmul(ar, ai, br, bi):
    return ar * br - ai * bi, ar * bi + ai * br


def _kron_pair(a, b):
    """Complex Kronecker product of ``(re, im)`` pairs of ``[..., d, d]`` matrices."""
    da, db = a[0].shape[-1], b[0].shape[-1]

    def outer(x, y):
        return (x[..., :, None, :, None] * y[..., None, :, None, :]).reshape(*x.shape[:-2], da * db, da * db)

    rr, ii, ri, ir = outer(a[0], b[0]), outer(a[1], b[1]), outer(a[0], b[1]), outer(a[1], b[0])
    return rr - ii, ri + ir


def layer_blocks(w: Tensor, n0: int) -> tuple[Tensor, Tensor]:
    """The realified factors of every layer from the per-wire gate matrices ``w [L, n, G, 2, 2, 2]``
    (``view_as_real`` of :meth:`~qlstm.circuit.plan.BoundProgram.layer_matrices`):
    ``(left [L, G, 2 d0, 2 d0], right [L, G, d1, 2 d1])`` as in the module docstring."""
    wires = [(w[:, k, ..., 0], w[:, k, ..., 1]) for k in range(w.shape[1])]

    def kron(ms):
        out = ms[0]
        for m in ms[1:]:
            out = _kron_pair(out, m)
        return out

    ar, ai = kron(wires[:n0])
    cr, ci = kron(wires[n0:])
    left = torch.cat([torch.cat([ar, -ai], -1), torch.cat([ai, ar], -1)], -2)
    right = torch.cat([cr.transpose(-1, -2), ci.transpose(-1, -2)], -1)
    return left, right


def chen_state(v: Tensor, plan) -> Tensor:
    """The Chen-encoded product state of ``v [B, n]`` as ``[2, d0, B, d1]`` (real, imaginary part)."""
    th, ph = torch.atan(v), torch.atan(v * v)
    c, s = torch.cos(0.5 * th), torch.sin(0.5 * th)
    m0, m1 = (c - s) * _R2, (c + s) * _R2
    cp, sp = torch.cos(0.5 * ph), torch.sin(0.5 * ph)
    vr = torch.stack([m0 * cp, m1 * cp], -1)  # [B, n, 2]: amplitudes of |0>, |1> (phases -ph/2, +ph/2)
    vi = torch.stack([-m0 * sp, m1 * sp], -1)
    n0 = plan.n0

    def half(lo, hi):  # the product state of wires lo..hi-1 (the first most significant): [B, d]
        pr, pi = vr[:, lo], vi[:, lo]
        for k in range(lo + 1, hi):
            pr, pi = _cmul(pr.unsqueeze(-1), pi.unsqueeze(-1), vr[:, k].unsqueeze(-2), vi[:, k].unsqueeze(-2))
            pr, pi = pr.flatten(-2), pi.flatten(-2)
        return pr, pi

    (ar, ai), (br, bi) = half(0, n0), half(n0, v.shape[1])
    sr, si = _cmul(ar.T.unsqueeze(2), ai.T.unsqueeze(2), br.unsqueeze(0), bi.unsqueeze(0))  # [d0, B, d1]
    return torch.stack([sr, si])


class _Permute(torch.autograd.Function):
    """``flat[..., index]`` whose backward is the gather by the inverse permutation (autograd's
    ``index_select`` backward is a scatter-add, several times slower in the compiled code)."""

    @staticmethod
    def forward(ctx, flat, index, inverse):
        ctx.save_for_backward(inverse)
        return flat.index_select(-1, index)

    @staticmethod
    def backward(ctx, g):
        (inverse,) = ctx.saved_tensors
        return g.index_select(-1, inverse), None, None


def layered_expvals(s: Tensor, plan, left: Tensor, right: Tensor) -> Tensor:
    """``<Z>`` read-outs ``[G, B, K]`` after the stages of ``plan`` on ``s [2, d0, B, d1]`` (shared by
    the ``G`` copies of ``left [L, G, 2 d0, 2 d0]``, ``right [L, G, d1, 2 d1]``)."""
    d0, d1 = plan.split
    groups, batch = left.shape[1], s.shape[2]
    for st in plan.stages:
        if st[0] == "perm":
            index, inverse, phase = _perm_full(st, batch, plan.split)
            flat = _Permute.apply(s.reshape(*s.shape[:-3], -1), index, inverse).view(s.shape)
            if phase is not None:
                pr, pi = phase.real.to(s.dtype), phase.imag.to(s.dtype)
                re, im = _cmul(flat.select(-4, 0), flat.select(-4, 1), pr, pi)
                flat = torch.stack([re, im], -4)
            s = flat
            continue
        a, c = left[st[1]], right[st[1]]
        if s.dim() == 4:  # shared by the copies: the left product first, all copies in one product
            y = (a.reshape(groups * 2 * d0, 2 * d0) @ s.reshape(2 * d0, batch * d1)).view(groups, 2, d0, batch, d1)
        else:
            y = torch.bmm(a, s.reshape(groups, 2 * d0, batch * d1)).view(groups, 2, d0, batch, d1)
        z = torch.bmm(y.reshape(groups, 2 * d0 * batch, d1), c).view(groups, 2, d0, batch, 2, d1)
        s = torch.stack([z[:, 0, ..., 0, :] - z[:, 1, ..., 1, :], z[:, 1, ..., 0, :] + z[:, 0, ..., 1, :]], 1)
    if s.dim() == 4:
        s = s.expand(groups, *s.shape)
    p = s[:, 0].square() + s[:, 1].square()  # [G, d0, B, d1]
    return torch.matmul(p, plan.signs.view(d0, d1, -1).to(p.dtype)).sum(1)  # [G, B, K]


def _group(bound, n: int):
    """``(input, prepare, evaluate)`` of one bound VQC group for the compiled region: the tensor
    the region takes (weights, or the realified layer matrices), ``prepare(input)`` (the transfer
    table, or the layers' factors) and ``evaluate(prepared, q) -> [G, B, K]``; None where neither
    the Heisenberg nor the layered form applies."""
    if chen_heisenberg(bound, n):
        table_fn = bound.program.transfer_table_fn(bound.dtype, bound.device)
        if table_fn is None:
            return None
        k = len(bound.program.circuit.observables)

        def prepare(w):
            return table_fn(w).reshape(4**n, -1)

        def evaluate(t, q):
            return (_features(q) @ t).view(q.shape[0], -1, k).transpose(0, 1)

        return bound.weights, prepare, evaluate
    plan = layered_plan(bound, n)
    if plan is None:
        return None

    def prepare_layers(w):
        return layer_blocks(w, plan.n0)

    def evaluate_layers(lr, q):
        return layered_expvals(chen_state(q, plan), plan, *lr)

    return torch.view_as_real(bound.layer_matrices()), prepare_layers, evaluate_layers


def general_recurrence(gates, process, n: int, hidden: int):
    """``(run, (gate_input, process_input))``: the faithful recurrence for VQCs of up to 8 qubits in
    plain real operations (each group Heisenberg or layered, :func:`_group`), with
    ``run(x, h0, c0, gate_input, process_input) -> (outputs, h_T, c_T)``: what
    :func:`compiled_general_recurrence` compiles (the tests run it eagerly too); None where a
    group has neither form."""
    g, p = _group(gates, n), _group(process, hidden)
    if g is None or p is None:
        return None
    (_, prep_g, eval_g), (_, prep_p, eval_p) = g, p

    def run(x, h0, c0, in_g, in_p):
        fg, fp = prep_g(in_g), prep_p(in_p)
        h, c = h0, c0
        outs = []
        for t in range(x.shape[1]):
            e = eval_g(fg, torch.cat([x[:, t], h], 1))  # [4, B, H]
            c, u, _ = cell_forward(e[0], e[1], e[2], e[3], c)
            q = eval_p(fp, u)  # [2, B, H]
            h = q[0]
            outs.append(q[1])
        return torch.stack(outs, 1), h, c

    return run, (g[0], p[0])


def _own_code(fn, k: int):
    """``fn`` with a code object of its own: dynamo keeps its compiled graphs, and counts them
    against its recompile limit (8), per code object, and every recurrence is the same closure, so
    without this all compiled models of a process would share one limit (measured: the ninth shape
    in a process ran uncompiled, 5x slower than the node it replaces)."""
    code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_{k}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


def compiled_general_recurrence(gates, process, n: int, hidden: int):
    """:func:`general_recurrence` with ``run`` as one ``torch.compile`` region (static shapes),
    compiled once per process and pair of programs; None where it does not apply."""
    made = general_recurrence(gates, process, n, hidden)
    if made is None:
        return None
    key = ("recurrence", id(gates.program), id(process.program), gates.dtype, str(gates.device))
    if key not in _COMPILED:
        # the run depends on the programs only (plans, tables' plans), not on this bind's weights;
        # the programs stay referenced with their function, so that their ids stay unique. A
        # module-level dict, not the program's own cache: a model with a compiled function in
        # its circuits' caches could no longer be pickled whole (torch.save(model))
        options = {"cpp_wrapper": True} if torch.device(gates.device or "cpu").type == "cpu" else None
        _COMPILED[key] = (gates.program, process.program,
                          torch.compile(_own_code(made[0], len(_COMPILED)), dynamic=False, options=options))
    return _COMPILED[key][2], made[1]
