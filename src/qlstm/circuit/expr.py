"""Parameter expressions: what a gate angle is made of.

An angle is a small expression tree over three kinds of leaves:

* :class:`Weight` ``w[i]`` -- entry ``i`` of the trainable weight vector,
* :class:`Input` ``x[i]`` -- column ``i`` of the data batch ``[B, n_inputs]``,
* :class:`Const` -- a number.

combined with ``+ - * / **`` and the functions in :data:`FUNCTIONS`
(``atan``, ``sin``, ``cos``, ``exp``, ``ln``, ``sqrt``, ...). Chen's encoding
angle ``arctan(x_i^2)`` is ``atan(x[i] ** 2)``. Expressions are immutable,
hashable values; :meth:`Expr.evaluate` turns them into tensors and
:meth:`Expr.to_str` into the text used by the drawer and the OpenQASM
exporter (``atan(x_0 ** 2)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import CircuitError

__all__ = [
    "Expr",
    "Const",
    "Weight",
    "Input",
    "Func",
    "BinOp",
    "as_expr",
    "FUNCTIONS",
    "atan",
    "sin",
    "cos",
    "exp",
    "ln",
    "sqrt",
]

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "atan": torch.atan,
    "arctan": torch.atan,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "asin": torch.asin,
    "acos": torch.acos,
    "exp": torch.exp,
    "ln": torch.log,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "tanh": torch.tanh,
    "neg": torch.neg,
}

_BINOPS: dict[str, Callable] = {
    "+": torch.add,
    "-": torch.sub,
    "*": torch.mul,
    "/": torch.div,
    "**": torch.pow,
}


class Expr:
    """Base class of parameter expressions. Build them with operators and :data:`FUNCTIONS`."""

    __slots__ = ()

    # -- structure ---------------------------------------------------------
    def leaves(self) -> tuple["Expr", ...]:
        raise NotImplementedError

    @property
    def uses_input(self) -> bool:
        """True if the value depends on the data batch."""
        return any(isinstance(leaf, Input) for leaf in self.leaves())

    @property
    def uses_weight(self) -> bool:
        """True if the value depends on trainable weights."""
        return any(isinstance(leaf, Weight) for leaf in self.leaves())

    @property
    def is_constant(self) -> bool:
        return not (self.uses_input or self.uses_weight)

    # -- evaluation ----------------------------------------------------------
    def evaluate(self, inputs: torch.Tensor | None, weights: torch.Tensor | None) -> torch.Tensor:
        """Value of the expression.

        Args:
            inputs: ``[B, n_inputs]`` data batch (real), or None if unused.
            weights: ``[n_weights]`` real weight vector, or ``[*G, n_weights]``
                for a group of weight sets (several circuits of one structure
                evaluated at once), or None if unused.

        Returns:
            ``[B]`` if the expression uses inputs, ``[*G]`` if it uses grouped
            weights (broadcast together), else a scalar tensor.
        """
        raise NotImplementedError

    def to_str(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_str()

    def __repr__(self) -> str:
        return f"Expr({self.to_str()})"

    # -- operators -------------------------------------------------------------
    def __add__(self, other):
        return BinOp("+", self, as_expr(other))

    def __radd__(self, other):
        return BinOp("+", as_expr(other), self)

    def __sub__(self, other):
        return BinOp("-", self, as_expr(other))

    def __rsub__(self, other):
        return BinOp("-", as_expr(other), self)

    def __mul__(self, other):
        return BinOp("*", self, as_expr(other))

    def __rmul__(self, other):
        return BinOp("*", as_expr(other), self)

    def __truediv__(self, other):
        return BinOp("/", self, as_expr(other))

    def __rtruediv__(self, other):
        return BinOp("/", as_expr(other), self)

    def __pow__(self, other):
        return BinOp("**", self, as_expr(other))

    def __neg__(self):
        return Func("neg", self)

    def atan(self) -> "Expr":
        return Func("atan", self)


@dataclass(frozen=True, slots=True)
class Const(Expr):
    """A fixed number."""

    value: float

    def leaves(self):
        return (self,)

    def evaluate(self, inputs, weights):
        ref = weights if weights is not None else inputs
        dtype = ref.dtype if ref is not None else torch.float64
        device = ref.device if ref is not None else None
        return torch.tensor(float(self.value), dtype=dtype, device=device)

    def to_str(self):
        v = float(self.value)
        for name, ref in (("pi", math.pi), ("pi/2", math.pi / 2), ("pi/4", math.pi / 4)):
            if abs(v - ref) < 1e-15:
                return name
        return repr(v) if v != int(v) else str(int(v)) if abs(v) < 1e15 else repr(v)


@dataclass(frozen=True, slots=True)
class Weight(Expr):
    """Entry ``index`` of the trainable weight vector."""

    index: int

    def leaves(self):
        return (self,)

    def evaluate(self, inputs, weights):
        if weights is None:
            raise ValueError(f"expression uses weight w[{self.index}] but no weights were given")
        return weights[..., self.index]

    def to_str(self):
        return f"w_{self.index}"


@dataclass(frozen=True, slots=True)
class Input(Expr):
    """Column ``index`` of the data batch ``[B, n_inputs]``."""

    index: int

    def leaves(self):
        return (self,)

    def evaluate(self, inputs, weights):
        if inputs is None:
            raise ValueError(f"expression uses input x[{self.index}] but no inputs were given")
        return inputs[:, self.index]

    def to_str(self):
        return f"x_{self.index}"


@dataclass(frozen=True, slots=True)
class Func(Expr):
    """``name(arg)`` for a function in :data:`FUNCTIONS`."""

    name: str
    arg: Expr

    def __post_init__(self):
        if self.name not in FUNCTIONS:
            raise ValueError(f"unknown function {self.name!r} in parameter expression; valid: {', '.join(FUNCTIONS)}")

    def leaves(self):
        return self.arg.leaves()

    def evaluate(self, inputs, weights):
        return FUNCTIONS[self.name](self.arg.evaluate(inputs, weights))

    def to_str(self):
        if self.name == "neg":
            return f"-({self.arg.to_str()})"
        return f"{self.name}({self.arg.to_str()})"


@dataclass(frozen=True, slots=True)
class BinOp(Expr):
    """``left op right`` for ``op`` in ``+ - * / **``."""

    op: str
    left: Expr
    right: Expr

    def leaves(self):
        return self.left.leaves() + self.right.leaves()

    def evaluate(self, inputs, weights):
        return _BINOPS[self.op](self.left.evaluate(inputs, weights), self.right.evaluate(inputs, weights))

    def to_str(self):
        def wrap(e: Expr) -> str:
            s = e.to_str()
            # constants print as "pi/2" or "-3"; a negation prints as "-(...)": bracket them too
            needs = isinstance(e, BinOp) or (isinstance(e, Const) and ("/" in s or s.startswith("-"))) or (
                isinstance(e, Func) and e.name == "neg")
            return f"({s})" if needs else s

        return f"{wrap(self.left)} {self.op} {wrap(self.right)}"


def as_expr(value) -> Expr:
    """Turn a number or an :class:`Expr` into an :class:`Expr`."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise CircuitError(f"a gate parameter must be a number or an Expr, got {value!r}") from None
    if not math.isfinite(value):
        raise CircuitError(f"a gate parameter must be finite, got {value!r}")
    return Const(float(value))


def _fn(name: str):
    def f(e) -> Expr:
        return Func(name, as_expr(e))

    f.__name__ = name
    f.__doc__ = f"``{name}(e)`` as an expression."
    return f


atan = _fn("atan")
sin = _fn("sin")
cos = _fn("cos")
exp = _fn("exp")
ln = _fn("ln")
sqrt = _fn("sqrt")
