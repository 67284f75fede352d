r"""Check a user's VQC against a reference QLSTM block: ``verify(circuit, against="forget")``.

Input
-----
The user's circuit may be a qlstm :class:`~qlstm.circuit.Circuit`, a Qiskit
``QuantumCircuit``, an OpenQASM 3 file (``.qasm``, ``.qasm3``) or a Python file
that builds a Qiskit ``QuantumCircuit`` (or a qlstm circuit): the file is run
in a fresh namespace (``runpy``, ``__name__ != "__main__"``) and must define
``circuit`` or a function ``build()`` / ``build_circuit()`` returning it.
:func:`load_circuit` does this; anything unreadable raises
:class:`VerifyInputError` (the CLI's exit code 2).

Parameter naming convention
---------------------------
The user's parameters are matched to the reference's by name (see
:mod:`qlstm.interop`): ``x_i`` / ``x[i]`` (a Qiskit ``ParameterVector("x")``) /
``_x_i_`` (Qiskit's OpenQASM export) is data input ``i``; ``w_i`` / ``w[i]`` /
``_w_i_`` is weight ``i``; other names are weights numbered after those, in
natural sorted order. The reference's weights are ordered **layer, wire,
(alpha, beta, gamma)**: ``Rot(alpha, beta, gamma)`` on wire ``q`` of layer
``l`` uses ``w[3*(l*n + q)]``, ``w[3*(l*n + q) + 1]``, ``w[3*(l*n + q) + 2]``,
and ``Rot(a, b, c)`` is ``RZ(a)``, then ``RY(b)``, then ``RZ(c)`` in time
(Qiskit: ``qc.rz(a, q); qc.ry(b, q); qc.rz(c, q)``). A ``mapping``
``{user_name: "x_3" | "w_5"}`` overrides the convention for the names it lists.

Outputs: the user's observables if the circuit has any, else ``<Z>`` on the
wires it measures at the end, else the reference's outputs. When the user
reads ``<Z>`` on wires ``0..k-1`` the reference is built with ``n_outputs=k``.

Checks
------
1. Resources of both circuits (:func:`qlstm.resources.count_resources`).
2. Unitary up to terminal measurements (no mid-circuit measurement, reset,
   condition or noise channel)?
3. **Equality**: for ``samples`` random inputs and random weights (the same
   weight vector for both, under the naming convention), the final states must
   agree up to a global phase (fidelity ``>= 1 - 1e-8``; for a non-unitary user
   circuit the fidelity of its density matrix with the reference state) and the
   ``<Z>`` outputs to ``1e-6``.
4. When they are not equal, a **structural diagnosis**: both circuits are
   normalised (``Rot`` -> ``RZ RY RZ``, terminal measurements and identities
   dropped), gate counts and two-qubit gate patterns are compared (a missing
   CNOT ring is named as such), gates are matched by (name, wires, occurrence)
   and their parameter expressions compared numerically and shown as text
   ("RZ on wire 2 reads x_2 where the reference reads atan(x_2 ** 2)"); when the
   structures agree and only the parameter names differ, a ``mapping`` that
   makes the circuits equal is suggested.
5. When they are not equal, a **fit** (``fit=True``): draw reference weights
   uniformly in [-pi, pi), compute the reference outputs on random inputs, and
   train the user's weights with Adam to reproduce them; the residual RMSE on
   fresh inputs is compared with ``fit_threshold`` (0.05 on outputs in
   [-1, 1]). Success means the user's circuit *can learn the reference block's
   function* -- a valid substitute ansatz, not the reference block.
6. **Gradient check**: autograd vs central finite differences of the user's
   outputs with respect to its weights.
7. **Barren-plateau diagnostic**: the variance over random weights (uniform in
   [0, 2 pi)) of :math:`\partial\langle Z_0\rangle/\partial w_j`, averaged over
   the weights ``j`` that affect some output, for the user's circuit and the
   reference (same draws); a user variance below a tenth of the reference's is
   flagged. Weights no output depends on are reported (when the reference uses
   the weight of that index).

Verdict: **PASS** when the circuits are equal (with ``accept="trainable"``
also when the fit succeeds) and the gradient check holds; otherwise **FAIL**
with the reasons.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import runpy
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from typing import Any, Mapping

import torch

from .circuit.circuit import Circuit, Observable
from .circuit.draw import layers as _layers
from .circuit.execute import analyse, run
from .circuit.expr import BinOp, Const, Expr, Func, Input, Weight
from .circuit.ops import AmplitudeEncoding, Channel, Gate, Measure, Reset
from .errors import QlstmError
from .resources import count_resources

__all__ = ["verify", "VerifyReport", "VerifyInputError", "load_circuit", "LoadedCircuit", "apply_mapping",
           "parse_slot"]

FIDELITY_TOL = 1e-8
OUTPUT_TOL = 1e-6


class VerifyInputError(QlstmError):
    """The circuit to verify could not be read (missing file, bad syntax, no circuit defined, ...)."""


# ---------------------------------------------------------------------------
# loading


@dataclass
class LoadedCircuit:
    """A user's circuit read by :func:`load_circuit`.

    Attributes:
        circuit: the qlstm circuit.
        names: ``{parameter name: ("weight" | "input", index)}`` as read.
        kind: ``"qlstm"``, ``"qiskit"``, ``"qasm3"`` or ``"python"``.
        label: where it came from (a path or a type name).
    """

    circuit: Circuit
    names: dict[str, tuple[str, int]]
    kind: str
    label: str


def _qlstm_names(c: Circuit) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for op in c.ops:
        leaves = [leaf for p in getattr(op, "params", ()) for leaf in p.leaves()]
        if isinstance(op, AmplitudeEncoding):
            leaves += [Input(i) for i in op.inputs]
        for leaf in leaves:
            if isinstance(leaf, Weight):
                out[f"w_{leaf.index}"] = ("weight", leaf.index)
            elif isinstance(leaf, Input):
                out[f"x_{leaf.index}"] = ("input", leaf.index)
    return dict(sorted(out.items(), key=lambda kv: (kv[1][0], kv[1][1])))


def _is_qiskit_circuit(obj) -> bool:
    return type(obj).__module__.startswith("qiskit") and hasattr(obj, "num_qubits") and hasattr(obj, "data")


def _from_object(obj, label: str, kind: str) -> LoadedCircuit:
    if isinstance(obj, Circuit):
        return LoadedCircuit(obj, _qlstm_names(obj), "qlstm" if kind == "object" else kind, label)
    if _is_qiskit_circuit(obj):
        from .interop import from_qiskit

        try:
            circ, names = from_qiskit(obj, return_mapping=True)
        except QlstmError as err:
            raise VerifyInputError(f"{label}: {err}") from None
        return LoadedCircuit(circ, dict(names), "qiskit" if kind == "object" else kind, label)
    raise VerifyInputError(f"{label}: expected a Qiskit QuantumCircuit or a qlstm Circuit, got {type(obj).__name__}")


def _run_python_file(path: str):
    try:
        # the file's own prints must not end up in --json output
        with contextlib.redirect_stdout(sys.stderr):
            ns = runpy.run_path(path, run_name="__qlstm_verify__")
    except SystemExit as err:
        raise VerifyInputError(f"{path}: the file called sys.exit({err.code})") from None
    except SyntaxError as err:
        raise VerifyInputError(f"{path}: line {err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:  # noqa: BLE001 - whatever the user's file raises
        raise VerifyInputError(f"{path}: running the file raised {type(err).__name__}: {err}") from None
    obj = ns.get("circuit")
    if callable(obj) and not isinstance(obj, Circuit) and not _is_qiskit_circuit(obj):
        obj = _call_builder(path, "circuit", obj)
    if obj is None:
        for fn_name in ("build", "build_circuit"):
            fn = ns.get(fn_name)
            if callable(fn):
                obj = _call_builder(path, fn_name, fn)
                break
    if obj is None:
        raise VerifyInputError(
            f"{path}: defines no circuit; define `circuit = <QuantumCircuit>` or a function build() / "
            "build_circuit() that returns one")
    return obj


def _call_builder(path: str, fn_name: str, fn):
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return fn()
    except TypeError as err:
        raise VerifyInputError(f"{path}: {fn_name}() must take no arguments ({err})") from None
    except Exception as err:  # noqa: BLE001
        raise VerifyInputError(f"{path}: {fn_name}() raised {type(err).__name__}: {err}") from None


def load_circuit(source) -> LoadedCircuit:
    """Read a user's circuit: a qlstm ``Circuit``, a Qiskit ``QuantumCircuit``, or a path to a
    ``.qasm`` / ``.qasm3`` / ``.py`` file (see the module docstring).

    Raises:
        VerifyInputError: missing or unreadable file, malformed or unsupported OpenQASM,
            unsupported Qiskit instruction, a Python file that defines no circuit.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise VerifyInputError(f"no such file: {path}")
        if os.path.isdir(path):
            raise VerifyInputError(f"{path} is a directory, not a circuit file")
        ext = os.path.splitext(path)[1].lower()
        if ext == ".py":
            return _from_object(_run_python_file(path), path, "python")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as err:
            raise VerifyInputError(f"{path}: cannot read the file: {err}") from None
        if ext in (".qasm", ".qasm3", ".qasm2") or text.lstrip().upper().startswith("OPENQASM"):
            from .interop import loads

            try:
                circ, names = loads(text, return_mapping=True, name=os.path.splitext(os.path.basename(path))[0])
            except QlstmError as err:
                raise VerifyInputError(f"{path}: {err}") from None
            return LoadedCircuit(circ, dict(names), "qasm3", path)
        raise VerifyInputError(f"{path}: not a circuit file (expected .qasm, .qasm3 or .py)")
    return _from_object(source, type(source).__name__, "object")


# ---------------------------------------------------------------------------
# parameter mapping

_SLOT = re.compile(r"^\s*([xw])\s*(?:_\s*(\d+)|\[\s*(\d+)\s*\])\s*$")


def parse_slot(value: str) -> tuple[str, int]:
    """``"x_3"`` / ``"x[3]"`` -> ``("input", 3)``; ``"w_5"`` / ``"w[5]"`` -> ``("weight", 5)``."""
    m = _SLOT.match(str(value))
    if not m:
        raise VerifyInputError(f"mapping target {value!r} must look like x_3, x[3], w_5 or w[5]")
    idx = int(m.group(2) if m.group(2) is not None else m.group(3))
    return ("input" if m.group(1) == "x" else "weight", idx)


def _slot_name(slot: tuple[str, int]) -> str:
    return f"{'x' if slot[0] == 'input' else 'w'}_{slot[1]}"


def _subst(e: Expr, table: Mapping[tuple[str, int], Expr]) -> Expr:
    if isinstance(e, Weight):
        return table.get(("weight", e.index), e)
    if isinstance(e, Input):
        return table.get(("input", e.index), e)
    if isinstance(e, Func):
        return Func(e.name, _subst(e.arg, table))
    if isinstance(e, BinOp):
        return BinOp(e.op, _subst(e.left, table), _subst(e.right, table))
    return e


def _rebuild(c: Circuit, table: Mapping[tuple[str, int], Expr]) -> Circuit:
    """``c`` with its parameter leaves substituted at once (a permutation is fine)."""
    out = Circuit(c.n_qubits, name=c.name)
    out.n_clbits = c.n_clbits
    for op in c.ops:
        if isinstance(op, Gate) and op.params:
            op = replace(op, params=tuple(_subst(p, table) for p in op.params))
        elif isinstance(op, AmplitudeEncoding):
            op = replace(op, inputs=tuple(
                t.index if isinstance(t := table.get(("input", i), Input(i)), Input) else i for i in op.inputs))
        out.append(op)
    out.observables = list(c.observables)
    return out


def apply_mapping(loaded: LoadedCircuit, mapping: Mapping[str, str] | None) -> tuple[Circuit, dict[str, str]]:
    """Apply a user mapping ``{name: "x_i" | "w_i"}`` on top of the naming convention.

    Returns the remapped circuit and the final ``{name: "x_i" | "w_i"}`` for every parameter.
    """
    names = dict(loaded.names)
    final = {n: slot for n, slot in names.items()}
    for name, target in (mapping or {}).items():
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise VerifyInputError(f"--map {name}=...: the circuit has no parameter named {name!r} (it has: {known})")
        final[name] = parse_slot(target)
    seen: dict[tuple[str, int], str] = {}
    for n, slot in final.items():
        if slot in seen:
            raise VerifyInputError(f"parameters {seen[slot]!r} and {n!r} both map to {_slot_name(slot)}; "
                                   "give each its own --map")
        seen[slot] = n
    table = {names[n]: (Input(s[1]) if s[0] == "input" else Weight(s[1])) for n, s in final.items() if names[n] != s}
    circ = _rebuild(loaded.circuit, table) if table else loaded.circuit
    return circ, {n: _slot_name(s) for n, s in final.items()}


# ---------------------------------------------------------------------------
# outputs and normalisation


def _declared_outputs(c: Circuit) -> list[Observable] | None:
    """The user's outputs: observables, else Z on terminally measured wires, else None."""
    if c.observables:
        return list(c.observables)
    terminal = analyse(c).terminal
    wires = []
    for i, op in enumerate(c.ops):
        if isinstance(op, Measure) and i in terminal and op.wire not in wires:
            wires.append(op.wire)
    if wires:
        return [Observable("Z", (w,)) for w in sorted(wires)]
    return None


def _readout(c: Circuit, observables: list[Observable]) -> Circuit:
    """``c`` without its terminal measurements, reading ``observables``."""
    terminal = analyse(c).terminal
    kept = [op for i, op in enumerate(c.ops) if i not in terminal]
    out = Circuit(c.n_qubits, name=c.name)
    # keep only the classical bits still written (the fast pure-circuit path needs n_clbits to match)
    out.n_clbits = 1 + max((op.clbit for op in kept if isinstance(op, Measure)), default=-1)
    for op in kept:
        out.append(op)
    out.n_weights = max(out.n_weights, c.n_weights)
    out.n_inputs = max(out.n_inputs, c.n_inputs)
    out.observables = list(observables)
    return out


@dataclass(frozen=True)
class _Tok:
    name: str
    wires: tuple[int, ...]
    params: tuple[Expr, ...]
    conditional: bool

    @property
    def key(self):
        return (self.name, self.wires, self.conditional)

    def show(self) -> str:
        return f"{self.name.upper()}({', '.join(map(str, self.wires))})"


def _normalise(c: Circuit) -> list[_Tok]:
    """Gates in a canonical order; ``rot`` expanded to ``rz ry rz``; identities and terminal measurements dropped."""
    terminal = analyse(c).terminal
    tmp = Circuit(c.n_qubits)
    tmp.n_clbits = c.n_clbits
    for i, op in enumerate(c.ops):
        if isinstance(op, Gate):
            if op.name in ("i", "id", "identity"):
                continue
            if op.name == "rot" and op.condition is None:
                phi, theta, omega = op.params
                for nm, p in (("rz", phi), ("ry", theta), ("rz", omega)):
                    tmp.append(Gate(nm, op.wires, (p,)))
                continue
            tmp.append(op)
        elif isinstance(op, Measure) and i in terminal:
            continue
        else:
            tmp.append(op)
    lay = _layers(tmp)
    order = sorted(((li, min(tmp.ops[i].wires), i) for li, layer in enumerate(lay) for i in layer))
    toks = []
    for _, _, i in order:
        op = tmp.ops[i]
        if isinstance(op, Gate):
            name = op.name if op.name != "unitary" else "unitary"
            toks.append(_Tok(name, tuple(op.wires), tuple(op.params), op.condition is not None))
        elif isinstance(op, Measure):
            toks.append(_Tok("measure", (op.wire,), (), False))
        elif isinstance(op, Reset):
            toks.append(_Tok("reset", (op.wire,), (), op.condition is not None))
        elif isinstance(op, Channel):
            toks.append(_Tok(f"channel:{op.name}", tuple(op.wires), (), op.condition is not None))
        elif isinstance(op, AmplitudeEncoding):
            toks.append(_Tok("amplitude", tuple(op.wires), tuple(Input(i) for i in op.inputs), False))
    return toks


# ---------------------------------------------------------------------------
# structural diagnosis

_ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth"}


def _per_layer(u: int, r: int, name: str, n_layers: int | None) -> str:
    if n_layers and n_layers > 1 and u % n_layers == 0 and r % n_layers == 0:
        return f"user has {u // n_layers} {name} per layer, reference {r // n_layers}"
    return f"user has {u} {name}, reference {r}"


def _pattern(s: str, wire: int) -> str:
    return re.sub(rf"\b([xw])_{wire}\b", r"\1_i", s)


def _values_equal(a: Expr, b: Expr, X: torch.Tensor, W: torch.Tensor) -> bool:
    try:
        va = torch.broadcast_to(a.evaluate(X, W), (X.shape[0],))
        vb = torch.broadcast_to(b.evaluate(X, W), (X.shape[0],))
    except Exception:  # noqa: BLE001 - an index out of range etc.: not equal
        return False
    return bool(torch.allclose(va, vb, atol=1e-9, rtol=1e-9))


def _leaf_pairs(u: Expr, r: Expr, out: list) -> bool:
    """Collect (user leaf, reference leaf) pairs if ``u`` and ``r`` have the same shape."""
    if isinstance(u, (Weight, Input)) and isinstance(r, (Weight, Input)):
        if type(u) is not type(r):
            return False
        out.append((u, r))
        return True
    if isinstance(u, Const) and isinstance(r, Const):
        return abs(u.value - r.value) < 1e-12
    if isinstance(u, Func) and isinstance(r, Func):
        return u.name == r.name and _leaf_pairs(u.arg, r.arg, out)
    if isinstance(u, BinOp) and isinstance(r, BinOp):
        return u.op == r.op and _leaf_pairs(u.left, r.left, out) and _leaf_pairs(u.right, r.right, out)
    return False


def _two_qubit_diagnosis(ut: list[_Tok], rt: list[_Tok], n: int, n_layers: int | None, chen: bool) -> list[str]:
    reasons = []
    names = sorted({t.name for t in ut + rt if len(t.wires) == 2})
    for name in names:
        uc = Counter(t.wires for t in ut if t.name == name)
        rc = Counter(t.wires for t in rt if t.name == name)
        if uc == rc:
            continue
        nu, nr = sum(uc.values()), sum(rc.values())
        missing = rc - uc
        extra = uc - rc
        label = name.upper()
        counts = _per_layer(nu, nr, label, n_layers)
        said = False
        if missing:
            by_off: dict[int, Counter] = defaultdict(Counter)
            for (a, b), k in missing.items():
                by_off[(b - a) % n][(a, b)] += k
            for off, miss in sorted(by_off.items()):
                ref_off = Counter({w: k for w, k in rc.items() if (w[1] - w[0]) % n == off})
                user_off = sum(k for w, k in uc.items() if (w[1] - w[0]) % n == off)
                is_ring = len({w[0] for w in ref_off}) == n and user_off == 0 and miss == ref_off
                if is_ring:
                    which = f"{_ORDINAL.get(off, f'offset-{off}')} {label} ring" if chen else f"{label} ring"
                    reasons.append(f"{which} missing ({label}(i, i+{off} mod {n})): gate counts differ — {counts}")
                else:
                    shown = ", ".join(f"{label}({a}, {b})" + (f" x{k}" if k > 1 else "")
                                      for (a, b), k in sorted(miss.items())[:8])
                    more = "" if len(miss) <= 8 else f" and {len(miss) - 8} more"
                    reasons.append(f"{shown}{more} missing (the reference has them): {counts}")
                said = True
        if extra:
            shown = ", ".join(f"{label}({a}, {b})" + (f" x{k}" if k > 1 else "")
                              for (a, b), k in sorted(extra.items())[:8])
            more = "" if len(extra) <= 8 else f" and {len(extra) - 8} more"
            reasons.append(f"extra {shown}{more} not in the reference" + ("" if said else f": {counts}"))
    return reasons


def _wire_details(ut: list[_Tok], rt: list[_Tok], n: int) -> list[str]:
    """Wire by wire: which gates the user circuit lacks or adds (each gate reported once)."""
    out: list[str] = []
    seen_r: set[int] = set()
    seen_u: set[int] = set()

    def names(toks, ids):
        shown = ", ".join(toks[k].show() for k in ids[:6])
        return shown + (", ..." if len(ids) > 6 else "")

    for w in range(n):
        rs = [k for k, t in enumerate(rt) if w in t.wires]
        us = [k for k, t in enumerate(ut) if w in t.wires]
        sm = SequenceMatcher(None, [rt[k].key for k in rs], [ut[k].key for k in us], autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                continue
            r_ids = [k for k in rs[i1:i2] if k not in seen_r]
            u_ids = [k for k in us[j1:j2] if k not in seen_u]
            seen_r.update(r_ids)
            seen_u.update(u_ids)
            where = f"after {rt[rs[i1 - 1]].show()}" if i1 > 0 else "at the start"
            where = f"wire {w}, gate {i1} ({where})"
            if r_ids and u_ids:
                out.append(f"{where}: user has {names(ut, u_ids)} where the reference has {names(rt, r_ids)}")
            elif r_ids:
                out.append(f"{where}: missing {names(rt, r_ids)}")
            elif u_ids:
                out.append(f"{where}: extra {names(ut, u_ids)}")
    return out


def _diagnose(ut: list[_Tok], rt: list[_Tok], n: int, n_layers: int | None, chen: bool,
              X: torch.Tensor, W: torch.Tensor, user_names: dict[str, str], rot: int = 0) -> dict:
    """Reasons (high level), details (position by position) and a suggested mapping."""
    reasons: list[str] = []
    details: list[str] = []
    reasons += _two_qubit_diagnosis(ut, rt, n, n_layers, chen)

    # one-qubit (and other) gate counts
    uc = Counter(t.name for t in ut if len(t.wires) != 2)
    rc = Counter(t.name for t in rt if len(t.wires) != 2)
    for name in sorted(set(uc) | set(rc)):
        if uc[name] != rc[name]:
            label = name.upper()
            kind = {"measure": "measurements", "reset": "resets"}.get(name, "gates")
            if rc[name] == 0:
                wires = sorted({t.wires[0] for t in ut if t.name == name})
                reasons.append(f"extra {label} {kind} not in the reference ({uc[name]}, on wires "
                               f"{', '.join(map(str, wires))})")
            elif uc[name] == 0:
                reasons.append(f"no {label} {kind} where the reference has {rc[name]}")
            else:
                note = " (the reference's Rot counted as RZ RY RZ)" if name in ("rz", "ry") and rot else ""
                reasons.append(f"gate counts differ: {_per_layer(uc[name], rc[name], label, None)}{note}")
    if rot and uc["u3"] and uc["u3"] == rot and not rc["u3"]:
        reasons.append(f"U3 where the reference has Rot ({rot}x): U3(theta, phi, lambda) = RZ(phi) RY(theta) "
                       "RZ(lambda) up to a phase, the same rotations with another parameter order")

    details += _wire_details(ut, rt, n)

    # parameters of gates matched by (name, wires, occurrence)
    occ_u: dict = defaultdict(list)
    occ_r: dict = defaultdict(list)
    for t in ut:
        occ_u[t.key].append(t)
    for t in rt:
        occ_r[t.key].append(t)
    groups: dict[tuple, list[int]] = defaultdict(list)
    pairs: list = []
    shapes_ok = True
    n_param_diffs = 0
    for key, rlist in occ_r.items():
        for tu, tr in zip(occ_u.get(key, []), rlist):
            for pu, pr in zip(tu.params, tr.params):
                if not _leaf_pairs(pu, pr, pairs):
                    shapes_ok = False
                if _values_equal(pu, pr, X, W):
                    continue
                n_param_diffs += 1
                su, sr = pu.to_str(), pr.to_str()
                if len(tu.wires) == 1:
                    w = tu.wires[0]
                    groups[(tu.name, _pattern(su, w), _pattern(sr, w))].append(w)
                else:
                    details.append(f"{tu.show()} reads {su} where the reference reads {sr}")
                    groups[(tu.name, su, sr, tu.wires)].append(-1)
    for key, wires in groups.items():
        if wires and wires[0] == -1:
            name, su, sr, ws = key
            reasons.append(f"{name.upper()} on wires {', '.join(map(str, ws))} reads {su} where the reference reads {sr}")
            continue
        name, pu, pr = key
        ws = sorted(set(wires))
        if len(ws) == 1:
            w = ws[0]
            reasons.append(f"{name.upper()} on wire {w} reads {pu.replace('_i', f'_{w}')} where the reference reads "
                           f"{pr.replace('_i', f'_{w}')}")
        else:
            reasons.append(f"{name.upper()} on wires {', '.join(map(str, ws))} reads {pu} where the reference "
                           f"reads {pr}")

    # a renaming of parameters that would make the matched gates equal
    suggestion = None
    same_structure = Counter(t.key for t in ut) == Counter(t.key for t in rt)
    if same_structure and shapes_ok and n_param_diffs and pairs:
        fwd: dict = {}
        bwd: dict = {}
        ok = True
        for u, r in pairs:
            if fwd.setdefault(u, r) != r or bwd.setdefault(r, u) != u:
                ok = False
                break
        if ok:
            inv = {slot: name for name, slot in user_names.items()}
            suggestion = {}
            for u, r in fwd.items():
                if u != r:
                    uslot = f"{'x' if isinstance(u, Input) else 'w'}_{u.index}"
                    suggestion[inv.get(uslot, uslot)] = f"{'x' if isinstance(r, Input) else 'w'}_{r.index}"
            suggestion = {"table": {(('input' if isinstance(u, Input) else 'weight'), u.index): r
                                    for u, r in fwd.items() if u != r},
                          "names": suggestion}
    # keep the list readable: the first reasons of each kind
    if len(reasons) > 12:
        reasons = reasons[:12] + [f"... and {len(reasons) - 12} more differences"]
    return {"reasons": reasons, "details": details[:40], "suggestion": suggestion,
            "same_structure": same_structure}


# ---------------------------------------------------------------------------
# numeric checks


def _expvals(c: Circuit, X, W) -> torch.Tensor:
    x = X[:, : c.n_inputs] if c.n_inputs else None
    w = W[: c.n_weights] if c.n_weights else None
    return run(c, x, w, dtype=torch.float64).expvals


def _state(c: Circuit, X, W) -> torch.Tensor:
    """Final state ``[B, 2**n]`` (pure) or ``[B, 2**n, 2**n]`` (density matrix), B broadcast from 1 if needed."""
    x = X[:, : c.n_inputs] if c.n_inputs else None
    w = W[: c.n_weights] if c.n_weights else None
    st = run(c, x, w, dtype=torch.float64, return_state=True).state
    if st.shape[0] != X.shape[0]:
        st = st.expand(X.shape[0], *st.shape[1:])
    return st


def _equivalence(uc: Circuit, rc: Circuit, X, W) -> dict:
    su, sr = _state(uc, X, W), _state(rc, X, W)
    b = X.shape[0]
    if sr.dim() == 3 or su.dim() == 3:  # a non-unitary circuit: compare density matrices
        du = su if su.dim() == 3 else su.unsqueeze(-1) * su.conj().unsqueeze(-2)
        dr = sr if sr.dim() == 3 else sr.unsqueeze(-1) * sr.conj().unsqueeze(-2)
        if sr.dim() == 2:  # fidelity <r| rho |r> with the reference's pure state
            fid = torch.einsum("bi,bij,bj->b", sr.conj(), du, sr).real
        else:  # normalised Hilbert-Schmidt overlap: 1 exactly when the states agree
            hs = lambda a, c: torch.einsum("bij,bji->b", a, c).real  # noqa: E731
            fid = hs(du, dr) / (hs(du, du) * hs(dr, dr)).sqrt()
    else:
        fid = (su.conj() * sr).sum(-1).abs() ** 2
    eu, er = _expvals(uc, X, W), _expvals(rc, X, W)
    diff = (eu - er).abs().max().item() if eu.numel() else 0.0
    min_fid = fid.min().item()
    return {"checked": True, "equal": bool(min_fid >= 1 - FIDELITY_TOL and diff <= OUTPUT_TOL),
            "samples": b, "min_fidelity": min_fid, "max_output_diff": diff}


def _fit(uc: Circuit, rc: Circuit, gen: torch.Generator, *, steps: int, restarts: int, threshold: float,
         lr: float = 0.1, n_train: int = 96, n_test: int = 64) -> dict:
    t0 = time.perf_counter()
    n_in = rc.n_inputs
    w_ref = (torch.rand(rc.n_weights, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    x_train = torch.randn(n_train, n_in, generator=gen, dtype=torch.float64)
    x_test = torch.randn(n_test, n_in, generator=gen, dtype=torch.float64)
    y_train = _expvals(rc, x_train, w_ref)
    y_test = _expvals(rc, x_test, w_ref)
    xu_train = x_train[:, : uc.n_inputs] if uc.n_inputs else None
    xu_test = x_test[:, : uc.n_inputs] if uc.n_inputs else None
    best = None
    total_steps = 0
    for r in range(restarts):
        w = ((torch.rand(uc.n_weights, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        for _ in range(steps):
            loss = ((run(uc, xu_train, w, dtype=torch.float64).expvals - y_train) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total_steps += 1
            if loss.item() < (threshold / 5) ** 2:
                break
        with torch.no_grad():
            train = ((run(uc, xu_train, w, dtype=torch.float64).expvals - y_train) ** 2).mean().sqrt().item()
            test = ((run(uc, xu_test, w, dtype=torch.float64).expvals - y_test) ** 2).mean().sqrt().item()
        if best is None or test < best[1]:
            best = (train, test)
        if test < threshold / 5:
            break
    baseline = (y_test - y_train.mean(0)).pow(2).mean().sqrt().item()
    return {"ran": True, "success": bool(best[1] < threshold), "rmse": best[1], "train_rmse": best[0],
            "threshold": threshold, "baseline_rmse": baseline, "steps": total_steps, "restarts": r + 1,
            "seconds": round(time.perf_counter() - t0, 3), "skipped_because": None}


def _gradient_check(uc: Circuit, gen: torch.Generator, max_weights: int = 24) -> dict:
    n_w = uc.n_weights
    if n_w == 0:
        return {"ran": False, "ok": True, "max_abs_error": 0.0, "weights_checked": 0,
                "skipped_because": "the circuit has no weights"}
    x = torch.randn(3, max(uc.n_inputs, 1), generator=gen, dtype=torch.float64)
    w0 = (torch.rand(n_w, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    coef = torch.randn(len(uc.observables), generator=gen, dtype=torch.float64)

    def f(w):
        return (_expvals(uc, x, w) * coef).sum()

    w = w0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(w), w)
    idx = list(range(n_w)) if n_w <= max_weights else \
        sorted({round(k * (n_w - 1) / (max_weights - 1)) for k in range(max_weights)})
    h = 1e-6
    err, ok = 0.0, True
    for j in idx:
        wp, wm = w0.clone(), w0.clone()
        wp[j] += h
        wm[j] -= h
        fd = (f(wp) - f(wm)).item() / (2 * h)
        e = abs(fd - g[j].item())
        ok = ok and e <= 1e-6 + 1e-5 * abs(fd)
        err = max(err, e)
    return {"ran": True, "ok": bool(ok), "max_abs_error": err, "weights_checked": len(idx), "skipped_because": None}


def _grad_variance(c: Circuit, seed: int, samples: int, dead_samples: int = 8) -> tuple[float | None, list[int]]:
    """Mean over the live weights of Var(d<Z_0>/dw_j) over random weights in [0, 2 pi), and the dead weights.

    Dead weights: no output depends on them (zero gradient of a random combination of all
    outputs at ``dead_samples`` random points); they are left out of the mean. The draws
    come from their own generator seeded with ``seed``, so two circuits with the same
    number of weights see the same weight samples.
    """
    if c.n_weights == 0 or not c.observables:
        return None, []
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, max(c.n_inputs, 1), generator=gen, dtype=torch.float64)
    coef = torch.randn(len(c.observables), generator=gen, dtype=torch.float64)
    g0s, gall = [], []
    for k in range(max(samples, dead_samples)):
        w = (torch.rand(c.n_weights, generator=gen, dtype=torch.float64) * 2 * math.pi).requires_grad_(True)
        y = _expvals(c, x, w)[0]
        if k < dead_samples:
            (ga,) = torch.autograd.grad((y * coef).sum(), w, retain_graph=True)
            gall.append(ga)
        if k < samples:
            (g0,) = torch.autograd.grad(y[0], w)
            g0s.append(g0)
    ga = torch.stack(gall)
    dead = [j for j in range(c.n_weights) if ga[:, j].abs().max().item() < 1e-10]
    live = [j for j in range(c.n_weights) if j not in dead]
    if not live or samples < 2:
        return 0.0, dead
    g0 = torch.stack(g0s)[:, live]  # [samples, live weights]
    return g0.var(dim=0).mean().item(), dead


# ---------------------------------------------------------------------------
# the report


@dataclass
class VerifyReport:
    """What :func:`verify` found. ``to_dict()`` has stable keys; ``report()`` is the text the CLI prints."""

    status: str
    reasons: list[str]
    notes: list[str]
    differences: list[str]
    source: str
    source_kind: str
    against: str
    reference_description: str
    n_qubits: int
    n_layers: int | None
    outputs: list[str]
    mapping: dict[str, str]
    suggested_mapping: dict[str, str] | None
    user: dict
    reference: dict
    unitary: bool
    unitary_detail: str
    equivalence: dict
    fit: dict
    gradient_check: dict
    barren_plateau: dict
    accept: str = "exact"
    seed: int = 0
    seconds: float = 0.0
    _user_resources: Any = field(default=None, repr=False)
    _reference_resources: Any = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    @property
    def exit_code(self) -> int:
        """0 for PASS, 1 for FAIL (unreadable input raises :class:`VerifyInputError` instead: exit code 2)."""
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "differences": list(self.differences),
            "source": self.source,
            "source_kind": self.source_kind,
            "against": self.against,
            "reference_description": self.reference_description,
            "n_qubits": self.n_qubits,
            "n_layers": self.n_layers,
            "outputs": list(self.outputs),
            "accept": self.accept,
            "seed": self.seed,
            "mapping": dict(self.mapping),
            "suggested_mapping": self.suggested_mapping,
            "unitary": self.unitary,
            "unitary_detail": self.unitary_detail,
            "equivalence": dict(self.equivalence),
            "fit": dict(self.fit),
            "gradient_check": dict(self.gradient_check),
            "barren_plateau": dict(self.barren_plateau),
            "user": dict(self.user),
            "reference": dict(self.reference),
            "seconds": self.seconds,
        }

    def report(self, details: bool = True) -> str:
        u, r = self.user, self.reference
        lines = [f"qlstm verify: {self.source} against '{self.against}' ({self.reference_description})", ""]
        lines.append(f"{self.status}")
        for reason in self.reasons:
            lines.append(f"  - {reason}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        lines.append("")

        def gates(d: dict) -> str:
            return ", ".join(f"{k.upper()} {v}" for k, v in sorted(d["gate_counts"].items())) or "none"

        def wires(ws) -> str:
            return ", ".join(f"q{w}" for w in ws) or "none"

        rows = [
            ("qubits", u["qubits"], r["qubits"]),
            ("weights", u["weights"], r["weights"]),
            ("inputs", u["inputs"], r["inputs"]),
            ("depth", u["depth"], r["depth"]),
            ("gates", u["gates"], r["gates"]),
            ("two-qubit gates", u["two_qubit_total"], r["two_qubit_total"]),
            ("measurements", f"{u['measurements']} ({u['mid_circuit_measurements']} mid-circuit)",
             f"{r['measurements']} ({r['mid_circuit_measurements']} mid-circuit)"),
            ("idle qubits", wires(u["idle_qubits"]), wires(r["idle_qubits"])),
            ("dead qubits", wires(u["dead_qubits"]), wires(r["dead_qubits"])),
            ("idle share", f"{u['idle_share']:.1%}", f"{r['idle_share']:.1%}"),
        ]
        lines.append(f"  {'':<18}{'user':<24}reference")
        for name, a, b in rows:
            lines.append(f"  {name:<18}{str(a):<24}{b}")
        lines.append(f"  {'gate counts':<18}user: {gates(u)}")
        lines.append(f"  {'':<18}ref:  {gates(r)}")
        lines.append("")
        eq = self.equivalence
        lines.append("checks")
        lines.append(f"  unitary up to terminal measurements : {'yes' if self.unitary else 'no'}"
                     + ("" if self.unitary else f" ({self.unitary_detail})"))
        if eq.get("checked"):
            lines.append(f"  equal to the reference ({eq['samples']} samples)  : {'yes' if eq['equal'] else 'no'}"
                         f" — min fidelity {eq['min_fidelity']:.6f}, max |Δ<Z>| {eq['max_output_diff']:.2e}")
        else:
            lines.append(f"  equal to the reference              : not checked ({eq.get('skipped_because')})")
        fit = self.fit
        if fit.get("ran"):
            lines.append(f"  trainable to reproduce the reference: {'yes' if fit['success'] else 'no'}"
                         f" — RMSE {fit['rmse']:.4f} (threshold {fit['threshold']}, untrained baseline "
                         f"{fit['baseline_rmse']:.3f}; {fit['steps']} Adam steps, {fit['restarts']} start(s))")
        else:
            lines.append(f"  trainable to reproduce the reference: not run ({fit.get('skipped_because')})")
        gc = self.gradient_check
        if gc.get("ran"):
            lines.append(f"  gradient check (autograd vs FD)     : {'ok' if gc['ok'] else 'FAILED'} — max error "
                         f"{gc['max_abs_error']:.1e} over {gc['weights_checked']} weights")
        else:
            lines.append(f"  gradient check (autograd vs FD)     : not run ({gc.get('skipped_because')})")
        bp = self.barren_plateau
        if bp.get("user_variance") is not None:
            ratio = bp.get("ratio")
            lines.append(f"  Var d<Z_0>/dw (random weights)      : user {bp['user_variance']:.3e}, reference "
                         f"{bp['reference_variance']:.3e}" + (f" (ratio {ratio:.2f})" if ratio is not None else ""))
        if self.suggested_mapping:
            lines.append("")
            lines.append("suggested mapping (makes the circuits equal):")
            lines.append("  " + " ".join(f"--map {k}={v}" for k, v in list(self.suggested_mapping.items())[:24])
                         + (" ..." if len(self.suggested_mapping) > 24 else ""))
        if details and self.differences and not self.passed:
            lines.append("")
            lines.append("differences (wire by wire; Rot written as RZ RY RZ)")
            for d in self.differences[:12]:
                lines.append(f"  {d}")
            if len(self.differences) > 12:
                lines.append(f"  ... {len(self.differences) - 12} more (see --json)")
        return "\n".join(lines)


def _unitary_detail(c: Circuit) -> tuple[bool, str]:
    info = analyse(c)
    parts = []
    mid = sum(1 for i, op in enumerate(c.ops) if isinstance(op, Measure) and i not in info.terminal)
    if mid:
        parts.append(f"{mid} mid-circuit measurement(s)")
    resets = sum(1 for op in c.ops if isinstance(op, Reset))
    if resets:
        parts.append(f"{resets} reset(s)")
    if info.has_conditions:
        parts.append("classically conditioned operations")
    if info.has_channels:
        parts.append("noise channels")
    return info.pure_unitary, ", ".join(parts) or "terminal measurements only"


def _reference(against, n_qubits: int, n_layers: int, n_outputs: int | None) -> tuple[Circuit, str, str, bool]:
    if isinstance(against, Circuit):
        return against, against.name, f"custom reference '{against.name}', {against.n_qubits} qubits", False
    from .circuit.templates.qlstm_blocks import block, qlstm_block

    b = block(against)
    ref = qlstm_block(b.name, n_qubits, n_layers, n_outputs)
    outs = f"<Z> on wires 0..{n_outputs - 1}" if n_outputs else "<Z> on every wire"
    return ref, b.name, f"Chen VQC, {n_qubits} qubits, {n_layers} layers, {outs}", True


def verify(user_circuit, against="forget", n_qubits: int | None = None, n_layers: int = 2,
           mapping: Mapping[str, str] | None = None, fit: bool = True, seed: int = 0, *,
           n_outputs: int | None = None, accept: str = "exact", samples: int = 8, fit_steps: int = 300,
           fit_restarts: int = 3, fit_threshold: float = 0.05, bp_samples: int = 32) -> VerifyReport:
    """Verify ``user_circuit`` against the reference QLSTM block ``against`` (see the module docstring).

    Args:
        user_circuit: a qlstm ``Circuit``, a Qiskit ``QuantumCircuit``, or a path to a
            ``.qasm`` / ``.qasm3`` / ``.py`` file.
        against: a block name or alias (``"forget"``, ``"update"``, ...) or a reference ``Circuit``.
        n_qubits: qubits of the reference; default: the user circuit's. A different
            explicit value is an input error.
        n_layers: variational layers of the reference (Chen et al.: 2).
        mapping: ``{user parameter name: "x_i" | "w_i"}`` on top of the naming convention.
        fit: train the user's weights to the reference's function when not equal.
        seed: seeds every random draw (inputs, weights, fit, diagnostics).
        n_outputs: reference read-out wires ``0..n_outputs-1``; default from the user's
            read-out (``<Z>`` on wires ``0..k-1``) or all wires.
        accept: ``"exact"`` (PASS only if equal) or ``"trainable"`` (also PASS if the fit succeeds).
        samples: random input/weight samples of the equality check.
        fit_steps / fit_restarts / fit_threshold: the fit's Adam steps per start, starts, RMSE threshold.
        bp_samples: random weight draws of the gradient-variance diagnostic.

    Raises:
        VerifyInputError: unreadable input, mismatched qubit count, bad mapping.
    """
    t0 = time.perf_counter()
    if accept not in ("exact", "trainable"):
        raise VerifyInputError(f"accept must be 'exact' or 'trainable', got {accept!r}")
    loaded = load_circuit(user_circuit)
    ucirc, final_map = apply_mapping(loaded, mapping)
    if n_qubits is not None and n_qubits != ucirc.n_qubits:
        raise VerifyInputError(f"{loaded.label}: the circuit has {ucirc.n_qubits} qubits but {n_qubits} were "
                               f"requested (--qubits {n_qubits}); the reference must have as many qubits as the "
                               "circuit")
    n = ucirc.n_qubits
    declared = _declared_outputs(ucirc)
    if n_outputs is None and declared and not isinstance(against, Circuit):
        zw = [o.wires[0] for o in declared if o.paulis == "Z"]
        if len(zw) == len(declared) and zw == list(range(len(zw))) and len(zw) < n:
            n_outputs = len(zw)
    try:
        ref, ref_name, ref_desc, chen = _reference(against, n, n_layers, n_outputs)
    except QlstmError as err:
        raise VerifyInputError(str(err)) from None
    gen = torch.Generator().manual_seed(int(seed))
    reasons: list[str] = []
    notes: list[str] = []

    ref_obs = list(ref.observables)
    user_outs = declared if declared is not None else ref_obs
    if declared is None:
        notes.append("the circuit declares no outputs (no observables, no final measurements); "
                     "read out like the reference")
    uread = _readout(ucirc, ref_obs)
    ures = count_resources(ucirc)
    rres = count_resources(ref)
    unitary, udetail = _unitary_detail(ucirc)

    outputs_match = [o.label() for o in user_outs] == [o.label() for o in ref_obs]
    if not outputs_match:
        reasons.append(f"the circuit reads out {', '.join(o.label() for o in user_outs)} where the reference reads "
                       f"{', '.join(o.label() for o in ref_obs)}")

    # -- equality ---------------------------------------------------------------
    n_w = max(uread.n_weights, ref.n_weights, 1)
    n_x = max(uread.n_inputs, ref.n_inputs, 1)
    X = torch.randn(samples, n_x, generator=gen, dtype=torch.float64) * 1.5
    W = (torch.rand(n_w, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    if uread.n_inputs > ref.n_inputs:
        eq = {"checked": False, "equal": False, "samples": 0, "min_fidelity": None, "max_output_diff": None,
              "skipped_because": f"the circuit reads x_{uread.n_inputs - 1}, the reference only "
                                 f"x_0..x_{ref.n_inputs - 1}"}
        reasons.append(f"the circuit reads input x_{uread.n_inputs - 1}, but the reference has only {ref.n_inputs} inputs "
                       f"(x_0..x_{ref.n_inputs - 1})")
    else:
        eq = _equivalence(uread, ref, X, W)
        eq["skipped_because"] = None
    equal = bool(eq["equal"]) and outputs_match

    suggestion = None
    differences: list[str] = []
    fitres: dict = {"ran": False, "success": None, "rmse": None, "train_rmse": None, "threshold": fit_threshold,
                    "baseline_rmse": None, "steps": 0, "restarts": 0, "seconds": 0.0, "skipped_because": None}
    if not equal:
        ut, rt = _normalise(ucirc), _normalise(ref)
        n_rot = sum(1 for op in ref.ops if isinstance(op, Gate) and op.name == "rot")
        diag = _diagnose(ut, rt, n, n_layers if chen else None, chen, X, W, final_map, n_rot)
        differences = diag["details"]
        if uread.n_weights != ref.n_weights:
            msg = f"the circuit has {uread.n_weights} weights, the reference {ref.n_weights}"
            if chen and uread.n_weights % (3 * n) == 0 and uread.n_weights // (3 * n) != n_layers:
                msg += f" (with --layers {uread.n_weights // (3 * n)} the reference has {uread.n_weights})"
            reasons.append(msg)
        if uread.n_inputs < ref.n_inputs:
            unread = sorted(set(range(ref.n_inputs)) - set(ures.input_reads))
            reasons.append(f"the circuit does not read input(s) {', '.join(f'x_{i}' for i in unread)}")
        else:
            ur, rr = ures.input_reads, rres.input_reads
            diff_reads = [i for i in rr if ur.get(i, 0) != rr[i]]
            if diff_reads and not any("reads" in r for r in diag["reasons"]):
                i = diff_reads[0]
                reasons.append(f"input x_{i} is read {ur.get(i, 0)} time(s), in the reference {rr[i]} time(s)")
        reasons.extend(diag["reasons"])
        if not unitary and _unitary_detail(ref)[0]:
            reasons.append(f"the circuit is not unitary ({udetail}); the reference is")
        if diag["suggestion"]:
            table = {slot: (Input(e.index) if isinstance(e, Input) else Weight(e.index))
                     for slot, e in diag["suggestion"]["table"].items()}
            trial = _rebuild(uread, table)
            if trial.n_inputs <= ref.n_inputs:
                eq2 = _equivalence(trial, ref, X, W)
                if eq2["equal"]:
                    suggestion = diag["suggestion"]["names"]
                    reasons.insert(0, "parameters named differently: the circuit equals the reference under the "
                                      "suggested mapping, not under the naming convention")
        if not reasons and differences:
            reasons.append(f"gate order differs from the reference: {differences[0]}")
        if not reasons:
            reasons.append(f"not equal to the reference although gates and angles match: min state fidelity "
                           f"{eq['min_fidelity']:.4f}, outputs differ by up to {eq['max_output_diff']:.3g}")
        if fit and uread.n_inputs <= ref.n_inputs and uread.n_weights > 0:
            fitres = _fit(uread, ref, gen, steps=fit_steps, restarts=fit_restarts, threshold=fit_threshold)
            if fitres["success"]:
                notes.append(f"the circuit can be trained to reproduce the reference block's function (RMSE "
                             f"{fitres['rmse']:.4f} < {fit_threshold}): a valid substitute ansatz, but not the "
                             "reference circuit")
        elif not fit:
            fitres["skipped_because"] = "disabled (--no-fit)"
        elif uread.n_weights == 0:
            fitres["skipped_because"] = "the circuit has no weights"
        else:
            fitres["skipped_because"] = "the circuit reads inputs the reference does not have"
    else:
        fitres["skipped_because"] = "not needed: the circuit equals the reference"

    gc = _gradient_check(uread, gen)
    if not gc["ok"]:
        reasons.append(f"gradient check failed: autograd and finite differences differ by {gc['max_abs_error']:.2e}")
    bp_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    uvar, udead = _grad_variance(uread, bp_seed, bp_samples)
    rvar, rdead = _grad_variance(ref, bp_seed, bp_samples)
    ratio = (uvar / rvar) if (uvar is not None and rvar) else None
    bp = {"user_variance": uvar, "reference_variance": rvar, "ratio": ratio, "samples": bp_samples,
          "flag": bool(ratio is not None and ratio < 0.1),
          "dead_weights": [f"w_{j}" for j in udead], "reference_dead_weights": [f"w_{j}" for j in rdead]}
    if bp["flag"]:
        notes.append(f"gradient variance is {1 / ratio:.0f}x smaller than the reference's: risk of a barren plateau")
    # weights no output depends on (the reference has some too: a final RZ before a Z read-out does nothing)
    new_dead = [j for j in udead if j not in rdead] if uread.n_weights == ref.n_weights else udead
    if new_dead:
        shown = ", ".join(f"w_{j}" for j in new_dead[:10]) + (" ..." if len(new_dead) > 10 else "")
        notes.append(f"weights with no effect on the outputs (zero gradient at every sample)"
                     f"{' where the reference uses them' if uread.n_weights == ref.n_weights else ''}: {shown}")
    if ures.dead_qubits:
        notes.append(f"qubits {', '.join(map(str, ures.dead_qubits))} cannot affect the outputs")

    passed = (equal or (accept == "trainable" and bool(fitres.get("success")))) and gc["ok"]
    if passed and not equal:
        notes.insert(0, "accepted because the fit succeeded (--accept trainable)")
    udict, rdict = ures.as_dict(), rres.as_dict()
    return VerifyReport(
        status="PASS" if passed else "FAIL",
        reasons=[] if equal and gc["ok"] else reasons,
        notes=notes,
        differences=differences,
        source=loaded.label,
        source_kind=loaded.kind,
        against=ref_name,
        reference_description=ref_desc,
        n_qubits=n,
        n_layers=n_layers if chen else None,
        outputs=[o.label() for o in ref_obs],
        mapping=final_map,
        suggested_mapping=suggestion,
        user=udict,
        reference=rdict,
        unitary=unitary,
        unitary_detail=udetail,
        equivalence=eq,
        fit=fitres,
        gradient_check=gc,
        barren_plateau=bp,
        accept=accept,
        seed=int(seed),
        seconds=round(time.perf_counter() - t0, 3),
        _user_resources=ures,
        _reference_resources=rres,
    )
