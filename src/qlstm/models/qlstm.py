"""QLSTM of Chen, Yoo & Fang (2020): an LSTM cell whose six transforms are VQCs.

Per time step, with :math:`v_t = [x_t, h_{t-1}]`:

.. math::
    f_t &= \\sigma(\\mathrm{VQC}_1(v_t)),\\quad i_t = \\sigma(\\mathrm{VQC}_2(v_t)),\\quad
    \\tilde c_t = \\tanh(\\mathrm{VQC}_3(v_t)),\\quad o_t = \\sigma(\\mathrm{VQC}_4(v_t)) \\\\
    c_t &= f_t \\circ c_{t-1} + i_t \\circ \\tilde c_t \\\\
    h_t &= \\mathrm{VQC}_5(o_t \\circ \\tanh c_t),\\quad y_t = \\mathrm{VQC}_6(o_t \\circ \\tanh c_t)

Run order inside a cell: the four gate VQCs (forget, input, candidate, output)
read the same :math:`v_t` and are evaluated as **one** batched call; then the
hidden-state and output processing VQCs, again as one call.

Speed: with exact simulation of pure circuits, the weights of all VQCs are
bound once per forward pass (their variational unitaries are built once and
reused at every time step, see :mod:`qlstm.circuit.plan`); each time step then
costs one encoding and one matrix product per group of VQCs.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor, nn

from ..circuit.noise import NoiseModel
from ..circuit.templates import chen_vqc
from ..errors import InputError, QlstmError
from ..nn import QuantumLayer
from ._fused import FusedFaithfulQLSTM, chen_heisenberg, chen_heisenberg_tables
from ._compiled_general import compiled_general_recurrence
from ._fused_adapter import FusedAdapterQLSTM
from ._fused_general import FusedGeneralQLSTM
from ._fused_layered import layered_plan
from ._native_qlstm import (LayeredSpec, NativeAdapterQLSTM, NativeFaithfulQLSTM, NativeLayeredAdapterQLSTM,
                            NativeLayeredQLSTM, native_adapter_spec, native_layered_adapter_spec, native_layered_spec,
                            native_spec)
from .lstm import _check_finite, _fmt

__all__ = ["QLSTM", "GATE_NAMES"]

GATE_NAMES = ("forget", "input", "candidate", "output")


def _vqc_args(bound, n: int, copies: int):
    """``(vqc, plan)`` of an :mod:`~qlstm.models._evaluators` evaluator for a bound Chen-encoded VQC
    with ``copies`` weight copies (the transfer table and None at most 4 qubits, the gate matrices
    and their plan at 5 to 8), or None where neither applies."""
    w = bound.weights
    if w is None or w.dim() < 3 or w.shape[-1] == 0:  # no variational layers: no weight copies to fuse
        return None
    if chen_heisenberg(bound, n):
        return bound._transfer().reshape(4**n, copies, -1), None
    plan = layered_plan(bound, n)
    return None if plan is None else (bound.layer_matrices(), plan)


class QLSTM(nn.Module):
    r"""Quantum LSTM (Chen, Yoo & Fang 2020) with six VQCs per cell.

    Speed: exact, noiseless faithful-mode models run the whole recurrence as one autograd node
    with a hand-written backward: in the Heisenberg picture when ``input_size + hidden_size <= 4``
    (:mod:`qlstm.models._fused`), otherwise with each VQC group in the Heisenberg picture (at most
    4 qubits) or as layered statevectors (5 to 8 qubits) when ``input_size + hidden_size <= 8``
    (:mod:`qlstm.models._fused_general`).
    Adapter mode with up to 8 qubits runs as one node too (:mod:`qlstm.models._fused_adapter`).
    Everything else runs step by step (``QLSTM.fused = False`` forces that, the path the nodes
    are tested against). On the CPU, faithful models of up to 12 qubits (permutation blocks and
    one-qubit layers after the Chen encoding: every registry template), faithful or adapter mode,
    run instead as native C++ kernels, one call forward and one backward
    (:mod:`qlstm.models._native_qlstm`), built on first
    use with the system's C++ compiler; ``QLSTM.native = False`` or ``QLSTM_NATIVE=0`` runs the
    torch nodes, which are also what runs where no compiler works.

    Args:
        input_size: features per time step.
        hidden_size: size of :math:`h_t` and :math:`c_t`.
        n_qubits: qubits per VQC. ``mode="faithful"`` requires (and defaults to)
            ``input_size + hidden_size``; ``mode="adapter"`` defaults to 4.
        n_layers: variational layers per VQC.
        template: the variational part of every VQC: ``"chen"`` (the paper's CNOT rings
            and ``Rot`` layer, default), ``"basic_entangler"``, ``"strongly_entangling"``
            (:data:`~qlstm.circuit.templates.VQC_TEMPLATES`) or a callable
            ``(n_qubits, n_layers) -> Circuit`` of weights only. The Chen encoding and
            the ``<Z>`` read-out stay.
        compiled: run the faithful recurrence, with the construction of its VQCs from the weights,
            as one ``torch.compile`` region (needs a C++ compiler; every new input shape -- batch
            size, sequence length -- compiles once: about 20 to 30 s at 4 qubits, a minute at 8, on
            2 cores). At 5 to 8 qubits the statevectors are held as real pairs
            (:mod:`qlstm.models._compiled_general`). Measured per training step against the eager
            node (docs/benchmarks.md): about 2x to 2.5x faster at 4 qubits, 1.1x to 1.7x at 8: for
            long trainings. Only where gradients are recorded: under ``torch.no_grad()``
            (evaluation) the eager node runs, so evaluation compiles nothing. Refused where no
            fused recurrence can apply (adapter mode, noise, shots); a warning at the first call
            where the compiled one does not (more than 8 qubits).
        mode: ``"faithful"`` -- :math:`v_t` is encoded straight into the gate VQCs
            (``n_qubits = input + hidden``, as in the authors' code); the gate VQCs
            measure ``<Z>`` on the first ``hidden_size`` wires; VQC5/VQC6 run on
            ``hidden_size`` qubits. ``"adapter"`` -- classical linear layers map
            :math:`v_t` into ``n_qubits`` inputs and the ``n_qubits`` outputs back
            to ``hidden_size`` (as most public QLSTMs do); all six VQCs then share
            one circuit shape and are evaluated together.
        noise: optional :class:`~qlstm.circuit.noise.NoiseModel` applied to every VQC, or its
            ``"channel:p[:placement]"`` / mapping form (:meth:`NoiseModel.coerce`).
        shots: None for exact expectation values, else shots per circuit execution.
        generator: ``torch.Generator`` for initialisation (and shot sampling).
        batch_first: input ``[B, T, input_size]`` if True, else ``[T, B, input_size]``.
        dtype: float32 (complex64 simulation) or float64.

    Shape:
        - input: ``[B, T, input_size]``; state ``(h_0, c_0)`` each ``[1, B, hidden_size]``
        - output: ``outputs [B, T, hidden_size]`` (the VQC6 outputs :math:`y_t`),
          ``(h_n, c_n)`` each ``[1, B, hidden_size]``

    Example:
        >>> model = QLSTM(input_size=1, hidden_size=3, n_layers=2)   # 4 qubits, faithful
        >>> out, (h, c) = model(torch.randn(16, 4, 1))
        >>> out.shape, h.shape
        (torch.Size([16, 4, 3]), torch.Size([1, 16, 3]))
    """

    #: run the recurrence as one autograd node where it applies (faithful mode:
    #: :mod:`~qlstm.models._fused`, :mod:`~qlstm.models._fused_general`; adapter mode:
    #: :mod:`~qlstm.models._fused_adapter`); False: step by step
    fused = True
    #: on the CPU, run the recurrence as native kernels where they apply and load
    #: (:mod:`~qlstm.models._native_qlstm`); False: the torch nodes, the reference
    native = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        n_qubits: int | None = None,
        n_layers: int = 2,
        *,
        mode: str = "faithful",
        template="chen",
        compiled: bool = False,
        noise: NoiseModel | None = None,
        shots: int | None = None,
        generator: torch.Generator | None = None,
        batch_first: bool = True,
        dtype: torch.dtype = torch.float32,
        device=None,
    ):
        super().__init__()
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("n_layers", n_layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "n_layers" else 1):
                raise QlstmError(f"{name} must be a positive int, got {v!r}")
        if mode not in ("faithful", "adapter"):
            raise QlstmError(f"mode must be 'faithful' or 'adapter', got {mode!r}")
        if mode == "faithful":
            need = input_size + hidden_size
            if n_qubits is not None and n_qubits != need:
                raise QlstmError(
                    f"faithful mode encodes [x_t, h_(t-1)] one value per qubit: n_qubits must be "
                    f"input_size + hidden_size = {need}, got {n_qubits}; use mode='adapter' for other sizes"
                )
            n_qubits = need
        else:
            n_qubits = 4 if n_qubits is None else n_qubits
            if not isinstance(n_qubits, int) or n_qubits < 1:
                raise QlstmError(f"n_qubits must be a positive int, got {n_qubits!r}")
        self.input_size, self.hidden_size, self.n_qubits, self.n_layers = input_size, hidden_size, n_qubits, n_layers
        self.mode, self.batch_first = mode, batch_first
        self.template = template
        if not isinstance(compiled, bool):
            raise QlstmError(f"compiled must be True or False, got {compiled!r}")
        if compiled and (mode != "faithful" or noise is not None or shots is not None):
            raise QlstmError("compiled=True needs the fused recurrence: faithful mode, no noise, no shots")
        self.compiled = compiled
        self.num_layers = 1
        kw = dict(noise=noise, shots=shots, generator=generator, dtype=dtype, device=device)
        if mode == "faithful":
            self.gates = QuantumLayer(chen_vqc(n_qubits, n_layers, range(hidden_size), name="qlstm_gate", template=template),
                                      copies=4, **kw)
            self.process = QuantumLayer(chen_vqc(hidden_size, n_layers, name="qlstm_process", template=template), copies=2, **kw)
        else:
            self.vqc = QuantumLayer(chen_vqc(n_qubits, n_layers, name="qlstm_vqc", template=template), copies=6, **kw)
            fk = dict(dtype=dtype, device=device)
            self.proj_gates = nn.Linear(input_size + hidden_size, n_qubits, **fk)
            self.proj_process = nn.Linear(hidden_size, n_qubits, **fk)
            # one output map per VQC: [6, n_qubits, hidden]
            self.out_weight = nn.Parameter(torch.empty(6, n_qubits, hidden_size, **fk))
            self.out_bias = nn.Parameter(torch.zeros(6, 1, hidden_size, **fk))
            bound = 1 / n_qubits**0.5
            with torch.no_grad():
                self.out_weight.copy_(
                    (torch.rand(6, n_qubits, hidden_size, generator=generator, dtype=dtype) * 2 - 1) * bound
                )

    # -- helpers -------------------------------------------------------------
    @staticmethod
    def _vqc_runner(layer: QuantumLayer, index: slice | None = None):
        """A function ``v -> [copies, B, outputs]``; binds weights once per forward when possible."""
        if layer.bindable:
            bound = layer.bind()
            return (bound if index is None else bound.subset(index)).expvals
        if index is None:
            return layer
        return lambda v: layer(v)[index]

    def _first_weight(self) -> Tensor:
        """The first VQC weight: the reference for dtype and device."""
        return self._modules["gates" if self.mode == "faithful" else "vqc"]._parameters["weight"]

    def _memo_key(self) -> tuple:
        """What the choice of a native node and its arguments depends on: the switches, the shots
        and the parameter objects (identity, dtype, device)."""
        mods = self._modules
        if self.mode == "faithful":
            g, p = mods["gates"], mods["process"]
            wg, wp = g._parameters["weight"], p._parameters["weight"]
            return (self.native, self.fused, self.compiled and torch.is_grad_enabled(), g.shots, p.shots,
                    id(wg), id(wp), wg.dtype, wp.dtype, wg.device)
        v = mods["vqc"]
        w = v._parameters["weight"]
        return (self.native, self.fused, v.shots, id(w), w.dtype, w.device, id(self._parameters["out_weight"]),
                id(self._parameters["out_bias"]), *(id(t) for m in (mods["proj_gates"], mods["proj_process"])
                                                    for t in m._parameters.values()))

    def _resolved(self):
        """:meth:`_fused_args` or :meth:`_fused_adapter_args`, memoised where the choice is a native
        node whose arguments are the parameters themselves (the memo is keyed by
        :meth:`_memo_key`; everything else, which builds tensors from the weights, runs every time)."""
        key = self._memo_key()
        memo = self.__dict__.get("_resolved_memo")
        if memo is not None and memo[0] == key:
            return memo[1]
        made = self._fused_args() if self.mode == "faithful" else self._fused_adapter_args()
        if (made is not None and getattr(made[0], "native", False)
                and all(isinstance(a, nn.Parameter) for a in made[1])):
            self.__dict__["_resolved_memo"] = (key, made)
        return made

    def _fused_args(self):
        """``(run, args)`` of the fused recurrence (``run(x, h0, c0, *args) -> (outputs, h_T, c_T)``:
        a fused node's ``apply`` or the compiled recurrence), or None where it does not apply."""
        if not (self.fused and self.mode == "faithful" and self.gates.bindable and self.process.bindable
                and self.gates._pure and self.process._pure):
            return None
        # compiled: for training; without gradients (evaluation) the eager node runs, instead of
        # compiling another graph for that mode and its batch size
        compiled = self.compiled and torch.is_grad_enabled()
        if self.native and not compiled:
            native = self._native_args()
            if native is not None:
                return native
        bg, bp = self.gates.bind(), self.process.bind()  # binding is cheap: tables are built on first use
        if compiled:
            made = compiled_general_recurrence(bg, bp, self.n_qubits, self.hidden_size)
            if made is not None:
                return made
            self._warn_uncompiled()
        if chen_heisenberg(bp, self.hidden_size) and chen_heisenberg(bg, self.n_qubits):
            return FusedFaithfulQLSTM.apply, (chen_heisenberg_tables(bg, self.n_qubits),
                                              chen_heisenberg_tables(bp, self.hidden_size))
        gates, process = _vqc_args(bg, self.n_qubits, 4), _vqc_args(bp, self.hidden_size, 2)
        if gates is None or process is None:
            return None
        return FusedGeneralQLSTM.apply, (gates[0], process[0], gates[1], process[1])

    @staticmethod
    def _native_run(node, spec):
        """``run(x, h, c, *params)`` of a native node for ``spec`` (``run.native``): it checks x, h, c
        for NaN/Inf itself, takes the states as ``[1, B, H]`` or None (zeros) and returns ``h_T``,
        ``c_T`` as ``[1, B, H]``."""
        run = functools.partial(node.apply, spec)
        run.native = True
        return run

    def _native_args(self):
        """``(run, args)`` of a faithful model's native node (:mod:`~qlstm.models._native_qlstm`: the
        Heisenberg form, else the layered one), or None where neither applies; which one is decided
        once per dtype and device."""
        weight = self.gates.weight
        key = (weight.dtype, weight.device)
        cache = self.__dict__.setdefault("_native_specs", {})
        if key not in cache:
            spec = None
            if weight.device.type == "cpu":
                bg, bp = self.gates.bind(), self.process.bind()
                spec = native_spec(bg, bp, self.n_qubits, self.hidden_size)
                if spec is None:
                    spec = native_layered_spec(bg, bp, self.n_qubits, self.hidden_size)
            cache[key] = spec
        spec = cache[key]
        if spec is None:
            return None
        if isinstance(spec, LayeredSpec):  # statevectors: the weights, or the gate matrices torch builds
            return self._native_run(NativeLayeredQLSTM, spec), tuple(
                layer.weight if g.from_weights else layer.bind().layer_matrices()
                for layer, g in ((self.gates, spec.gates), (self.process, spec.process)))
        return self._native_run(NativeFaithfulQLSTM, spec), (weight, self.process.weight)  # tables from the weights

    def _warn_uncompiled(self):
        if self.compiled and not getattr(self, "_warned", False):
            self._warned = True
            warnings.warn("QLSTM(compiled=True): the compiled recurrence does not apply to this model (it needs "
                          "input_size + hidden_size <= 8 qubits and VQCs of CNOT-type blocks and one-qubit "
                          "rotations); running uncompiled", stacklevel=4)

    def _fused_adapter_args(self):
        """``(FusedAdapterQLSTM.apply, args)`` (:mod:`~qlstm.models._fused_adapter`), or the native
        node's, or None where neither applies."""
        if not (self.fused and self.mode == "adapter" and self.vqc.bindable and self.vqc._pure):
            return None
        linear = (self.proj_gates.weight, self.proj_gates.bias, self.proj_process.weight, self.proj_process.bias,
                  self.out_weight, self.out_bias)
        if self.native and self.vqc.weight.device.type == "cpu":
            key = ("adapter", self.vqc.weight.dtype)
            cache = self.__dict__.setdefault("_native_specs", {})
            if key not in cache:
                bound = self.vqc.bind()
                cache[key] = native_adapter_spec(bound, self.n_qubits) or native_layered_adapter_spec(bound, self.n_qubits)
            spec = cache[key]
            if isinstance(spec, LayeredSpec):
                vqc_in = self.vqc.weight if spec.gates.from_weights else self.vqc.bind().layer_matrices()
                return self._native_run(NativeLayeredAdapterQLSTM, spec), (*linear, vqc_in)
            if spec is not None:
                return self._native_run(NativeAdapterQLSTM, spec), (*linear, self.vqc.weight)
        vqc = _vqc_args(self.vqc.bind(), self.n_qubits, 6)
        if vqc is None:
            return None
        return FusedAdapterQLSTM.apply, (*linear, *vqc)

    def _check(self, x: Tensor, state, native: bool = False) -> tuple:
        """``(x [B, T, I], h0 [B, H], c0 [B, H])`` checked and in the parameters' dtype. ``native``:
        for a native node, which checks for NaN/Inf itself, in its own pass over the data, and takes
        the states as ``[1, B, H]``, or None for zeros."""
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise InputError(
                f"QLSTM expects a 3-D input [batch, time, {self.input_size}] (batch_first={self.batch_first}), "
                f"got {_fmt(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        if not self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[2] != self.input_size:
            raise InputError(f"QLSTM input has {x.shape[2]} features in dimension 2, expected input_size={self.input_size}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise InputError(f"QLSTM input must have at least one batch element and one time step, got shape "
                             f"{_fmt(x.shape)} (batch_first={self.batch_first})")
        ref = self._first_weight()
        if x.device != ref.device:  # before any kernel reads it: a native one would read foreign memory
            raise InputError(f"QLSTM input is on {x.device} but the model parameters are on {ref.device}; move one "
                             f"of them (model.to({str(x.device)!r}) or x.to({str(ref.device)!r}))")
        if not native:
            _check_finite("QLSTM input", x)
        if x.dtype != ref.dtype:
            x = x.to(ref.dtype)
        b = x.shape[0]
        if state is None:
            if native:
                return x, None, None
            z = torch.zeros(b, self.hidden_size, dtype=ref.dtype, device=ref.device)
            return x, z, z
        h, c = state
        for name, t in (("h_0", h), ("c_0", c)):
            if not isinstance(t, Tensor) or tuple(t.shape) != (1, b, self.hidden_size):
                got = _fmt(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise InputError(f"QLSTM state {name} must be [1, {b}, {self.hidden_size}], got {got}")
            if t.device != ref.device:
                raise InputError(f"QLSTM state {name} is on {t.device} but the model parameters are on {ref.device}")
            if not native:
                _check_finite(f"QLSTM state {name}", t)
        if native:
            return x, h.to(ref.dtype), c.to(ref.dtype)
        return x, h[0].to(ref.dtype), c[0].to(ref.dtype)

    # -- forward ---------------------------------------------------------------
    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        fused = self._resolved()
        native = fused is not None and getattr(fused[0], "native", False)
        x, h, c = self._check(x, state, native)
        if fused is not None:
            run, args = fused
            out, h, c = run(x, h, c, *args)
            if not self.batch_first:
                out = out.transpose(0, 1)
            return out, ((h, c) if native else (h.unsqueeze(0), c.unsqueeze(0)))
        outputs = []
        if self.mode == "faithful":
            gates, process = self._vqc_runner(self.gates), self._vqc_runner(self.process)
            for t in range(x.shape[1]):
                g = gates(torch.cat([x[:, t], h], dim=1))  # [4, B, hidden]
                c = torch.sigmoid(g[0]) * c + torch.sigmoid(g[1]) * torch.tanh(g[2])
                p = process(torch.sigmoid(g[3]) * torch.tanh(c))  # [2, B, hidden]
                h = p[0]
                outputs.append(p[1])
        else:
            gates, process = self._vqc_runner(self.vqc, slice(0, 4)), self._vqc_runner(self.vqc, slice(4, 6))
            w_g, b_g = self.out_weight[:4], self.out_bias[:4]
            w_p, b_p = self.out_weight[4:], self.out_bias[4:]
            for t in range(x.shape[1]):
                e = gates(self.proj_gates(torch.cat([x[:, t], h], dim=1)))  # [4, B, n_qubits]
                g = torch.baddbmm(b_g, e, w_g)  # [4, B, hidden]
                c = torch.sigmoid(g[0]) * c + torch.sigmoid(g[1]) * torch.tanh(g[2])
                e2 = process(self.proj_process(torch.sigmoid(g[3]) * torch.tanh(c)))  # [2, B, n_qubits]
                p = torch.baddbmm(b_p, e2, w_p)  # [2, B, hidden]
                h = p[0]
                outputs.append(p[1])
        out = torch.stack(outputs, dim=1)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, (h.unsqueeze(0), c.unsqueeze(0))

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, n_qubits={self.n_qubits}, "
                f"n_layers={self.n_layers}, mode={self.mode!r}"
                + ("" if self.template == "chen" else f", template={getattr(self.template, '__name__', self.template)!r}"))
