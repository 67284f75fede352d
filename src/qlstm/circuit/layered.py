r"""Hand-written forward/backward for medium registers (5 to 8 qubits) in *layered* form.

At 7 or 8 qubits a QLSTM's VQCs are too wide for the Heisenberg picture (``4**n``
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

from .adjoint import _kron_grads, _kron_matrices, _kron_tree, _kron_tree_back, encode_backward, encode_forward

__all__ = ["LayeredExpval", "KronFactors", "kron_factors", "kron_factors_back", "layered_forward",
           "layered_backward", "probs_times", "split_of"]


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


def layered_forward(psi: torch.Tensor, stages: list, left: torch.Tensor, right: torch.Tensor,
                    split: tuple[int, int]):
    """Apply ``stages`` to ``psi [B, D]`` (or ``[G, B, D]``); returns ``(phi [G, B, D], saved)``.

    ``stages``: ``("perm", index, phase_or_None, inverse)`` or ``("layer", l)`` (factors
    ``left[l] [G, d0, d0]``, ``right[l] [G, d1, d1]``).
    """
    d0, d1 = split
    groups = left.shape[1]
    saved = []
    for st in stages:
        if st[0] == "perm":
            psi = _gather(psi, st[1])
            if st[2] is not None:
                psi = psi * st[2]
            continue
        a, c = left[st[1]], right[st[1]]
        x = psi.unflatten(-1, (d0, d1))  # [B, d0, d1] or [G, B, d0, d1]
        batch = x.shape[-3]
        if x.dim() == 3:  # shared by the groups: a stride-0 batch, no copy
            m = torch.bmm(x.reshape(1, batch * d0, d1).expand(groups, -1, -1), c.transpose(-1, -2))
            x = x.expand(groups, *x.shape)
        else:
            m = x.reshape(groups, batch * d0, d1) @ c.transpose(-1, -2)
        m = m.view(groups, batch, d0, d1)
        psi = torch.einsum("gij,gbjk->gbik", a, m).reshape(groups, batch, d0 * d1)
        saved.append((x, m))
    if psi.dim() == 2:
        psi = psi.expand(groups, *psi.shape)
    return psi, saved


def _gather(psi: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``psi[..., index]`` (``torch.gather`` with an expanded index is about twice as fast as indexing)."""
    return torch.gather(psi, -1, index.expand(*psi.shape[:-1], index.numel()))


def layered_backward(gphi: torch.Tensor, stages: list, left: torch.Tensor, right: torch.Tensor, saved: list,
                     split: tuple[int, int], want_factors: bool = True, acc: tuple | None = None):
    """Reverse sweep of :func:`layered_forward`: ``(g_psi [G, B, D], g_left, g_right)``.

    ``acc``: factor gradients ``(g_left, g_right)`` to add to in place (backpropagation through
    time calls this once per step).
    """
    d0, d1 = split
    groups, batch = gphi.shape[0], gphi.shape[1]
    if acc is not None:
        g_left, g_right = acc
    else:
        g_left = torch.zeros_like(left) if want_factors else None
        g_right = torch.zeros_like(right) if want_factors else None
    g = gphi
    it = iter(reversed(saved))
    for st in reversed(stages):
        if st[0] == "perm":
            if st[2] is not None:
                g = g * st[2].conj()
            g = _gather(g, st[3])
            continue
        l = st[1]
        x, m = next(it)
        gy = g.view(groups, batch, d0, d1)
        gm = torch.einsum("gji,gbjk->gbik", left[l].conj(), gy)  # A^H dY
        if want_factors:
            g_left[l] += (gy @ m.mH).sum(1)
            g_right[l] += gm.reshape(groups, batch * d0, d1).mT @ x.reshape(groups, batch * d0, d1).conj()
        g = (gm.reshape(groups, batch * d0, d1) @ right[l].conj()).view(groups, batch, d0 * d1)
    return g, g_left, g_right


def probs_times(phi: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """``|phi|^2 @ signs`` (``(phi * conj(phi)).real`` is several times faster than ``abs().square()``)."""
    return (phi * phi.conj()).real @ signs


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
        phi, saved = layered_forward(psi, stages, left, right, split)
        ctx.history, ctx.tree, ctx.n, ctx.stages, ctx.split, ctx.saved = history, tree, n, stages, split, saved
        ctx.save_for_backward(phi, signs, left, right)
        return probs_times(phi, signs)

    @staticmethod
    def backward(ctx, ge):
        phi, signs, left, right = ctx.saved_tensors
        gphi = 2 * (ge @ signs.T) * phi
        want = ctx.needs_input_grad[5] or ctx.needs_input_grad[6]
        gpsi, gl, gr = layered_backward(gphi, ctx.stages, left, right, ctx.saved, ctx.split, want)
        gv = torch.stack(_kron_tree_back(gpsi.sum(0), ctx.tree, ctx.n))  # [n, B, 2]
        return (None, None, None, None, None, gl, gr, *encode_backward(gv, ctx.history))
