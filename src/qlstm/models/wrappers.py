"""Task heads around a recurrent core: frame prediction and series forecasting.

The wrappers take a core *module instance*, classical or quantum, and rely only
on the sequence-model contract of :mod:`qlstm.models.lstm`:

* ``outputs, state = core(x, state=None)`` with batch-first input, where
  passing the returned ``state`` back continues the sequence;
* the width of ``outputs`` is discoverable from an attribute of the core:
  ``hidden_channels`` (conv-like cores, the channels of the **last** layer)
  for :class:`FramePredictor`, ``hidden_size`` (LSTM-like cores) for
  :class:`SeriesForecaster`. A core without that attribute can still be
  wrapped by giving the width explicitly.

The wrappers never look inside ``state``; it only travels back to the core.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qlstm.errors import InputError, QlstmError
from qlstm.models.lstm import _check_finite, _check_positive_int, _fmt

__all__ = ["FramePredictor", "FlatFramePredictor", "SeriesForecaster", "reshape_patch", "reshape_patch_back"]


def reshape_patch(x: Tensor, patch_size: int) -> Tensor:
    """Space-to-depth: fold ``p x p`` pixel patches into channels.

    The channel-first counterpart of OpenSTL's ``reshape_patch``: a frame
    sequence ``[B, T, C, H, W]`` becomes ``[B, T, C*p*p, H/p, W/p]``, so a
    recurrent core runs on ``p*p`` times fewer pixels. Output channel
    ``c*p*p + i*p + j`` holds pixel ``(i, j)`` of every patch of input channel
    ``c`` (the order of :class:`torch.nn.PixelUnshuffle`; OpenSTL's
    channel-last tensors order it ``(i, j, c)``, which matters only when
    porting their weights).

    Args:
        x: ``[B, T, C, H, W]`` with ``H`` and ``W`` divisible by ``patch_size``.
        patch_size: patch side ``p``.

    Returns:
        ``[B, T, C*p*p, H/p, W/p]``. Inverted by :func:`reshape_patch_back`.
    """
    p = _check_positive_int("patch_size", patch_size)
    if not isinstance(x, Tensor) or x.dim() != 5:
        got = f"{x.dim()}-D with shape {_fmt(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"reshape_patch expects a 5-D tensor [B, T, C, H, W], got {got}")
    if x.shape[3] % p or x.shape[4] % p:
        raise InputError(
            f"frame size (H, W) = {tuple(x.shape[3:])} in dimensions 3, 4 is not divisible by "
            f"patch_size={p}; expected [B, T, C, H, W] with H and W multiples of {p}"
        )
    return F.pixel_unshuffle(x, p)


def reshape_patch_back(x: Tensor, patch_size: int) -> Tensor:
    """Depth-to-space, the inverse of :func:`reshape_patch`.

    Args:
        x: ``[B, T, C*p*p, h, w]``.
        patch_size: patch side ``p``.

    Returns:
        ``[B, T, C, h*p, w*p]``.
    """
    p = _check_positive_int("patch_size", patch_size)
    if not isinstance(x, Tensor) or x.dim() != 5:
        got = f"{x.dim()}-D with shape {_fmt(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"reshape_patch_back expects a 5-D tensor [B, T, C*p*p, h, w], got {got}")
    if x.shape[2] % (p * p):
        raise InputError(
            f"{x.shape[2]} channels in dimension 2 are not divisible by patch_size**2 = {p * p}; "
            f"expected [B, T, C*{p * p}, h, w], got {_fmt(x.shape)}"
        )
    return F.pixel_shuffle(x, p)


def _core_width(core: nn.Module, attr: str, given: int | None, wrapper: str) -> int:
    if given is not None:
        return _check_positive_int(attr, given)
    width = getattr(core, attr, None)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise QlstmError(
            f"{wrapper} needs the width of the core's outputs: {type(core).__name__} has no positive int "
            f"attribute {attr!r}; add one to the core or pass {attr}=... to {wrapper}"
        )
    return width


def _check_core(core: object, wrapper: str) -> nn.Module:
    if not isinstance(core, nn.Module):
        raise QlstmError(f"{wrapper} wraps a core nn.Module instance, got {type(core).__name__}")
    if getattr(core, "batch_first", True) is not True:
        raise QlstmError(f"{wrapper} needs a batch-first core; construct it with batch_first=True")
    return core


def _factory(core: nn.Module) -> dict:
    """Device and dtype of the core, so a head built later matches it."""
    p = next(core.parameters(), None)
    return {} if p is None else {"device": p.device, "dtype": p.dtype}


class FramePredictor(nn.Module):
    r"""Sequence-to-sequence frame prediction around a convolutional core.

    The setup of Shi et al. (2015) and OpenSTL: the core reads the ``T_in``
    observed frames; the hidden state after the last one is mapped by a
    ``1x1`` convolution and a sigmoid to the first predicted frame, which is
    fed back to the core as the next input, and so on until ``n_out`` frames
    are predicted. The core thus runs ``T_in + n_out - 1`` steps, the last
    ``n_out - 1`` on its own predictions. Frames are expected in ``[0, 1]``.

    With ``patch_size=p`` the frames are folded into ``p*p`` times more
    channels by :func:`reshape_patch` before the core sees them, and the head
    predicts frames in that folded form; the result is unfolded at the end.
    The core then has to be built for ``out_channels * p * p`` input channels
    and frames of size ``(H/p, W/p)``.

    Args:
        core: a batch-first recurrent module following the contract
            ``outputs, state = core(x, state)`` with ``x`` of shape
            ``[B, T, out_channels*p*p, H/p, W/p]`` and ``outputs`` of shape
            ``[B, T, hidden, H/p, W/p]``; e.g. :class:`~qlstm.models.convlstm.ConvLSTM`.
        n_out: number of frames to predict. Default: 10.
        out_channels: channels ``C`` of a frame; input frames must have as
            many, since predictions are fed back as inputs. Default: 1.
        patch_size: side of the space-to-depth patches. Default: 1 (none).
        hidden_channels: width ``hidden`` of the core's outputs; read from
            ``core.hidden_channels`` when ``None``.

    Shape:
        * input ``x``: ``[B, T_in, C, H, W]`` with ``C = out_channels`` and
          ``H``, ``W`` divisible by ``patch_size``.
        * output: ``[B, n_out, C, H, W]``, values in ``(0, 1)``.

    Attributes:
        core: the wrapped module.
        head: ``Conv2d(hidden, out_channels * p * p, kernel_size=1)``, created
            with the device and dtype of the core's parameters.

    Raises:
        qlstm.errors.InputError: (a :class:`ValueError`) on frames of the wrong
            rank, channels or size, or NaN/Inf values.
    """

    def __init__(
        self,
        core: nn.Module,
        n_out: int = 10,
        out_channels: int = 1,
        *,
        patch_size: int = 1,
        hidden_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.core = _check_core(core, "FramePredictor")
        self.n_out = _check_positive_int("n_out", n_out)
        self.out_channels = _check_positive_int("out_channels", out_channels)
        self.patch_size = _check_positive_int("patch_size", patch_size)
        self.hidden_channels = _core_width(core, "hidden_channels", hidden_channels, "FramePredictor")
        p = self.patch_size
        self.head = nn.Conv2d(self.hidden_channels, out_channels * p * p, kernel_size=1, **_factory(core))

    def extra_repr(self) -> str:
        return f"n_out={self.n_out}, out_channels={self.out_channels}, patch_size={self.patch_size}"

    def _encode(self, x: Tensor) -> Tensor:
        """What the core reads for the (folded) frames ``x [B, T, C*p*p, H/p, W/p]``: the frames themselves."""
        return x

    def _frame(self, h: Tensor) -> Tensor:
        if h.dim() != 4 or h.shape[1] != self.hidden_channels:
            raise QlstmError(
                f"the core returned outputs with per-step shape {_fmt(h.shape)}, expected "
                f"[B, hidden_channels={self.hidden_channels}, h, w]"
            )
        return torch.sigmoid(self.head(h))

    def forward(self, x: Tensor) -> Tensor:
        """Predict ``n_out`` frames following ``x``; see the class docstring for shapes."""
        c, p = self.out_channels, self.patch_size
        expected = f"[B, T_in, C={c}, H, W] with H and W multiples of patch_size={p}"
        if not isinstance(x, Tensor) or x.dim() != 5:
            got = f"{x.dim()}-D with shape {_fmt(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"x must be 5-D {expected}, got {got}")
        if x.shape[2] != c:
            raise InputError(
                f"x has {x.shape[2]} channels in dimension 2 but out_channels={c} (predictions are fed back "
                f"as inputs, so they must agree); expected {expected}, got {_fmt(x.shape)}"
            )
        if x.shape[3] % p or x.shape[4] % p:
            raise InputError(
                f"x frames are {tuple(x.shape[3:])} in dimensions 3, 4, not divisible by patch_size={p}; "
                f"expected {expected}, got {_fmt(x.shape)}"
            )
        if 0 in x.shape:
            raise InputError(f"x must not have an empty dimension, got shape {_fmt(x.shape)}")
        _check_finite("x", x)
        x = reshape_patch(x, p) if p > 1 else x
        self._check_frame_size(x)
        outputs, state = self.core(self._encode(x))
        frame = self._frame(outputs[:, -1])
        preds = [frame]
        for _ in range(self.n_out - 1):
            outputs, state = self.core(self._encode(frame.unsqueeze(1)), state)
            frame = self._frame(outputs[:, -1])
            preds.append(frame)
        y = torch.stack(preds, dim=1)
        return reshape_patch_back(y, p) if p > 1 else y


    def _check_frame_size(self, x: Tensor) -> None:
        """Convolutional cores take any frame size (they check it themselves)."""


class FlatFramePredictor(FramePredictor):
    r"""Frame prediction around a *vector* core (LSTM, QLSTM): the FC-LSTM of Srivastava et al. 2015.

    Each (folded) frame is flattened and mapped by a linear encoder to the
    core's ``input_size`` features; the core's output at the last step (``h_t``
    for an LSTM, the output-processing VQC's ``y_t`` for a QLSTM) goes through a
    linear decoder and a sigmoid back to a frame, which is fed back as in
    :class:`FramePredictor`. This is how the LSTM and QLSTM baselines of the
    QConvLSTM paper (Table 1) see Moving-MNIST here: the paper gives no details
    of theirs. The encoder and decoder hold most of the parameters
    (``C * H * W * (input_size + hidden + 1)``), so such a model cannot be
    parameter-matched to a ConvLSTM; the counts are reported as they are.

    Args:
        core: a batch-first sequence module ``outputs, state = core(x, state)`` with
            ``x [B, T, input_size]`` and ``outputs [B, T, hidden]``, e.g.
            :class:`~qlstm.models.lstm.LSTM` or :class:`~qlstm.models.qlstm.QLSTM`.
        frame_size: ``(H, W)`` of the frames (before folding).
        n_out, out_channels, patch_size: as in :class:`FramePredictor`.
        input_size, hidden_size: the core's widths; read from ``core.input_size`` /
            ``core.hidden_size`` when ``None``.

    Shape:
        * input ``x``: ``[B, T_in, C, H, W]``; output ``[B, n_out, C, H, W]`` in ``(0, 1)``.

    Attributes:
        encoder: ``Linear(C * H * W, input_size)``; head: ``Linear(hidden, C * H * W)``.
    """

    def __init__(self, core: nn.Module, frame_size: tuple[int, int], n_out: int = 10, out_channels: int = 1, *,
                 patch_size: int = 1, input_size: int | None = None, hidden_size: int | None = None) -> None:
        nn.Module.__init__(self)
        self.core = _check_core(core, "FlatFramePredictor")
        self.n_out = _check_positive_int("n_out", n_out)
        self.out_channels = _check_positive_int("out_channels", out_channels)
        self.patch_size = p = _check_positive_int("patch_size", patch_size)
        if not (isinstance(frame_size, (tuple, list)) and len(frame_size) == 2):
            raise QlstmError(f"frame_size must be (H, W), got {frame_size!r}")
        self.frame_size = (_check_positive_int("frame height", frame_size[0]),
                           _check_positive_int("frame width", frame_size[1]))
        if self.frame_size[0] % p or self.frame_size[1] % p:
            raise QlstmError(f"frame_size {self.frame_size} is not divisible by patch_size={p}")
        self.input_size = _core_width(core, "input_size", input_size, "FlatFramePredictor")
        self.hidden_size = _core_width(core, "hidden_size", hidden_size, "FlatFramePredictor")
        self.hidden_channels = self.hidden_size
        pixels = out_channels * self.frame_size[0] * self.frame_size[1]
        self.encoder = nn.Linear(pixels, self.input_size, **_factory(core))
        self.head = nn.Linear(self.hidden_size, pixels, **_factory(core))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", frame_size={self.frame_size}"

    def _check_frame_size(self, x: Tensor) -> None:
        p = self.patch_size
        got = (x.shape[3] * p, x.shape[4] * p)
        if got != self.frame_size:
            raise InputError(f"x frames are {got} in dimensions 3, 4, expected frame_size={self.frame_size}")

    def _encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.flatten(2))

    def _frame(self, h: Tensor) -> Tensor:
        if h.dim() != 2 or h.shape[1] != self.hidden_size:
            raise QlstmError(f"the core returned outputs with per-step shape {_fmt(h.shape)}, expected "
                             f"[B, hidden_size={self.hidden_size}]")
        p = self.patch_size
        c, (hh, ww) = self.out_channels * p * p, self.frame_size
        return torch.sigmoid(self.head(h)).view(h.shape[0], c, hh // p, ww // p)


class SeriesForecaster(nn.Module):
    """Many-to-one forecasting: a window of a series to the next value(s).

    The core reads the window; its last-layer hidden state after the last step
    goes through a linear head.

    Args:
        core: a batch-first recurrent module following the contract
            ``outputs, state = core(x)`` with ``outputs`` of shape
            ``[B, window, hidden]``; e.g. :class:`~qlstm.models.lstm.LSTM`.
        out_features: size of the prediction. Default: 1.
        hidden_size: width ``hidden`` of the core's outputs; read from
            ``core.hidden_size`` when ``None``.

    Shape:
        * input ``x``: ``[B, window, F]`` with ``F`` the core's input size.
        * output: ``[B, out_features]``.

    Attributes:
        core: the wrapped module.
        head: ``Linear(hidden, out_features)``, created with the device and
            dtype of the core's parameters.

    Raises:
        qlstm.errors.InputError: (a :class:`ValueError`) on input of the wrong
            rank or NaN/Inf values; the core checks the feature size.
    """

    def __init__(self, core: nn.Module, out_features: int = 1, *, hidden_size: int | None = None) -> None:
        super().__init__()
        self.core = _check_core(core, "SeriesForecaster")
        self.out_features = _check_positive_int("out_features", out_features)
        self.hidden_size = _core_width(core, "hidden_size", hidden_size, "SeriesForecaster")
        self.head = nn.Linear(self.hidden_size, out_features, **_factory(core))

    def extra_repr(self) -> str:
        return f"out_features={self.out_features}"

    def forward(self, x: Tensor) -> Tensor:
        """Forecast from the window ``x``; see the class docstring for shapes."""
        if not isinstance(x, Tensor) or x.dim() != 3:
            got = f"{x.dim()}-D with shape {_fmt(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"x must be 3-D [B, window, F], got {got}")
        if 0 in x.shape:
            raise InputError(f"x must not have an empty dimension, got shape {_fmt(x.shape)}")
        _check_finite("x", x)
        outputs, _ = self.core(x)
        last = outputs[:, -1]
        if last.dim() != 2 or last.shape[1] != self.hidden_size:
            raise QlstmError(
                f"the core returned outputs of shape {_fmt(outputs.shape)}, expected "
                f"[B, window, hidden_size={self.hidden_size}]"
            )
        return self.head(last)
