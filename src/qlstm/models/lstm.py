"""Classical (peephole) LSTM, the baseline for the quantum LSTMs.

All sequence models in :mod:`qlstm.models` share one calling contract, the one
of :class:`torch.nn.LSTM`::

    outputs, (h_n, c_n) = model(x, state=None)

with ``batch_first=True`` by default. Passing the returned ``(h_n, c_n)`` back
as ``state`` continues the sequence, so running ``T`` steps at once equals
running them in chunks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qlstm.errors import InputError, QlstmError

__all__ = ["LSTM"]


def _fmt(shape: Sequence[int]) -> str:
    """``[2, 4, 8]``-style rendering of a shape for error messages."""
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise QlstmError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_finite(name: str, t: Tensor) -> None:
    # A NaN fed to a recurrent model silently poisons every later state, and
    # the loss only shows it many steps away from the cause; fail at the door.
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name} contains NaN or Inf values")


def _check_tensor(name: str, t: object, like: Tensor) -> Tensor:
    """Type, dtype and device check of ``t`` against the reference ``like``."""
    if not isinstance(t, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != like.dtype:
        raise InputError(
            f"{name} has dtype {t.dtype} but the model parameters are {like.dtype}; "
            f"convert one of them (e.g. model.to({t.dtype}) or x.to({like.dtype}))"
        )
    if t.device != like.device:
        raise InputError(
            f"{name} is on {t.device} but the model parameters are on {like.device}"
        )
    return t


def _uniform_(t: Tensor, bound: float, generator: torch.Generator | None) -> None:
    """In-place U(-bound, bound), drawing from ``generator`` wherever it lives."""
    with torch.no_grad():
        if generator is None or generator.device == t.device:
            t.uniform_(-bound, bound, generator=generator)
        else:
            # A generator can only fill tensors on its own device.
            tmp = torch.empty(t.shape, dtype=t.dtype, device=generator.device)
            t.copy_(tmp.uniform_(-bound, bound, generator=generator))


class LSTM(nn.Module):
    r"""Multi-layer LSTM with optional peephole connections.

    With ``peephole=True`` each layer computes, for every time step (Eq. (1) of
    the QConvLSTM paper, Gers & Schmidhuber's peephole LSTM):

    .. math::
        i_t &= \sigma(W_{xi} x_t + W_{hi} h_{t-1} + w_{ci} \circ c_{t-1} + b_i) \\
        f_t &= \sigma(W_{xf} x_t + W_{hf} h_{t-1} + w_{cf} \circ c_{t-1} + b_f) \\
        c_t &= f_t \circ c_{t-1} + i_t \circ \tanh(W_{xc} x_t + W_{hc} h_{t-1} + b_c) \\
        o_t &= \sigma(W_{xo} x_t + W_{ho} h_{t-1} + w_{co} \circ c_t + b_o) \\
        h_t &= o_t \circ \tanh(c_t)

    where :math:`\circ` is the Hadamard product and the peephole weights
    :math:`w_{c\cdot}` are vectors of length ``hidden_size``. Note that the
    output gate looks at the *new* cell state :math:`c_t`. With
    ``peephole=False`` the peephole terms are dropped and the module computes
    exactly what :class:`torch.nn.LSTM` computes; its parameters then have the
    same names and shapes, so ``load_state_dict(torch_lstm.state_dict())``
    works in both directions.

    The input projection of all time steps is one matrix multiplication per
    layer; the recurrence costs one ``[B, H] x [H, 4H]`` product per step.

    Args:
        input_size: number of features of ``x``.
        hidden_size: number of features of the hidden and cell states.
        num_layers: number of stacked layers; layer ``k > 0`` reads the hidden
            states of layer ``k - 1``. Default: 1.
        peephole: add the peephole terms of Eq. (1). Default: ``True``.
        bias: use the biases ``b_ih`` and ``b_hh`` (two, as in
            :class:`torch.nn.LSTM`; their sum is the :math:`b` of Eq. (1)).
            Default: ``True``.
        batch_first: inputs and outputs are ``[B, T, *]`` (``True``) or
            ``[T, B, *]`` (``False``). The states ``h`` and ``c`` are
            ``[num_layers, B, H]`` either way, as in torch. Default: ``True``.
        dropout: dropout probability on the outputs of every layer except the
            last, active only in training mode. Default: 0.
        device, dtype: where and how to allocate the parameters.
        generator: random generator for the initial parameter values; the
            global generator is used when ``None``.

    Inputs: ``x, state``
        * **x**: ``[B, T, input_size]`` (``[T, B, input_size]`` if not
          ``batch_first``), finite values, same dtype and device as the model.
        * **state**: ``None`` (zero initial state) or a tuple ``(h_0, c_0)``
          of tensors shaped ``[num_layers, B, hidden_size]``.

    Outputs: ``outputs, (h_n, c_n)``
        * **outputs**: ``[B, T, hidden_size]`` (``[T, B, hidden_size]`` if not
          ``batch_first``), the hidden state of the last layer at every step.
        * **h_n**, **c_n**: ``[num_layers, B, hidden_size]``, the hidden and
          cell states of every layer after the last step.

    Attributes:
        weight_ih_l{k}: ``[4*hidden_size, in_k]`` input weights of layer ``k``
            with ``in_0 = input_size`` and ``in_k = hidden_size`` otherwise;
            row blocks are the gates in torch's order ``(i, f, g, o)``, where
            ``g`` is the cell candidate (the ``W_{x c}`` block of Eq. (1)).
        weight_hh_l{k}: ``[4*hidden_size, hidden_size]`` recurrent weights.
        bias_ih_l{k}, bias_hh_l{k}: ``[4*hidden_size]`` (if ``bias``).
        weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k}: ``[hidden_size]``
            peephole weights (if ``peephole``).

        Every parameter starts as :math:`U(-1/\sqrt{H}, 1/\sqrt{H})` like in
        :class:`torch.nn.LSTM`, the peephole weights included.

    Raises:
        qlstm.errors.InputError: (a :class:`ValueError`) on input of the wrong
            rank, size, dtype or device, a state of the wrong shape, or
            NaN/Inf values.

    Example::

        >>> model = LSTM(input_size=3, hidden_size=16, num_layers=2)
        >>> out, (h, c) = model(torch.randn(8, 20, 3))
        >>> out.shape, h.shape
        (torch.Size([8, 20, 16]), torch.Size([2, 8, 16]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        peephole: bool = True,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.input_size = _check_positive_int("input_size", input_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise QlstmError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            # Same warning as torch: dropout only acts between layers.
            warnings.warn(
                f"dropout={dropout} has no effect with num_layers=1: it is applied "
                "between stacked layers only",
                stacklevel=2,
            )
        self.peephole = bool(peephole)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)

        factory = {"device": device, "dtype": dtype}
        h = hidden_size
        for k in range(num_layers):
            in_k = input_size if k == 0 else h
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(4 * h, in_k, **factory)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(4 * h, h, **factory)))
            if self.bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(4 * h, **factory)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(4 * h, **factory)))
            if self.peephole:
                for gate in ("ci", "cf", "co"):
                    self.register_parameter(f"weight_{gate}_l{k}", nn.Parameter(torch.empty(h, **factory)))
        self.reset_parameters(generator=generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Redraw every parameter from :math:`U(-1/\\sqrt{H}, 1/\\sqrt{H})`."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            _uniform_(p, bound, generator)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, peephole={self.peephole}"
        if not self.bias:
            s += ", bias=False"
        if not self.batch_first:
            s += ", batch_first=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s

    def _check_input(self, x: object) -> Tensor:
        ref = self.weight_ih_l0
        layout = "[B, T, input_size]" if self.batch_first else "[T, B, input_size]"
        if not isinstance(x, Tensor):
            raise InputError(f"x must be a torch.Tensor shaped {layout}, got {type(x).__name__}")
        if x.dim() != 3:
            raise InputError(
                f"x must be 3-D {layout} = [*, *, {self.input_size}], got {x.dim()}-D with shape {_fmt(x.shape)}"
            )
        if x.shape[-1] != self.input_size:
            raise InputError(
                f"x has {x.shape[-1]} features in its last dimension but input_size={self.input_size}; "
                f"expected {layout} = [*, *, {self.input_size}], got {_fmt(x.shape)}"
            )
        t_dim = 1 if self.batch_first else 0
        if x.shape[t_dim] == 0 or x.shape[1 - t_dim] == 0:
            raise InputError(f"x must have at least one batch element and one time step, got shape {_fmt(x.shape)}")
        _check_tensor("x", x, ref)
        _check_finite("x", x)
        return x

    def _check_state(self, state: object, batch: int, x: Tensor) -> tuple[Tensor, Tensor] | None:
        if state is None:
            return None
        expected = (self.num_layers, batch, self.hidden_size)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise InputError(
                f"state must be None or a tuple (h_0, c_0) of tensors shaped "
                f"[num_layers, B, hidden_size] = {_fmt(expected)}, got {type(state).__name__}"
            )
        for name, t in zip(("h_0", "c_0"), state):
            _check_tensor(f"state {name}", t, x)
            if tuple(t.shape) != expected:
                raise InputError(
                    f"state {name} must be [num_layers, B, hidden_size] = {_fmt(expected)}, got {_fmt(t.shape)}"
                )
            _check_finite(f"state {name}", t)
        return state[0], state[1]

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the sequence; see the class docstring for shapes."""
        x = self._check_input(x)
        batch = x.shape[0] if self.batch_first else x.shape[1]
        init = self._check_state(state, batch, x)
        # Time-major inside so that x_proj[t] is a contiguous [B, 4H] block.
        layer_in = x.transpose(0, 1) if self.batch_first else x
        steps = layer_in.shape[0]
        hs, cs = [], []
        for k in range(self.num_layers):
            w_ih = getattr(self, f"weight_ih_l{k}")
            w_hh_t = getattr(self, f"weight_hh_l{k}").t()
            b = (getattr(self, f"bias_ih_l{k}") + getattr(self, f"bias_hh_l{k}")) if self.bias else None
            if self.peephole:
                w_ci = getattr(self, f"weight_ci_l{k}")
                w_cf = getattr(self, f"weight_cf_l{k}")
                w_co = getattr(self, f"weight_co_l{k}")
            x_proj = F.linear(layer_in, w_ih, b)
            # h = c = None stands for the zero initial state: it skips a
            # matmul with zeros and the dead forget-gate term at t = 0.
            h, c = (None, None) if init is None else (init[0][k], init[1][k])
            outs = []
            for t in range(steps):
                gates = x_proj[t] if h is None else torch.addmm(x_proj[t], h, w_hh_t)
                gi, gf, gg, go = gates.chunk(4, dim=1)
                if c is None:
                    c = torch.sigmoid(gi) * torch.tanh(gg)
                else:
                    if self.peephole:
                        gi = gi + w_ci * c
                        gf = gf + w_cf * c
                    c = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
                if self.peephole:
                    go = go + w_co * c
                h = torch.sigmoid(go) * torch.tanh(c)
                outs.append(h)
            hs.append(h)
            cs.append(c)
            if k == self.num_layers - 1:
                out_dim = 1 if self.batch_first else 0
                outputs = torch.stack(outs, dim=out_dim)
            else:
                layer_in = torch.stack(outs, dim=0)
                if self.dropout and self.training:
                    layer_in = F.dropout(layer_in, self.dropout, training=True)
        return outputs, (torch.stack(hs, dim=0), torch.stack(cs, dim=0))
