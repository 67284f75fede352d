"""Plain-text circuit drawing and layering (moments)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ops import AmplitudeEncoding, Channel, Gate, Measure, Reset

if TYPE_CHECKING:
    from .circuit import Circuit

__all__ = ["layers", "draw", "op_wires"]


def op_wires(op) -> tuple[int, ...]:
    """Wires an operation acts on."""
    return tuple(op.wires)


def layers(circuit: "Circuit") -> list[list[int]]:
    """Greedy ASAP layering: a list of layers, each a list of op indices on disjoint wires.

    Classically conditioned operations are placed after the measurement that
    wrote the bits they read (the classical dependency counts as a wire).
    """
    free_at = [0] * circuit.n_qubits
    clbit_ready = [0] * max(circuit.n_clbits, 1)
    out: list[list[int]] = []
    for i, op in enumerate(circuit.ops):
        ws = op_wires(op)
        start = max(free_at[w] for w in ws)
        cond = getattr(op, "condition", None)
        if cond is not None:
            start = max([start] + [clbit_ready[b] for b in cond.clbits])
        while len(out) <= start:
            out.append([])
        out[start].append(i)
        for w in ws:
            free_at[w] = start + 1
        if isinstance(op, Measure):
            clbit_ready[op.clbit] = start + 1
    return out


def _label(op) -> str:
    if isinstance(op, (Gate, AmplitudeEncoding, Measure, Reset, Channel)):
        return op.label()
    return type(op).__name__


def _draw_layers(circuit: "Circuit") -> list[list[int]]:
    """Layering for drawing: a multi-wire operation occupies every wire between its ends."""
    free_at = [0] * circuit.n_qubits
    clbit_ready = [0] * max(circuit.n_clbits, 1)
    out: list[list[int]] = []
    for i, op in enumerate(circuit.ops):
        ws = op_wires(op)
        span = range(min(ws), max(ws) + 1)
        start = max(free_at[w] for w in span)
        cond = getattr(op, "condition", None)
        if cond is not None:
            start = max([start] + [clbit_ready[b] for b in cond.clbits])
        while len(out) <= start:
            out.append([])
        out[start].append(i)
        for w in span:
            free_at[w] = start + 1
        if isinstance(op, Measure):
            clbit_ready[op.clbit] = start + 1
    return out


def draw(circuit: "Circuit") -> str:
    """One text line per wire; controls are ``●``, CNOT targets ``X``, wires crossed by a gate ``│``."""
    n = circuit.n_qubits
    rows = [[] for _ in range(n)]
    for layer in _draw_layers(circuit):
        cells = ["" for _ in range(n)]
        for i in layer:
            op = circuit.ops[i]
            ws = op_wires(op)
            if isinstance(op, Gate) and op.name in ("cnot", "toffoli", "cy", "cz") and op.condition is None:
                for w in ws[:-1]:
                    cells[w] = "●"
                cells[ws[-1]] = {"cnot": "X", "toffoli": "X", "cy": "Y", "cz": "●"}[op.name]
            elif isinstance(op, Gate) and op.name in ("crx", "cry", "crz", "crot") and op.condition is None:
                cells[ws[0]] = "●"
                cells[ws[1]] = op.label()[1:]
            elif len(ws) > 1:
                lab = _label(op)
                for j, w in enumerate(ws):
                    cells[w] = f"{lab}[{j}]"
            else:
                cells[ws[0]] = _label(op)
            for w in range(min(ws) + 1, max(ws)):
                if not cells[w]:
                    cells[w] = "│"
        width = max(len(c) for c in cells)
        for w in range(n):
            rows[w].append(cells[w].center(width, "─") if cells[w] else "─" * width)
    obs = {}
    for o in circuit.observables:
        for p, w in zip(o.paulis, o.wires):
            obs.setdefault(w, []).append(o.label() if len(o.wires) > 1 else f"<{p}>")
    pad = len(str(n - 1))
    lines = []
    for w in range(n):
        body = "─".join(rows[w])
        tail = (" " + " ".join(obs[w])) if w in obs else ""
        lines.append(f"q{str(w).ljust(pad)}: ─{body}─{tail}")
    return "\n".join(lines)
