r"""Hand-written forward/backward for medium registers (5 to 8 qubits) in *layered* form.

From 5 qubits on a QLSTM's VQCs are too wide for the Heisenberg picture (``4**n``
features per sample) and a fused ``2**n x 2**n`` unitary is expensive to multiply out,
but their weight part is still a short list of

* constant *permutations* with phases (a CNOT ring is an index gather), and
* *layers* of single-qubit gates, whose Kronecker product splits into two factors
  ``A (x) C`` on the first ``n0`` and the last ``n - n0`` wires (``n0 = ceil(n / 2)``,
  ``A`` and ``C`` at most ``16 x 16``).

Writing the statevector as a matrix :math:`X [2^{n_0}, 2^{n-n_0}]` (wire 0 is the most
significant bit), a layer is :math:`X \mapsto A X C^T`: two small batched matrix products
instead of ``n`` single-qubit updates, and nothing of size ``2^n x 2^n``.
:class:`LayeredExpval` evaluates

.. math::
    \psi = \bigotimes_w v_w(\theta),\qquad \phi = S_L \cdots S_1 \psi,\qquad
    e_k = \sum_i |\phi_i|^2 Z_{ik}

(``S_j`` a permutation or a layer, ``Z`` the sign table of ``<Z>`` read-outs) in one
autograd node. The backward is the reverse sweep written out by hand: the inverse gather
for a permutation; for ``Y = A M``, ``M = X C^T``:
``dL/dA = sum_b dY M^H``, ``dL/dM = A^H dY``, ``dL/dC = sum_b dM^T conj(X)``,
``dL/dX = dM conj(C)`` (conjugate-Wirtinger gradients, PyTorch's convention); then the
Kronecker product of the encoding and each encoding angle as in
:class:`~qlstm.circuit.adjoint.FusedExpval`. Gradients reach the factor matrices ``A`` and
``C``, whose construction from the weights (once per forward pass) autograd handles.

:class:`~qlstm.circuit.plan.BoundProgram` uses it when a circuit has this shape
(:meth:`~qlstm.circuit.plan.BoundProgram.layered_spec`); the generic autograd path is its
reference, and the tests check that values and gradients agree.
"""

from __future__ import annotations

import torch

from ._autograd import first_order_only
from .adjoint import _kron_grads, _kron_matrices, _kron_tree, _kron_tree_back, encode_backward, encode_forward

__all__ = ["LayeredExpval", "KronFactors", "kron_factors", "kron_factors_back", "layered_forward",
           "layered_backward", "probs_times", "probs_back", "split_of", "stack_factor_grads", "to_columns"]


def split_of(n: int) -> tuple[int, int]:
    """``(2**n0, 2**(n - n0))``: the row and column sizes of the statevector as a matrix."""
    n0 = (n + 1) // 2
    return 2**n0, 2 ** (n - n0)


def kron_factors(w: torch.Tensor, n0: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A [L, G, d0, d0], C [L, G, d1, d1])``: Kronecker products of the per-wire matrices
    ``w [L, n, G, 2, 2]`` over the first ``n0`` and the remaining wires (no autograd)."""
    return _kron_matrices(list(w[:, :n0].unbind(1))), _kron_matrices(list(w[:, n0:].unbind(1)))


def kron_factors_back(g_left: torch.Tensor, g_right: torch.Tensor, w: torch.Tensor, n0: int) -> torch.Tensor:
    """Gradient ``[L, n, G, 2, 2]`` of the per-wire matrices from those of the factors (:func:`_kron_grads`)."""
    conj = w.conj()
    gl = _kron_grads(g_left, list(conj[:, :n0].unbind(1)))
    gr = _kron_grads(g_right, list(conj[:, n0:].unbind(1)))
    return torch.stack(gl + gr, 1)


class KronFactors(torch.autograd.Function):
    """:func:`kron_factors` as one autograd node: ``apply(w [L, n, G, 2, 2], n0) -> (A, C)``.

    Built once per forward pass from the gate matrices of the weight layers
    (:meth:`~qlstm.circuit.plan.BoundProgram.layer_matrices`).
    """

    @staticmethod
    def forward(ctx, w, n0):
        ctx.n0 = n0
        ctx.save_for_backward(w)
        return kron_factors(w, n0)

    @staticmethod
    def backward(ctx, g_left, g_right):
        (w,) = ctx.saved_tensors
        n_layers, n, groups = w.shape[:3]
        d0, d1 = 2**ctx.n0, 2 ** (n - ctx.n0)
        g_left = w.new_zeros(n_layers, groups, d0, d0) if g_left is None else g_left
        g_right = w.new_zeros(n_layers, groups, d1, d1) if g_right is None else g_right
        return kron_factors_back(g_left, g_right, w, ctx.n0), None


def _perm_full(st, batch: int, split: tuple[int, int]):
    """``(index, inverse, phase)`` of permutation stage ``st`` on a flattened column-layout state.

    The state ``S [d0, B, d1]`` holds amplitude ``(i, k)`` of sample ``b`` at ``i*B*d1 + b*d1 + k``;
    ``psi'[j] = psi[index[j]] * phase[j]`` becomes a gather with ``index`` expanded over the batch.
    Built once per batch size and kept in the stage's own dict (``st[4]``), so it lives as long as
    the compiled program.
    """
    cache = st[4]
    hit = cache.get(batch)
    if hit is not None:
        return hit
    d0, d1 = split
    dev = st[1].device

    def full(idx):
        i2 = idx.view(d0, 1, d1)
        b = torch.arange(batch, device=dev).view(1, batch, 1)
        return ((i2 // d1) * (batch * d1) + b * d1 + i2 % d1).reshape(-1)

    phase = None if st[2] is None else st[2].view(d0, 1, d1)
    cache[batch] = out = (full(st[1]), full(st[3]), phase)
    return out


def _gather_flat(s: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``s`` (``[d0, B, d1]`` or ``[G, d0, B, d1]``) gathered by a flat column-layout index."""
    flat = s.reshape(*s.shape[:-3], -1)
    return torch.gather(flat, -1, index.expand(*flat.shape[:-1], index.numel())).view(s.shape)


def to_columns(psi: torch.Tensor, split: tuple[int, int]) -> torch.Tensor:
    """Statevectors ``[B, D]`` in the column layout ``[d0, B, d1]`` used by :func:`layered_forward`."""
    return psi.view(psi.shape[0], *split).transpose(0, 1).contiguous()


def layered_forward(s: torch.Tensor, stages: list, left: torch.Tensor, right: torch.Tensor,
                    split: tuple[int, int]):
    """Apply ``stages`` to states in the column layout; returns ``(S [G, d0, B, d1], saved)``.

    ``s``: ``[d0, B, d1]`` (shared by the ``G`` weight copies) or ``[G, d0, B, d1]``; amplitude
    ``(i, k)`` (row and column index, :func:`split_of`) of sample ``b`` is ``s[..., i, b, k]``. In
    this layout both products of a layer, ``M = S C^T`` (``[G, d0*B, d1] @ [G, d1, d1]``) and
    ``Y = A M`` (``[G, d0, d0] @ [G, d0, B*d1]``), are single matrix products without copies.

    ``stages``: ``("perm", index, phase_or_None, inverse, cache_dict)`` or ``("layer", l)`` (factors
    ``left[l] [G, d0, d0]``, ``right[l] [G, d1, d1]``).
    """
    d0, d1 = split
    groups, batch = left.shape[1], s.shape[-2]
    saved = []
    for st in stages:
        if st[0] == "perm":
            index, _, phase = _perm_full(st, batch, split)
            s = _gather_flat(s, index)
            if phase is not None:
                s = s * phase
            continue
        a, c = left[st[1]], right[st[1]]
        if s.dim() == 3:  # shared by the groups: a stride-0 batch, no copy
            sv = s.reshape(1, d0 * batch, d1).expand(groups, -1, -1)
        else:
            sv = s.view(groups, d0 * batch, d1)
        m = torch.bmm(sv, c.transpose(-1, -2))  # [G, d0*B, d1]
        s = torch.bmm(a, m.view(groups, d0, batch * d1)).view(groups, d0, batch, d1)
        saved.append((sv, m))
    if s.dim() == 3:
        s = s.expand(groups, *s.shape)
    return s, saved


def layered_backward(gs: torch.Tensor, stages: list, left: torch.Tensor, right: torch.Tensor, saved: list,
                     split: tuple[int, int], want_factors: bool = True, acc: tuple | None = None):
    """Reverse sweep of :func:`layered_forward`: ``(g_S [G, d0, B, d1], g_left, g_right)``.

    For ``Y = A M``, ``M = S C^T``: ``dA = dY M^H``, ``dM = A^H dY``, ``dC^T = S^H dM``,
    ``dS = dM conj(C)``, each one matrix product over the whole batch.

    ``acc``: two lists of per-layer factor gradients (entries None until set) to add to, for
    backpropagation through time; they are returned as they are (:func:`stack_factor_grads` makes
    tensors of them). Without ``acc`` the factor gradients come back as ``[L, G, d, d]`` tensors.
    """
    d0, d1 = split
    groups, batch = gs.shape[0], gs.shape[-2]
    lists = acc if acc is not None else ([None] * left.shape[0], [None] * right.shape[0])
    g = gs
    it = iter(reversed(saved))
    for st in reversed(stages):
        if st[0] == "perm":
            _, inverse, phase = _perm_full(st, batch, split)
            if phase is not None:
                g = g * phase.conj()
            g = _gather_flat(g, inverse)
            continue
        l = st[1]
        sv, m = next(it)
        gy = g.reshape(groups, d0, batch * d1)
        gm = torch.bmm(left[l].mH, gy)  # A^H dY
        if want_factors:
            _add(lists[0], l, torch.bmm(gy, m.view(groups, d0, batch * d1).mH))
            _add(lists[1], l, torch.bmm(sv.mH, gm.view(groups, d0 * batch, d1)).mT)
        g = torch.bmm(gm.view(groups, d0 * batch, d1), right[l].conj()).view(groups, d0, batch, d1)
    if acc is not None:
        return g, lists[0], lists[1]
    if not want_factors:
        return g, None, None
    return (g, *stack_factor_grads(lists, left, right))


def _add(grads: list, l: int, value: torch.Tensor) -> None:
    grads[l] = value if grads[l] is None else grads[l] + value


def stack_factor_grads(lists: tuple, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-layer gradient lists of :func:`layered_backward` as ``[L, G, d, d]`` tensors (zeros where unset)."""
    def stack(grads, like):
        return torch.stack([torch.zeros_like(like[0]) if gl is None else gl for gl in grads])
    return stack(lists[0], left), stack(lists[1], right)


def probs_times(s: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """``|psi|^2 @ signs`` for column-layout states ``s [G, d0, B, d1]``: ``[G, B, K]``.

    Row by row of the split, ``sum_i p[:, i] @ signs[i]`` (one batched product and a sum), so the
    probabilities are never transposed into the ``[G, B, D]`` layout.
    """
    groups, d0, batch, d1 = s.shape
    p = s.real.square() + s.imag.square()  # (faster than abs().square(); no conjugate copy)
    out = torch.matmul(p, signs.view(d0, d1, -1))  # [G, d0, B, K]
    return out.sum(1)


def probs_back(ge: torch.Tensor, s: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Gradient ``[G, d0, B, d1]`` of the column-layout states from that of :func:`probs_times`."""
    groups, d0, batch, d1 = s.shape
    gp = (ge.reshape(groups * batch, -1) @ (2 * signs).T).view(groups, batch, d0, d1).transpose(1, 2)
    return s * gp  # (s first: the product takes s's contiguous column layout)


class LayeredExpval(torch.autograd.Function):
    """``e [G, B, K]`` for a product-state encoding, permutation/layer stages and ``<Z>`` read-outs.

    Arguments of :meth:`apply`: ``spec`` and ``vecs0`` (the encoding, as in
    :class:`~qlstm.circuit.adjoint.FusedExpval`), ``stages`` (see :func:`layered_forward`),
    ``signs [D, K]``, ``split`` (:func:`split_of`), the factors ``left [L, G, d0, d0]`` and
    ``right [L, G, d1, d1]`` (:class:`KronFactors`), then one ``[m_j, B]`` angle tensor per
    rotation group of ``spec``.
    """

    @staticmethod
    def forward(ctx, spec, vecs0, stages, signs, split, left, right, *angles):
        n = vecs0.shape[0]
        v, history = encode_forward(spec, vecs0, angles)
        psi, tree = _kron_tree(list(v.unbind(0)))  # [B, D]
        phi, saved = layered_forward(to_columns(psi, split), stages, left, right, split)
        ctx.history, ctx.tree, ctx.n, ctx.stages, ctx.split, ctx.saved = history, tree, n, stages, split, saved
        ctx.save_for_backward(phi, signs, left, right)
        return probs_times(phi, signs)

    @staticmethod
    @first_order_only
    def backward(ctx, ge):
        phi, signs, left, right = ctx.saved_tensors
        want = ctx.needs_input_grad[5] or ctx.needs_input_grad[6]
        gs, gl, gr = layered_backward(probs_back(ge, phi, signs), ctx.stages, left, right, ctx.saved, ctx.split, want)
        gpsi = gs.sum(0).transpose(0, 1).reshape(gs.shape[2], -1)  # [B, D]
        gv = torch.stack(_kron_tree_back(gpsi, ctx.tree, ctx.n))  # [n, B, 2]
        return (None, None, None, None, None, gl, gr, *encode_backward(gv, ctx.history))
