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

import difflib
import inspect
from typing import Callable

from torch import nn

from ..errors import QlstmError
from .convlstm import ConvLSTM
from .lstm import LSTM
from .mcm_qlstm import MCMQLSTM
from .qconvlstm import QConvLSTM
from .qlstm import QLSTM

__all__ = ["MODELS", "register", "build", "model_names", "model_arguments",
           "LSTM", "ConvLSTM", "QLSTM", "QConvLSTM", "MCMQLSTM"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lstm": LSTM,
    "convlstm": ConvLSTM,
    "qlstm": QLSTM,
    "qconvlstm": QConvLSTM,
    "mcm-qlstm": MCMQLSTM,
}
"""Registry name -> constructor (the model classes themselves, so their signatures are explicit)."""


def register(name: str):
    """Decorator: register a constructor (a class or a function) under ``name``."""

    def deco(fn):
        MODELS[name] = fn
        return fn

    return deco


def model_names() -> list[str]:
    return sorted(MODELS)


def model_arguments(name: str) -> tuple[list[str], bool]:
    """The keyword arguments the constructor of ``name`` accepts, and whether it also takes ``**kwargs``."""
    fn = _constructor(name)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return [], True
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def _constructor(name: str):
    fn = MODELS.get(name)
    if fn is None:
        close = difflib.get_close_matches(str(name), model_names(), n=1, cutoff=0.6)
        raise QlstmError(f"unknown model {name!r}; valid models: {', '.join(model_names())}"
                         + (f"; did you mean {close[0]!r}?" if close else ""))
    return fn


def build(name: str, **kwargs) -> nn.Module:
    """Construct the model registered as ``name`` with explicit keyword arguments.

    Raises :class:`~qlstm.errors.QlstmError` listing the valid names for an unknown
    model, and naming (with the nearest valid one) an argument its constructor lacks.

    Example:
        >>> model = build("qlstm", input_size=1, hidden_size=3, n_layers=2)
        >>> model.n_qubits
        4
    """
    fn = _constructor(name)
    accepted, var_kw = model_arguments(name)
    if not var_kw:
        for key in kwargs:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
                raise QlstmError(f"model {name!r} has no argument {key!r}"
                                 + (f"; did you mean {close[0]!r}?" if close else "")
                                 + f"; valid: {', '.join(accepted)}")
    return fn(**kwargs)
