"""Heisenberg-picture evaluation of small encoded circuits, in real arithmetic.

For a circuit "product-state encoding, data-independent unitary ``U``, Pauli
read-outs" the expectation values are

.. math::
    \\langle O_k \\rangle = \\mathrm{Tr}\\big(\\rho(x)\\, U^\\dagger O_k U\\big),\\qquad
    \\rho(x) = \\bigotimes_w \\tfrac12 \\big(I + \\vec r_w(x)\\cdot\\vec\\sigma\\big)

so with the *Pauli transfer table* :math:`T_{\\alpha k} = 2^{-n}\\,\\mathrm{Tr}(P_\\alpha U^\\dagger O_k U)`
over the :math:`4^n` Pauli strings :math:`P_\\alpha`,

.. math::
    \\langle O_k \\rangle = \\sum_\\alpha T_{\\alpha k} \\prod_w (1, r_w^x, r_w^y, r_w^z)_{\\alpha_w}

-- one real Kronecker product of per-wire Bloch 4-vectors and one real
matrix product per call. ``T`` depends on the weights only: it is built once
per forward pass (:func:`pauli_transfer`) and reused at every time step of a
recurrent model, for every sample. A data-dependent rotation of the encoding
rotates the wire's Bloch vector (:func:`bloch_prefix`); no complex numbers,
no ``2^n`` statevector per sample.

This pays while :math:`4^n` stays small (QLSTM gate VQCs: ``n = 4`` gives 256
features); :class:`~qlstm.circuit.plan.BoundProgram` uses it up to
``Program.heisenberg_max_qubits`` and the statevector path above that. The
statevector path (and ``run(..., method="reference")``) is the reference the
tests compare it against.
"""

from __future__ import annotations

import math

import torch

from ..sim import kernels as K
from ._autograd import first_order_only
from .adjoint import _kron_tree, _kron_tree_back, _put_wires

__all__ = [
    "BlochExpval", "PauliExpval", "TransferRows", "WeightZYZRotation", "transfer_rows_plain", "bloch_features",
    "bloch_features_back", "bloch_of", "bloch_prefix",
    "bloch_rotation", "conjugate_rows",
    "constant_transfer", "observable_matrices", "observable_vectors", "pauli_transfer", "rotation_spec", "so3_of",
]

# E[(r, c), p] = (sigma_p)_{c r} / 2, p over (I, X, Y, Z): Tr(P M) = sum_rc P_cr M_rc per qubit
_E = ((0.5, 0, 0, 0.5), (0, 0.5, 0.5j, 0), (0, 0.5, -0.5j, 0), (0.5, 0, 0, -0.5))
_CACHE: dict = {}


def _cached(key, make):
    t = _CACHE.get(key)
    if t is None:
        t = _CACHE[key] = make()
    return t


def _string_matrix(letters: str, dtype, device) -> torch.Tensor:
    m = K.pauli_matrix(letters[0], dtype=dtype, device=device)
    for p in letters[1:]:
        m = torch.kron(m, K.pauli_matrix(p, dtype=dtype, device=device))
    return m


def _letters(o, n: int) -> str:
    letters = ["I"] * n
    for p, w in zip(o.paulis, o.wires):
        letters[w] = p
    return "".join(letters)


def observable_matrices(observables, n: int, dtype, device) -> torch.Tensor:
    """``[K, 2**n, 2**n]`` dense matrices of Pauli-string observables (constants, cached)."""
    key = ("obs", tuple(_letters(o, n) for o in observables), dtype, str(device))
    return _cached(key, lambda: torch.stack([_string_matrix(_letters(o, n), dtype, device) for o in observables]))


def observable_vectors(observables, n: int, dtype, device) -> torch.Tensor:
    """``[K, 4**n]`` Pauli-basis coefficients of Pauli-string observables (one-hot rows)."""
    def make():
        out = torch.zeros(len(observables), 4**n, dtype=dtype, device=device)
        for k, o in enumerate(observables):
            out[k, sum("IXYZ".index(p) * 4 ** (n - 1 - w) for w, p in enumerate(_letters(o, n)))] = 1
        return out

    return _cached(("obsvec", tuple(_letters(o, n) for o in observables), dtype, str(device)), make)


def pauli_transfer(m: torch.Tensor | None, observables, n: int, dtype, device) -> torch.Tensor:
    """Pauli transfer table ``[4**n, *G, K]`` (real) of a unitary and observables.

    Args:
        m: ``[*G, 2**n, 2**n]`` unitary in rows form (``state @ m`` applies ``U``,
            i.e. ``m = U^T``), or None for the identity.
        observables: the circuit's Pauli-string observables (``.paulis``, ``.wires``),
            or a ``[K, 2**n, 2**n]`` tensor of Hermitian matrices.

    Entry ``[alpha, g, k]`` is :math:`2^{-n}\\mathrm{Tr}(P_\\alpha U_g^\\dagger O_k U_g)`,
    with ``alpha`` the base-4 digits ``(I, X, Y, Z) = 0..3`` of wires ``0..n-1``,
    wire 0 most significant. Differentiable with respect to ``m``.
    """
    obs = observables if isinstance(observables, torch.Tensor) else observable_matrices(observables, n, dtype, device)
    if m is None:
        heis = obs
    else:
        # U^dag O U with U = m^T: conj(m) @ O @ m^T
        heis = m.conj().unsqueeze(-3) @ obs @ m.transpose(-1, -2).unsqueeze(-3)  # [*G, K, d, d]
    lead = heis.shape[:-2]
    x = heis.reshape(-1, *([2] * (2 * n)))
    # interleave row and column bit of every qubit: [..., r0, c0, r1, c1, ...]
    perm = [0] + [1 + q + off for q in range(n) for off in (0, n)]
    x = x.permute(perm).reshape(-1, *([4] * n))
    e = _cached(("E", dtype, str(device)), lambda: torch.tensor(_E, dtype=dtype, device=device))
    for _ in range(n):
        x = torch.tensordot(x, e, dims=([1], [0]))  # contracts one qubit's (r, c); its Pauli index goes last
    t = x.real.reshape(*lead, 4**n)  # [*G, K, 4**n], Pauli digits in wire order
    return t.movedim(-1, 0)


def constant_transfer(m: torch.Tensor, n: int) -> tuple:
    """How a constant unitary (rows form ``[2**n, 2**n]``) maps Pauli coefficient rows ``o -> o'``.

    ``o'_alpha = sum_beta o_beta Q[beta, alpha]`` with
    :math:`Q_{\\beta\\alpha} = 2^{-n}\\mathrm{Tr}(P_\\alpha U^\\dagger P_\\beta U)`.
    Returns ``("perm", source, sign)`` when ``Q`` is a signed permutation (every
    Clifford block: CNOT rings, SWAP, CZ, H, S), else ``("dense", Q, None)``; float64.
    """
    names = ["".join("IXYZ"[(a >> (2 * (n - 1 - w))) & 3] for w in range(n)) for a in range(4**n)]
    basis = torch.stack([_string_matrix(nm, torch.complex128, m.device) for nm in names])
    q = pauli_transfer(m.to(torch.complex128), basis, n, torch.complex128, m.device).T  # [beta, alpha]
    nz = q.abs() > 1e-9
    if bool((nz.sum(0) == 1).all()) and bool(torch.allclose(q.abs()[nz], torch.ones(()).double())):
        source = nz.double().argmax(0)
        return ("perm", source, q[source, torch.arange(4**n)].sign())  # exactly +-1
    return ("dense", q, None)


def bloch_rotation(name: str, params: list[torch.Tensor], plain: bool = False) -> torch.Tensor | None:
    """Closed-form Bloch rotation ``[..., 3, 3]`` of a one-qubit rotation gate, else None.

    ``R_ij`` with :math:`G\\sigma_jG^\\dagger = \\sum_i R_{ij}\\sigma_i`: ``RX/RY/RZ(theta)`` turn
    about their axis, the phase gate is ``RZ`` up to a global phase,
    ``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)`` and Qiskit's
    ``U(theta, phi, lam) = RZ(phi) RY(theta) RZ(lam)`` up to phase. Real arithmetic only,
    all gates of a group in one call. ``plain``: plain tensor operations for ``Rot``/``U``
    instead of :class:`ZYZRotation` (for ``torch.compile``, which derives its own backward).
    """
    if name in _ROTATION_PLANE:
        th = params[0]
        c, s = torch.cos(th), torch.sin(th)
        one, zero = torch.ones_like(c), torch.zeros_like(c)
        i, j = _ROTATION_PLANE[name]
        k = 3 - i - j
        entries = [[None] * 3 for _ in range(3)]
        entries[i][i], entries[i][j], entries[j][i], entries[j][j] = c, -s, s, c
        entries[k][k] = one
        for a in range(3):
            for b in range(3):
                if entries[a][b] is None:
                    entries[a][b] = zero
        return torch.stack([e for row in entries for e in row], -1).unflatten(-1, (3, 3))
    if name == "rot":
        phi, theta, omega = torch.broadcast_tensors(*params)
    elif name == "u3":
        theta, omega, phi = torch.broadcast_tensors(*params)
    else:
        return None
    if plain:
        cs = torch.stack([phi, theta, omega])
        (c1, c2, c3), (s1, s2, s3) = torch.cos(cs), torch.sin(cs)
        return _zyz(c1, s1, c2, s2, c3, s3)
    return ZYZRotation.apply(phi, theta, omega)


def _zyz(c1, s1, c2, s2, c3, s3) -> torch.Tensor:
    c2c1, c2s1 = c2 * c1, c2 * s1
    return torch.stack([
        c3 * c2c1 - s3 * s1, -c3 * c2s1 - s3 * c1, c3 * s2,
        s3 * c2c1 + c3 * s1, c3 * c1 - s3 * c2s1, s3 * s2,
        -s2 * c1, s2 * s1, c2,
    ], -1).unflatten(-1, (3, 3))


class ZYZRotation(torch.autograd.Function):
    """``R = R_z(omega) R_y(theta) R_z(phi)`` in SO(3), ``[..., 3, 3]``, with a closed-form backward.

    Built once per forward pass for every ``Rot`` layer of a VQC; autograd over its dozen
    elementwise operations costs more than the arithmetic. Derivatives: ``dR/dphi = R K_z``,
    ``dR/domega = K_z R`` (``K_z`` the generator of z rotations) and ``dR/dtheta`` entry by entry.
    """

    @staticmethod
    def forward(ctx, phi, theta, omega):
        cs = torch.stack([phi, theta, omega])
        (c1, c2, c3), (s1, s2, s3) = torch.cos(cs), torch.sin(cs)
        r = _zyz(c1, s1, c2, s2, c3, s3)
        ctx.save_for_backward(r, c1, s1, c2, s2, c3, s3)
        return r

    @staticmethod
    @first_order_only
    def backward(ctx, g):
        return _zyz_grads(g, *ctx.saved_tensors)


def _zyz_grads(g, r, c1, s1, c2, s2, c3, s3):
    """``(g_phi, g_theta, g_omega)`` of :func:`_zyz` from the gradient ``g`` of ``r``."""
    # R K_z has columns (R[:, 1], -R[:, 0], 0); K_z R has rows (-R[1], R[0], 0)
    g_phi = (g[..., :, 0] * r[..., :, 1] - g[..., :, 1] * r[..., :, 0]).sum(-1)
    g_omega = (g[..., 1, :] * r[..., 0, :] - g[..., 0, :] * r[..., 1, :]).sum(-1)
    d_theta = torch.stack([
        -c3 * s2 * c1, c3 * s2 * s1, c3 * c2,
        -s3 * s2 * c1, s3 * s2 * s1, s3 * c2,
        -c2 * c1, c2 * s1, -s2,
    ], -1).unflatten(-1, (3, 3))
    g_theta = (g * d_theta).sum((-2, -1))
    return g_phi, g_theta, g_omega


class WeightZYZRotation(torch.autograd.Function):
    """``apply(w [*L, n_w], index [3, m])`` -> ``[m, *L, 3, 3]``: the Bloch rotations of ``m`` ``Rot``
    gates whose angles are plain weights, ``(phi, theta, omega)`` of gate ``j`` at
    ``w[..., index[:, j]]``.

    The same matrix as :class:`ZYZRotation`, with the weight lookup inside the node (one
    autograd node from the weights to the rotations; they are rebuilt every forward pass) and
    the nine entries as one product of a constant ``[9, 27]`` matrix with the monomials
    :math:`u_{1a} u_{2b} u_{3c}`, ``u = (cos, sin, 1)`` of the three angles, so that forward and
    backward are a handful of operations. A weight shared by several gates collects all their
    gradients.
    """

    @staticmethod
    def forward(ctx, w, index):
        m = index.shape[1]
        ang = w.index_select(-1, index.reshape(-1)).unflatten(-1, (3, m)).movedim(-2, 0).reshape(3, -1)  # [3, N]
        c, s = torch.cos(ang), torch.sin(ang)
        u = torch.stack([c, s, torch.ones_like(c)], 1)  # [3 angles, 3, N]
        u12 = u[0].unsqueeze(1) * u[1].unsqueeze(0)  # [3, 3, N]
        mono = (u12.unsqueeze(2) * u[2]).reshape(27, -1)  # [27, N]
        kmat = _zyz_matrix(w.dtype, w.device)  # [9, 27]
        r = (kmat @ mono).T.reshape(*ang.shape[1:], 3, 3)
        ctx.save_for_backward(u, u12, index)
        ctx.w_shape, ctx.m = w.shape, m
        return r.view(*w.shape[:-1], m, 3, 3).movedim(-3, 0)

    @staticmethod
    @first_order_only
    def backward(ctx, g):
        u, u12, index = ctx.saved_tensors
        m = ctx.m
        gr = g.movedim(0, -3).reshape(-1, 9)  # [N, 9] in the forward's (L, m) order
        gmono = (gr @ _zyz_matrix(g.dtype, g.device)).T.reshape(3, 3, 3, -1)  # [a, b, c, N]
        g3 = (gmono * u12.unsqueeze(2)).sum((0, 1))  # [c, N]
        g12 = (gmono * u[2]).sum(2)  # [a, b, N]
        g1 = (g12 * u[1].unsqueeze(0)).sum(1)
        g2 = (g12 * u[0].unsqueeze(1)).sum(0)
        gu = torch.stack([g1, g2, g3])  # [3 angles, 3, N]
        # d(cos, sin, 1)/d angle = (-sin, cos, 0)
        g_ang = gu[:, 1] * u[:, 0] - gu[:, 0] * u[:, 1]  # [3, N]
        g_ang = g_ang.view(3, *ctx.w_shape[:-1], m).movedim(0, -2).flatten(-2)  # [*L, 3m]
        g_w = torch.zeros(ctx.w_shape, dtype=g.dtype, device=g.device)
        return g_w.index_add_(-1, index.reshape(-1), g_ang), None


def _zyz_matrix(dtype, device) -> torch.Tensor:
    """``[9, 27]``: :func:`_zyz`'s nine entries as integer combinations of the 27 monomials
    ``u1_a u2_b u3_c`` (column ``9a + 3b + c``, ``u = (cos, sin, 1)`` of ``(phi, theta, omega)``).

    Fitted once on random angles (the monomials are linearly independent functions, and the
    coefficients are integers, so rounding the least-squares fit makes it exact); cached.
    """
    def make():
        gen = torch.Generator(device="cpu").manual_seed(0)
        ang = torch.rand(3, 64, dtype=torch.float64, generator=gen, device="cpu") * 6.3
        c, s = torch.cos(ang), torch.sin(ang)
        u = torch.stack([c, s, torch.ones_like(c)], 1)  # [3, 3, 64]
        mono = (u[0][:, None, None] * u[1][None, :, None] * u[2][None, None, :]).reshape(27, -1)
        r = _zyz(c[0], s[0], c[1], s[1], c[2], s[2]).reshape(-1, 9)  # [64, 9]
        k = torch.linalg.lstsq(mono.T, r).solution.T.round()  # [9, 27]
        assert torch.allclose(k @ mono, r.T, atol=1e-12)
        return k.to(dtype=dtype, device=device)
    return _cached(("zyz_matrix", dtype, str(device)), make)


def conjugate_rows(o: torch.Tensor, rot: torch.Tensor, wire: int, n: int) -> torch.Tensor:
    """Pauli coefficient rows ``o [..., 4**n]`` after conjugation by a one-qubit gate on ``wire``.

    With :math:`G\\sigma_jG^\\dagger = \\sum_i R_{ij}\\sigma_i` (``rot`` ``[*G, 3, 3]``),
    :math:`G^\\dagger (\\sum_i o_i\\sigma_i) G = \\sum_j (\\sum_i o_i R_{ij})\\sigma_j`:
    the wire's axis of ``o`` is multiplied by :math:`1 \\oplus R` (identity part unchanged).
    Returns ``[*G, ..., 4**n]`` (leading group dimensions of ``rot`` broadcast in front).
    """
    r4t = torch.nn.functional.pad(rot.transpose(-1, -2), (1, 0, 1, 0)) + _unit00(rot.dtype, rot.device)
    lead = o.shape[:-1]
    o = o.reshape(*lead, 4**wire, 4, 4 ** (n - 1 - wire))
    o = r4t.unsqueeze(-3).unsqueeze(-3) @ o
    return o.reshape(*o.shape[:-3], 4**n)


def _unit00(dtype, device) -> torch.Tensor:
    def make():
        e = torch.zeros(4, 4, dtype=dtype, device=device)
        e[0, 0] = 1
        return e

    return _cached(("e00", dtype, str(device)), make)


def bloch_of(vecs: torch.Tensor) -> torch.Tensor:
    """Bloch vectors ``[..., 3]`` (real) of single-qubit states ``[..., 2]`` (complex)."""
    a, b = vecs[..., 0], vecs[..., 1]
    ab = a.conj() * b
    return torch.stack([2 * ab.real, 2 * ab.imag, a.abs().square() - b.abs().square()], -1)


def so3_of(u: torch.Tensor) -> torch.Tensor:
    """The rotation ``[..., 3, 3]`` that a single-qubit unitary ``[..., 2, 2]`` does to Bloch vectors.

    :math:`R_{ij} = \\tfrac12 \\mathrm{Tr}(\\sigma_i U \\sigma_j U^\\dagger)`.
    """
    sig = _cached(("sig", u.dtype, str(u.device)),
                  lambda: torch.stack([K.pauli_matrix(p, dtype=u.dtype, device=u.device) for p in "XYZ"]))
    conj_t = u.conj().transpose(-1, -2)
    return 0.5 * torch.einsum("iab,...bc,jcd,...da->...ij", sig, u, sig, conj_t).real


# axis of each rotation and the pair (a, b) it turns: a' = a cos - b sin, b' = a sin + b cos
_ROTATION_PLANE = {"rx": (1, 2), "ry": (2, 0), "rz": (0, 1), "phaseshift": (0, 1)}


def _turn(name: str, c: torch.Tensor, s: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``r [m, B, 3]`` turned in the plane of rotation ``name`` by the angle with cosine ``c``, sine ``s``."""
    i, j = _ROTATION_PLANE[name]
    a, b = r[..., i], r[..., j]
    comps = list(r.unbind(-1))
    comps[i], comps[j] = a * c - b * s, a * s + b * c
    return torch.stack(comps, -1)


def rotate_bloch(name: str, theta: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``r [m, B, 3]`` rotated by the one-angle rotation ``name`` with angles ``theta [m, B]``.

    ``R_P(theta)`` turns the Bloch vector about axis ``P`` by ``theta``; the
    phase gate is ``RZ`` up to a global phase.
    """
    return _turn(name, torch.cos(theta), torch.sin(theta), r)


def bloch_prefix(r0: torch.Tensor, groups, x: torch.Tensor, dtype) -> torch.Tensor:
    """Per-wire Bloch vectors ``[n, B, 3]`` after the data-reading prefix groups.

    Args:
        r0: ``[n, 3]`` Bloch vectors of the data-free start (after the static prefix).
        groups: prefix gate groups (:class:`~qlstm.circuit.plan._Group`) in order;
            their parameters read inputs and constants only.
        x: ``[B, n_inputs]`` data batch; ``dtype``: the complex simulation dtype.
    """
    n, batch = r0.shape[0], x.shape[0]
    rdtype = r0.dtype
    r = r0.unsqueeze(1).expand(n, batch, 3)
    for grp in groups:
        wires = list(grp.wires)
        whole = wires == list(range(n))
        sub = r if whole else r[wires]
        if grp.name in _ROTATION_PLANE:
            theta = grp.slots[0].evaluate(x, None, rdtype, x.device)
            if theta.dim() == 1:
                theta = theta.unsqueeze(-1)
            new = rotate_bloch(grp.name, theta, sub)
        else:
            rot = so3_of(grp.matrices(x, None, dtype, x.device))  # [m, (B,) 3, 3]
            if rot.dim() == 3:
                rot = rot.unsqueeze(1)
            new = (rot @ sub.unsqueeze(-1)).squeeze(-1)
        r = _put_wires(r, wires, whole, new.expand(len(wires), batch, 3))
    return r


def bloch_features(r: torch.Tensor) -> tuple:
    """Features ``(1, r_0) (x) ... (x) (1, r_{n-1})`` ``[B, 4**n]`` of Bloch vectors ``r [n, B, 3]``,
    and the Kronecker tree :func:`bloch_features_back` needs.

    ``features @ table`` with a :meth:`Program.transfer_table` gives the expectation values.
    """
    ones = torch.ones(*r.shape[:-1], 1, dtype=r.dtype, device=r.device)
    return _kron_tree(list(torch.cat([ones, r], -1).unbind(0)))


def bloch_features_back(gf: torch.Tensor, tree, n: int) -> torch.Tensor:
    """Gradient ``[n, B, 3]`` of the Bloch vectors from that of the features ``gf [B, 4**n]``."""
    return torch.stack(_kron_tree_back(gf, tree, n))[..., 1:]


class PauliExpval(torch.autograd.Function):
    """``[B, C]`` from Bloch vectors ``r [n, B, 3]`` and a flattened table ``t [4**n, C]``.

    Forward: features ``f = (1, r_0) (x) ... (x) (1, r_{n-1})`` ``[B, 4**n]``, then ``f @ t``.
    Backward by hand: ``dt = f^T g``, ``df = g t^T``, and each wire's factor gradient by
    contracting ``df`` with the other wires' factors (Kronecker tree by halves).
    """

    @staticmethod
    def forward(ctx, r, t):
        f, tree = bloch_features(r)
        ctx.tree, ctx.n = tree, r.shape[0]
        ctx.save_for_backward(f, t)
        return f @ t

    @staticmethod
    @first_order_only
    def backward(ctx, g):
        f, t = ctx.saved_tensors
        gt = f.T @ g if ctx.needs_input_grad[1] else None
        gr = None
        if ctx.needs_input_grad[0]:
            gr = bloch_features_back(g @ t.T, ctx.tree, ctx.n)
        return gr, gt


def rotation_spec(groups, dtype, device) -> list | None:
    """What :class:`BlochExpval` needs of the prefix groups, or None if a group needs the generic path.

    One ``(name, wires, fixed)`` per group: ``fixed`` is the constant Bloch rotation
    ``[3, 3]`` of a parameter-free gate (H, S, X, ...), None for the one-angle
    rotations of :data:`_ROTATION_PLANE`.
    """
    from ..sim.gates import lookup

    spec = []
    for grp in groups:
        if grp.name in _ROTATION_PLANE:
            spec.append((grp.name, tuple(grp.wires), None))
        elif lookup(grp.name).num_params == 0:
            rdtype = torch.float64 if dtype == torch.complex128 else torch.float32
            fixed = so3_of(lookup(grp.name).matrix((), dtype=torch.complex128, device=device)).to(rdtype)
            spec.append((grp.name, tuple(grp.wires), fixed))
        else:
            return None
    return spec


class BlochExpval(torch.autograd.Function):
    """Encoding rotations, Kronecker product and transfer table in one autograd node.

    ``apply(spec, r0, t, *angles)``: start Bloch vectors ``r0 [n, 3]``, a
    :func:`rotation_spec`, a flattened table ``t [4**n, C]`` and one angle tensor
    ``[m, B]`` (or ``[m, 1]`` for constants) per rotation group; returns ``[B, C]``.
    The same numbers as :func:`bloch_prefix` followed by :class:`PauliExpval`, with
    a hand-written backward: a rotation in the ``(i, j)`` plane gives
    :math:`\\partial L/\\partial\\theta = g_j r'_i - g_i r'_j` from its output ``r'`` and
    passes :math:`R^T g` on.
    """

    @staticmethod
    def forward(ctx, spec, r0, t, *angles):
        n = r0.shape[0]
        batch = max((a.shape[-1] for a in angles), default=1)
        r = r0.unsqueeze(1).expand(n, batch, 3)
        history, it = [], iter(angles)
        for name, wires, fixed in spec:
            whole = len(wires) == n and wires == tuple(range(n))
            sub = r if whole else r[list(wires)]
            if fixed is not None:
                new, saved = sub @ fixed.T, None
            else:
                theta = next(it)
                c, s = torch.cos(theta), torch.sin(theta)
                new, saved = _turn(name, c, s, sub), (c, s, theta.shape)
            r = _put_wires(r, wires, whole, new)
            history.append((name, wires, whole, fixed, saved, new))
        f, tree = bloch_features(r)
        ctx.history, ctx.tree, ctx.n = history, tree, n
        ctx.save_for_backward(f, t)
        return f @ t

    @staticmethod
    @first_order_only
    def backward(ctx, g):
        f, t = ctx.saved_tensors
        n = ctx.n
        gt = f.T @ g if ctx.needs_input_grad[2] else None
        grads = []
        gr = bloch_features_back(g @ t.T, ctx.tree, n)  # [n, B, 3]
        for name, wires, whole, fixed, saved, out in reversed(ctx.history):
            gout = gr if whole else gr[list(wires)]
            if fixed is not None:
                gin = gout @ fixed
            else:
                c, s, shape = saved
                i, j = _ROTATION_PLANE[name]
                gi, gj = gout[..., i], gout[..., j]
                grads.append((gj * out[..., i] - gi * out[..., j]).sum_to_size(shape))
                gin = _turn(name, c, -s, gout)  # R^T g: the same turn backwards
            gr = _put_wires(gr, wires, whole, gin)
        grads.reverse()
        g_r0 = gr.sum(1) if ctx.needs_input_grad[1] else None
        return (None, g_r0, gt, *grads)


def _rows_setup(o: torch.Tensor, rots) -> tuple:
    """``(lead, k, r4, rows)``: the weight-group shape, the number of observables, each group's
    ``1 (+) R`` padded and repeated over the ``K`` rows once (a tuple of ``[G * K, 4, 4]`` per gate,
    so that every step is one plain bmm over ``G * K``, no broadcasting inside the product), and
    the rows flattened to ``[G * K, 4**n]``."""
    e00 = _unit00(o.dtype, o.device)
    lead = rots[0].shape[1:-2] if rots else ()
    if any(r.shape[1:-2] != lead for r in rots):
        raise ValueError(f"internal: TransferRows needs the same weight-group shape for every gate group, got "
                         f"{[tuple(r.shape[1:-2]) for r in rots]}")
    k = o.shape[0]
    r4 = [(torch.nn.functional.pad(r, (1, 0, 1, 0)) + e00).unsqueeze(-3).expand(r.shape[0], *lead, k, 4, 4)
          .reshape(r.shape[0], -1, 4, 4).unbind(0) for r in rots]
    return lead, k, r4, o.expand(*lead, *o.shape).reshape(-1, o.shape[-1])


def _rows_sweep(plan, o: torch.Tensor, r4, history: list | None = None) -> torch.Tensor:
    """The forward sweep of :class:`TransferRows` over rows ``o [G * K, 4**n]`` (``history``: the
    rows before each step, for the backward)."""
    for step in plan:
        if history is not None:
            history.append(o)
        if step[0] == "perm":
            o = o.index_select(-1, step[1]) * step[2]
        elif step[0] == "dense":
            o = o @ step[1]
        else:
            ot = o.reshape(o.shape[0], 4, -1).transpose(1, 2)  # [G * K, 4**(n-1), 4]
            o = (ot if step[2] is None else torch.bmm(ot, r4[step[2]][step[3]])).reshape(o.shape)
    return o


def transfer_rows_plain(plan, n: int, o: torch.Tensor, *rots: torch.Tensor) -> torch.Tensor:
    """:class:`TransferRows` in plain differentiable tensor operations (the same numbers and layout).

    For ``torch.compile``: its autograd derives one fused backward from these operations,
    where eager autograd would replay each of them (the eager path uses :class:`TransferRows`).
    """
    lead, k, r4, rows = _rows_setup(o, rots)
    return _rows_sweep(plan, rows, r4).view(*lead, k, -1)


class TransferRows(torch.autograd.Function):
    """Observables' Pauli rows conjugated by a run of constant blocks and one-qubit layers.

    ``apply(plan, n, o, *rots)``: ``o [K, 4**n]`` coefficient rows, ``rots`` the Bloch
    rotations ``[m_g, *G, 3, 3]`` of each gate group, and ``plan`` the run's parts in
    *reverse* order of application: ``("perm", source, sign, inverse)``, ``("dense", Q)``
    (:func:`constant_transfer`) or, per layer, ``n`` steps ``("rot", wire, group, position)``
    for wires ``0..n-1`` in order (group None: no gate on that wire). Returns ``[*G, K, 4**n]``.

    A layer is applied wire by wire as one small matrix product each: the rows are held as
    ``[G * K, 4, 4**(n-1)]`` with the current wire's Pauli index first; multiplying by
    :math:`1\\oplus R` from the right and transposing moves that index last, so after ``n`` steps the
    wire order is back where it started and no step copies data. Same numbers as
    :func:`conjugate_rows` wire by wire (the reference in the tests).

    Backward by hand: a permutation scatters the gradient back, a dense map multiplies
    by ``Q^T``, a layer step passes :math:`(1\\oplus R)` times the gradient and collects
    :math:`\\partial L/\\partial R_{ij} = \\sum o_i\\, g_j` over the other axes.
    """

    @staticmethod
    def forward(ctx, plan, n, o, *rots):
        lead, k, r4, o = _rows_setup(o, rots)
        history = []
        o = _rows_sweep(plan, o, r4, history)
        ctx.plan, ctx.n, ctx.history, ctx.r4, ctx.lead = plan, n, history, r4, (*lead, k)
        ctx.save_for_backward(*rots)
        return o.view(*lead, k, -1)

    @staticmethod
    @first_order_only
    def backward(ctx, g):
        rots = ctx.saved_tensors
        gms = [[None] * r.shape[0] for r in rots]  # per gate: dL/d(1 (+) R) over the G * K rows, [G * K, 4, 4]
        g = g.reshape(-1, g.shape[-1])
        for step, o in zip(reversed(ctx.plan), reversed(ctx.history)):
            if step[0] == "perm":
                g = (g * step[2]).index_select(-1, step[3])
            elif step[0] == "dense":
                g = g @ step[1].T
            else:
                gt = g.view(g.shape[0], -1, 4).transpose(1, 2)  # [G * K, 4, 4**(n-1)]
                if step[2] is None:
                    g = gt.contiguous().view(g.shape)
                    continue
                # out = o^T M with o [GK, 4, R]: dL/dM = o out_grad^T (summed over K below), dL/do = M out_grad
                gm = torch.bmm(o.view(o.shape[0], 4, -1), gt.transpose(1, 2))
                prev = gms[step[2]][step[3]]
                gms[step[2]][step[3]] = gm if prev is None else prev + gm
                g = torch.bmm(ctx.r4[step[2]][step[3]], gt).view(g.shape)
        grots = []
        for r, gm in zip(rots, gms):
            zero = None
            if any(x is None for x in gm):  # a gate of the group that no step used
                zero = torch.zeros(math.prod(ctx.lead), 4, 4, dtype=r.dtype, device=r.device)
            stacked = torch.stack([zero if x is None else x for x in gm]).view(r.shape[0], *ctx.lead, 4, 4)
            grots.append(stacked.sum(-3)[..., 1:, 1:])
        return (None, None, None, *grots)
