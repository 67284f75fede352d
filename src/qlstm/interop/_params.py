"""Parameter naming: which external parameter becomes which qlstm weight or input.

The one convention, shared by :func:`~qlstm.interop.from_qiskit` and
:func:`~qlstm.interop.loads`:

* **Inputs.** When ``input_params`` is given, exactly those names are inputs,
  ``input_params[i]`` becoming ``x_i``. Otherwise every name of the form
  ``x_i``, ``_x_i_`` (how Qiskit's OpenQASM 3 exporter writes the element
  ``x[i]`` of a ``ParameterVector("x")``) or ``x[i]`` is the input ``x_i``.
* **Weights.** Every other parameter is a weight. When ``weight_params`` is
  given, ``weight_params[i]`` becomes ``w_i``. Otherwise names of the form
  ``w_i``, ``_w_i_`` or ``w[i]`` become ``w_i`` (so a qlstm circuit keeps its
  weight numbering through a round trip), and the remaining names follow in
  *natural* sorted order (digit runs compared as numbers: ``θ[2]`` before
  ``θ[10]``), starting after the largest ``w_i`` index. For Qiskit library
  templates (``θ[0] .. θ[n-1]``) this is the order of ``qc.parameters``.

Two names that would land on the same index (``w_0`` and ``w[0]``) are an error.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from ..errors import CircuitError

__all__ = ["classify", "natural_key", "INPUT_RE", "WEIGHT_RE"]

INPUT_RE = re.compile(r"^(?:x_(\d+)|_x_(\d+)_|x\[(\d+)\])$")
WEIGHT_RE = re.compile(r"^(?:w_(\d+)|_w_(\d+)_|w\[(\d+)\])$")


def natural_key(name: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def _index(regex: re.Pattern, name: str) -> int | None:
    m = regex.match(name)
    if not m:
        return None
    return int(next(g for g in m.groups() if g is not None))


def classify(names: Iterable[str], input_params: Sequence[str] | None = None,
             weight_params: Sequence[str] | None = None) -> dict[str, tuple[str, int]]:
    """``{name: ("weight" | "input", index)}`` for the given parameter names (see the module docstring)."""
    names = list(dict.fromkeys(names))
    out: dict[str, tuple[str, int]] = {}
    if input_params is not None:
        if isinstance(input_params, str):
            input_params = [input_params]
        for i, n in enumerate(input_params):
            out[n] = ("input", i)
    else:
        for n in names:
            i = _index(INPUT_RE, n)
            if i is not None:
                out[n] = ("input", i)
    rest = [n for n in names if n not in out]
    if weight_params is not None:
        if isinstance(weight_params, str):
            weight_params = [weight_params]
        for i, n in enumerate(weight_params):
            if n in out:
                raise CircuitError(f"parameter {n!r} is listed both as an input and as a weight")
            out[n] = ("weight", i)
        missing = [n for n in rest if n not in out]
        if missing:
            raise CircuitError(f"parameters {missing} are neither in input_params nor in weight_params")
    else:
        free = []
        for n in rest:
            i = _index(WEIGHT_RE, n)
            if i is not None:
                out[n] = ("weight", i)
            else:
                free.append(n)
        start = 1 + max((i for kind, i in out.values() if kind == "weight"), default=-1)
        for k, n in enumerate(sorted(free, key=natural_key)):
            out[n] = ("weight", start + k)
    seen: dict[tuple[str, int], str] = {}
    for n, slot in out.items():
        if slot in seen:
            raise CircuitError(
                f"parameters {seen[slot]!r} and {n!r} both map to {slot[0]} {slot[1]}; "
                "pass input_params / weight_params to order them explicitly")
        seen[slot] = n
    return out
