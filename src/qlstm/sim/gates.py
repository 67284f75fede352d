"""Gate matrices as functions of angle tensors.

Every parametrised gate takes real angle tensors of any (broadcastable) shape
``[...]`` and returns the complex matrix ``[..., 2**k, 2**k]``; a fixed gate
returns ``[2**k, 2**k]``. Matrices use qlstm's wire order (first wire = most
significant bit), so ``CNOT`` on wires ``(c, t)`` is
``|0><0| (x) I + |1><1| (x) X``.

The registry :data:`GATES` maps a lower-case name to a :class:`GateSpec`; use
:func:`gate_matrix` to build a matrix by name. Matrices follow PennyLane's
definitions (``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)``) and
Qiskit's ``U3(theta, phi, lam)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import CircuitError

__all__ = [
    "GateSpec",
    "GATES",
    "gate_matrix",
    "complex_dtype_for",
    "real_dtype_for",
    "is_diagonal",
]


def complex_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """complex dtype matching a real (or complex) dtype: float32 -> complex64."""
    if dtype in (torch.complex64, torch.complex128):
        return dtype
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def real_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """real dtype matching a complex (or real) dtype: complex64 -> float32."""
    if dtype == torch.complex128 or dtype == torch.float64:
        return torch.float64
    return torch.float32


_FIXED_CACHE: dict = {}


def _fixed(rows: Sequence[Sequence[complex]]) -> Callable[..., torch.Tensor]:
    data = [[complex(v) for v in row] for row in rows]

    def build(*, dtype: torch.dtype, device: torch.device | str | None = None) -> torch.Tensor:
        # fixed matrices are built once per (dtype, device) and shared: they are never written to
        key = (id(data), dtype, str(device))
        m = _FIXED_CACHE.get(key)
        if m is None:
            m = _FIXED_CACHE[key] = torch.tensor(data, dtype=dtype, device=device)
        return m

    return build


def _complex(re: list[torch.Tensor], im: list[torch.Tensor], d: int, cdtype: torch.dtype) -> torch.Tensor:
    """Assemble a ``[..., d, d]`` complex matrix from row-major real and imaginary entries."""
    m = torch.complex(torch.stack(re, dim=-1), torch.stack(im, dim=-1))
    m = m.reshape(*m.shape[:-1], d, d)
    return m if m.dtype == cdtype else m.to(cdtype)


def _cs(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    half = theta * 0.5
    return torch.cos(half), torch.sin(half)


def rx(theta: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cs(theta)
    z = torch.zeros_like(c)
    return _complex([c, z, z, c], [z, -s, -s, z], 2, cdtype)


def ry(theta: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cs(theta)
    z = torch.zeros_like(c)
    return _complex([c, -s, s, c], [z, z, z, z], 2, cdtype)


def rz(theta: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cs(theta)
    z = torch.zeros_like(c)
    return _complex([c, z, z, c], [-s, z, z, s], 2, cdtype)


def phase_shift(phi: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    z = torch.zeros_like(phi)
    return _complex([torch.ones_like(phi), z, z, torch.cos(phi)], [z, z, z, torch.sin(phi)], 2, cdtype)


def u3(theta: torch.Tensor, phi: torch.Tensor, lam: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    """Qiskit's U(theta, phi, lam) = RZ(phi) RY(theta) RZ(lam) * e^{i(phi+lam)/2}."""
    theta, phi, lam = torch.broadcast_tensors(theta, phi, lam)
    c, s = _cs(theta)
    cl, sl, cp, sp = torch.cos(lam), torch.sin(lam), torch.cos(phi), torch.sin(phi)
    cpl, spl = torch.cos(phi + lam), torch.sin(phi + lam)
    return _complex([c, -cl * s, cp * s, cpl * c], [torch.zeros_like(c), -sl * s, sp * s, spl * c], 2, cdtype)


def rot(phi: torch.Tensor, theta: torch.Tensor, omega: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    """PennyLane's Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)."""
    phi, theta, omega = torch.broadcast_tensors(phi, theta, omega)
    c, s = _cs(theta)
    a, b = (phi + omega) * 0.5, (phi - omega) * 0.5
    ca, sa, cb, sb = torch.cos(a), torch.sin(a), torch.cos(b), torch.sin(b)
    cac, sac, cbs, sbs = ca * c, sa * c, cb * s, sb * s
    return _complex([cac, -cbs, cbs, cac], [-sac, -sbs, -sbs, sac], 2, cdtype)


def controlled(u: torch.Tensor) -> torch.Tensor:
    """``|0><0| (x) I + |1><1| (x) U`` with the control as the first (most significant) wire."""
    d = u.shape[-1]
    out = torch.zeros(*u.shape[:-2], 2 * d, 2 * d, dtype=u.dtype, device=u.device)
    out[..., :d, :d] = torch.eye(d, dtype=u.dtype, device=u.device)
    out[..., d:, d:] = u
    return out


def ising_xx(phi: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cs(phi)
    z = torch.zeros_like(c)
    return _complex([c, z, z, z, z, c, z, z, z, z, c, z, z, z, z, c],
                    [z, z, z, -s, z, z, -s, z, z, -s, z, z, -s, z, z, z], 4, cdtype)


def ising_yy(phi: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cs(phi)
    z = torch.zeros_like(c)
    return _complex([c, z, z, z, z, c, z, z, z, z, c, z, z, z, z, c],
                    [z, z, z, s, z, z, -s, z, z, -s, z, z, s, z, z, z], 4, cdtype)


def ising_zz(phi: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = _cs(phi)
    z = torch.zeros_like(c)
    return _complex([c, z, z, z, z, c, z, z, z, z, c, z, z, z, z, c],
                    [-s, z, z, z, z, s, z, z, z, z, s, z, z, z, z, -s], 4, cdtype)


_S2 = 1 / math.sqrt(2)
_FIXED_ROWS: dict[str, list[list[complex]]] = {
    "i": [[1, 0], [0, 1]],
    "h": [[_S2, _S2], [_S2, -_S2]],
    "x": [[0, 1], [1, 0]],
    "y": [[0, -1j], [1j, 0]],
    "z": [[1, 0], [0, -1]],
    "s": [[1, 0], [0, 1j]],
    "sdg": [[1, 0], [0, -1j]],
    "t": [[1, 0], [0, complex(_S2, _S2)]],
    "tdg": [[1, 0], [0, complex(_S2, -_S2)]],
    "sx": [[0.5 + 0.5j, 0.5 - 0.5j], [0.5 - 0.5j, 0.5 + 0.5j]],
    "cnot": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]],
    "cy": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, -1j], [0, 0, 1j, 0]],
    "cz": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, -1]],
    "swap": [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
    "toffoli": [[1 if (r == c and r < 6) or (r, c) in ((6, 7), (7, 6)) else 0 for c in range(8)] for r in range(8)],
}


@dataclass(frozen=True)
class GateSpec:
    """What the simulator knows about a named gate.

    Attributes:
        name: canonical lower-case name.
        num_wires: number of wires it acts on.
        num_params: number of real angle parameters.
        build: ``build(params, cdtype)`` -> matrix ``[..., 2**k, 2**k]`` for
            parametrised gates, or ``build(dtype=..., device=...)`` for fixed ones.
        diagonal: the matrix is diagonal for every parameter value (lets the
            simulator multiply instead of contracting).
    """

    name: str
    num_wires: int
    num_params: int
    build: Callable[..., torch.Tensor]
    diagonal: bool = False

    def matrix(
        self,
        params: Sequence[torch.Tensor] = (),
        *,
        dtype: torch.dtype = torch.complex128,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The gate's matrix ``[..., 2**k, 2**k]`` for angle tensors ``params``."""
        if len(params) != self.num_params:
            raise CircuitError(
                f"gate {self.name!r} takes {self.num_params} parameter(s), got {len(params)}"
            )
        if self.num_params == 0:
            return self.build(dtype=dtype, device=device)
        return self.build(*params, cdtype=dtype)


def _param(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    return lambda *p, cdtype: fn(*p, cdtype)


GATES: dict[str, GateSpec] = {}


def _register(name: str, wires: int, params: int, build, diagonal: bool = False, aliases=()):
    spec = GateSpec(name, wires, params, build, diagonal)
    for key in (name, *aliases):
        GATES[key] = spec


for _name, _rows in _FIXED_ROWS.items():
    _n_wires = int(math.log2(len(_rows)))
    _diag = all(_rows[r][c] == 0 for r in range(len(_rows)) for c in range(len(_rows)) if r != c)
    _aliases = {"i": ("id", "identity"), "cnot": ("cx",), "toffoli": ("ccx",)}.get(_name, ())
    _register(_name, _n_wires, 0, _fixed(_rows), _diag, _aliases)

_register("rx", 1, 1, _param(rx))
_register("ry", 1, 1, _param(ry))
_register("rz", 1, 1, _param(rz), diagonal=True)
_register("phaseshift", 1, 1, _param(phase_shift), diagonal=True, aliases=("p", "phase", "u1"))
_register("rot", 1, 3, _param(rot))
_register("u3", 1, 3, _param(u3), aliases=("u",))
_register("crx", 2, 1, lambda t, cdtype: controlled(rx(t, cdtype)))
_register("cry", 2, 1, lambda t, cdtype: controlled(ry(t, cdtype)))
_register("crz", 2, 1, lambda t, cdtype: controlled(rz(t, cdtype)), diagonal=True)
_register("cphase", 2, 1, lambda t, cdtype: controlled(phase_shift(t, cdtype)), diagonal=True, aliases=("cp", "controlledphaseshift"))
_register("crot", 2, 3, lambda a, b, c, cdtype: controlled(rot(a, b, c, cdtype)))
_register("isingxx", 2, 1, _param(ising_xx), aliases=("rxx",))
_register("isingyy", 2, 1, _param(ising_yy), aliases=("ryy",))
_register("isingzz", 2, 1, _param(ising_zz), diagonal=True, aliases=("rzz",))


def lookup(name: str) -> GateSpec:
    """The :class:`GateSpec` for ``name`` (case-insensitive), or a CircuitError listing the valid names."""
    spec = GATES.get(name.lower())
    if spec is None:
        valid = ", ".join(sorted({s.name for s in GATES.values()}))
        raise CircuitError(f"unknown gate {name!r}; valid gates: {valid}, unitary")
    return spec


def gate_matrix(
    name: str,
    params: Sequence[torch.Tensor | float] = (),
    *,
    dtype: torch.dtype = torch.complex128,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Matrix of gate ``name`` for the given angles.

    Args:
        name: gate name, case-insensitive (``"ry"``, ``"CNOT"``, ``"rot"`` ...).
        params: angles; floats or real tensors of broadcastable shape ``[...]``.
        dtype: complex dtype of the result.

    Returns:
        ``[..., 2**k, 2**k]`` complex tensor.

    Example:
        >>> gate_matrix("rx", [torch.tensor(math.pi)]).round()
        tensor([[0.+0.j, -0.-1.j], [-0.-1.j, 0.+0.j]], dtype=torch.complex128)
    """
    spec = lookup(name)
    rdtype = real_dtype_for(dtype)
    tensors = [torch.as_tensor(p, dtype=rdtype, device=device) for p in params]
    return spec.matrix(tensors, dtype=dtype, device=device)


def is_diagonal(name: str) -> bool:
    """Whether the named gate's matrix is diagonal for every parameter."""
    return lookup(name).diagonal
