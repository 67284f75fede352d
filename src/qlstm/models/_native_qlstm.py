r"""The faithful QLSTM recurrence, with its VQCs, as one native call each way (CPU).

The fastest exact path of :class:`~qlstm.models.qlstm.QLSTM` on the CPU where it applies; both
nodes' forward and backward are :file:`qlstm/_native/qlstm_kernels.cpp`.

* :class:`NativeFaithfulQLSTM` (Heisenberg form): VQCs of at most
  :attr:`~qlstm.circuit.plan.Program.heisenberg_max_qubits` qubits with the Chen encoding and
  layers of ``Rot`` gates on plain weights between constant blocks that permute Pauli strings
  (CNOT rings: the Chen and ``strongly_entangling`` templates). One autograd node from the weights
  ``[4, 1, n_w]``, ``[2, 1, n_w']`` and the inputs to the outputs; the kernels compute the Bloch
  rotations of the ``Rot`` gates and from them the Pauli transfer rows of every VQC (the numbers
  of :class:`~qlstm.circuit.heisenberg.WeightZYZRotation` and
  :class:`~qlstm.circuit.heisenberg.TransferRows`), the recurrence of
  :class:`~qlstm.models._fused.FusedFaithfulQLSTM`, and backpropagation through time and through
  the table build to the weights.
* :class:`NativeLayeredQLSTM` (layered form): every other VQC of constant permutation blocks and
  one-qubit gate layers after the Chen encoding, up to :data:`LAYERED_MAX_QUBITS` qubits, as
  statevectors with an adjoint backward (the numbers of
  :class:`~qlstm.models._fused_general.FusedGeneralQLSTM`).

The reference is the torch path: ``QLSTM.native = False`` (or ``QLSTM_NATIVE=0``) switches these
nodes off, and the tests compare the two (values and every gradient, float32 and float64).
"""

from __future__ import annotations

import ctypes
from array import array
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .. import _native
from ..circuit._autograd import first_order_only
from ..circuit.heisenberg import observable_vectors
from ..errors import InputError
from ._fused import chen_heisenberg
from ._fused_layered import layered_plan

_TABLE_LANES = 16  # the kernels build the transfer rows of at most this many (copy, read-out) pairs at once

__all__ = ["NativeAdapterQLSTM", "NativeFaithfulQLSTM", "NativeLayeredAdapterQLSTM", "NativeLayeredQLSTM",
           "native_adapter_spec", "native_layered_adapter_spec", "native_spec", "native_layered_spec"]


@dataclass(frozen=True)
class _GroupSpec:
    dims: tuple  # (n_qubits, G, K, n_weights, M, S)
    plan: Tensor  # [S, 3] int64
    idx: Tensor  # [3, M] int64
    obs: Tensor  # [K, 4**n]
    src: Tensor  # [P, 4**n] int64
    inv: Tensor  # [P, 4**n] int64
    sign: Tensor  # [P, 4**n]

    def pointers(self) -> list[int]:
        return [t.data_ptr() for t in (self.plan, self.idx, self.obs, self.src, self.inv, self.sign)]


class _Spec:
    """The constants of both VQC groups for the kernels, their pointers, and the call layouts per
    call shape (built on first use)."""

    def __init__(self, gates, process, double: bool):
        self.gates, self.process, self.double = gates, process, double
        self.consts = gates.pointers() + process.pointers()
        self._calls: dict = {}

    @staticmethod
    def fits(gates, process) -> bool:
        """Whether the kernels take these two groups (beyond what building them checked)."""
        return True

    def __getstate__(self):  # pointers and ctypes arrays are per process: rebuilt on unpickling
        return {"gates": self.gates, "process": self.process, "double": self.double}

    def __setstate__(self, state):
        self.__init__(state["gates"], state["process"], state["double"])


def _cached_spec(kind: str, cls, group_spec, gates, process, n: int, hidden: int):
    """``cls(group_spec(gates, ...), group_spec(process, ...))``, once per pair of programs, dtype
    and device; None where either group does not fit or the library does not load."""
    if _native.library() is None or gates.dtype not in (torch.complex64, torch.complex128):
        return None
    key = (kind, id(process.program), gates.dtype, str(gates.device))
    cache = gates.program._cache
    if key not in cache:
        g = group_spec(gates, n, 4, hidden)
        p = group_spec(process, hidden, 2, hidden) if g is not None else None
        # the process program stays referenced, so that its id stays unique
        spec = None if p is None or not cls.fits(g, p) else cls(g, p, gates.dtype == torch.complex128)
        cache[key] = (process.program, spec)
    return cache[key][1]


class NativeSpec(_Spec):
    """The Heisenberg form's constants (:func:`native_spec`, :func:`native_adapter_spec`)."""

    @staticmethod
    def fits(gates, process) -> bool:
        """The kernels build a group's tables with its copies x read-outs as at most 16 vector lanes."""
        return all(g.dims[1] * g.dims[2] <= _TABLE_LANES for g in (gates, process))

    def call(self, batch: int, steps: int, inputs: int, hidden: int) -> "_Call":
        key = (batch, steps, inputs, hidden, torch.get_num_threads())
        if key not in self._calls:
            self._calls[key] = _Call(self, batch, steps, inputs, hidden)
        return self._calls[key]


class _Call:
    """One call shape (batch, steps, inputs, hidden): its dims array, workspace size and kernels."""

    def __init__(self, spec: NativeSpec, batch: int, steps: int, inputs: int, hidden: int):
        lib = _native.library()
        head = (batch, steps, inputs, hidden, *spec.gates.dims, *spec.process.dims)
        self.shape = (batch, steps, inputs, hidden)
        self.dims = (ctypes.c_int64 * 17)(*head, _lanes(batch, spec.double))  # then samples per lane group
        self.ws = lib.qlstm_ws_size(self.dims)
        g, p = spec.gates, spec.process
        rows_g, rows_p = g.dims[1] * g.dims[2] * 4 ** g.dims[0], p.dims[1] * p.dims[2] * 4 ** p.dims[0]
        self.ws_rows = self.ws + rows_g + rows_p  # the forward's workspace, then the backward's rows' gradients
        self._grow_offsets = (self.ws, self.ws + rows_g)
        self.forward = lib.qlstm_step_forward_f64 if spec.double else lib.qlstm_step_forward_f32
        self.backward = lib.qlstm_step_backward_f64 if spec.double else lib.qlstm_step_backward_f32
        self.adapter_forward = lib.qlstm_adapter_forward_f64 if spec.double else lib.qlstm_adapter_forward_f32
        self.adapter_backward = lib.qlstm_adapter_backward_f64 if spec.double else lib.qlstm_adapter_backward_f32

    def grow_ptrs(self, ws: Tensor) -> list[int]:
        """The addresses of the gate and processing rows' gradients in a workspace of ``ws_rows``."""
        base, size = ws.data_ptr(), ws.element_size()
        return [base + o * size for o in self._grow_offsets]


def _stack(ts: list, dtype, *shape) -> Tensor:
    """The tables ``ts`` as one contiguous tensor ``[P, *shape]``; one row of zeros where there are
    none (the kernels then never read it, but get a valid pointer)."""
    return torch.stack(ts).to(dtype).contiguous() if ts else torch.zeros(1, *shape, dtype=dtype)


def _weights_fit(w, copies: int) -> bool:
    """Whether a bound group's weights are what the kernels take: ``[copies, n_w]`` or
    ``[copies, 1, n_w]``, on the CPU."""
    return (w is not None and w.dim() in (2, 3) and w.shape[0] == copies and w.shape[1:-1].numel() == 1
            and w.device.type == "cpu")




def _group_spec(bound, n: int, copies: int, k: int):
    program = bound.program
    w = bound.weights
    if not _weights_fit(w, copies):
        return None
    if not chen_heisenberg(bound, n) or program.transfer_table_fn(bound.dtype, bound.device) is None:
        return None
    rdtype = torch.float64 if bound.dtype == torch.complex128 else torch.float32
    run = program.steps[0]
    plan = run._transfer_plan(rdtype, bound.device, n)
    indices, offsets = [], []
    for grp in run.merged.groups:
        index = grp.weight_index(bound.device)
        if index is None:
            return None  # not Rot gates on plain weights
        offsets.append(sum(i.shape[1] for i in indices))
        indices.append(index)
    steps, src, inv, sign = [], [], [], []
    for step in plan:
        if step[0] == "perm":
            steps.append((0, len(src), 0))
            src.append(step[1])
            inv.append(step[3])
            sign.append(step[2])
        elif step[0] == "rot":
            if step[2] is not None:
                steps.append((1, step[1], offsets[step[2]] + step[3]))
        else:
            return None  # a dense constant block
    d = 4**n
    obs = observable_vectors(program.circuit.observables, n, rdtype, bound.device)
    if obs.shape[0] != k:
        return None
    idx = torch.cat(indices, 1).contiguous() if indices else torch.zeros(3, 0, dtype=torch.long)

    return _GroupSpec(
        dims=(n, copies, k, w.shape[-1], idx.shape[1], len(steps)),
        plan=torch.tensor(steps, dtype=torch.long).reshape(-1, 3).contiguous(),
        idx=idx, obs=obs.contiguous(), src=_stack(src, torch.long, d), inv=_stack(inv, torch.long, d),
        sign=_stack(sign, rdtype, d))


def native_spec(gates, process, n: int, hidden: int) -> NativeSpec | None:
    """The kernels' constants for a faithful QLSTM's bound VQC groups (four gate copies on ``n``
    qubits measuring ``hidden`` wires, two processing copies on ``hidden`` qubits), cached per
    pair of programs; None where the native path does not apply or the library does not load."""
    return _cached_spec("native_spec", NativeSpec, _group_spec, gates, process, n, hidden)


def native_adapter_spec(vqc, n_qubits: int) -> NativeSpec | None:
    """The kernels' constants for an adapter-mode QLSTM's bound VQC (six weight copies on
    ``n_qubits`` qubits, every wire read out): copies 0-3 the gate group, 4-5 the processing group,
    on the same circuit; cached per program. None where the Heisenberg form does not apply."""
    def split(both, copies):
        n, _, k, nw, m, steps = both.dims
        return replace(both, dims=(n, copies, k, nw, m, steps))

    return _cached_adapter_spec("native_adapter_spec", NativeSpec, _group_spec, split, vqc, n_qubits)


def _cached_adapter_spec(kind: str, cls, group_spec, split, vqc, n_qubits: int):
    """``cls(split(spec, 4), split(spec, 2))`` of ``group_spec`` for all six copies, once per
    program, dtype and device; None where it does not apply or the library does not load."""
    if _native.library() is None or vqc.dtype not in (torch.complex64, torch.complex128):
        return None
    key = (kind, vqc.dtype, str(vqc.device))
    cache = vqc.program._cache
    if key not in cache:
        both = group_spec(vqc, n_qubits, 6, n_qubits)
        groups = None if both is None else (split(both, 4), split(both, 2))
        cache[key] = None if groups is None or not cls.fits(*groups) else cls(*groups, vqc.dtype == torch.complex128)
    return cache[key]


def _ptrs(values: list[int]) -> bytes:
    """The kernels' pointer table: the addresses as 64-bit words (bytes, which ctypes passes as a
    pointer to their buffer; the kernels only read it). Faster to build than a ctypes array."""
    return array("Q", values).tobytes()


def _dense(t: Tensor, dtype) -> Tensor:
    return t if t.dtype == dtype and t.is_contiguous() else t.to(dtype).contiguous()


def _take_inputs(ctx, x, h0, c0, dtype):
    """``x``, ``h0``, ``c0`` dense for the kernels (a state that is None stays None: NULL, the kernels
    start from zeros); their shapes go to ``ctx.in_shapes``, for their gradients."""
    ctx.in_shapes = (x.shape, None if h0 is None else h0.shape, None if c0 is None else c0.shape)
    return _dense(x, dtype), None if h0 is None else _dense(h0, dtype), None if c0 is None else _dense(c0, dtype)


def _state_out(b: int, hidden: int, dtype) -> tuple[Tensor, Tensor]:
    """Empty ``h_T``, ``c_T``, each ``[1, B, H]`` (the state shape of ``torch.nn.LSTM``)."""
    return torch.empty(1, b, hidden, dtype=dtype), torch.empty(1, b, hidden, dtype=dtype)


def _grad_buffers(ctx, g_out, g_h, g_c, dtype):
    """The backward's incoming gradients, dense (None where autograd passed None: the kernels read
    zeros), and the empty buffers for the gradients of ``x``, ``h0``, ``c0`` (of the shapes
    ``ctx.in_shapes`` holds) where ``ctx.needs_input_grad`` (entries 1-3) asks for them, else None
    (the kernels skip them)."""
    need = ctx.needs_input_grad
    g_out = None if g_out is None else _dense(g_out, dtype)
    g_h = None if g_h is None else _dense(g_h, dtype)
    g_c = None if g_c is None else _dense(g_c, dtype)
    sx, sh, sc = ctx.in_shapes
    return (g_out, g_h, g_c, torch.empty(sx, dtype=dtype) if need[1] else None,
            torch.empty(sh, dtype=dtype) if need[2] else None, torch.empty(sc, dtype=dtype) if need[3] else None)


def _addr(t: Tensor | None) -> int:
    """A tensor's data pointer for the kernels; 0 (NULL) for None."""
    return 0 if t is None else t.data_ptr()


_NONFINITE = {1: "QLSTM input", 2: "QLSTM state h_0", 3: "QLSTM state c_0"}


class NativeFaithfulQLSTM(torch.autograd.Function):
    """``apply(spec, x [B, T, I], h0, c0, w_gates [4, 1, n_w], w_proc [2, 1, n_w'])`` ->
    ``(outputs [B, T, H], h_T [1, B, H], c_T [1, B, H])``, the states ``[B, H]`` or ``[1, B, H]``,
    or None for zeros; see the module docstring. Checks that ``x``, ``h0``, ``c0`` are finite
    (:class:`~qlstm.errors.InputError` otherwise)."""

    @staticmethod
    def forward(ctx, spec: NativeSpec, x, h0, c0, w_gates, w_proc):
        b, t, i = x.shape
        hidden = spec.process.dims[0]
        call = spec.call(b, t, i, hidden)
        dtype = w_gates.dtype
        x, h0, c0 = _take_inputs(ctx, x, h0, c0, dtype)
        wg, wp = _dense(w_gates, dtype), _dense(w_proc, dtype)
        ws = torch.empty(call.ws_rows, dtype=dtype)  # the workspace, then room for the rows' gradients
        out = torch.empty(b, t, hidden, dtype=dtype)
        h, c = _state_out(b, hidden, dtype)
        bad = call.forward(call.dims, _ptrs(spec.consts + [_addr(a) for a in (x, h0, c0, out, h, c, ws, wg, wp)]))
        if bad:
            raise InputError(f"{_NONFINITE.get(bad, 'QLSTM input')} contains NaN or Inf values")
        ctx.spec, ctx.call = spec, call
        ctx.save_for_backward(ws, wg, wp)
        return out, h, c

    @staticmethod
    @first_order_only
    def backward(ctx, g_out, g_h, g_c):
        ws, wg, wp = ctx.saved_tensors
        spec, call = ctx.spec, ctx.call
        g_out, g_h, g_c, gx, gh0, gc0 = _grad_buffers(ctx, g_out, g_h, g_c, wg.dtype)
        gwg, gwp = torch.empty_like(wg), torch.empty_like(wp)
        call.backward(call.dims, _ptrs(spec.consts + [_addr(a) for a in (ws, g_out, g_h, g_c, gx, gh0, gc0)]
                                       + call.grow_ptrs(ws) + [a.data_ptr() for a in (wg, wp, gwg, gwp)]))
        need = ctx.needs_input_grad
        return (None, gx if need[1] else None, gh0 if need[2] else None, gc0 if need[3] else None,
                gwg if need[4] else None, gwp if need[5] else None)


# -- the layered (statevector) form ----------------------------------------------------------------
@dataclass(frozen=True)
class _LayeredGroupSpec:
    dims: tuple  # (n_qubits, G, K, L, S, n_weights, M, from_weights)
    stages: Tensor  # [S, 3] int64: (0, perm, has phases) or (1, layer, 0)
    idx: Tensor  # [P, 2**n] int64
    inv: Tensor  # [P, 2**n] int64
    phase: Tensor  # [P, 2**n, 2]: (re, im)
    signs: Tensor  # [2**n, K]
    slot: Tensor  # [L, n] int64: the Rot gate of the wire in the layer (from_weights), -1 a given matrix, -2 none
    rot_idx: Tensor  # [3, M] int64: angle indices of the Rot gates (from_weights)
    mats_shape: tuple  # [L, n, G, 2, 2] of layer_matrices()

    @property
    def from_weights(self) -> bool:
        return bool(self.dims[7])

    def pointers(self) -> list[int]:
        return [t.data_ptr() for t in (self.stages, self.idx, self.inv, self.phase, self.signs, self.slot, self.rot_idx)]


#: the largest VQC the layered kernels take: a sample's state (2**n amplitudes, per copy and lane,
#: a handful of arrays per thread) stays within the caches up to about this size
LAYERED_MAX_QUBITS = 12


def _layered_group_spec(bound, n: int, copies: int, k: int):
    w = bound.weights
    if not _weights_fit(w, copies):
        return None
    plan = layered_plan(bound, n, min_qubits=1, max_qubits=LAYERED_MAX_QUBITS)
    if plan is None or plan.signs.shape[1] != k:
        return None
    run = bound.program.steps[0]
    rdtype = torch.float64 if bound.dtype == torch.complex128 else torch.float32
    d = 2**n
    stages, idx, inv, phase = [], [], [], []
    for st in plan.stages:
        if st[0] == "perm":
            stages.append((0, len(idx), int(st[2] is not None)))
            idx.append(st[1])
            inv.append(st[3])
            ph = st[2] if st[2] is not None else torch.ones(d, dtype=bound.dtype, device=st[1].device)
            phase.append(torch.view_as_real(ph.to(bound.dtype)).to(rdtype))
        else:
            stages.append((1, st[1], 0))
    # Rot gates on plain weights in every group: the kernels build their matrices from the weights
    indices, offsets = [], []
    for grp in run.merged.groups:
        index = grp.weight_index(bound.device)
        offsets.append(sum(i.shape[1] for i in indices))
        indices.append(index)
    from_weights = all(i is not None for i in indices)
    layers = len(run.merged.where)
    slot = torch.full((layers, n), -2, dtype=torch.long)
    for l, entries in enumerate(run.merged.where):
        for wire, gi, pos in entries:
            slot[l, wire] = offsets[gi] + pos if from_weights else -1
    rot_idx = torch.cat(indices, 1).contiguous() if from_weights and indices else torch.zeros(3, 1, dtype=torch.long)

    return _LayeredGroupSpec(
        dims=(n, copies, k, layers, len(stages), w.shape[-1], rot_idx.shape[1], int(from_weights)),
        stages=torch.tensor(stages, dtype=torch.long).reshape(-1, 3).contiguous(),
        idx=_stack(idx, torch.long, d), inv=_stack(inv, torch.long, d), phase=_stack(phase, rdtype, d, 2),
        signs=plan.signs.to(rdtype).contiguous(), slot=slot.contiguous(), rot_idx=rot_idx,
        mats_shape=(layers, n, copies, 2, 2))


def _lanes(batch: int, double: bool) -> int:
    """Samples per lane group of the layered kernels: the widest vector of samples that still leaves
    every torch thread a group (one sample at a time for tiny batches)."""
    threads = max(1, torch.get_num_threads())
    for w in ((8, 4) if double else (16, 8, 4)):
        if -(-batch // w) >= threads:
            return w
    return 4 if batch >= 4 else 1


class LayeredSpec(_Spec):
    """The layered form's constants (:func:`native_layered_spec`)."""

    def call(self, batch: int, steps: int, inputs: int, hidden: int, adapter: bool = False):
        """``(dims, workspace size, forward, backward)`` of one call shape (``adapter``: the
        adapter-mode kernels)."""
        key = (batch, steps, inputs, hidden, torch.get_num_threads(), adapter)
        if key not in self._calls:
            lib = _native.library()
            lanes = _lanes(batch, self.double)
            dims = (ctypes.c_int64 * 21)(batch, steps, inputs, hidden, *self.gates.dims, *self.process.dims, lanes)
            stem = "qlstm_layered_adapter_" if adapter else "qlstm_layered_"
            sfx = "_f64" if self.double else "_f32"
            padded = -(-batch // lanes) * lanes  # whole lane groups (the kernels keep the per-step values per group)
            self._calls[key] = (dims, steps * padded * (inputs + 8 * hidden),
                                getattr(lib, stem + "forward" + sfx), getattr(lib, stem + "backward" + sfx))
        return self._calls[key]


def native_layered_spec(gates, process, n: int, hidden: int) -> LayeredSpec | None:
    """The layered kernels' constants for a faithful QLSTM's bound VQC groups (any VQC of constant
    permutation blocks and one-qubit gate layers after the Chen encoding, ``<Z>`` read-outs),
    cached per pair of programs; None where they do not apply or the library does not load."""
    return _cached_spec("native_layered_spec", LayeredSpec, _layered_group_spec, gates, process, n, hidden)


class NativeLayeredQLSTM(torch.autograd.Function):
    """``apply(spec, x [B, T, I], h0, c0, gates, process)`` -> ``(outputs [B, T, H], h_T [1, B, H],
    c_T [1, B, H])`` (the states as for :class:`NativeFaithfulQLSTM`): the faithful recurrence with every VQC as a
    statevector, forward and adjoint backward in :file:`qlstm/_native/qlstm_kernels.cpp`.

    Each group's input is its weights ``[copies, 1, n_w]`` where its layers are ``Rot`` gates on
    plain weights (the kernels build the matrices), else its gate matrices ``[L, n, copies, 2, 2]``
    (complex, :meth:`~qlstm.circuit.plan.BoundProgram.layer_matrices`, from which autograd
    reaches the weights). Checks that ``x``, ``h0``, ``c0`` are finite."""

    @staticmethod
    def forward(ctx, spec: LayeredSpec, x, h0, c0, in_g, in_p):
        b, t, i = x.shape
        hidden = spec.process.dims[0]
        dims, ws_size, fwd, _ = spec.call(b, t, i, hidden)
        dtype = torch.float64 if spec.double else torch.float32
        x, h0, c0 = _take_inputs(ctx, x, h0, c0, dtype)
        mats, weights = [], []
        for g, a in ((spec.gates, in_g), (spec.process, in_p)):
            if g.from_weights:
                weights.append(_dense(a, dtype))
                mats.append(torch.empty(*g.mats_shape, 2, dtype=dtype))
            else:
                weights.append(x)  # unused
                mats.append(torch.view_as_real(a.contiguous()))
        ws = torch.empty(ws_size, dtype=dtype)
        out = torch.empty(b, t, hidden, dtype=dtype)
        h, c = _state_out(b, hidden, dtype)
        bad = fwd(dims, _ptrs(spec.consts + [_addr(a) for a in (x, h0, c0, out, h, c, ws, *mats, *weights)]))
        if bad:
            raise InputError(f"{_NONFINITE.get(bad, 'QLSTM input')} contains NaN or Inf values")
        ctx.spec, ctx.shapes = spec, (b, t, i, hidden)
        ctx.save_for_backward(ws, *mats, *weights)
        return out, h, c

    @staticmethod
    @first_order_only
    def backward(ctx, g_out, g_h, g_c):
        ws, mg, mp, wg, wp = ctx.saved_tensors
        spec = ctx.spec
        b, t, i, hidden = ctx.shapes
        dims, _, _, bwd = spec.call(b, t, i, hidden)
        g_out, g_h, g_c, gx, gh0, gc0 = _grad_buffers(ctx, g_out, g_h, g_c, ws.dtype)
        gmg, gmp = torch.empty_like(mg), torch.empty_like(mp)
        gwg = torch.empty_like(wg) if spec.gates.from_weights else None  # None: unused by the kernel
        gwp = torch.empty_like(wp) if spec.process.from_weights else None
        bwd(dims, _ptrs(spec.consts + [_addr(a) for a in (ws, g_out, g_h, g_c, gx, gh0, gc0, mg, mp, gmg, gmp,
                                                                  wg, wp, gwg, gwp)]))
        need = ctx.needs_input_grad
        grads = [gwg if spec.gates.from_weights else torch.view_as_complex(gmg),
                 gwp if spec.process.from_weights else torch.view_as_complex(gmp)]
        return (None, gx if need[1] else None, gh0 if need[2] else None, gc0 if need[3] else None,
                grads[0] if need[4] else None, grads[1] if need[5] else None)


class NativeAdapterQLSTM(torch.autograd.Function):
    """``apply(spec, x [B, T, I], h0, c0, wg [n, I+H], bg [n], wp [n, H], bp [n], w_out [6, n, H],
    b_out [6, 1, H], w_vqc [6, 1, n_w])`` -> ``(outputs [B, T, H], h_T [1, B, H], c_T [1, B, H])``
    (the states as for :class:`NativeFaithfulQLSTM`):
    adapter mode (the recurrence of :class:`~qlstm.models._fused_adapter.FusedAdapterQLSTM`) with
    the VQCs in the Heisenberg form, forward and backward in the kernels. Checks that ``x``,
    ``h0``, ``c0`` are finite."""

    @staticmethod
    def forward(ctx, spec: NativeSpec, x, h0, c0, wg, bg, wp, bp, w_out, b_out, w_vqc):
        b, t, i = x.shape
        hidden = w_out.shape[-1]
        call = spec.call(b, t, i, hidden)
        dtype = w_vqc.dtype
        x, h0, c0 = _take_inputs(ctx, x, h0, c0, dtype)
        params = [_dense(a, dtype) for a in (w_vqc, wg, bg, wp, bp, w_out, b_out)]
        ws = torch.empty(call.ws_rows, dtype=dtype)  # the workspace, then room for the rows' gradients
        out = torch.empty(b, t, hidden, dtype=dtype)
        h, c = _state_out(b, hidden, dtype)
        bad = call.adapter_forward(call.dims, _ptrs(spec.consts + [_addr(a) for a in (x, h0, c0, out, h, c, ws)]
                                                    + [a.data_ptr() for a in params]))
        if bad:
            raise InputError(f"{_NONFINITE.get(bad, 'QLSTM input')} contains NaN or Inf values")
        ctx.spec, ctx.call = spec, call
        ctx.save_for_backward(ws, *params)
        return out, h, c

    @staticmethod
    @first_order_only
    def backward(ctx, g_out, g_h, g_c):
        ws, w_vqc, *lin = ctx.saved_tensors
        spec, call = ctx.spec, ctx.call
        g_out, g_h, g_c, gx, gh0, gc0 = _grad_buffers(ctx, g_out, g_h, g_c, ws.dtype)
        g_vqc = torch.empty_like(w_vqc)
        g_lin = [torch.empty_like(a) for a in lin]
        call.adapter_backward(call.dims, _ptrs(
            spec.consts + [_addr(a) for a in (ws, g_out, g_h, g_c, gx, gh0, gc0)]
            + call.grow_ptrs(ws) + [w_vqc.data_ptr(), g_vqc.data_ptr()]
            + [a.data_ptr() for a in lin] + [a.data_ptr() for a in g_lin]))
        need = ctx.needs_input_grad
        grads = [gx, gh0, gc0, *g_lin, g_vqc]
        return (None, *[g if need[k + 1] else None for k, g in enumerate(grads)])


def native_layered_adapter_spec(vqc, n_qubits: int) -> LayeredSpec | None:
    """:func:`native_adapter_spec` for the layered form (VQCs the Heisenberg form does not take, up
    to :data:`LAYERED_MAX_QUBITS` qubits): copies 0-3 and 4-5 of one bound circuit."""
    def split(both, copies):
        d = both.dims
        return replace(both, dims=(d[0], copies, *d[2:]), mats_shape=(*both.mats_shape[:2], copies, 2, 2))

    return _cached_adapter_spec("native_layered_adapter_spec", LayeredSpec, _layered_group_spec, split, vqc, n_qubits)


class NativeLayeredAdapterQLSTM(torch.autograd.Function):
    """:class:`NativeAdapterQLSTM` with the VQCs in the layered form: ``apply(spec, x, h0, c0, wg, bg, wp,
    bp, w_out, b_out, vqc)`` with ``vqc`` the weights ``[6, 1, n_w]`` where the layers are ``Rot``
    gates on plain weights, else the gate matrices ``[L, n, 6, 2, 2]`` (complex)."""

    @staticmethod
    def forward(ctx, spec: LayeredSpec, x, h0, c0, wg, bg, wp, bp, w_out, b_out, vqc):
        b, t, i = x.shape
        hidden = w_out.shape[-1]
        dims, ws_size, fwd, _ = spec.call(b, t, i, hidden, adapter=True)
        dtype = torch.float64 if spec.double else torch.float32
        x, h0, c0 = _take_inputs(ctx, x, h0, c0, dtype)
        lin = [_dense(a, dtype) for a in (wg, bg, wp, bp, w_out, b_out)]
        if spec.gates.from_weights:
            w = _dense(vqc, dtype)
            half = w.shape[-1] * 4 * w.element_size()
            w_ptrs = [w.data_ptr(), w.data_ptr() + half]
            mats = [torch.empty(*g.mats_shape, 2, dtype=dtype) for g in (spec.gates, spec.process)]
            keep = [w]
        else:
            w = x  # unused
            mats = [torch.view_as_real(vqc[:, :, :4].contiguous()), torch.view_as_real(vqc[:, :, 4:].contiguous())]
            w_ptrs = [x.data_ptr(), x.data_ptr()]
            keep = [x]
        ws = torch.empty(ws_size, dtype=dtype)
        out = torch.empty(b, t, hidden, dtype=dtype)
        h, c = _state_out(b, hidden, dtype)
        bad = fwd(dims, _ptrs(spec.consts + [_addr(a) for a in (x, h0, c0, out, h, c, ws, *mats)] + w_ptrs
                              + [a.data_ptr() for a in lin]))
        if bad:
            raise InputError(f"{_NONFINITE.get(bad, 'QLSTM input')} contains NaN or Inf values")
        ctx.spec, ctx.shapes = spec, (b, t, i, hidden)
        ctx.save_for_backward(ws, *mats, keep[0], *lin)
        return out, h, c

    @staticmethod
    @first_order_only
    def backward(ctx, g_out, g_h, g_c):
        ws, mg, mp, w, *lin = ctx.saved_tensors
        spec = ctx.spec
        b, t, i, hidden = ctx.shapes
        dims, _, _, bwd = spec.call(b, t, i, hidden, adapter=True)
        g_out, g_h, g_c, gx, gh0, gc0 = _grad_buffers(ctx, g_out, g_h, g_c, ws.dtype)
        gmg, gmp = torch.empty_like(mg), torch.empty_like(mp)
        if spec.gates.from_weights:
            gw = torch.empty_like(w)
            half = w.shape[-1] * 4 * w.element_size()
            w_ptrs = [w.data_ptr(), w.data_ptr() + half, gw.data_ptr(), gw.data_ptr() + half]
        else:
            gw = None
            w_ptrs = [0] * 4  # unused
        g_lin = [torch.empty_like(a) for a in lin]
        bwd(dims, _ptrs(spec.consts + [_addr(a) for a in (ws, g_out, g_h, g_c, gx, gh0, gc0, mg, mp, gmg, gmp)]
                        + w_ptrs + [a.data_ptr() for a in lin] + [a.data_ptr() for a in g_lin]))
        g_vqc = gw if spec.gates.from_weights else torch.cat([torch.view_as_complex(gmg), torch.view_as_complex(gmp)], 2)
        need = ctx.needs_input_grad
        grads = [gx, gh0, gc0, *g_lin, g_vqc]
        return (None, *[g if need[k + 1] else None for k, g in enumerate(grads)])
