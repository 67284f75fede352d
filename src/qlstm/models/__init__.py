"""Classical and quantum sequence models, and a registry of them by name.

Every recurrent core follows the contract of :class:`torch.nn.LSTM`:
``outputs, (h, c) = model(x, state=None)``, batch first. Wrappers turn a core
into a task model: :class:`~qlstm.models.wrappers.SeriesForecaster` (window ->
next value) and :class:`~qlstm.models.wrappers.FramePredictor` (10 frames in,
10 out).

:func:`build` makes a model from a registry name and explicit keyword
arguments; :data:`MODELS` lists the names.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import QlstmError

__all__ = ["MODELS", "register", "build", "model_names"]

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    """Decorator: register a constructor under ``name``."""

    def deco(fn):
        MODELS[name] = fn
        return fn

    return deco


def model_names() -> list[str]:
    return sorted(MODELS)


def build(name: str, **kwargs) -> nn.Module:
    """Construct the model registered as ``name`` with explicit keyword arguments.

    Raises :class:`~qlstm.errors.QlstmError` listing the valid names for an unknown one.
    """
    fn = MODELS.get(name)
    if fn is None:
        raise QlstmError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")
    return fn(**kwargs)


@register("lstm")
def _lstm(**kw):
    from .lstm import LSTM

    return LSTM(**kw)


@register("convlstm")
def _convlstm(**kw):
    from .convlstm import ConvLSTM

    return ConvLSTM(**kw)


@register("qlstm")
def _qlstm(**kw):
    from .qlstm import QLSTM

    return QLSTM(**kw)


@register("mcm-qlstm")
def _mcm_qlstm(**kw):
    from .mcm_qlstm import MCMQLSTM

    return MCMQLSTM(**kw)


@register("qconvlstm")
def _qconvlstm(**kw):
    from .qconvlstm import QConvLSTM

    return QConvLSTM(**kw)
