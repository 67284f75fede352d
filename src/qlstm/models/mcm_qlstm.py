r"""MCM-QLSTM: a qubit-efficient quantum LSTM cell built as ONE dynamic circuit.

Chen, Yoo & Fang's QLSTM (:class:`~qlstm.models.qlstm.QLSTM`) runs six separate
VQCs per time step and re-encodes :math:`[x_t, h_{t-1}]` into each of the four
gate VQCs. The student proposal (Section 3) asks instead for one circuit per
cell in which the input is encoded once, dedicated "global" registers hold the
hidden and cell state, and work qubits are reused through mid-circuit
measurement and reset, with later blocks classically conditioned on earlier
outcomes. This module builds that circuit (:func:`mcm_qlstm_cell`) and the
recurrent model around it (:class:`MCMQLSTM`).

Registers (wire order ``X, H, C, W``; ``n = n_x + 3 n_h`` qubits):

* ``X`` (``n_x``) -- :math:`x_t`, Chen's encoding ``H, RY(atan x), RZ(atan x^2)``, encoded once;
* ``H`` (``n_h``) -- global hidden register, :math:`h_{t-1}` in Chen's encoding;
* ``C`` (``n_h``) -- global cell register, ``RY(2 atan c)`` puts the normalised
  vector :math:`(1, c_{t-1}) / \sqrt{1 + c_{t-1}^2}` on each qubit;
* ``W`` (``n_h``) -- work register, measured and reset after every gate block.

Blocks, in circuit order (each is Chen's variational layers -- CNOT rings
``(i, i+1)``, ``(i, i+2)`` and ``Rot`` on every wire -- on the wires listed)::

    forget      on X+H+W, measure W -> f bits, reset W
                RY on C_j  if f_j == 1        (the cell register "forgets")
                RY on W_j  if f_j == 1        (seeds the input block)
    input       on X+H+W, measure W -> i bits, reset W
                RY on W_j  if f_j == 1        (seeds the candidate block)
    candidate   on X+H+W, measure W -> g bits, reset W
                RY on C_j  if (i_j, g_j) == (0, 0);  another RY if (0, 1)
                                              (input gate open: write the candidate's sign)
    output      on X+H+W, measure W -> o bits, reset W
                RY on H_j  if o_j == 0        (output gate open: feeds hidden_processing)
                RY on W_j  if o_j == 0        (output gate open: feeds output_processing)
    hidden_processing  on H+C+X, measure H (terminal) -> h_t
    output_processing  on C+W+X, measure W (terminal) -> y_t

A measured bit ``0`` means ``Z = +1``, i.e. the larger gate value: ``f_j == 1``
is "forget gate closing", ``i_j == 0`` / ``o_j == 0`` "gate open". The angles
are trained, so the convention only fixes which outcome carries a rotation.

What is quantum and what is classical, per time step and sample:

* quantum: one execution of the cell circuit. The gate pre-activations are the
  expectation values :math:`z = \langle Z_{W_j} \rangle` at the moment of each
  mid-circuit measurement, i.e. ``P(bit = 0) - P(bit = 1)`` of that bit's
  marginal in the distribution of the classical register -- exact from the
  branch simulation, or frequencies of ``shots`` samples. Classically
  controlled rotations act inside the same execution (on hardware: feed-forward).
  :math:`h_t` and :math:`y_t` are the ``<Z>`` of the terminal measurements of
  ``H`` and ``W``.
* classical: :math:`f = \sigma(z_f), i = \sigma(z_i), \tilde c = \tanh(z_g),
  o = \sigma(z_o)` and the cell recurrence :math:`c_t = f c_{t-1} + i \tilde c`
  (as in Chen's QLSTM); :math:`h_t, c_t` are encoded into ``H`` and ``C`` of the
  next cell's circuit. :math:`o_t` enters :math:`h_t, y_t` only through the
  quantum path (the controlled rotations on ``H`` and ``W``); it is reported, not reused.

Simulation cost: every mid-circuit measurement with reset doubles the number of
statevector branches (:func:`qlstm.circuit.run` keeps all of them, exactly), so
the processing blocks run on ``2**(4 n_h)`` branches of ``2**n`` amplitudes;
keep ``hidden_size`` small (2 gives 7 qubits and 256 branches). The terminal
read-outs of the processing blocks do not branch. ``docs/mcm_qlstm.md`` has
timings and the resource comparison with Chen's QLSTM (:meth:`MCMQLSTM.resources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..circuit import Circuit, atan, run
from ..circuit.noise import NoiseModel, insert_noise
from ..circuit.templates import chen_layers, chen_vqc, init_weights
from ..errors import InputError, QlstmError
from .lstm import _check_finite, _fmt

__all__ = ["MCMQLSTM", "CellLayout", "CellOutput", "mcm_qlstm_cell", "BLOCKS", "GATE_BLOCKS", "CONTROL_ROLES"]

BLOCKS = ("forget", "input", "candidate", "output", "hidden_processing", "output_processing")
GATE_BLOCKS = BLOCKS[:4]
# the classically controlled rotations, n_h angles each, in the order of the "control" weights
CONTROL_ROLES = ("cell_if_forget", "work_if_forget_input", "work_if_forget_candidate",
                 "cell_if_input_open_cand0", "cell_if_input_open_cand1", "hidden_if_output_open",
                 "work_if_output_open")


@dataclass(frozen=True)
class CellLayout:
    """Where things live in the cell circuit built by :func:`mcm_qlstm_cell`.

    Attributes:
        n_x, n_h, n_layers: sizes.
        x_wires, h_wires, c_wires, w_wires: the registers ``X, H, C, W``.
        x_columns, h_columns, c_columns: input columns of :math:`x_t, h_{t-1}, c_{t-1}`
            (the circuit's data batch is ``[B, n_x + 2 n_h]``).
        clbits: block name -> its measured classical bits, one per hidden unit.
        weights: parameter group (``"control"`` and the six block names) -> slice of
            the circuit's flat weight vector.
        block_wires: block name -> the wires its variational layers act on.
    """

    n_x: int
    n_h: int
    n_layers: int
    x_wires: tuple[int, ...]
    h_wires: tuple[int, ...]
    c_wires: tuple[int, ...]
    w_wires: tuple[int, ...]
    clbits: dict[str, tuple[int, ...]] = field(default_factory=dict)
    weights: dict[str, slice] = field(default_factory=dict)
    block_wires: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def x_columns(self) -> tuple[int, ...]:
        return tuple(range(self.n_x))

    @property
    def h_columns(self) -> tuple[int, ...]:
        return tuple(range(self.n_x, self.n_x + self.n_h))

    @property
    def c_columns(self) -> tuple[int, ...]:
        return tuple(range(self.n_x + self.n_h, self.n_x + 2 * self.n_h))

    @property
    def groups(self) -> tuple[str, ...]:
        """Parameter groups in the order of the flat weight vector."""
        return tuple(sorted(self.weights, key=lambda k: self.weights[k].start))


def mcm_qlstm_cell(input_size: int, hidden_size: int, n_layers: int = 1) -> tuple[Circuit, CellLayout]:
    """The MCM-QLSTM cell circuit (see the module docstring) and its :class:`CellLayout`.

    Args:
        input_size: ``n_x``, features of :math:`x_t` (one qubit each).
        hidden_size: ``n_h``, size of :math:`h_t` and :math:`c_t` (one qubit each in ``H``, ``C`` and ``W``).
        n_layers: Chen variational layers per block.

    Returns:
        ``(circuit, layout)``. The circuit has ``n_x + 3 n_h`` qubits, ``6 n_h``
        clbits (``4 n_h`` mid-circuit, ``2 n_h`` terminal), inputs
        ``[x_t, h_(t-1), c_(t-1)]`` and weights ordered ``control`` (``7 n_h``
        angles, roles in :data:`CONTROL_ROLES`), then the six blocks.
    """
    for name, v, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1), ("n_layers", n_layers, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise QlstmError(f"{name} must be a positive int, got {v!r}")
    nx, nh = input_size, hidden_size
    X = tuple(range(nx))
    H = tuple(range(nx, nx + nh))
    C = tuple(range(nx + nh, nx + 2 * nh))
    W = tuple(range(nx + 2 * nh, nx + 3 * nh))
    layout = CellLayout(nx, nh, n_layers, X, H, C, W)
    circ = Circuit(nx + 3 * nh, name="mcm_qlstm_cell")
    xs = circ.inputs(nx)
    hs = circ.inputs(nh, start=nx)
    cs = circ.inputs(nh, start=nx + nh)

    # control angles first, so that each parameter group is one contiguous slice
    ctrl = circ.weights(len(CONTROL_ROLES) * nh)
    layout.weights["control"] = slice(0, circ.n_weights)
    role = {r: ctrl[k * nh:(k + 1) * nh] for k, r in enumerate(CONTROL_ROLES)}

    for q, v in zip(X + H, xs + hs):
        circ.h(q).ry(q, atan(v)).rz(q, atan(v ** 2))
    for q, v in zip(C, cs):
        circ.ry(q, 2 * atan(v))

    def block(name: str, wires: tuple[int, ...], read: tuple[int, ...], reset: bool) -> tuple[int, ...]:
        start = circ.n_weights
        circ.compose(chen_layers(len(wires), n_layers), list(wires))
        layout.weights[name] = slice(start, circ.n_weights)
        layout.block_wires[name] = wires
        bits = tuple(circ.measure(w, reset=reset) for w in read)
        layout.clbits[name] = bits
        return bits

    gate_wires = X + H + W
    f = block("forget", gate_wires, W, True)
    for j in range(nh):
        circ.ry(C[j], role["cell_if_forget"][j], condition=(f[j], 1))
        circ.ry(W[j], role["work_if_forget_input"][j], condition=(f[j], 1))
    i = block("input", gate_wires, W, True)
    for j in range(nh):
        circ.ry(W[j], role["work_if_forget_candidate"][j], condition=(f[j], 1))
    g = block("candidate", gate_wires, W, True)
    for j in range(nh):
        # Condition bits are (i_j, g_j) with i_j the least significant: value 0 = (0, 0), 2 = (0, 1)
        circ.ry(C[j], role["cell_if_input_open_cand0"][j], condition=((i[j], g[j]), 0b00))
        circ.ry(C[j], role["cell_if_input_open_cand1"][j], condition=((i[j], g[j]), 0b10))
    o = block("output", gate_wires, W, True)
    for j in range(nh):
        circ.ry(H[j], role["hidden_if_output_open"][j], condition=(o[j], 0))
        circ.ry(W[j], role["work_if_output_open"][j], condition=(o[j], 0))
    # terminal read-outs: nothing acts on H after the first, or on W after the second,
    # so neither branches the simulation
    block("hidden_processing", H + C + X, H, False)
    block("output_processing", C + W + X, W, False)
    return circ, layout


@dataclass
class CellOutput:
    """What one cell computes for a batch (all ``[B, n_h]`` unless stated).

    Attributes:
        z: block name -> ``<Z>`` of its measured qubits (gate pre-activations;
            for the processing blocks, :math:`h_t` and :math:`y_t` themselves).
        h, c, y: the new hidden state, cell state and output.
        clbit_probs: ``[B, 2**(6 n_h)]`` distribution of the classical register
            (frequencies with shots), clbit 0 least significant.
    """

    z: dict[str, Tensor]
    h: Tensor
    c: Tensor
    y: Tensor
    clbit_probs: Tensor

    @property
    def gates(self) -> dict[str, Tensor]:
        """``f, i, g, o``: the gate values after their nonlinearities."""
        return {"f": torch.sigmoid(self.z["forget"]), "i": torch.sigmoid(self.z["input"]),
                "g": torch.tanh(self.z["candidate"]), "o": torch.sigmoid(self.z["output"])}


def _z_signs(n_clbits: int, dtype=torch.float32, device=None) -> Tensor:
    """``[2**n_clbits, n_clbits]`` matrix of ``+1 / -1`` = ``1 - 2 bit_k(index)``; ``probs @ signs = <Z>`` per bit."""
    idx = torch.arange(2**n_clbits, device=device)
    bits = (idx[:, None] >> torch.arange(n_clbits, device=device)[None, :]) & 1
    return (1 - 2 * bits).to(dtype)


class MCMQLSTM(nn.Module):
    r"""Qubit-efficient QLSTM with mid-circuit measurement and classical control.

    One circuit (:func:`mcm_qlstm_cell`) per cell and sample; see the module
    docstring for the registers, blocks and the quantum/classical split.

    Args:
        input_size: features per time step (one ``X`` qubit each).
        hidden_size: size of :math:`h_t, c_t` (one qubit each in ``H``, ``C``, ``W``).
            The exact simulation keeps ``2**(4 hidden_size)`` branches: 2 is quick, 3 is slow.
        n_layers: Chen variational layers per block (not stacked LSTM layers; as in
            :class:`~qlstm.models.qlstm.QLSTM`).
        shots: None for exact gate values, else shots per cell execution; values are
            frequencies with the exact gradient (straight-through).
        noise: optional :class:`~qlstm.circuit.noise.NoiseModel` (density-matrix simulation, slow).
        generator: ``torch.Generator`` for weight initialisation and shot sampling.
        batch_first: input ``[B, T, input_size]`` if True, else ``[T, B, input_size]``.
        dtype: float32 (complex64 simulation) or float64.
        device: torch device of the weights and the simulation.

    Parameters: ``weights`` is an :class:`~torch.nn.ParameterDict` with one
    tensor per group of the flat circuit weight vector: ``control`` (``7 n_h``
    angles of the classically controlled rotations, roles in :data:`CONTROL_ROLES`)
    and the six blocks (``3 * wires * n_layers`` each). Block weights start at
    ``0.01 * N(0, 1)`` (Chen et al.'s scheme), control angles at ``N(0, 1)``.

    Shape:
        - input: ``[B, T, input_size]``; state ``(h_0, c_0)`` each ``[1, B, hidden_size]``
        - output: ``outputs [B, T, hidden_size]`` (:math:`y_t`), ``(h_n, c_n)`` each ``[1, B, hidden_size]``

    Example:
        >>> model = MCMQLSTM(input_size=1, hidden_size=2)      # 7 qubits
        >>> out, (h, c) = model(torch.randn(4, 3, 1))
        >>> out.shape, h.shape
        (torch.Size([4, 3, 2]), torch.Size([1, 4, 2]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        n_layers: int = 1,
        *,
        shots: int | None = None,
        noise: NoiseModel | None = None,
        generator: torch.Generator | None = None,
        batch_first: bool = True,
        dtype: torch.dtype = torch.float32,
        device=None,
    ):
        super().__init__()
        if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
            raise QlstmError(f"shots must be a positive int or None, got {shots!r}")
        if dtype not in (torch.float32, torch.float64):
            raise QlstmError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        circuit, layout = mcm_qlstm_cell(input_size, hidden_size, n_layers)
        self.input_size, self.hidden_size, self.n_layers = input_size, hidden_size, n_layers
        self.num_layers = 1  # stacked LSTM layers, as torch.nn.LSTM names it
        noise = NoiseModel.coerce(noise)
        self.shots, self.noise, self.generator, self.batch_first = shots, noise, generator, batch_first
        self.layout = layout
        self._circuit = circuit
        self._run_circuit = insert_noise(circuit, noise)
        # Block weights start as in Chen et al. (0.01 N(0, 1)); the control angles start at N(0, 1):
        # near-zero angles would make the conditioned rotations identities, so the measured bits
        # would hardly steer the later blocks and their gradients along that path would vanish
        self.weights = nn.ParameterDict({
            name: nn.Parameter(init_weights(sl.stop - sl.start, "normal" if name == "control" else "chen",
                                            generator=generator, dtype=dtype, device=device))
            for name, sl in sorted(layout.weights.items(), key=lambda kv: kv[1].start)
        })
        self.register_buffer("_signs", _z_signs(circuit.n_clbits, dtype=dtype, device=device), persistent=False)

    # -- the circuit as data ---------------------------------------------------------
    def cell_circuit(self) -> Circuit:
        """A copy of the cell circuit (with noise channels if the model has a noise model)."""
        return self._run_circuit.copy()

    def weight_vector(self) -> Tensor:
        """The circuit's flat weight vector ``[n_weights]`` (the groups concatenated in circuit order)."""
        return torch.cat([self.weights[name] for name in self.layout.groups])

    def cell_inputs(self, x_t: Tensor, h: Tensor, c: Tensor) -> Tensor:
        """The circuit's data batch ``[B, n_x + 2 n_h]`` = ``[x_t, h_(t-1), c_(t-1)]``."""
        return torch.cat([x_t, h, c], dim=1)

    # -- one cell -------------------------------------------------------------------------
    def cell(self, x_t: Tensor, h: Tensor, c: Tensor, weights: Tensor | None = None) -> CellOutput:
        """Run one cell on a batch: ``x_t [B, input_size]``, ``h, c [B, hidden_size]``.

        One execution of the cell circuit per sample (the whole batch in one
        :func:`~qlstm.circuit.run` call). ``weights`` defaults to :meth:`weight_vector`.
        """
        w = self.weight_vector() if weights is None else weights
        res = run(self._run_circuit, self.cell_inputs(x_t, h, c), w)
        probs = res.clbit_probs  # exact: [B, 2**n_clbits]
        z = probs @ self._signs
        if self.shots is not None:
            freq = _sample_frequencies(probs, self.shots, self.generator)
            # straight-through: the value of the estimate, the gradient of the exact distribution
            z = z + (freq @ self._signs - z).detach()
            probs = freq
        zs = {name: z[:, list(bits)] for name, bits in self.layout.clbits.items()}
        f, i = torch.sigmoid(zs["forget"]), torch.sigmoid(zs["input"])
        c_new = f * c + i * torch.tanh(zs["candidate"])
        return CellOutput(zs, zs["hidden_processing"], c_new, zs["output_processing"], probs)

    # -- input checks ------------------------------------------------------------------------
    def _check(self, x: Tensor, state) -> tuple[Tensor, Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.dim() != 3:
            expect = "[batch, time, input]" if self.batch_first else "[time, batch, input]"
            raise InputError(
                f"MCMQLSTM expects a 3-D input {expect} with input={self.input_size} (batch_first="
                f"{self.batch_first}), got {_fmt(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        if not self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[2] != self.input_size:
            raise InputError(f"MCMQLSTM input has {x.shape[2]} features in dimension 2, expected "
                             f"input_size={self.input_size}: shape [B, T, {self.input_size}], got {_fmt(x.shape)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise InputError(f"MCMQLSTM input must not have an empty batch or time dimension, got {_fmt(x.shape)}")
        _check_finite("MCMQLSTM input", x)
        ref = self.weights["control"]
        x = x.to(dtype=ref.dtype, device=ref.device)
        b = x.shape[0]
        if state is None:
            z = torch.zeros(b, self.hidden_size, dtype=ref.dtype, device=ref.device)
            return x, z, z
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise InputError(f"MCMQLSTM state must be a pair (h_0, c_0), each [1, {b}, {self.hidden_size}]")
        h, c = state
        for name, t in (("h_0", h), ("c_0", c)):
            if not isinstance(t, Tensor) or tuple(t.shape) != (1, b, self.hidden_size):
                got = _fmt(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise InputError(f"MCMQLSTM state {name} must be [1, {b}, {self.hidden_size}] "
                                 f"([num_layers, batch, hidden_size]), got {got}")
            _check_finite(f"MCMQLSTM state {name}", t)
        return x, h[0].to(dtype=ref.dtype, device=ref.device), c[0].to(dtype=ref.dtype, device=ref.device)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        x, h, c = self._check(x, state)
        w = self.weight_vector()
        outputs = []
        for t in range(x.shape[1]):
            out = self.cell(x[:, t], h, c, w)
            h, c = out.h, out.c
            outputs.append(out.y)
        y = torch.stack(outputs, dim=1)
        if not self.batch_first:
            y = y.transpose(0, 1)
        return y, (h.unsqueeze(0), c.unsqueeze(0))

    # -- resources -------------------------------------------------------------------------------
    def resources(self) -> dict:
        """Resources of one cell compared with Chen's QLSTM (faithful mode, same sizes and ``n_layers``).

        Keys map to ``{"mcm_qlstm": ..., "chen_qlstm": ...}``:

        * ``qubits`` -- ours: the cell circuit's qubits; Chen: its six VQCs side by
          side (4 gate VQCs of ``input + hidden`` qubits, 2 processing VQCs of
          ``hidden`` qubits). ``qubits_largest_circuit`` -- Chen's VQCs run one after
          another need only their largest circuit.
        * ``circuit_executions`` -- circuits executed per time step and sample (Chen's
          six circuits go through 2 batched simulator calls in :class:`~qlstm.models.qlstm.QLSTM`).
        * ``circuits_encoding_x`` / ``x_encoding_ops`` -- circuits, and operations, that read :math:`x_t`.
        * ``data_encoding_circuits`` -- circuits that load classical data per step.
        * ``measurements`` -- ours: measurements in the circuit; Chen: ``<Z>`` read-outs of its VQCs.
        * ``mid_circuit_measurements``, ``resets``, ``conditional_ops``.
        * ``depth`` -- ours; Chen: depth of a gate VQC plus a processing VQC (the
          critical path with the VQCs side by side). ``two_qubit_gates``, ``weights``.
        * ``idle_share`` -- idle qubit-slots / (qubits * depth) over the layering of
          :func:`qlstm.circuit.draw.layers`; for Chen, summed over the six circuits.
        """
        from ..resources import count_resources

        nx, nh, L = self.input_size, self.hidden_size, self.n_layers
        ours = count_resources(self._circuit)
        gate = count_resources(chen_vqc(nx + nh, L, range(nh), name="qlstm_gate"))
        proc = count_resources(chen_vqc(nh, L, name="qlstm_process"))
        chen = [gate] * 4 + [proc] * 2

        def x_ops(r) -> int:
            return sum(n for col, n in r.input_reads.items() if col < nx)

        def total(key: str):
            return sum(getattr(r, key) for r in chen)

        chen_slots = sum(r.qubits * r.depth for r in chen)
        return {
            "qubits": {"mcm_qlstm": ours.qubits, "chen_qlstm": 4 * (nx + nh) + 2 * nh},
            "qubits_largest_circuit": {"mcm_qlstm": ours.qubits, "chen_qlstm": max(nx + nh, nh)},
            "circuit_executions": {"mcm_qlstm": 1, "chen_qlstm": 6},
            "simulator_calls": {"mcm_qlstm": 1, "chen_qlstm": 2},
            "circuits_encoding_x": {"mcm_qlstm": 1, "chen_qlstm": 4},
            "x_encoding_ops": {"mcm_qlstm": x_ops(ours), "chen_qlstm": 4 * x_ops(gate)},
            "data_encoding_circuits": {"mcm_qlstm": 1, "chen_qlstm": 6},
            "measurements": {"mcm_qlstm": ours.measurements, "chen_qlstm": 4 * nh + 2 * nh},
            "mid_circuit_measurements": {"mcm_qlstm": ours.mid_circuit_measurements, "chen_qlstm": 0},
            "resets": {"mcm_qlstm": ours.resets, "chen_qlstm": total("resets")},
            "conditional_ops": {"mcm_qlstm": ours.conditional_ops, "chen_qlstm": total("conditional_ops")},
            "depth": {"mcm_qlstm": ours.depth, "chen_qlstm": gate.depth + proc.depth},
            "two_qubit_gates": {"mcm_qlstm": ours.n_two_qubit, "chen_qlstm": sum(r.n_two_qubit for r in chen)},
            "weights": {"mcm_qlstm": ours.weights, "chen_qlstm": 4 * gate.weights + 2 * proc.weights},
            "idle_qubits": {"mcm_qlstm": len(ours.idle_qubits), "chen_qlstm": sum(len(r.idle_qubits) for r in chen)},
            "idle_share": {"mcm_qlstm": ours.idle_share,
                           "chen_qlstm": total("idle_slots") / chen_slots if chen_slots else 0.0},
        }

    def extra_repr(self) -> str:
        extra = f", shots={self.shots}" if self.shots else ""
        extra += f", noise={self.noise}" if self.noise else ""
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, n_layers={self.n_layers}, "
                f"qubits={self._circuit.n_qubits}{extra}")


def _sample_frequencies(probs: Tensor, shots: int, generator: torch.Generator | None) -> Tensor:
    """Frequencies ``[B, K]`` of ``shots`` draws from each row of ``probs`` (no gradient).

    Draws exactly as :func:`qlstm.circuit.run` does for ``shots=N`` (one
    ``torch.multinomial`` per batch, same generator), so a model with shots
    reproduces ``run(circuit, ..., shots=N, generator=g).clbit_probs`` from the
    same seed while simulating the circuit once.
    """
    p = probs.detach().clamp_min(0)
    p = p / p.sum(-1, keepdim=True)
    if generator is not None and generator.device != p.device:
        raise InputError(f"the torch.Generator is on {generator.device} but the simulation runs on {p.device}")
    idx = torch.multinomial(p, shots, replacement=True, generator=generator)
    counts = torch.zeros_like(p).scatter_add_(1, idx, torch.ones_like(idx, dtype=p.dtype))
    return counts / shots
