"""Convolutional LSTM (Shi et al., 2015), the classical baseline for frame prediction.

Follows the sequence-model contract of :mod:`qlstm.models.lstm`
(``outputs, (h_n, c_n) = model(x, state=None)``, batch-first by default) with
an image at every time step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qlstm.errors import InputError, QlstmError
from qlstm.models.lstm import _check_finite, _check_positive_int, _check_tensor, _fmt, _uniform_

__all__ = ["ConvLSTM"]

State = tuple[Tensor | tuple[Tensor, ...], Tensor | tuple[Tensor, ...]]


def _pair(name: str, value: object) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise QlstmError(f"{name} must be a positive int or a pair of positive ints, got {value!r}")
    return int(value[0]), int(value[1])


class ConvLSTM(nn.Module):
    r"""Multi-layer convolutional LSTM with optional Hadamard peepholes.

    Each layer computes, for every time step (Eq. (2) of Shi et al., 2015):

    .. math::
        i_t &= \sigma(W_{xi} * X_t + W_{hi} * H_{t-1} + W_{ci} \circ C_{t-1} + b_i) \\
        f_t &= \sigma(W_{xf} * X_t + W_{hf} * H_{t-1} + W_{cf} \circ C_{t-1} + b_f) \\
        C_t &= f_t \circ C_{t-1} + i_t \circ \tanh(W_{xc} * X_t + W_{hc} * H_{t-1} + b_c) \\
        o_t &= \sigma(W_{xo} * X_t + W_{ho} * H_{t-1} + W_{co} \circ C_t + b_o) \\
        H_t &= o_t \circ \tanh(C_t)

    where :math:`*` is a 2-D convolution with ``'same'`` padding (stride 1, so
    states keep the frame size) and :math:`\circ` the Hadamard product. The
    peephole weights :math:`W_{c\cdot}` hold one weight per channel and pixel,
    ``[hidden, H, W]``, which ties the model to one frame size: ``frame_size``
    is required when ``peephole=True`` and inputs must then have exactly that
    size. With ``peephole=False`` any frame size works.

    The four gate convolutions of a step, on input and state, are a single
    convolution of ``concat([X_t, H_{t-1}])`` producing ``4 * hidden``
    channels.

    Args:
        input_channels: channels ``C`` of every input frame.
        hidden_channels: channels of the hidden and cell states; an int for
            every layer, or a sequence with one entry per layer.
        kernel_size: convolution kernel size, an int or ``(kh, kw)``, shared by
            all layers. Default: 3.
        num_layers: number of stacked layers; defaults to the length of
            ``hidden_channels`` if that is a sequence, else 1.
        frame_size: ``(H, W)`` of the frames, needed for the peephole weights.
        peephole: add the Hadamard peephole terms. Default: ``True``.
        bias: use the gate biases. Default: ``True``.
        batch_first: inputs and outputs are ``[B, T, ...]`` (``True``) or
            ``[T, B, ...]`` (``False``). Default: ``True``.
        device, dtype: where and how to allocate the parameters.
        generator: random generator for the initial parameter values; the
            global generator is used when ``None``.

    Inputs: ``x, state``
        * **x**: ``[B, T, C, H, W]`` (``[T, B, C, H, W]`` if not
          ``batch_first``), finite values, same dtype and device as the model.
        * **state**: ``None`` (zero initial state) or a pair ``(h_0, c_0)``,
          each either a tensor ``[num_layers, B, hidden, H, W]`` (all layers
          with the same ``hidden``) or a sequence of ``num_layers`` tensors
          ``[B, hidden_k, H, W]``.

    Outputs: ``outputs, (h_n, c_n)``
        * **outputs**: ``[B, T, hidden, H, W]`` (``[T, B, hidden, H, W]`` if
          not ``batch_first``), the hidden states of the last layer.
        * **h_n**, **c_n**: the states after the last step. When every layer
          has the same number of hidden channels they are tensors
          ``[num_layers, B, hidden, H, W]``; otherwise they cannot be stacked
          and are tuples of ``num_layers`` tensors ``[B, hidden_k, H, W]``.
          Either form is accepted back as ``state``.

    Attributes:
        hidden_channels: hidden channels of the **last** layer (``int``); this
            is what the wrappers in :mod:`qlstm.models.wrappers` read.
        layer_hidden_channels: tuple with the hidden channels of every layer.
        weight_l{k}: ``[4*hidden_k, in_k + hidden_k, kh, kw]`` convolution
            weights of layer ``k``; output-channel blocks are the gates in the
            order ``(i, f, c, o)``, input channels are ``[X_t, H_{t-1}]`` in
            that order (``in_0 = input_channels``, ``in_k = hidden_{k-1}``).
        bias_l{k}: ``[4*hidden_k]`` (if ``bias``).
        weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k}: ``[hidden_k, H, W]``
            peephole weights (if ``peephole``).

        Every parameter starts as :math:`U(-1/\sqrt{n}, 1/\sqrt{n})` with
        ``n = (in_k + hidden_k) * kh * kw`` the fan-in of the gate
        convolution, the bound :class:`torch.nn.Conv2d` uses.

    Raises:
        qlstm.errors.InputError: (a :class:`ValueError`) on input of the wrong
            rank, channels, frame size, dtype or device, a state of the wrong
            shape, or NaN/Inf values.

    Example::

        >>> model = ConvLSTM(1, [32, 16], kernel_size=5, frame_size=(16, 16))
        >>> out, (h, c) = model(torch.rand(2, 10, 1, 16, 16))
        >>> out.shape, type(h)
        (torch.Size([2, 10, 16, 16, 16]), <class 'tuple'>)
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int | Sequence[int],
        kernel_size: int | tuple[int, int] = 3,
        num_layers: int | None = None,
        *,
        frame_size: tuple[int, int] | None = None,
        peephole: bool = True,
        bias: bool = True,
        batch_first: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.input_channels = _check_positive_int("input_channels", input_channels)
        if isinstance(hidden_channels, int) and not isinstance(hidden_channels, bool):
            n = 1 if num_layers is None else _check_positive_int("num_layers", num_layers)
            per_layer = (_check_positive_int("hidden_channels", hidden_channels),) * n
        elif isinstance(hidden_channels, Sequence) and len(hidden_channels) > 0:
            per_layer = tuple(_check_positive_int("hidden_channels entry", h) for h in hidden_channels)
            if num_layers is not None and num_layers != len(per_layer):
                raise QlstmError(
                    f"num_layers={num_layers} but hidden_channels lists {len(per_layer)} layers: {list(per_layer)}"
                )
        else:
            raise QlstmError(
                f"hidden_channels must be a positive int or a non-empty sequence of them, got {hidden_channels!r}"
            )
        self.layer_hidden_channels = per_layer
        self.hidden_channels = per_layer[-1]
        self.num_layers = len(per_layer)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.peephole = bool(peephole)
        if self.peephole and frame_size is None:
            raise QlstmError(
                "peephole=True needs frame_size=(H, W): the peephole weights are [hidden, H, W]; "
                "pass frame_size or use peephole=False"
            )
        self.frame_size = None if frame_size is None else _pair("frame_size", frame_size)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)

        factory = {"device": device, "dtype": dtype}
        kh, kw = self.kernel_size
        for k, hid in enumerate(per_layer):
            in_k = input_channels if k == 0 else per_layer[k - 1]
            self.register_parameter(
                f"weight_l{k}", nn.Parameter(torch.empty(4 * hid, in_k + hid, kh, kw, **factory))
            )
            if self.bias:
                self.register_parameter(f"bias_l{k}", nn.Parameter(torch.empty(4 * hid, **factory)))
            if self.peephole:
                for gate in ("ci", "cf", "co"):
                    self.register_parameter(
                        f"weight_{gate}_l{k}", nn.Parameter(torch.empty(hid, *self.frame_size, **factory))
                    )
        self.reset_parameters(generator=generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Redraw every parameter of layer ``k`` from :math:`U(-1/\\sqrt{n_k}, 1/\\sqrt{n_k})`."""
        kh, kw = self.kernel_size
        for k, hid in enumerate(self.layer_hidden_channels):
            in_k = self.input_channels if k == 0 else self.layer_hidden_channels[k - 1]
            bound = 1.0 / math.sqrt((in_k + hid) * kh * kw)
            for name, p in self.named_parameters():
                if name.endswith(f"_l{k}"):
                    _uniform_(p, bound, generator)

    def extra_repr(self) -> str:
        hidden = self.hidden_channels if len(set(self.layer_hidden_channels)) == 1 else list(self.layer_hidden_channels)
        s = (
            f"{self.input_channels}, {hidden}, kernel_size={self.kernel_size}, num_layers={self.num_layers}, "
            f"peephole={self.peephole}"
        )
        if self.frame_size is not None:
            s += f", frame_size={self.frame_size}"
        if not self.bias:
            s += ", bias=False"
        if not self.batch_first:
            s += ", batch_first=False"
        return s

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
                f"x frames are {tuple(x.shape[3:])} in dimensions 3, 4 but the peephole weights were built for "
                f"frame_size={self.frame_size}; expected {expected}, got {_fmt(x.shape)}"
            )
        if 0 in x.shape:
            raise InputError(f"x must not have an empty dimension, got shape {_fmt(x.shape)}")
        _check_tensor("x", x, self.weight_l0)
        _check_finite("x", x)
        return x

    def _check_state(self, state: object, batch: int, x: Tensor) -> tuple[list[Tensor], list[Tensor]] | None:
        if state is None:
            return None
        frame = tuple(x.shape[3:])
        hids = self.layer_hidden_channels
        if len(set(hids)) == 1:
            stacked = _fmt((self.num_layers, batch, hids[0], *frame))
            form = f"a tensor [num_layers, B, hidden, H, W] = {stacked} or a sequence of {self.num_layers} tensors"
        else:
            form = f"a sequence of {self.num_layers} tensors"
        per_layer = ", ".join(_fmt((batch, h, *frame)) for h in hids)
        expected = f"{form} [B, hidden_k, H, W] = {per_layer}"
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise InputError(f"state must be None or a pair (h_0, c_0), each {expected}; got {type(state).__name__}")
        out = []
        for name, s in zip(("h_0", "c_0"), state):
            if isinstance(s, Tensor):
                if s.dim() != 5 or s.shape[0] != self.num_layers:
                    raise InputError(f"state {name} must be {expected}; got a tensor {_fmt(s.shape)}")
                layers = list(s.unbind(0))
            elif isinstance(s, (tuple, list)) and len(s) == self.num_layers:
                layers = list(s)
            else:
                raise InputError(f"state {name} must be {expected}; got {type(s).__name__}")
            for k, (t, h) in enumerate(zip(layers, hids)):
                _check_tensor(f"state {name} layer {k}", t, x)
                if tuple(t.shape) != (batch, h, *frame):
                    raise InputError(
                        f"state {name} layer {k} must be [B, hidden_k, H, W] = {_fmt((batch, h, *frame))}, "
                        f"got {_fmt(t.shape)} (state must be {expected})"
                    )
                _check_finite(f"state {name} layer {k}", t)
            out.append(layers)
        return out[0], out[1]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the sequence; see the class docstring for shapes."""
        x = self._check_input(x)
        batch = x.shape[0] if self.batch_first else x.shape[1]
        init = self._check_state(state, batch, x)
        t_dim = 1 if self.batch_first else 0
        steps = x.shape[t_dim]
        layer_in = list(x.unbind(t_dim))
        hs, cs = [], []
        for k in range(self.num_layers):
            w = getattr(self, f"weight_l{k}")
            b = getattr(self, f"bias_l{k}") if self.bias else None
            # Against a zero H_{t-1} only the input half of the kernel matters.
            w_x = w[:, : layer_in[0].shape[1]]
            if self.peephole:
                w_ci = getattr(self, f"weight_ci_l{k}")
                w_cf = getattr(self, f"weight_cf_l{k}")
                w_co = getattr(self, f"weight_co_l{k}")
            # h = c = None stands for the zero initial state (see LSTM.forward).
            h, c = (None, None) if init is None else (init[0][k], init[1][k])
            outs = []
            for t in range(steps):
                if h is None:
                    gates = F.conv2d(layer_in[t], w_x, b, padding="same")
                else:
                    gates = F.conv2d(torch.cat([layer_in[t], h], dim=1), w, b, padding="same")
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
            layer_in = outs
        outputs = torch.stack(layer_in, dim=t_dim)
        if len(set(self.layer_hidden_channels)) == 1:
            return outputs, (torch.stack(hs, dim=0), torch.stack(cs, dim=0))
        return outputs, (tuple(hs), tuple(cs))
