"""Autograd helpers shared by the hand-written backward passes.

The fast paths (:mod:`.adjoint`, :mod:`.heisenberg`, :mod:`.layered`, the fused QLSTM
recurrences) compute their backward from states the forward kept on ``ctx``, outside autograd.
Their own derivative is therefore not available. ``torch.autograd.function.once_differentiable``
alone does not say so when the incoming gradient needs no grad (``grad(e.sum(), x,
create_graph=True)``): the second derivative then silently misses terms. :func:`first_order_only`
makes any attempt to differentiate such a backward raise instead.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["first_order_only"]

# a leaf that requires grad, so that the wrapped gradients join a graph whose backward raises
_ANCHOR = torch.zeros((), requires_grad=True)


class _Refuse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, anchor, grad, name):
        ctx.name = name
        return grad.clone()

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError(f"qlstm: {ctx.name} has a hand-written backward and no second derivative; "
                           "for higher derivatives turn the fast paths off (QLSTM.fused = False, "
                           "BoundProgram.fused = False, BoundProgram.heisenberg = False) and use plain autograd")


def first_order_only(backward):
    """Decorator for ``Function.backward``: run it without recording, and with ``create_graph=True``
    return gradients whose differentiation raises a clear error."""

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        if not torch.is_grad_enabled():  # a plain backward (no create_graph): nothing records anyway
            return backward(ctx, *grads)
        with torch.no_grad():
            outs = backward(ctx, *grads)
        single = not isinstance(outs, tuple)
        name = type(ctx).__name__.removesuffix("Backward")
        wrapped = tuple(_Refuse.apply(_ANCHOR, o, name) if isinstance(o, torch.Tensor) else o
                        for o in ((outs,) if single else outs))
        return wrapped[0] if single else wrapped

    return wrapper
