"""Execution plans for pure circuits (no noise, no mid-circuit measurement).

Per-gate Python dispatch on tiny tensors is what makes popular QML simulators
slow: every gate costs several small tensor operations (a few microseconds
each) whatever the batch size. A :class:`Program` is compiled once per circuit
and cuts that count:

1. **Product-state prefix.** On every wire, the single-qubit gates before the
   wire's first multi-qubit gate commute with everything on other wires, so
   the encoded state is a Kronecker product of two-component vectors. Gates at
   the same position on different wires (the ``RY(atan x_i)`` of every wire)
   are evaluated in one batched call. Data-free gates after a wire's last
   data-reading one start the weight run instead, so that the prefix is a pure
   data encoding (what the Heisenberg path needs).
2. **Weight-only runs** (gates whose angles depend on weights and constants
   only) are split into constant blocks (precomputed at compile time; a
   permutation such as a CNOT ring becomes an index gather), *layers* of
   single-qubit gates on distinct wires (built in one batched call and
   combined by Kronecker products), and other gates. When the register is
   small (``n <= fuse_max_qubits``) the whole run is multiplied out into one
   ``2^n x 2^n`` matrix when the weights are bound -- once per forward pass,
   then reused for every sample and time step.
3. **Data-dependent gates** after the prefix are applied one by one.

``program.bind(weights)`` does the weight-only work and returns a
:class:`BoundProgram`; its :meth:`~BoundProgram.state` and
:meth:`~BoundProgram.expvals` take a data batch. Weights may carry leading
group dimensions ``[*G, n_weights]``: several circuits of one structure (the
four gate VQCs of a QLSTM cell) are then evaluated together and results gain
the leading ``*G`` dimensions.

The plain gate-by-gate path (:func:`qlstm.circuit.execute.run` with
``method="reference"``) is the reference that the tests compare this against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import CircuitError
from ..sim import kernels as K
from ..sim.gates import lookup
from .circuit import Circuit
from .adjoint import FusedExpval, FusedRun, eligible_gate
from .heisenberg import (
    BlochExpval, PauliExpval, TransferRows, bloch_of, bloch_prefix, bloch_rotation, constant_transfer,
    observable_vectors, pauli_transfer, rotation_spec, so3_of, transfer_rows_plain, WeightZYZRotation,
)
from .layered import KronFactors, LayeredExpval, split_of
from .execute import amplitude_vector, embed_fresh, gate_matrix_of
from .expr import BinOp, Expr, Func, Input, Weight
from .ops import AmplitudeEncoding, Gate, Measure

__all__ = ["Program", "BoundProgram", "compile_program"]


# ---------------------------------------------------------------------------
# batched evaluation of one parameter slot across several gates


def _substitute(e: Expr, kind: type) -> Expr:
    """``e`` with its single ``Input``/``Weight`` leaf renumbered to 0."""
    if isinstance(e, kind):
        return kind(0)
    if isinstance(e, Func):
        return Func(e.name, _substitute(e.arg, kind))
    if isinstance(e, BinOp):
        return BinOp(e.op, _substitute(e.left, kind), _substitute(e.right, kind))
    return e


@dataclass(frozen=True)
class _Slot:
    """How to evaluate parameter ``k`` of ``m`` gates as one ``[m, ...]`` tensor."""

    mode: str  # "input" | "weight" | "const" | "generic"
    exprs: tuple[Expr, ...]
    template: Expr | None = None
    index: tuple[int, ...] = ()
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def _index(self, device) -> torch.Tensor:
        key = str(device)
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = torch.tensor(self.index, dtype=torch.long, device=device)
        return t

    @staticmethod
    def build(exprs: list[Expr]) -> "_Slot":
        for kind, mode in ((Input, "input"), (Weight, "weight")):
            leaves = [e.leaves() for e in exprs]
            if all(
                sum(isinstance(lf, (Input, Weight)) for lf in ls) == 1 and any(isinstance(lf, kind) for lf in ls)
                for ls in leaves
            ):
                templates = {_substitute(e, kind).to_str() for e in exprs}
                if len(templates) == 1:
                    idx = tuple(next(lf.index for lf in ls if isinstance(lf, kind)) for ls in leaves)
                    return _Slot(mode, tuple(exprs), _substitute(exprs[0], kind), idx)
        if all(e.is_constant for e in exprs):
            return _Slot("const", tuple(exprs))
        return _Slot("generic", tuple(exprs))

    def evaluate(self, x, w, rdtype, device) -> torch.Tensor:
        if self.mode == "input":
            cols = x.index_select(1, self._index(x.device)).T.unsqueeze(1)  # [m, 1, B]: x_0 reads [m, B]
            return self.template.evaluate(cols, None)
        if self.mode == "weight":
            sel = w.index_select(-1, self._index(w.device))  # [*G, m]
            return self.template.evaluate(None, sel.unsqueeze(-1)).movedim(-1, 0) if sel.dim() > 1 else \
                self.template.evaluate(None, sel.unsqueeze(-1))
        if self.mode == "const":
            key = (rdtype, str(device))
            t = self._cache.get(key)
            if t is None:
                t = self._cache[key] = torch.tensor([float(e.evaluate(None, None)) for e in self.exprs],
                                                    dtype=rdtype, device=device)
            return t
        vals = torch.broadcast_tensors(*[e.evaluate(x, w).to(rdtype) for e in self.exprs])
        return torch.stack(vals)


@dataclass(frozen=True)
class _Group:
    """Gates of one name on distinct wires, evaluated as one batched matrix ``[m, ..., 2**k, 2**k]``."""

    name: str
    wires: tuple[int, ...]
    slots: tuple[_Slot, ...]

    @staticmethod
    def build(gates: list[Gate]) -> "_Group":
        slots = tuple(_Slot.build([g.params[k] for g in gates]) for k in range(len(gates[0].params)))
        return _Group(gates[0].name, tuple(g.wires[0] for g in gates), slots)

    def matrices(self, x, w, cdtype, device) -> torch.Tensor:
        spec = lookup(self.name)
        rdtype = torch.float64 if cdtype == torch.complex128 else torch.float32
        if spec.num_params == 0:
            return spec.matrix((), dtype=cdtype, device=device).expand(len(self.wires), 2, 2)
        params = torch.broadcast_tensors(*self.params(x, w, rdtype, device))
        return spec.matrix(list(params), dtype=cdtype, device=device)

    def weight_index(self, device) -> torch.Tensor | None:
        """``[3, m]`` weight indices of ``(phi, theta, omega)`` when this is a group of ``Rot`` gates
        whose angles are all plain weights (no transform), else None."""
        if self.name != "rot" or not all(s.mode == "weight" and isinstance(s.template, Weight) for s in self.slots):
            return None
        cache, key = self.slots[0]._cache, ("rot_index", str(device))
        if key not in cache:
            cache[key] = torch.tensor([list(s.index) for s in self.slots], dtype=torch.long, device=device)
        return cache[key]

    def params(self, x, w, rdtype, device) -> list[torch.Tensor]:
        """Each parameter slot as ``[m, *batch]``, aligned on the gate axis so that they broadcast
        (a constant slot ``[m]`` against weights ``[m, *G, 1]``, inputs ``[m, B]`` against weights)."""
        vals = [s.evaluate(x, w, rdtype, device) for s in self.slots]
        nd = max(v.dim() for v in vals)
        return [v if v.dim() == nd else v.reshape(v.shape[0], *([1] * (nd - v.dim())), *v.shape[1:]) for v in vals]


def _groups_by_name(gates: list[Gate]) -> list[_Group]:
    by_name: dict[str, list[Gate]] = {}
    for g in gates:
        by_name.setdefault(g.name, []).append(g)
    return [_Group.build(gs) for gs in by_name.values()]


# ---------------------------------------------------------------------------
# compiled steps


def _is_monomial(m: torch.Tensor) -> bool:
    """One non-zero per row and column: a permutation with phases."""
    nz = m.abs() > 1e-12
    return bool((nz.sum(-1) == 1).all()) and bool((nz.sum(-2) == 1).all())


@dataclass
class _ConstBlock:
    """Product of constant gates, turned into an operator once per dtype and device.

    Small registers get a dense matrix (or an index gather if it is a
    permutation with phases). For wide registers a dense ``2^n x 2^n`` matrix is
    out of the question: a block of monomial gates (CNOT, SWAP, X, CZ, S, T,
    Toffoli ...) becomes an index gather computed by running the gates on
    ``[1, 2, ..., 2^n]``; any other constant gates stay single gates.
    """

    gates: list[Gate]
    n: int
    dense: bool
    _cache: dict = field(default_factory=dict, repr=False)

    def operators(self, cdtype, device) -> list:
        key = (cdtype, str(device))
        if key not in self._cache:
            self._cache[key] = self._operators(cdtype, device)
        return self._cache[key]

    def _operators(self, cdtype, device) -> list:
        n = self.n
        if self.dense:
            m = torch.eye(2**n, dtype=torch.complex128, device=device)
            for g in self.gates:
                m = _apply_gate(m, gate_matrix_of(g, None, None, torch.complex128, device), g, n)
            u = m.T  # rows of m are U e_j
            if _is_monomial(u):
                return [_perm_operator(u.sum(1), u.abs().argmax(1), cdtype)]
            return [("dense", u.T.to(cdtype))]
        if all(_is_monomial(gate_matrix_of(g, None, None, torch.complex128, None)) for g in self.gates):
            # U v for v = [1, 2, ..., 2^n]: entry i is u_i * (j(i) + 1) with j(i) the source index
            v = torch.arange(1, 2**n + 1, dtype=torch.float64, device=device).to(torch.complex128)
            for g in self.gates:
                v = _apply_gate(v, gate_matrix_of(g, None, None, torch.complex128, device), g, n)
            index = v.abs().round().long() - 1
            return [_perm_operator(v / (index + 1), index, cdtype)]
        return [("gate", g) for g in self.gates]

    def transfer(self, device) -> tuple:
        """The block's action on Pauli coefficient rows (:func:`~qlstm.circuit.heisenberg.constant_transfer`)."""
        key = ("transfer", str(device))
        if key not in self._cache:
            m = torch.eye(2**self.n, dtype=torch.complex128, device=device)
            for g in self.gates:
                m = _apply_gate(m, gate_matrix_of(g, None, None, torch.complex128, device), g, self.n)
            self._cache[key] = constant_transfer(m, self.n)
        return self._cache[key]


def _perm_operator(phase: torch.Tensor, index: torch.Tensor, cdtype):
    ones = bool(torch.allclose(phase, torch.ones_like(phase)))
    inverse = torch.empty_like(index)
    inverse[index] = torch.arange(index.numel(), device=index.device)
    return ("perm", index, None if ones else phase.to(cdtype), inverse)


@dataclass
class _Layer:
    """Single-qubit weight gates on distinct wires (one circuit moment)."""

    gates: list[Gate]


@dataclass
class _MergedLayers:
    """All single-qubit layers of a weight-only run, evaluated in one batched call per gate name."""

    groups: list[_Group]
    # per layer: list of (wire, group index, position in that group)
    where: list[list[tuple[int, int, int]]]

    @staticmethod
    def build(layers: list[_Layer]) -> "_MergedLayers":
        by_name: dict[str, list[Gate]] = {}
        where = []
        for layer in layers:
            entries = []
            for g in layer.gates:
                entries.append((g.wires[0], g.name, len(by_name.setdefault(g.name, []))))
                by_name[g.name].append(g)
            where.append(entries)
        names = list(by_name)
        groups = [_Group.build(by_name[nm]) for nm in names]
        return _MergedLayers(groups, [[(w, names.index(nm), pos) for w, nm, pos in e] for e in where])

    def operators(self, w, cdtype, device) -> list:
        mats = [grp.matrices(None, w, cdtype, device) for grp in self.groups]
        return [("layer", {wire: mats[gi][pos] for wire, gi, pos in entries}) for entries in self.where]


def _chunks(n: int, size: int = 4) -> list[list[int]]:
    return [list(range(s, min(s + size, n))) for s in range(0, n, size)]


def _kron(mats: list[torch.Tensor]) -> torch.Tensor:
    out = mats[0]
    for m in mats[1:]:
        a, b = out.shape[-1], m.shape[-1]
        prod = out[..., :, None, :, None] * m[..., None, :, None, :]
        out = prod.reshape(*prod.shape[:-4], a * b, a * b)
    return out


def _bshape(a: tuple, b: tuple) -> tuple:
    """Broadcast two shapes (plain Python; ``torch.broadcast_shapes`` costs ~20 us a call)."""
    if len(a) < len(b):
        a, b = b, a
    b = (1,) * (len(a) - len(b)) + tuple(b)
    return tuple(x if y == 1 else y for x, y in zip(a, b))


def _apply_operator(state: torch.Tensor, op, n: int, x=None, w=None, cdtype=None, device=None) -> torch.Tensor:
    kind = op[0]
    if kind == "dense":
        return state @ op[1]
    if kind == "perm":
        out = state[..., op[1]]
        return out if op[2] is None else out * op[2]
    if kind == "layer":
        per_wire = op[1]
        if n <= 4 and len(per_wire) == n:
            # one Kronecker product for the whole register, applied as a (batched) matmul:
            # [B, D] or [*G, B, D] or rows-of-a-matrix [*G, D, D] times [*G, D, D]
            kr = _kron([per_wire[wire] for wire in range(n)])
            if kr.dim() > 2 and kr.shape[-3] == 1:
                kr = kr.squeeze(-3)
            return state @ kr.transpose(-1, -2)
        eye = None
        for chunk in _chunks(n):
            present = [wire for wire in chunk if wire in per_wire]
            if not present:
                continue
            if len(present) < len(chunk):
                if eye is None:
                    eye = torch.eye(2, dtype=state.dtype, device=state.device)
                mats = [per_wire.get(wire, eye) for wire in chunk]
            else:
                mats = [per_wire[wire] for wire in chunk]
            state = K.apply_matrix(state, _kron(mats), chunk, n)
        return state
    if kind == "gate":
        g = op[1]
        return _apply_gate(state, gate_matrix_of(g, x, w, cdtype, device), g, n)
    raise CircuitError(f"internal: unknown plan step {kind!r}")


def _apply_gate(state: torch.Tensor, matrix: torch.Tensor, g: Gate, n: int) -> torch.Tensor:
    if g.name != "unitary" and lookup(g.name).diagonal:
        return K.apply_diagonal(state, torch.diagonal(matrix, dim1=-2, dim2=-1), g.wires, n)
    return K.apply_matrix(state, matrix, g.wires, n)


@dataclass
class _WeightRun:
    """A maximal run of weight-only gates, as const blocks, layers and single gates."""

    parts: list  # _ConstBlock | _Layer | Gate
    merged: _MergedLayers | None = None

    def adjoint_ready(self, n: int) -> bool:
        """Only constant blocks and single-qubit layers: :class:`FusedRun` can multiply it out."""
        return self.merged is not None and all(isinstance(p, (_ConstBlock, _Layer)) for p in self.parts) and all(
            op[0] in ("dense", "perm") for p in self.parts if isinstance(p, _ConstBlock)
            for op in p.operators(torch.complex128, None))

    def fused_matrix(self, w, cdtype, device, n: int) -> torch.Tensor:
        """The run's matrix (rows form) via :class:`~qlstm.circuit.adjoint.FusedRun`."""
        mats = [grp.matrices(None, w, cdtype, device) for grp in self.merged.groups]
        plan, layers = [], iter(self.merged.where)
        for part in self.parts:
            if isinstance(part, _ConstBlock):
                plan.extend(part.operators(cdtype, device))
            else:
                plan.append(("layer", next(layers)))
        return FusedRun.apply(plan, n, cdtype, *mats)

    def transfer_rows(self, o: torch.Tensor, w, cdtype, device, n: int) -> torch.Tensor:
        """Conjugate observables ``o [K, 4**n]`` (Pauli coefficient rows) by the run: ``U^dag O U``.

        Real arithmetic, last part first: a constant block is a signed permutation
        (or dense map) of the coefficients, a layer the Kronecker product of its
        gates' Bloch rotations. Returns ``[*G, K, 4**n]``. Needs :meth:`adjoint_ready`.
        (:meth:`Program.transfer_table_fn` is the same in plain operations, for ``torch.compile``.)
        """
        rots = self.rotations(w, cdtype, device)
        return TransferRows.apply(self._transfer_plan(o.dtype, device, n), n, o, *rots)

    def rotations(self, w, cdtype, device, plain: bool = False) -> list[torch.Tensor]:
        """The Bloch rotations ``[m_g, *G, 3, 3]`` of every gate group of the layers."""
        rdtype = torch.float64 if cdtype == torch.complex128 else torch.float32
        rots = []
        for grp in self.merged.groups:
            index = None if plain or w is None else grp.weight_index(w.device)
            if index is not None:  # Rot gates on plain weights: lookup and rotation as one node
                r = WeightZYZRotation.apply(w, index)
            else:
                r = bloch_rotation(grp.name, grp.params(None, w, rdtype, device), plain=plain)
            if r is None:
                r = so3_of(grp.matrices(None, w, cdtype, device))
            if w is not None and w.dim() > 1:
                r = r.squeeze(-3)  # [m, *G, 1, 3, 3] -> [m, *G, 3, 3]
            rots.append(r)
        return rots

    def _transfer_plan(self, rdtype, device, n: int) -> list:
        """The parts, last first, as :class:`~qlstm.circuit.heisenberg.TransferRows` steps (cached)."""
        key = ("transfer_plan", rdtype, str(device), n)
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            plan, layers = [], list(self.merged.where)
            for part in reversed(self.parts):
                if isinstance(part, _ConstBlock):
                    kind, a, b = part.transfer(device)
                    if kind == "perm":
                        inverse = torch.empty_like(a)
                        inverse[a] = torch.arange(a.numel(), device=a.device)
                        plan.append(("perm", a, b.to(rdtype), inverse))
                    else:
                        plan.append(("dense", a.to(rdtype)))
                else:
                    entries = {wire: (gi, pos) for wire, gi, pos in layers.pop()}
                    plan.extend(("rot", q, *entries.get(q, (None, None))) for q in range(n))
            cache[key] = plan
        return cache[key]

    def operators(self, w, cdtype, device) -> list:
        layer_ops = iter(self.merged.operators(w, cdtype, device)) if self.merged else iter(())
        out = []
        for part in self.parts:
            if isinstance(part, _ConstBlock):
                out.extend(part.operators(cdtype, device))
            elif isinstance(part, _Layer):
                out.append(next(layer_ops))
            else:
                out.append(("gate", part))
        return out


# ---------------------------------------------------------------------------


@dataclass
class Program:
    """A compiled pure circuit; see the module docstring."""

    circuit: Circuit
    amplitude: list[AmplitudeEncoding]
    static_prefix: list[list[_Group]]  # leading data-free prefix gates, applied when binding
    prefix: list[list[_Group]]  # per position: groups of same-named gates on distinct wires
    steps: list  # Gate | _WeightRun
    fuse: bool
    wires: tuple[int, ...] | None = None  # original wires simulated, if restricted to a light cone
    #: multiply weight-only runs with the hand-written backward of :class:`~qlstm.circuit.adjoint.FusedRun`
    use_adjoint: bool = True
    #: largest register evaluated in the Heisenberg picture (:mod:`~qlstm.circuit.heisenberg`):
    #: ``4**n`` real features per sample against a ``2**n`` complex statevector times ``2**n``
    heisenberg_max_qubits: int = 4
    #: registers evaluated by :class:`~qlstm.circuit.layered.LayeredExpval` (wider than the
    #: Heisenberg picture, narrow enough for two Kronecker factors of at most 16 x 16)
    layered_min_qubits: int = 5
    layered_max_qubits: int = 8

    _cache: dict = field(default_factory=dict, repr=False)

    def z_sign_matrix(self, dtype, device) -> torch.Tensor | None:
        """``[2**n, n_obs]`` eigenvalue table when every observable is a Z string, else None."""
        circ = self.circuit
        if not circ.observables or not all(set(o.paulis) <= {"Z", "I"} for o in circ.observables):
            return None
        key = ("zsigns", dtype, str(device))
        if key not in self._cache:
            rd = torch.float64 if dtype == torch.complex128 else torch.float32
            self._cache[key] = torch.stack(
                [K.z_signs(circ.n_qubits, [w for p, w in zip(o.paulis, o.wires) if p == "Z"], dtype=rd, device=device)
                 for o in circ.observables], dim=-1)
        return self._cache[key]

    def bind(self, weights: torch.Tensor | None, *, dtype=torch.complex128, device=None) -> "BoundProgram":
        """Bind weights; everything that depends on weights only is evaluated once, on first use.

        Args:
            weights: ``[n_weights]`` or grouped ``[*G, n_weights]``.
            dtype: complex dtype of the simulation.
        """
        w = weights
        if w is not None and w.dim() > 1:
            w = w.unsqueeze(-2)  # [*G, 1, n_w]: broadcasts against the batch dimension of inputs
        return BoundProgram(self, w, None, dtype, device)

    def operators(self, w, dtype, device) -> list:
        """The bound steps: fused ``("dense", m)`` matrices, gathers, layers and data-dependent gates."""
        n = self.circuit.n_qubits
        ops = []
        for step in self.steps:
            if isinstance(step, Gate):
                ops.append(("gate", step))
                continue
            if self.fuse and self.use_adjoint and step.adjoint_ready(n):
                ops.append(("dense", step.fused_matrix(w, dtype, device, n)))
                continue
            run_ops = step.operators(w, dtype, device)
            if self.fuse:
                if run_ops[0][0] == "dense":
                    m, rest_ops = run_ops[0][1], run_ops[1:]
                else:  # rows of the identity are the basis states
                    m, rest_ops = torch.eye(2**n, dtype=dtype, device=device), run_ops
                for op in rest_ops:
                    m = _apply_operator(m, op, n, None, w, dtype, device)
                if m.dim() > 2 and m.shape[-3] == 1:
                    m = m.squeeze(-3)
                ops.append(("dense", m))  # row j is U e_j, so state @ m applies U
            else:
                ops.extend(run_ops)
        return ops

    def heisenberg_groups(self) -> list | None:
        """The data-reading prefix groups if :meth:`BoundProgram.expvals` can work in the
        Heisenberg picture (:mod:`~qlstm.circuit.heisenberg`), else None.

        Needs: at most :attr:`heisenberg_max_qubits` qubits, a product-state encoding
        whose angles read inputs and constants only (at least one input), nothing data-dependent after it
        (one weight-only run at most), and Pauli-string observables.
        """
        key = "heisenberg_groups"
        if key not in self._cache:
            groups = [grp for position in self.prefix for grp in position]
            ok = (self.circuit.n_qubits <= self.heisenberg_max_qubits and not self.amplitude and self.fuse
                  and bool(self.circuit.observables)
                  and all(isinstance(st, _WeightRun) for st in self.steps) and len(self.steps) <= 1
                  and not any(isinstance(leaf, Weight) for grp in groups for sl in grp.slots
                              for e in sl.exprs for leaf in e.leaves())
                  and any(isinstance(leaf, Input) for grp in groups for sl in grp.slots
                          for e in sl.exprs for leaf in e.leaves()))
            self._cache[key] = groups if ok else None
        return self._cache[key]

    def rotation_spec(self, dtype, device) -> list | None:
        """:func:`~qlstm.circuit.heisenberg.rotation_spec` of the Heisenberg prefix groups (cached)."""
        key = ("rotation_spec", dtype, str(device))
        if key not in self._cache:
            groups = self.heisenberg_groups()
            self._cache[key] = None if groups is None else rotation_spec(groups, dtype, device)
        return self._cache[key]

    def layered_stages(self, dtype, device, min_qubits: int | None = None, max_qubits: int | None = None) -> list | None:
        """The weight run as :func:`~qlstm.circuit.layered.layered_forward` stages, or None (cached).

        Applies to ``min_qubits <= n <= max_qubits`` (defaults :attr:`layered_min_qubits`,
        :attr:`layered_max_qubits`) with one weight-only run of
        constant permutations (with phases) and single-qubit layers, nothing data-dependent after
        the encoding.
        """
        n = self.circuit.n_qubits
        low = self.layered_min_qubits if min_qubits is None else min_qubits
        high = self.layered_max_qubits if max_qubits is None else max_qubits
        if not (low <= n <= high):
            return None
        key = ("layered", dtype, str(device))
        if key not in self._cache:
            self._cache[key] = self._layered_stages(dtype, device)
        return self._cache[key]

    def _layered_stages(self, dtype, device) -> list | None:
        if self.amplitude:
            return None
        if len(self.steps) != 1 or not isinstance(self.steps[0], _WeightRun) or self.steps[0].merged is None:
            return None
        stages: list = []
        layer = 0
        for part in self.steps[0].parts:
            if isinstance(part, _Layer):
                stages.append(("layer", layer))
                layer += 1
                continue
            if not isinstance(part, _ConstBlock):
                return None  # a multi-qubit weight gate
            ops = part.operators(dtype, device)  # a block of constant gates: one gather, or not monomial
            if any(op[0] != "perm" for op in ops):
                return None
            stages.extend((*op, {}) for op in ops)  # the dict: full gather indices per batch size
        return stages

    def transfer_table(self, w, dtype, device, ops: list | None = None) -> torch.Tensor:
        """Pauli transfer table ``[4**n, *G, K]`` of everything after the encoding.

        Propagates the observables backwards through the weight-only run in real
        arithmetic when it consists of constant blocks and single-qubit layers;
        otherwise decomposes its fused matrix (taken from ``ops`` if already bound).
        """
        circ = self.circuit
        n = circ.n_qubits
        rdtype = torch.float64 if dtype == torch.complex128 else torch.float32
        if not self.steps:
            return pauli_transfer(None, circ.observables, n, dtype, device)
        run = self.steps[0]
        if ops is None and self.use_adjoint and run.adjoint_ready(n):
            o = observable_vectors(circ.observables, n, rdtype, device)
            return run.transfer_rows(o, w, dtype, device, n).movedim(-1, 0)
        ops = self.operators(w, dtype, device) if ops is None else ops
        return pauli_transfer(ops[0][1], circ.observables, n, dtype, device)

    def transfer_table_fn(self, dtype, device):
        """``w -> transfer table [4**n, *G, K]`` in plain tensor operations, its plan resolved now;
        None where :meth:`transfer_table` would not take the real-arithmetic rows path.

        For ``torch.compile``: the returned function holds no planning (caches, checks), only
        the arithmetic of :meth:`transfer_table`, which it equals (tested).
        """
        n = self.circuit.n_qubits
        rdtype = torch.float64 if dtype == torch.complex128 else torch.float32
        if not self.steps or not (self.use_adjoint and self.steps[0].adjoint_ready(n)):
            return None
        run = self.steps[0]
        o = observable_vectors(self.circuit.observables, n, rdtype, device)
        plan = run._transfer_plan(rdtype, device, n)

        def table(w):
            return transfer_rows_plain(plan, n, o, *run.rotations(w, dtype, device, plain=True)).movedim(-1, 0)

        return table


def _run_prefix(vecs: torch.Tensor, positions: list[list[_Group]], x, w, dtype, device, n: int) -> torch.Tensor:
    """Apply prefix gate groups to per-wire vectors ``vecs [n, *batch, 2]``."""
    for position in positions:
        for grp in position:
            mats = grp.matrices(x, w, dtype, device)  # [m, *batch, 2, 2]
            whole = len(grp.wires) == n and grp.wires == tuple(range(n))
            sub = vecs if whole else vecs[list(grp.wires)]  # [m, *batch', 2]
            nb = max(mats.dim() - 3, sub.dim() - 2)
            if mats.dim() - 3 < nb:
                mats = mats.reshape(mats.shape[0], *([1] * (nb - mats.dim() + 3)), *mats.shape[1:])
            if sub.dim() - 2 < nb:
                sub = sub.reshape(sub.shape[0], *([1] * (nb - sub.dim() + 2)), *sub.shape[1:])
            new = (mats * sub.unsqueeze(-2)).sum(-1)
            if whole:
                vecs = new
            else:
                bs = _bshape(tuple(vecs.shape[1:-1]), tuple(new.shape[1:-1]))
                full = vecs.reshape(n, *([1] * (len(bs) - vecs.dim() + 2)), *vecs.shape[1:])
                full = full.expand(n, *bs, 2).clone()
                full[list(grp.wires)] = new.expand(len(grp.wires), *bs, 2)
                vecs = full
    return vecs


class BoundProgram:
    """A :class:`Program` with its weights bound: call :meth:`state` / :meth:`expvals` on data."""

    #: use the hand-written backward of :mod:`qlstm.circuit.adjoint` where it applies
    fused = True
    #: use the Heisenberg-picture evaluation of :mod:`qlstm.circuit.heisenberg` where it applies
    heisenberg = True

    def __init__(self, program: Program, weights, ops, dtype, device):
        self.program, self.weights, self._ops, self._table = program, weights, ops, None
        self.dtype, self.device = dtype, device
        self._zsigns = program.z_sign_matrix(dtype, device)
        n = program.circuit.n_qubits
        vecs0 = torch.zeros(n, 2, dtype=dtype, device=device)
        vecs0[:, 0] = 1
        # leading gates that read no data are applied once here, not at every call
        self._vecs0 = _run_prefix(vecs0, program.static_prefix, None, weights, dtype, device, n)
        groups = program.heisenberg_groups()
        self._heis = groups if groups is not None and self._vecs0.dim() == 2 else None
        self._r0 = None

    @property
    def ops(self) -> list:
        """The bound steps (see :meth:`Program.operators`), built on first use."""
        if self._ops is None:
            self._ops = self.program.operators(self.weights, self.dtype, self.device)
        return self._ops

    def _transfer(self) -> torch.Tensor:
        """Pauli transfer table ``[4**n, *G, K]``, built on first use and kept for this bind."""
        if self._table is None:
            self._table = self.program.transfer_table(self.weights, self.dtype, self.device, self._ops)
        return self._table

    def subset(self, index: slice | int) -> "BoundProgram":
        """The bound program of a subset of the weight groups (first group dimension).

        Lets one bind of ``[6, n_weights]`` serve the four gate VQCs and the
        two processing VQCs of a QLSTM cell separately: the weight-only work
        (the fused matrices, or the Pauli transfer table) is done once for all
        groups and cut. On the layered path each subset builds its own (small)
        Kronecker factors from its weights.
        """
        if self.weights is None or self.weights.dim() < 3:
            raise CircuitError("subset() needs grouped weights [G, n_weights]")
        if isinstance(index, int):
            index = slice(index, index + 1)

        def cut(t):
            return t[index] if isinstance(t, torch.Tensor) and t.dim() > 2 else t

        out = object.__new__(BoundProgram)
        out.program, out.weights = self.program, self.weights[index]
        out.dtype, out.device, out._zsigns, out._heis = self.dtype, self.device, self._zsigns, self._heis
        out._vecs0 = self._vecs0[:, index] if self._vecs0.dim() > 3 else self._vecs0
        out._ops = out._table = out._r0 = None
        if self._heis is not None and self.heisenberg and self._ops is None:
            table = self._transfer()
            out._table = table[:, index] if table.dim() > 2 else table
            return out
        if self.fused and self.layered_spec() is not None:  # the subset builds its own factors
            out._layered_spec = self._layered_spec
            return out
        ops = []
        for op in self.ops:
            if op[0] == "dense":
                ops.append(("dense", cut(op[1])))
            elif op[0] == "layer":
                ops.append(("layer", {w: cut(m) for w, m in op[1].items()}))
            else:
                ops.append(op)
        out._ops = ops
        return out

    def encode(self, x: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """The state after the product-state prefix and amplitude encodings, ``[B, 2**n]``."""
        prog, dtype, device, w = self.program, self.dtype, self.device, self.weights
        n = prog.circuit.n_qubits
        batch = batch if batch is not None else (x.shape[0] if x is not None else 1)
        vecs = _run_prefix(self._vecs0, prog.prefix, x, w, dtype, device, n)
        state = vecs[0]
        for i in range(1, n):
            state = (state.unsqueeze(-1) * vecs[i].unsqueeze(-2)).flatten(-2)
        state = state.expand(*_bshape(tuple(state.shape[:-1]), (batch,)), 2**n)
        for enc in prog.amplitude:
            state = embed_fresh(state, amplitude_vector(enc, x, dtype), enc.wires, n)
        return state

    def evolve(self, state: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Apply everything after the encoding to ``state [..., B, 2**n]``."""
        n = self.program.circuit.n_qubits
        for op in self.ops:
            state = _apply_operator(state, op, n, x, self.weights, self.dtype, self.device)
        return state

    def state(self, x: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """Final statevector ``[*G, B, 2**n]`` for inputs ``x [B, n_inputs]``."""
        state = self.evolve(self.encode(x, batch), x)
        if self.weights is not None and self.weights.dim() > 2:  # grouped weights [*G, 1, n_w]
            state = state.expand(*_bshape(tuple(self.weights.shape[:-1]), tuple(state.shape[:-1])), state.shape[-1])
        return state

    def measure(self, state: torch.Tensor) -> torch.Tensor:
        """``[..., n_observables]`` expectation values of the circuit's observables on ``state``."""
        if self._zsigns is not None:
            return K.probabilities(state) @ self._zsigns
        circ = self.program.circuit
        return torch.stack([K.expval_pauli(state, o.paulis, o.wires, circ.n_qubits) for o in circ.observables], -1)

    def _encoding_groups(self) -> list | None:
        """The prefix gate groups if the encoding fits the hand-written backwards (fixed gates and
        one-angle rotations reading inputs and constants, at least one input), else None."""
        prog = self.program
        if self._zsigns is None or prog.amplitude or self._vecs0.requires_grad or self._vecs0.dim() != 2:
            return None
        spec = []
        for position in prog.prefix:
            for grp in position:
                if not eligible_gate(grp.name) or any(sl.mode not in ("input", "const") for sl in grp.slots):
                    return None
                spec.append(grp)
        if not any(sl.mode == "input" for grp in spec for sl in grp.slots):
            return None
        return spec

    def _fused_spec(self):
        """The (spec, m) of :class:`~qlstm.circuit.adjoint.FusedExpval` if this program fits it, else None."""
        spec = self._encoding_groups()
        if spec is None or len(self.ops) > 1 or (self.ops and self.ops[0][0] != "dense"):
            return None
        return spec, (self.ops[0][1] if self.ops else None)

    def layered_spec(self, min_qubits: int | None = None, max_qubits: int | None = None):
        """``(groups, stages)`` of :class:`~qlstm.circuit.layered.LayeredExpval` if this program
        fits it (:meth:`Program.layered_stages` and :meth:`_encoding_groups`), else None."""
        default = min_qubits is None and max_qubits is None
        if default and hasattr(self, "_layered_spec"):
            return self._layered_spec
        stages = self.program.layered_stages(self.dtype, self.device, min_qubits, max_qubits)
        groups = None if stages is None else self._encoding_groups()
        spec = None if groups is None else (groups, stages)
        if default:  # the default range is what expvals uses: keep it for this bind
            self._layered_spec = spec
        return spec

    def layer_matrices(self) -> torch.Tensor:
        """The gate matrices of the weight layers as ``[L, n, G, 2, 2]`` (identity where a layer
        leaves a wire alone; ``G = 1`` for ungrouped weights). Needs :meth:`Program.layered_stages`."""
        run, w, n = self.program.steps[0], self.weights, self.program.circuit.n_qubits
        groups = 1
        if w is not None and w.dim() > 1:
            for size in w.shape[:-2]:
                groups *= size
        mats = []
        for grp in run.merged.groups:
            mat = grp.matrices(None, w, self.dtype, self.device)
            if mat.numel() != len(grp.wires) * groups * 4:
                raise CircuitError(f"internal: gate matrices of shape {tuple(mat.shape)} for {len(grp.wires)} "
                                   f"{grp.name} gates and {groups} weight groups")
            mats.append(mat.reshape(-1, groups, 2, 2))
        eye = torch.eye(2, dtype=self.dtype, device=self.device).expand(1, groups, 2, 2)
        flat = torch.cat(mats + [eye])  # [m_total + 1, G, 2, 2]
        key = ("layer_index", str(self.device))
        cache = self.program._cache
        if key not in cache:
            offsets = [0]
            for grp in run.merged.groups:
                offsets.append(offsets[-1] + len(grp.wires))
            identity = offsets[-1]
            index = []
            for entries in run.merged.where:
                row = [identity] * n
                for wire, gi, pos in entries:
                    row[wire] = offsets[gi] + pos
                index.extend(row)
            cache[key] = torch.tensor(index, dtype=torch.long, device=self.device)
        return flat.index_select(0, cache[key]).view(len(run.merged.where), n, groups, 2, 2)

    def _layered_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The Kronecker factors of the weight layers (:class:`~qlstm.circuit.layered.KronFactors`), per bind."""
        if getattr(self, "_factors", None) is None:
            n = self.program.circuit.n_qubits
            self._factors = KronFactors.apply(self.layer_matrices(), (n + 1) // 2)
        return self._factors

    def _encoding_args(self, groups: list, x: torch.Tensor) -> tuple[list, list]:
        """``(spec, angles)`` of the encoding groups for inputs ``x`` (see :class:`FusedExpval`)."""
        rd = torch.float64 if self.dtype == torch.complex128 else torch.float32
        spec, angles = [], []
        for grp in groups:
            spec_fixed = None
            if lookup(grp.name).num_params == 0:
                spec_fixed = grp.matrices(x, None, self.dtype, self.device)
            else:
                theta = grp.slots[0].evaluate(x, None, rd, self.device)
                if theta.dim() == 1:  # constant angles: same for every sample
                    theta = theta.unsqueeze(-1).expand(-1, x.shape[0])
                angles.append(theta)
            spec.append((grp.name, grp.wires, spec_fixed))
        return spec, angles

    def expvals(self, x: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """``[*G, B, n_observables]`` exact expectation values.

        Picks, in order: the Heisenberg picture (:mod:`~qlstm.circuit.heisenberg`: a
        Pauli transfer table built once per bind, then one real Kronecker product and
        matrix product per call) for small registers; the hand-written backward of
        :mod:`qlstm.circuit.layered` (permutations and two-factor Kronecker layers) for
        5 to 8 qubits; that of :mod:`qlstm.circuit.adjoint` for "data-encoding rotations,
        one fused unitary, Z read-outs"; otherwise the autograd path :meth:`state` +
        :meth:`measure` (the reference the others are tested against).
        """
        if self._heis is not None and self.heisenberg and x is not None:
            table = self._transfer()  # [4**n, *G, K]
            flat = table.reshape(table.shape[0], -1)
            if self._r0 is None:
                self._r0 = bloch_of(self._vecs0)  # [n, 3]
            spec = self.program.rotation_spec(self.dtype, self.device)
            if spec is not None and self.fused:
                rd = self._r0.dtype
                angles = [grp.slots[0].evaluate(x, None, rd, self.device) for grp in self._heis
                          if lookup(grp.name).num_params]
                angles = [a if a.dim() == 2 else a.unsqueeze(-1) for a in angles]
                out = BlochExpval.apply(spec, self._r0, flat, *angles)  # [B, G * K]
            else:
                r = bloch_prefix(self._r0, self._heis, x, self.dtype)  # [n, B, 3]
                out = PauliExpval.apply(r, flat)
            out = out.reshape(out.shape[0], *table.shape[1:]).movedim(0, -2)
            if self.weights is not None and self.weights.dim() > 2 and out.dim() == 2:
                out = out.expand(*self.weights.shape[:-2], *out.shape)  # grouped weights the unitary ignores
            return out
        if self.fused and x is not None and self.layered_spec() is not None:
            groups, stages = self.layered_spec()
            left, right = self._layered_factors()
            spec, angles = self._encoding_args(groups, x)
            n = self.program.circuit.n_qubits
            out = LayeredExpval.apply(spec, self._vecs0, stages, self._zsigns, split_of(n), left, right, *angles)
            lead = tuple(self.weights.shape[:-2]) if self.weights is not None and self.weights.dim() > 1 else ()
            return out.reshape(*lead, *out.shape[1:])
        if not hasattr(self, "_fused"):
            self._fused = self._fused_spec()
        fused = self._fused if self.fused else None
        if fused is None:
            return self.measure(self.state(x, batch))
        groups, m = fused
        spec, angles = self._encoding_args(groups, x)
        out = FusedExpval.apply(spec, self._vecs0, m, self._zsigns, *angles)
        if self.weights is not None and self.weights.dim() > 2 and (m is None or m.dim() == 2):
            out = out.expand(*self.weights.shape[:-2], *out.shape[-2:])
        return out


def compile_program(circuit: Circuit, *, fuse_max_qubits: int = 6, light_cone: bool = False) -> Program:
    """Compile a pure circuit (gates, amplitude encodings and terminal measurements only).

    With ``light_cone=True`` the circuit is first restricted to the wires that
    can reach its observables (:func:`~qlstm.circuit.transform.restrict_to_light_cone`):
    expectation values are unchanged, but :meth:`BoundProgram.state` is then
    the state of those wires only (``program.wires`` lists them).

    The result is cached on the circuit until the circuit changes.
    """
    key = (circuit._version, fuse_max_qubits, light_cone)
    cache = circuit.__dict__.setdefault("_program_cache", {})
    if key in cache:
        return cache[key]
    for stale in [k for k in cache if k[0] != circuit._version]:
        del cache[stale]
    if light_cone:
        from .transform import restrict_to_light_cone

        small, wires = restrict_to_light_cone(circuit)
        if wires is not None:
            prog = compile_program(small, fuse_max_qubits=fuse_max_qubits)
            prog.wires = tuple(wires)
            cache[key] = prog
            return prog
    n = circuit.n_qubits
    per_wire: list[list[Gate]] = [[] for _ in range(n)]
    amplitude: list[AmplitudeEncoding] = []
    entangled: set[int] = set()
    rest: list[Gate] = []
    for op in circuit.ops:
        if isinstance(op, Measure):
            continue  # terminal by construction: read from the final state
        if isinstance(op, AmplitudeEncoding):
            amplitude.append(op)
            entangled.update(op.wires)
            continue
        if not isinstance(op, Gate) or op.condition is not None:
            raise CircuitError(f"compile_program takes pure circuits only; found {op!r}")
        if len(op.wires) == 1 and op.wires[0] not in entangled and op.name != "unitary":
            # (a "unitary" has no GateSpec, so it cannot join a batched prefix group)
            per_wire[op.wires[0]].append(op)
        else:
            rest.append(op)
            entangled.update(op.wires)
    static_len = [next((i for i, g in enumerate(gs) if g.uses_input), len(gs)) for gs in per_wire]
    # a wire's one-qubit gates after its last data-reading one read no data: they start the
    # weight run instead (they act before anything else touches that wire, so the move keeps
    # the circuit's meaning), which leaves the prefix a pure data encoding
    data_end = [max((i + 1 for i, g in enumerate(gs) if g.uses_input), default=0) for gs in per_wire]
    static = [gs[:k] for gs, k in zip(per_wire, static_len)]
    dynamic = [gs[k:e] for gs, k, e in zip(per_wire, static_len, data_end)]
    tails = [gs[e:] if e > k else [] for gs, k, e in zip(per_wire, static_len, data_end)]
    # position by position across wires (they commute), so that each position is one layer
    moved = [t[j] for j in range(max(map(len, tails), default=0)) for t in tails if len(t) > j]
    rest = moved + rest

    def positions(lists: list[list[Gate]]) -> list[list[_Group]]:
        depth = max((len(g) for g in lists), default=0)
        return [_groups_by_name([gs[j] for gs in lists if len(gs) > j]) for j in range(depth)]

    steps: list = []
    run: list[Gate] = []

    def flush():
        if run:
            steps.append(_split_run(list(run), n, fuse_max_qubits))
        run.clear()

    for g in rest:
        if not g.uses_input:
            run.append(g)
        else:
            flush()
            steps.append(g)
    flush()
    prog = Program(circuit, amplitude, positions(static), positions(dynamic), steps, n <= fuse_max_qubits)
    cache[key] = prog
    return prog


def _split_run(gates: list[Gate], n: int, fuse_max_qubits: int) -> _WeightRun:
    """Split weight-only gates into constant blocks, single-qubit layers and single gates."""
    parts: list = []
    const: list[Gate] = []
    layer: dict[int, Gate] = {}

    def flush_const():
        if const:
            parts.append(_ConstBlock(list(const), n, dense=n <= fuse_max_qubits))
            const.clear()

    def flush_layer():
        if layer:
            parts.append(_Layer(list(layer.values())))
            layer.clear()

    for g in gates:
        is_const = not g.uses_weight
        if is_const:
            flush_layer()
            const.append(g)
        elif len(g.wires) == 1 and g.wires[0] not in layer:
            flush_const()
            layer[g.wires[0]] = g
        else:
            flush_const()
            flush_layer()
            if len(g.wires) == 1:
                layer[g.wires[0]] = g
            else:
                parts.append(g)
    flush_const()
    flush_layer()
    layers_ = [p for p in parts if isinstance(p, _Layer)]
    return _WeightRun(parts, _MergedLayers.build(layers_) if layers_ else None)
