"""State-update kernels for statevectors and density matrices.

A statevector is ``[..., 2**n]``; a density matrix is ``[..., 2**n, 2**n]``.
Leading dimensions are batch dimensions (samples, measurement branches, ...)
and broadcast against batched gate matrices ``[..., d, d]``. Every function
returns a new tensor (a state is a value) and is differentiable by autograd.

A density matrix is handled as a statevector on ``2n`` wires (its row index
followed by its column index): ``U rho U^dag`` is ``U`` on the row wires and
``conj(U)`` on the column wires, and a Kraus channel is the superoperator
``sum_k K (x) conj(K)`` on the row and column wires together. One contraction
kernel therefore serves both representations.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "zero_state",
    "apply_matrix",
    "apply_diagonal",
    "apply_matrix_dm",
    "apply_kraus_dm",
    "superoperator",
    "to_density",
    "probabilities",
    "probabilities_dm",
    "marginal",
    "z_signs",
    "expval_pauli",
    "expval_pauli_dm",
    "pauli_matrix",
]


def zero_state(
    n: int, batch_shape: Sequence[int] = (), *, dtype=torch.complex128, device=None
) -> torch.Tensor:
    """``|0...0>`` on ``n`` wires, shape ``[*batch_shape, 2**n]``."""
    state = torch.zeros(*batch_shape, 2**n, dtype=dtype, device=device)
    state[..., 0] = 1
    return state


def apply_matrix(state: torch.Tensor, matrix: torch.Tensor, wires: Sequence[int], n: int) -> torch.Tensor:
    """Apply a ``2**k x 2**k`` matrix to ``wires`` of a statevector.

    Args:
        state: ``[..., 2**n]``.
        matrix: ``[2**k, 2**k]`` or ``[..., 2**k, 2**k]`` broadcastable against
            the state's leading dimensions.
        wires: the ``k`` target wires; ``wires[0]`` is the matrix's most
            significant bit.
        n: number of wires of the state.

    Returns:
        ``[..., 2**n]``, the new state.
    """
    k = len(wires)
    if k == n and all(w == i for i, w in enumerate(wires)):
        # the whole register in order: one matmul
        if matrix.dim() == 2:
            return state @ matrix.T
        return (state.unsqueeze(-2) @ matrix.transpose(-1, -2)).squeeze(-2)
    lead = state.shape[:-1]
    w0 = wires[0]
    if w0 + k < n and all(w == w0 + i for i, w in enumerate(wires)):
        # consecutive wires followed by others: view the state as [..., L, d, R] and multiply
        # from the left -- no transposed copy of the state (2-3x faster on wide batches)
        psi = state.reshape(*lead, 2**w0, 2**k, 2 ** (n - w0 - k))
        out = (matrix if matrix.dim() == 2 else matrix.unsqueeze(-3)) @ psi
        return out.reshape(*out.shape[:-3], 2**n)
    nl = len(lead)
    psi = state.reshape(*lead, *([2] * n))
    src = [nl + w for w in wires]
    dst = list(range(nl + n - k, nl + n))
    psi = psi.movedim(src, dst)
    moved_shape = psi.shape
    psi = psi.reshape(*lead, 2 ** (n - k), 2**k)
    psi = psi @ matrix.transpose(-1, -2)
    new_lead = psi.shape[:-2]  # a batched matrix may broadcast the state's batch dimensions
    shift = len(new_lead) - nl
    psi = psi.reshape(*new_lead, *moved_shape[nl:])
    return psi.movedim([d + shift for d in dst], [s + shift for s in src]).reshape(*new_lead, 2**n)


def apply_diagonal(state: torch.Tensor, diag: torch.Tensor, wires: Sequence[int], n: int) -> torch.Tensor:
    """Multiply a statevector by a diagonal gate given as its diagonal ``[..., 2**k]``.

    Cheaper than :func:`apply_matrix` for RZ, CZ, IsingZZ, phase gates.
    """
    k = len(wires)
    lead = state.shape[:-1]
    nl = len(lead)
    psi = state.reshape(*lead, *([2] * n))
    src = [nl + w for w in wires]
    dst = list(range(nl + n - k, nl + n))
    psi = psi.movedim(src, dst)
    moved_shape = psi.shape
    psi = psi.reshape(*lead, 2 ** (n - k), 2**k) * diag.unsqueeze(-2)
    new_lead = psi.shape[:-2]
    shift = len(new_lead) - nl
    psi = psi.reshape(*new_lead, *moved_shape[nl:])
    return psi.movedim([d + shift for d in dst], [s + shift for s in src]).reshape(*new_lead, 2**n)


def to_density(state: torch.Tensor) -> torch.Tensor:
    """``|psi><psi|`` for a statevector ``[..., 2**n]`` -> ``[..., 2**n, 2**n]``."""
    return state.unsqueeze(-1) * state.conj().unsqueeze(-2)


def apply_matrix_dm(rho: torch.Tensor, matrix: torch.Tensor, wires: Sequence[int], n: int) -> torch.Tensor:
    """``U rho U^dag`` with ``U`` acting on ``wires``; rho is ``[..., 2**n, 2**n]``."""
    lead = rho.shape[:-2]
    vec = rho.reshape(*lead, 4**n)
    vec = apply_matrix(vec, matrix, list(wires), 2 * n)
    vec = apply_matrix(vec, matrix.conj(), [n + w for w in wires], 2 * n)
    return vec.reshape(*vec.shape[:-1], 2**n, 2**n)


def superoperator(kraus: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """``sum_k K_k (x) conj(K_k)``: the channel as a matrix on (row wires, column wires).

    Args:
        kraus: ``[m, d, d]`` (or a list of ``[..., d, d]``) Kraus operators.

    Returns:
        ``[..., d*d, d*d]``.
    """
    if not isinstance(kraus, torch.Tensor):
        kraus = torch.stack(list(kraus), dim=-3)
    d = kraus.shape[-1]
    sup = kraus.unsqueeze(-1).unsqueeze(-3) * kraus.conj().unsqueeze(-2).unsqueeze(-4)
    # sup[..., m, i, a, j, b] = K[i, j] conj(K[a, b]); rows (i, a), columns (j, b)
    sup = sup.reshape(*kraus.shape[:-2], d * d, d * d).sum(dim=-3)
    return sup


def apply_kraus_dm(
    rho: torch.Tensor, kraus: Sequence[torch.Tensor] | torch.Tensor, wires: Sequence[int], n: int
) -> torch.Tensor:
    """``sum_k K_k rho K_k^dag`` with the Kraus operators acting on ``wires``."""
    lead = rho.shape[:-2]
    vec = rho.reshape(*lead, 4**n)
    vec = apply_matrix(vec, superoperator(kraus), list(wires) + [n + w for w in wires], 2 * n)
    return vec.reshape(*vec.shape[:-1], 2**n, 2**n)


def probabilities(state: torch.Tensor) -> torch.Tensor:
    """Basis-state probabilities ``|psi_i|^2`` of a statevector, ``[..., 2**n]`` (real)."""
    return state.real.square() + state.imag.square()


def probabilities_dm(rho: torch.Tensor) -> torch.Tensor:
    """Diagonal of a density matrix, ``[..., 2**n]`` (real)."""
    return torch.diagonal(rho, dim1=-2, dim2=-1).real


def marginal(probs: torch.Tensor, wires: Sequence[int], n: int) -> torch.Tensor:
    """Marginal distribution of ``wires`` (in the given order) from ``[..., 2**n]`` probabilities."""
    lead = probs.shape[:-1]
    nl = len(lead)
    p = probs.reshape(*lead, *([2] * n))
    keep = [nl + w for w in wires]
    drop = [nl + w for w in range(n) if w not in wires]
    if drop:
        p = p.sum(dim=drop, keepdim=True)
    p = p.movedim(keep, list(range(nl, nl + len(wires))))
    return p.reshape(*lead, 2 ** len(wires))


def z_signs(n: int, wires: Sequence[int], *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Eigenvalues of ``Z_{w_1} Z_{w_2} ...`` on each basis state, ``[2**n]`` of +-1."""
    idx = torch.arange(2**n, device=device)
    parity = torch.zeros(2**n, dtype=torch.long, device=device)
    for w in wires:
        parity ^= (idx >> (n - 1 - w)) & 1
    return (1 - 2 * parity).to(dtype)


_PAULI = {
    "I": [[1, 0], [0, 1]],
    "X": [[0, 1], [1, 0]],
    "Y": [[0, -1j], [1j, 0]],
    "Z": [[1, 0], [0, -1]],
}


def pauli_matrix(letter: str, *, dtype=torch.complex128, device=None) -> torch.Tensor:
    """2x2 matrix of the Pauli ``letter`` in ``IXYZ``."""
    return torch.tensor(_PAULI[letter], dtype=dtype, device=device)


def expval_pauli(state: torch.Tensor, paulis: str, wires: Sequence[int], n: int) -> torch.Tensor:
    """``<psi| P |psi>`` for the Pauli string ``paulis`` on ``wires``; ``[...]`` real.

    Z-only strings use the probability vector; others apply the string once.
    """
    if set(paulis) <= {"Z", "I"}:
        zw = [w for p, w in zip(paulis, wires) if p == "Z"]
        signs = z_signs(n, zw, dtype=state.real.dtype, device=state.device)
        return probabilities(state) @ signs
    out = state
    for p, w in zip(paulis, wires):
        if p != "I":
            out = apply_matrix(out, pauli_matrix(p, dtype=state.dtype, device=state.device), [w], n)
    return (state.conj() * out).sum(-1).real


def expval_pauli_dm(rho: torch.Tensor, paulis: str, wires: Sequence[int], n: int) -> torch.Tensor:
    """``tr(P rho)`` for the Pauli string ``paulis`` on ``wires``; ``[...]`` real."""
    if set(paulis) <= {"Z", "I"}:
        zw = [w for p, w in zip(paulis, wires) if p == "Z"]
        signs = z_signs(n, zw, dtype=rho.real.dtype, device=rho.device)
        return probabilities_dm(rho) @ signs
    lead = rho.shape[:-2]
    vec = rho.reshape(*lead, 4**n)
    for p, w in zip(paulis, wires):
        if p != "I":
            vec = apply_matrix(vec, pauli_matrix(p, dtype=rho.dtype, device=rho.device), [w], 2 * n)
    prho = vec.reshape(*lead, 2**n, 2**n)
    return torch.diagonal(prho, dim1=-2, dim2=-1).sum(-1).real
