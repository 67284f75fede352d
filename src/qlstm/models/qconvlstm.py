r"""QConvLSTM (Xu, Yu, Zhang & Chen 2024): a ConvLSTM whose convolutions are QCNN trees.

The paper ("Quantum Convolutional Long Short-Term Memory Based on Variational
Quantum Algorithms in the Era of NISQ", Information 15, 175) replaces the
convolutions of the input-to-state and state-to-state transitions of a
ConvLSTM by quantum convolution circuits: a 16-value local vector is
amplitude-encoded into 4 qubits, a two-level tree of two-qubit modules
(:func:`~qlstm.circuit.templates.qcnn_tree`) halves the qubits at every level,
and ``<Z>`` of the last qubit is the output. Sections 4-5 and 7 fix that much;
how local vectors are formed, how one scalar per circuit becomes the four
gates of every hidden channel, and how the outputs enter the cell are choices
made here and explained in ``docs/qconvlstm.md``.

Quantum convolution (:class:`QuantumConv2d`)
--------------------------------------------
A tensor ``[B, C, H, W]`` with ``C * s * s = 16`` (``C`` in 1, 4, 16, window
side ``s`` = 4, 2, 1) has one 16-value window for each ``s x s`` block of
locations (zero-padded by ``s - 1``). Each window ``v`` is shifted by a
learnable offset ``eps > 0`` and normalised, :math:`\psi = (v + \epsilon
\mathbf 1) / \lVert v + \epsilon \mathbf 1 \rVert`, and amplitude-encoded.
Output channel ``g`` at a location sums, over the ``s * s`` windows that contain
the location, the expectation value of the tree copy that belongs to the
location's position ``(dy, dx)`` inside the window:

.. math::
    Q_g(y, x) = \sum_{dy, dx < s} \langle Z \rangle_{(dy, dx), g}\big(\psi_{y - dy,\, x - dx}\big)

With ``s = 1`` (16 channels) this is a ``1 x 1`` quantum convolution of the
location's own 16-vector; with ``s = 2`` (4 channels) the four ``2 x 2``
windows around a location together cover its ``3 x 3`` neighbourhood, as a
``3 x 3`` ConvLSTM kernel does.

Folded evaluation
-----------------
For a real amplitude vector :math:`\psi` any circuit -- unitary or noisy,
followed by one observable -- gives :math:`\langle Z \rangle = \psi^T S \psi`
with a real symmetric :math:`16 \times 16` matrix
:math:`S = \mathrm{Re}\,\Phi^\dagger(Z)` (the observable in the Heisenberg
picture): the expectation value is linear in :math:`\rho = \psi\psi^T`.
``sim="folded"`` (default) therefore evaluates each weight copy once per
forward pass on 136 probe states (the 16 basis states
:math:`e_i` and the 120 states :math:`(e_i + e_j)/\sqrt 2`), which fix
:math:`S` exactly, and then every location and time step costs one
``[N, 136] @ [136, copies]`` product of pair features
:math:`\psi_i \psi_j`. ``sim="direct"`` simulates the circuit at every
location and step through :class:`~qlstm.nn.QuantumLayer` (``bind()`` once per
forward, a ``[N, 16] @ [copies, 16, 16]`` product per step; density matrices
with noise) -- the plain path the folded one is tested against. With ``shots``
the folded path samples the single-qubit read-out of every circuit execution
from its exact outcome distribution,
``1 - 2 Binomial(shots, (1 - <Z>) / 2) / shots``, with straight-through
gradients like :func:`qlstm.circuit.run`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..circuit.noise import NoiseModel
from ..circuit.templates import PAPER_MODULES, qcnn_tree
from ..errors import InputError, QlstmError
from ..nn import QuantumLayer
from .convlstm import _pair
from .lstm import _check_finite, _check_positive_int, _check_tensor, _fmt

__all__ = ["QConvLSTM", "QuantumConv2d", "GATE_ORDER", "probe_amplitudes", "pair_features", "fold_coefficients"]

GATE_ORDER = ("input", "forget", "candidate", "output")
"""Order of the four gate blocks of ``4 * hidden`` channels, as in :class:`~qlstm.models.convlstm.ConvLSTM`."""

N_QUBITS = 4
DIM = 2**N_QUBITS  # 16 amplitudes
_WINDOW_SIDE = {16: 1, 4: 2, 1: 4}  # channels -> side s with channels * s * s == 16
SIMS = ("folded", "direct")


# ---------------------------------------------------------------------------
# the quadratic-form fold


def _pairs(device=None) -> tuple[Tensor, Tensor]:
    iu = torch.triu_indices(DIM, DIM, offset=1, device=device)
    return iu[0], iu[1]


def probe_amplitudes(dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    r"""The 136 probe states ``[136, 16]``: :math:`e_0 .. e_{15}`, then :math:`(e_i + e_j)/\sqrt 2` for ``i < j``.

    Pairs come in :func:`torch.triu_indices` order (row-major upper triangle).
    """
    eye = torch.eye(DIM, dtype=dtype, device=device)
    i, j = _pairs(device)
    return torch.cat([eye, (eye[i] + eye[j]) / math.sqrt(2.0)])


def pair_features(psi: Tensor) -> Tensor:
    r"""``[..., 136]`` quadratic features :math:`[\psi_i^2, \; \psi_i \psi_j\ (i < j)]` of ``psi [..., 16]``."""
    i, j = _pairs(psi.device)
    return torch.cat([psi * psi, psi.index_select(-1, i) * psi.index_select(-1, j)], dim=-1)


def fold_coefficients(probe_values: Tensor) -> Tensor:
    r"""Coefficients ``[136, G]`` with ``pair_features(psi) @ coef == psi^T S psi`` for every copy.

    Args:
        probe_values: ``[136, G]`` exact expectation values of ``G`` circuits on
            :func:`probe_amplitudes`.

    From :math:`q(e_i) = S_{ii}` and :math:`q((e_i + e_j)/\sqrt 2) = (S_{ii} + S_{jj})/2 + S_{ij}`:
    the coefficient of :math:`\psi_i^2` is :math:`S_{ii}`, that of
    :math:`\psi_i\psi_j` is :math:`2 S_{ij} = 2 q_{ij} - S_{ii} - S_{jj}`.
    """
    i, j = _pairs(probe_values.device)
    diag = probe_values[:DIM]
    return torch.cat([diag, 2 * probe_values[DIM:] - diag[i] - diag[j]])


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


# ---------------------------------------------------------------------------


class QuantumConv2d(nn.Module):
    r"""A quantum convolution: a 4-qubit QCNN tree on every local 16-value window.

    See the module docstring for the equation. Weight copy ``k * out_channels + g``
    (``k = dy * s + dx``) is output channel ``g`` for locations at position
    ``(dy, dx)`` of a window; there are ``s * s * out_channels`` copies of the
    tree, held by one :class:`~qlstm.nn.QuantumLayer` and evaluated in one call.

    Args:
        in_channels: 16, 4 or 1; the window side is ``s = 4 / sqrt(in_channels)``.
        out_channels: output channels ``G``.
        module: two-qubit module of the tree (a name of
            :data:`~qlstm.circuit.templates.TWO_QUBIT_MODULES`).
        tree_layers: module layers per tree level (``layers_per_level``).
        offset: initial value of the learnable offset ``eps``.
        offset_floor: ``eps = offset_floor + softplus(offset_raw) > offset_floor``.
        noise: optional :class:`~qlstm.circuit.noise.NoiseModel` of every circuit.
        shots: None (exact ``<Z>``) or shots per circuit execution.
        sim: ``"folded"`` or ``"direct"`` (module docstring).
        generator: for the weight initialisation (``U(0, 2 pi)``) and shot sampling.
        dtype, device: of the parameters; float32 simulates in complex64.

    Shape:
        ``[B, in_channels, H, W] -> [B, out_channels, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, module: str = "U_SO4", tree_layers: int = 2,
                 offset: float = 0.5, offset_floor: float = 0.0, noise: NoiseModel | None = None,
                 shots: int | None = None, sim: str = "folded", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device=None):
        super().__init__()
        if in_channels not in _WINDOW_SIDE:
            raise QlstmError(
                f"a quantum convolution amplitude-encodes 16-value windows (channels x s x s = 16), so "
                f"in_channels must be 16, 4 or 1; got {in_channels!r}"
            )
        self.in_channels = in_channels
        self.out_channels = _check_positive_int("out_channels", out_channels)
        self.side = _WINDOW_SIDE[in_channels]
        if sim not in SIMS:
            raise QlstmError(f"sim must be one of {', '.join(map(repr, SIMS))}, got {sim!r}")
        if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
            raise QlstmError(f"shots must be a positive int or None, got {shots!r}")
        if not offset > offset_floor:
            raise QlstmError(f"offset must exceed offset_floor={offset_floor}, got {offset!r}")
        self.sim, self.shots, self.generator = sim, shots, generator
        self.offset_floor = float(offset_floor)
        self.circuit = qcnn_tree(N_QUBITS, module, tree_layers, encoding="amplitude")
        self.layer = QuantumLayer(self.circuit, copies=self.side**2 * self.out_channels, init="uniform",
                                  noise=noise, shots=shots if sim == "direct" else None,
                                  generator=generator, dtype=dtype, device=device)
        self.offset_raw = nn.Parameter(
            torch.tensor(_inverse_softplus(offset - offset_floor), dtype=dtype, device=device))

    @property
    def copies(self) -> int:
        return self.layer.weight.shape[0]

    @property
    def offset(self) -> Tensor:
        """The offset ``eps`` added to every window value before normalisation."""
        return self.offset_floor + F.softplus(self.offset_raw)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, window={self.side}x{self.side}, copies={self.copies}, "
             f"sim={self.sim!r}")
        return s + (f", shots={self.shots}" if self.shots else "")

    # -- the three stages --------------------------------------------------
    def amplitudes(self, t: Tensor) -> Tensor:
        """Normalised amplitude vectors of all windows, ``[B, H+s-1, W+s-1, 16]``.

        Window ``(p, q)`` has its top-left location at ``(p - s + 1, q - s + 1)``;
        its values are ordered ``channel, row, column`` (:func:`torch.nn.functional.unfold`).
        """
        s = self.side
        b, _, h, w = t.shape
        if s == 1:
            win = t.permute(0, 2, 3, 1)
        else:
            cols = F.unfold(F.pad(t, (s - 1,) * 4), kernel_size=s)  # [B, 16, Hp*Wp]
            win = cols.transpose(1, 2).reshape(b, h + s - 1, w + s - 1, DIM)
        u = win + self.offset
        norm = u.norm(dim=-1, keepdim=True)
        if not bool((norm > 0).all()):
            eps = float(self.offset.detach())
            raise InputError(
                f"a {s}x{s} window of {self.in_channels}-channel values plus the offset {eps:.4g} is the zero "
                f"vector, which amplitude encoding cannot represent; inputs are expected in [0, 1] "
                f"(use non-negative inputs, or a larger offset)"
            )
        return u / norm

    def evaluator(self):
        """A function ``psi [..., 16] -> [..., copies]`` with the weights bound once (call once per forward)."""
        layer = self.layer
        if self.sim == "direct":
            runner = layer.bind().expvals if layer.bindable else layer

            def direct(psi: Tensor) -> Tensor:
                flat = psi.reshape(-1, DIM)
                return runner(flat)[..., 0].T.reshape(*psi.shape[:-1], self.copies)

            return direct
        probes = probe_amplitudes(layer.weight.dtype, layer.weight.device)
        if layer.bindable:  # pure, or noisy with the observable pulled back (heisenberg_mixed)
            values = layer.bind().expvals(probes)[..., 0]  # [copies, 136]
        else:  # exact density-matrix values of each copy (no shots here; they are sampled below)
            values = layer(probes)[..., 0]  # [copies, 136]
        coef = fold_coefficients(values.T)  # [136, copies]

        def folded(psi: Tensor) -> Tensor:
            q = pair_features(psi) @ coef
            return q if self.shots is None else self._sample(q)

        return folded

    def _sample(self, q: Tensor) -> Tensor:
        """Shot estimates of single-qubit ``<Z>`` values ``q``, straight-through gradients."""
        with torch.no_grad():
            p1 = ((1 - q) / 2).clamp(0, 1)
            gen = self.generator if self.generator is not None and self.generator.device == q.device else None
            ones = torch.binomial(torch.full_like(p1, float(self.shots)), p1, generator=gen)
            est = 1 - 2 * ones / self.shots
        return q + (est - q).detach()

    def combine(self, values: Tensor, size: tuple[int, int]) -> Tensor:
        """Sum window values ``[B, H+s-1, W+s-1, copies]`` into ``[B, out_channels, H, W]``."""
        s, (h, w) = self.side, size
        v = values.unflatten(-1, (s * s, self.out_channels))
        out = None
        for dy in range(s):
            for dx in range(s):
                part = v[:, s - 1 - dy: s - 1 - dy + h, s - 1 - dx: s - 1 - dx + w, dy * s + dx]
                out = part if out is None else out + part
        return out.permute(0, 3, 1, 2)

    def forward(self, t: Tensor, evaluator=None) -> Tensor:
        """``[B, in_channels, H, W] -> [B, out_channels, H, W]``; pass ``evaluator`` to reuse bound weights."""
        evaluator = evaluator if evaluator is not None else self.evaluator()
        return self.combine(evaluator(self.amplitudes(t)), tuple(t.shape[-2:]))


# ---------------------------------------------------------------------------


def _resolve_module(module: str) -> str:
    key = str(module).strip().lower().strip("()")
    return PAPER_MODULES[key] if key in PAPER_MODULES else str(module)


class QConvLSTM(nn.Module):
    r"""Quantum convolutional LSTM: ConvLSTM gates from QCNN trees on local 16-value windows.

    Per time step, with :math:`Q^x = \mathrm{QConv}_x(X_t)`,
    :math:`Q^h = \mathrm{QConv}_h(H_{t-1})` (:class:`QuantumConv2d`, ``4 * hidden``
    output channels each, blocks in the order ``(i, f, c, o)``), per-channel
    scales :math:`a^x, a^h`, norm weights :math:`n`, biases :math:`b` (vectors of
    ``4 * hidden``, broadcast over the frame) and :math:`r_t = \lVert X_t(y, x) \rVert_2`
    (the norm over channels at each location):

    .. math::
        Z_t &= a^x \circ Q^x + a^h \circ Q^h + n \circ r_t + b
              \qquad (= [Z^i, Z^f, Z^c, Z^o]) \\
        i_t &= \sigma(Z^i + W_{ci} \circ C_{t-1}), \quad f_t = \sigma(Z^f + W_{cf} \circ C_{t-1}) \\
        C_t &= f_t \circ C_{t-1} + i_t \circ \tanh(Z^c) \\
        o_t &= \sigma(Z^o + W_{co} \circ C_t), \quad H_t = o_t \circ \tanh(C_t)

    Amplitude encoding discards a window's norm; the offsets of the two quantum
    convolutions keep part of it (a window close to zero encodes close to the
    uniform state) and :math:`n \circ r_t` feeds the input norm back classically.
    The state offset is kept above 1: :math:`H_{t-1} \in [-1, 1]`, so every
    amplitude ``h + eps`` is positive and no window can be the zero vector.

    Args:
        input_channels: channels of every input frame: 16 (4x4 patches folded
            into channels, ``FramePredictor(core, patch_size=4)``), 4 or 1.
        hidden_channels: 4 (default; ``2 x 2`` state windows, ``3 x 3``
            neighbourhood), 16 (``1 x 1``: no spatial mixing in the state
            transition) or 1 (``4 x 4`` windows).
        frame_size: ``(H, W)`` of the frames; needed by the peephole weights.
        module: two-qubit module of the trees: a name of
            :data:`~qlstm.circuit.templates.TWO_QUBIT_MODULES` or one of the
            paper's designs ``"a"``-``"f"`` (:data:`~qlstm.circuit.templates.PAPER_MODULES`).
        tree_layers: module layers per tree level (the paper's "circuit layers", 1-3).
        noise: optional :class:`~qlstm.circuit.noise.NoiseModel` applied to every circuit
            (placement ``"end"`` as in the paper's Section 5.3, ``"layer"`` or ``"gate"``).
        shots: None for exact expectation values, else shots per circuit execution.
        sim: ``"folded"`` (default) or ``"direct"``; equal results (module docstring).
        input_offset, hidden_offset: initial offsets of the two quantum convolutions
            (the hidden one must exceed 1).
        norm_feedback: add :math:`n \circ r_t`. Default: True.
        peephole: add the Hadamard peepholes. Default: True.
        generator: ``torch.Generator`` for the tree weights (``U(0, 2 pi)``) and shots.
        batch_first: ``[B, T, ...]`` (True) or ``[T, B, ...]``.
        dtype: float32 (complex64 simulation) or float64.
        device: of the parameters.

    Inputs: ``x, state`` as for :class:`~qlstm.models.convlstm.ConvLSTM` with one layer:
        * **x**: ``[B, T, input_channels, H, W]``, finite.
        * **state**: None (zeros) or ``(h_0, c_0)``, each ``[1, B, hidden, H, W]``
          or a sequence of one ``[B, hidden, H, W]`` tensor.

    Outputs: ``outputs [B, T, hidden, H, W], (h_n, c_n)`` each ``[1, B, hidden, H, W]``.

    Attributes:
        conv_x, conv_h: the two :class:`QuantumConv2d` (tree weights
            ``conv_*.layer.weight [copies, n_weights]``, offsets ``conv_*.offset_raw``).
        scale_x, scale_h, norm_weight, bias: ``[4 * hidden]``.
        weight_ci, weight_cf, weight_co: ``[hidden, H, W]`` peepholes (start at 0).

    Raises:
        qlstm.errors.InputError: wrong rank, channels, frame size, dtype or device,
            a state of the wrong shape, NaN/Inf values.

    Example::

        >>> core = QConvLSTM(16, 4, frame_size=(16, 16))
        >>> model = FramePredictor(core, n_out=10, patch_size=4)   # 64 x 64 frames
        >>> model(torch.rand(2, 10, 1, 64, 64)).shape
        torch.Size([2, 10, 1, 64, 64])
    """

    def __init__(
        self,
        input_channels: int = 16,
        hidden_channels: int = 4,
        frame_size: tuple[int, int] | None = (16, 16),
        *,
        module: str = "U_SO4",
        tree_layers: int = 2,
        noise: NoiseModel | None = None,
        shots: int | None = None,
        sim: str = "folded",
        input_offset: float = 0.5,
        hidden_offset: float = 1.5,
        norm_feedback: bool = True,
        peephole: bool = True,
        generator: torch.Generator | None = None,
        batch_first: bool = True,
        dtype: torch.dtype = torch.float32,
        device=None,
    ):
        super().__init__()
        for name, v in (("input_channels", input_channels), ("hidden_channels", hidden_channels)):
            if v not in _WINDOW_SIDE or isinstance(v, bool):
                raise QlstmError(
                    f"{name} must be 16, 4 or 1 (each quantum convolution amplitude-encodes channels x s x s = 16 "
                    f"values), got {v!r}"
                )
        if dtype not in (torch.float32, torch.float64):
            raise QlstmError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        noise = NoiseModel.coerce(noise)
        if not hidden_offset > 1:
            raise QlstmError(f"hidden_offset must exceed 1 (h lies in [-1, 1]), got {hidden_offset!r}")
        self.peephole = bool(peephole)
        if self.peephole and frame_size is None:
            raise QlstmError("peephole=True needs frame_size=(H, W) for the [hidden, H, W] peephole weights")
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        self.frame_size = None if frame_size is None else _pair("frame_size", frame_size)
        self.num_layers = 1
        self.module = _resolve_module(module)
        self.tree_layers = tree_layers
        self.noise, self.shots, self.sim = noise, shots, sim
        self.norm_feedback = bool(norm_feedback)
        self.batch_first = bool(batch_first)
        g = 4 * hidden_channels
        qkw = dict(module=self.module, tree_layers=tree_layers, noise=noise, shots=shots, sim=sim,
                   generator=generator, dtype=dtype, device=device)
        self.conv_x = QuantumConv2d(input_channels, g, offset=input_offset, offset_floor=1e-3, **qkw)
        self.conv_h = QuantumConv2d(hidden_channels, g, offset=hidden_offset, offset_floor=1.0, **qkw)
        fk = dict(dtype=dtype, device=device)
        self.scale_x = nn.Parameter(torch.ones(g, **fk))
        self.scale_h = nn.Parameter(torch.ones(g, **fk))
        if self.norm_feedback:
            self.norm_weight = nn.Parameter(torch.zeros(g, **fk))
        bias = torch.zeros(g, **fk)
        bias[hidden_channels: 2 * hidden_channels] = 1.0  # forget gate starts open
        self.bias = nn.Parameter(bias)
        if self.peephole:
            for name in ("weight_ci", "weight_cf", "weight_co"):
                self.register_parameter(name, nn.Parameter(torch.zeros(hidden_channels, *self.frame_size, **fk)))

    def extra_repr(self) -> str:
        s = (f"{self.input_channels}, {self.hidden_channels}, frame_size={self.frame_size}, module={self.module!r}, "
             f"tree_layers={self.tree_layers}, sim={self.sim!r}")
        s += f", noise={self.noise}" if self.noise else ""
        s += f", shots={self.shots}" if self.shots else ""
        return s + ("" if self.batch_first else ", batch_first=False")

    # -- checks ------------------------------------------------------------------
    def _check_input(self, x: object) -> Tensor:
        layout = "[B, T, C, H, W]" if self.batch_first else "[T, B, C, H, W]"
        size = "H, W" if self.frame_size is None else f"{self.frame_size[0]}, {self.frame_size[1]}"
        expected = f"{layout} = [*, *, {self.input_channels}, {size}]"
        if not isinstance(x, Tensor):
            raise InputError(f"x must be a torch.Tensor shaped {expected}, got {type(x).__name__}")
        if x.dim() != 5:
            raise InputError(f"x must be 5-D {expected}, got {x.dim()}-D with shape {_fmt(x.shape)}")
        if x.shape[2] != self.input_channels:
            raise InputError(
                f"x has {x.shape[2]} channels in dimension 2 but input_channels={self.input_channels}; "
                f"expected {expected}, got {_fmt(x.shape)}"
            )
        if self.frame_size is not None and tuple(x.shape[3:]) != self.frame_size:
            raise InputError(
                f"x frames are {tuple(x.shape[3:])} in dimensions 3, 4 but the model was built for "
                f"frame_size={self.frame_size}; expected {expected}, got {_fmt(x.shape)}"
            )
        if 0 in x.shape:
            raise InputError(f"x must not have an empty dimension, got shape {_fmt(x.shape)}")
        _check_tensor("x", x, self.bias)
        _check_finite("x", x)
        return x

    def _initial_state(self, state: object, x: Tensor) -> tuple[Tensor, Tensor]:
        b, hid, frame = x.shape[0], self.hidden_channels, tuple(x.shape[3:])
        if state is None:
            z = x.new_zeros(b, hid, *frame)
            return z, z
        expected = (f"a tensor [1, B, hidden, H, W] = {_fmt((1, b, hid, *frame))} or a sequence of one tensor "
                    f"[B, hidden, H, W] = {_fmt((b, hid, *frame))}")
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise InputError(f"state must be None or a pair (h_0, c_0), each {expected}; got {type(state).__name__}")
        out = []
        for name, s in zip(("h_0", "c_0"), state):
            if isinstance(s, (tuple, list)) and len(s) == 1:
                s = s[0]
            elif isinstance(s, Tensor) and s.dim() == 5 and s.shape[0] == 1:
                s = s[0]
            else:
                got = _fmt(s.shape) if isinstance(s, Tensor) else type(s).__name__
                raise InputError(f"state {name} must be {expected}; got {got}")
            _check_tensor(f"state {name}", s, x)
            if tuple(s.shape) != (b, hid, *frame):
                raise InputError(f"state {name} must be {expected}; got {_fmt(s.shape)} for that layer")
            _check_finite(f"state {name}", s)
            out.append(s)
        return out[0], out[1]

    # -- forward -----------------------------------------------------------------
    def _input_drive(self, frames: Tensor, evaluator) -> Tensor:
        """``a^x Q^x + n r + b`` for frames ``[N, C, H, W]`` (all time steps at once)."""
        drive = self.scale_x[:, None, None] * self.conv_x(frames, evaluator) + self.bias[:, None, None]
        if self.norm_feedback:
            drive = drive + self.norm_weight[:, None, None] * frames.norm(dim=1, keepdim=True)
        return drive

    def forward(self, x: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the sequence; see the class docstring for shapes."""
        x = self._check_input(x)
        if not self.batch_first:
            x = x.transpose(0, 1)
        h, c = self._initial_state(state, x)
        b, steps, ch, hh, ww = x.shape
        # weights are bound (folded) once per call and reused for every time step
        ev_x, ev_h = self.conv_x.evaluator(), self.conv_h.evaluator()
        # the input transition does not depend on the recurrence: all steps in one batch
        drive = self._input_drive(x.reshape(b * steps, ch, hh, ww), ev_x).reshape(b, steps, -1, hh, ww)
        outs = []
        for t in range(steps):
            z = drive[:, t] + self.scale_h[:, None, None] * self.conv_h(h, ev_h)
            zi, zf, zc, zo = z.chunk(4, dim=1)
            if self.peephole:
                zi = zi + self.weight_ci * c
                zf = zf + self.weight_cf * c
            c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zc)
            if self.peephole:
                zo = zo + self.weight_co * c
            h = torch.sigmoid(zo) * torch.tanh(c)
            outs.append(h)
        out = torch.stack(outs, dim=1 if self.batch_first else 0)
        return out, (h.unsqueeze(0), c.unsqueeze(0))
