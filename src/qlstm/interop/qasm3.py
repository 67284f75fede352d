"""OpenQASM 3: a pure-Python reader and writer for qlstm circuits (no qiskit needed).

Reading -- :func:`loads` / :func:`load`
---------------------------------------
Supported:

* ``OPENQASM 3.0;`` (``OPENQASM 2.0;`` too, where ``^`` means power),
  ``include "...";`` (the standard gates are always known), comments
  ``//`` and ``/* */``, ``pragma`` lines and ``@annotations`` (skipped);
* registers ``qubit[n] q;`` / ``qubit q;`` / ``qreg q[n];`` and
  ``bit[n] c;`` / ``bit c;`` / ``creg c[n];`` -- several of each, numbered
  globally in declaration order (register ``q`` first, then the next one...);
  physical qubits ``$0, $1, ...`` when no qubit register is declared;
* parameters ``input float[64] name;`` (also ``input float``, ``input angle[..]``,
  ``input int``), named constants ``const float[64] name = expr;``;
* gate calls of ``stdgates.inc`` and a few Qiskit extras: ``id x y z h s sdg t
  tdg sx sxdg rx ry rz p phase u1 u2 u3 u U r cx CX cy cz ch swap ccx cswap crx
  cry crz cp cphase cu1 cu3 cu rxx ryy rzz gphase``; register broadcasting
  (``h q;``, ``cx a, b;``); angle expressions with ``+ - * / **``, unary minus,
  ``pi/π``, ``tau/τ``, ``euler/ℇ`` and the functions ``sin cos tan arcsin arccos
  arctan (asin acos atan) exp log (ln) sqrt tanh pow`` -- including the
  ``ry(atan(_x_0_))`` calls that Qiskit's exporter writes and Qiskit's own
  importer rejects;
* ``gate name(params) a, b { ... }`` definitions, nested, expanded inline (a
  definition overrides a built-in of the same name, as in Qiskit's output);
* the modifiers ``inv @``, ``pow(k) @`` (integer ``k``), ``ctrl @`` /
  ``ctrl(n) @`` / ``negctrl @`` -- controls of gates with symbolic angles only
  where qlstm has the controlled gate (x y z rx ry rz p u3/U rot cx), constant
  gates of any kind (as a controlled ``unitary``);
* ``measure q[0] -> c[0];``, ``c[0] = measure q[0];`` (registers broadcast),
  ``reset q[0];``; ``barrier``, ``delay[...]`` and top-level ``gphase`` are
  ignored (a global phase is unobservable; qlstm has no global-phase operation);
* ``if (cond) {...} else {...}`` where ``cond`` is ``c[0]``, ``!c[0]``,
  ``c[0] == 1``, ``c == 3``, ``c != 3``, ``c[0] && !c[1]`` (nested ``if`` s
  too); an ``else`` becomes the complementary conditions. Measurements inside
  an ``if`` are not supported (qlstm measurements are unconditional).

Anything else (``for``, ``while``, ``def``, ``switch``, classical variables,
...) raises :class:`QasmError` naming the statement and its line.

Parameter naming (the convention of :mod:`qlstm.interop._params`): inputs
named ``x_i`` / ``_x_i_`` / ``x[i]`` become data inputs ``x_i``; the others
are weights (``w_i`` / ``_w_i_`` / ``w[i]`` keep index ``i``, other names
follow in natural sorted order). ``input_params=[...]`` / ``weight_params=[...]``
override this; ``bindings={name: value}`` fixes parameters to numbers, and
``return_mapping=True`` also returns ``{name: ("weight"|"input", index)}``.

Writing -- :func:`dumps` / :func:`dump`
---------------------------------------
One ``qubit[n] q;`` register (qlstm wire ``w`` is ``q[w]``), one ``bit[m] c;``,
every weight as ``input float[64] w_i;`` and every data input as ``input
float[64] x_i;`` (unless bound with ``bind_weights`` / ``bind_inputs``), gates
in ``stdgates.inc`` form (``rot`` as ``rz; ry; rz``, ``crot`` as ``crz; cry;
crz``, ``isingxx/yy/zz`` as ``rxx/ryy/rzz`` with their gate definitions
written out), a one-qubit ``unitary`` as ``U(...)`` (its global phase is
dropped), amplitude encodings as RY/CNOT state preparation (only with
``bind_inputs``), conditions as ``if`` blocks (``if (c == v)`` for the whole
register, else nested one-bit ``if (c[k])`` / ``if (!c[k])``, the forms
Qiskit's importer accepts). Angles are written with 17 significant digits, so
they read back bit for bit; with ``bind_weights`` / ``bind_inputs`` they are
folded to plain numbers (Qiskit's importer, ``qiskit_qasm3_import``, then
reads the file too -- it rejects function calls such as ``arctan(x_0)``).
Noise channels and unitaries on several qubits have no form here and raise
:class:`CircuitError` (export them with :func:`qlstm.interop.to_qiskit`).
Observables are written as a comment.
"""

from __future__ import annotations

import math
import os
import random as _random
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch

from ..circuit.circuit import Circuit
from ..circuit.expr import BinOp, Const, Expr, Func, Input, Weight
from ..circuit.ops import AmplitudeEncoding, Channel, Condition, Gate, Measure, Reset
from ..errors import CircuitError, InputError
from ._gates import NEVER, QASM_GATES, control, invert, merge_conditions, state_prep_ry
from ._gates import complement as _complement
from ._lex import ExprParser, QasmError, Token, build_expr, fold, format_expr, tokenize
from ._params import classify

__all__ = ["QasmError", "loads", "load", "dumps", "dump", "simulate_qasm_file"]

_UNSUPPORTED = {"for", "while", "def", "extern", "switch", "return", "break", "continue", "end", "let",
                "defcal", "cal", "defcalgrammar", "output", "stretch", "duration", "int", "uint", "float", "angle",
                "bool", "complex", "array", "opaque", "case", "default", "durationof", "readonly", "mutable"}


# ---------------------------------------------------------------------------
# AST


@dataclass
class _Decl:
    kind: str  # 'qubit' | 'bit'
    name: str
    size: int | None
    tok: Token


@dataclass
class _Input:
    name: str
    tok: Token


@dataclass
class _Const:
    name: str
    expr: object
    tok: Token


@dataclass
class _GateDef:
    name: str
    params: list[str]
    qubits: list[str]
    body: list
    tok: Token


@dataclass
class _Call:
    modifiers: list  # [(kind, expr_ast | None, tok)]
    name: str
    args: list
    operands: list
    tok: Token


@dataclass
class _Measure:
    qubit: tuple
    target: tuple | None
    tok: Token


@dataclass
class _Reset:
    operand: tuple
    tok: Token


@dataclass
class _If:
    cond: object
    then: list
    orelse: list | None
    tok: Token


@dataclass
class _Box:
    body: list
    tok: Token


# ---------------------------------------------------------------------------
# parser


class _Parser(ExprParser):
    def __init__(self, text: str):
        super().__init__(tokenize(text))
        self.version = 3

    def program(self) -> list:
        out = []
        while self.tok.kind != "eof":
            st = self.statement(top=True)
            if st is not None:
                out.append(st)
        return out

    def block_or_statement(self) -> list:
        if self.accept("{"):
            body = []
            while not self.at("}"):
                if self.tok.kind == "eof":
                    raise self.error("expected '}' to close the block, found end of input")
                st = self.statement(top=False)
                if st is not None:
                    body.append(st)
            self.advance()
            return body
        st = self.statement(top=False)
        return [] if st is None else [st]

    def operand(self) -> tuple:
        t = self.tok
        if t.kind == "hwq":
            self.advance()
            return ("hw", t.value, t)
        name = self.expect_ident("a qubit or bit operand")
        if self.accept("["):
            if self.at("{"):
                raise self.error("index sets q[{...}] are not supported")
            start = self.expression()
            if self.accept(":"):
                stop = self.expression()
                step = None
                if self.accept(":"):
                    step, stop = stop, self.expression()
                self.expect("]", "to close the slice")
                return ("slice", name.value, start, stop, step, name)
            self.expect("]", "to close the index")
            return ("bit", name.value, start, name)
        return ("reg", name.value, name)

    def operands(self) -> list:
        ops = [self.operand()]
        while self.accept(","):
            ops.append(self.operand())
        return ops

    def size_spec(self):
        if self.accept("["):
            e = self.expression()
            self.expect("]", "after the size")
            return e
        return None

    def statement(self, top: bool):
        t = self.tok
        if t.kind == "op" and t.value == ";":
            self.advance()
            return None
        if t.kind == "op" and t.value == "{":
            return _Box(self.block_or_statement(), t)
        if t.kind != "id":
            raise self.error(f"expected a statement, found {t.show()}")
        kw = t.value
        if kw == "OPENQASM":
            self.advance()
            v = self.advance()
            if v.kind not in ("num", "int"):
                raise self.error("expected a version number after OPENQASM", v)
            self.version = float(v.value)
            if self.version >= 4 or self.version < 2:
                raise self.error(f"unsupported OpenQASM version {v.value}", v)
            self.caret_is_power = self.version < 3
            self.expect(";", "OPENQASM version")
            return None
        if kw == "include":
            self.advance()
            s = self.advance()
            if s.kind != "str":
                raise self.error("expected a file name string after include", s)
            self.expect(";", "include")
            return None
        if kw in ("qubit", "bit", "qreg", "creg"):
            self.advance()
            kind = "qubit" if kw in ("qubit", "qreg") else "bit"
            if kw in ("qubit", "bit"):
                size = self.size_spec()
                name = self.expect_ident(f"a {kind} register name")
            else:
                name = self.expect_ident(f"a {kind} register name")
                size = self.size_spec()
            if kw == "bit" and self.at("="):
                raise self.error("initialising a bit register in its declaration is not supported")
            self.expect(";", f"the {kw} declaration")
            return _Decl(kind, name.value, size, name)
        if kw == "input":
            self.advance()
            ty = self.expect_ident("a type after input")
            if ty.value not in ("float", "angle", "int", "uint"):
                raise self.error(f"input of type '{ty.value}' is not supported (use float or angle)", ty)
            self.size_spec()
            name = self.expect_ident("an input parameter name")
            self.expect(";", "the input declaration")
            return _Input(name.value, name)
        if kw == "const":
            self.advance()
            ty = self.expect_ident("a type after const")
            if ty.value not in ("float", "angle", "int", "uint"):
                raise self.error(f"const of type '{ty.value}' is not supported", ty)
            self.size_spec()
            name = self.expect_ident("a constant name")
            self.expect("=", "in the const declaration")
            e = self.expression()
            self.expect(";", "the const declaration")
            return _Const(name.value, e, name)
        if kw == "gate":
            if not top:
                raise self.error("gate definitions are only allowed at the top level")
            self.advance()
            name = self.expect_ident("a gate name")
            params = []
            if self.accept("("):
                if not self.at(")"):
                    params.append(self.expect_ident("a parameter name").value)
                    while self.accept(","):
                        params.append(self.expect_ident("a parameter name").value)
                self.expect(")", "to close the gate parameters")
            qubits = [self.expect_ident("a qubit argument name").value]
            while self.accept(","):
                qubits.append(self.expect_ident("a qubit argument name").value)
            self.expect("{", "to open the gate body")
            body = []
            while not self.at("}"):
                if self.tok.kind == "eof":
                    raise self.error(f"expected '}}' to close gate '{name.value}', found end of input")
                st = self.statement(top=False)
                if st is None:
                    continue
                if not isinstance(st, _Call):
                    raise QasmError(f"only gate calls are allowed in the body of gate '{name.value}'",
                                    st.tok.line, st.tok.col)
                body.append(st)
            self.advance()
            return _GateDef(name.value, params, qubits, body, name)
        if kw == "measure":
            self.advance()
            q = self.operand()
            target = None
            if self.accept("->"):
                target = self.operand()
            self.expect(";", "the measurement")
            return _Measure(q, target, t)
        if kw == "reset":
            self.advance()
            op = self.operand()
            self.expect(";", "reset")
            return _Reset(op, t)
        if kw in ("barrier", "delay"):
            self.advance()
            if kw == "delay":
                self.expect("[", "after delay")
                while not self.at("]"):
                    if self.tok.kind == "eof":
                        raise self.error("expected ']' to close the delay duration")
                    self.advance()
                self.advance()
            if not self.at(";"):
                self.operands()
            self.expect(";", kw)
            return None
        if kw == "if":
            self.advance()
            self.expect("(", "after if")
            cond = self.expression()
            self.expect(")", "to close the if condition")
            then = self.block_or_statement()
            orelse = None
            if self.accept("else", "id"):
                orelse = self.block_or_statement()
            return _If(cond, then, orelse, t)
        if kw == "box":
            self.advance()
            if self.at("["):
                while not self.at("]"):
                    self.advance()
                self.advance()
            if not self.at("{"):
                raise self.error("expected '{' after box")
            return _Box(self.block_or_statement(), t)
        if kw in _UNSUPPORTED:
            raise QasmError(f"unsupported OpenQASM 3 statement '{kw}'", t.line, t.col)
        # assignment: c[0] = measure q[0];  or c = measure q;
        nxt = self.peek()
        if nxt.kind == "op" and nxt.value in ("=", "["):
            target = self.operand()
            if not self.accept("="):
                raise self.error(f"expected '=' in an assignment, found {self.tok.show()}")
            if not self.accept("measure", "id"):
                raise self.error("only measurement results can be assigned (c[0] = measure q[0];)")
            q = self.operand()
            self.expect(";", "the measurement")
            return _Measure(q, target, t)
        return self.gate_call()

    def gate_call(self) -> _Call:
        mods = []
        while self.tok.kind == "id" and self.tok.value in ("ctrl", "negctrl", "inv", "pow") and (
                self.peek().kind == "op" and self.peek().value in ("@", "(")):
            mt = self.advance()
            arg = None
            if self.accept("("):
                arg = self.expression()
                self.expect(")", f"after the {mt.value} argument")
            elif mt.value == "pow":
                raise self.error("pow needs an exponent: pow(k) @")
            self.expect("@", f"after the {mt.value} modifier")
            mods.append((mt.value, arg, mt))
        name = self.expect_ident("a gate name")
        args = []
        if self.accept("("):
            if not self.at(")"):
                args.append(self.expression())
                while self.accept(","):
                    args.append(self.expression())
            self.expect(")", f"to close the arguments of {name.value}")
        if name.value == "gphase" and self.at(";"):
            operands = []
        else:
            if self.tok.kind not in ("id", "hwq"):
                raise self.error(f"expected qubit operands for gate '{name.value}', found {self.tok.show()}")
            operands = self.operands()
        self.expect(";", f"the call of gate '{name.value}'")
        return _Call(mods, name.value, args, operands, name)


# ---------------------------------------------------------------------------
# interpreter


@dataclass
class _Reg:
    offset: int
    size: int
    single: bool  # declared without a size (qubit q;)


@dataclass
class _State:
    qregs: dict = field(default_factory=dict)
    cregs: dict = field(default_factory=dict)
    n_qubits: int = 0
    n_clbits: int = 0
    hw_max: int = -1
    gates: dict = field(default_factory=dict)
    consts: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # name -> Expr
    ops: list = field(default_factory=list)  # (op, tok)


def _qerr(msg: str, tok: Token) -> QasmError:
    return QasmError(msg, tok.line, tok.col)


class _Interpreter:
    def __init__(self, st: _State):
        self.st = st

    # -- names --------------------------------------------------------------
    def resolve_top(self, name: str, tok: Token) -> Expr:
        if name in self.st.consts:
            return self.st.consts[name]
        if name in self.st.params:
            return self.st.params[name]
        raise _qerr(f"undeclared identifier '{name}' in an expression (declare it with 'input float[64] {name};')",
                    tok)

    def const_int(self, node, what: str) -> int:
        e = build_expr(node, self.resolve_top)
        if not isinstance(e, Const) or float(e.value) != int(e.value):
            raise _qerr(f"{what} must be a constant integer", node[-1])
        return int(e.value)

    # -- operands --------------------------------------------------------------
    def _bits(self, operand, quantum: bool) -> list[int]:
        regs = self.st.qregs if quantum else self.st.cregs
        what = "qubit" if quantum else "bit"
        kind = operand[0]
        if kind == "hw":
            if not quantum:
                raise _qerr("physical qubits cannot be used as classical bits", operand[-1])
            if self.st.qregs:
                raise _qerr("physical qubits ($n) cannot be mixed with declared qubit registers", operand[-1])
            self.st.hw_max = max(self.st.hw_max, operand[1])
            return [operand[1]]
        name, tok = operand[1], operand[-1]
        if name not in regs:
            other = self.st.cregs if quantum else self.st.qregs
            hint = f" ('{name}' is a {'bit' if quantum else 'qubit'} register)" if name in other else ""
            raise _qerr(f"undeclared {what} register '{name}'{hint}", tok)
        reg = regs[name]
        if kind == "reg":
            return list(range(reg.offset, reg.offset + reg.size))
        if kind == "bit":
            i = self.const_int(operand[2], f"the index of {name}[...]")
            j = i + reg.size if i < 0 else i
            if not 0 <= j < reg.size:
                raise _qerr(f"{what} index {i} is out of range for register '{name}' of size {reg.size}", tok)
            return [reg.offset + j]
        # slice (inclusive stop, as in OpenQASM 3)
        a = self.const_int(operand[2], "a slice bound")
        if operand[4] is not None:
            step, b = self.const_int(operand[3], "a slice step"), self.const_int(operand[4], "a slice bound")
        else:
            step, b = 1, self.const_int(operand[3], "a slice bound")
        idx = list(range(a, b + (1 if step > 0 else -1), step)) if step else []
        for i in idx:
            if not 0 <= i < reg.size:
                raise _qerr(f"{what} index {i} is out of range for register '{name}' of size {reg.size}", tok)
        return [reg.offset + i for i in idx]

    def _broadcast(self, groups: list[list[int]], tok: Token, what: str) -> list[list[int]]:
        sizes = {len(g) for g in groups if len(g) != 1}
        if len(sizes) > 1:
            raise _qerr(f"{what}: registers of different sizes {sorted(sizes)} cannot be broadcast together", tok)
        n = sizes.pop() if sizes else 1
        return [[g[0] if len(g) == 1 else g[i] for g in groups] for i in range(n)]

    # -- gates -------------------------------------------------------------------
    def expand_call(self, call: _Call, resolve, wires_of) -> list[list[Gate]]:
        """Gate lists for one call (one list per broadcast instance)."""
        tok = call.tok
        params = [build_expr(a, resolve) for a in call.args]
        n_ctrl = 0
        mods = []
        for kind, arg, mt in call.modifiers:
            if kind in ("ctrl", "negctrl"):
                k = 1 if arg is None else self._mod_int(arg, resolve, f"the {kind} count")
                if k < 1:
                    raise _qerr(f"{kind}({k}) needs a positive count", mt)
                mods.append((kind, k, mt))
                n_ctrl += k
            elif kind == "inv":
                mods.append((kind, None, mt))
            else:
                mods.append((kind, self._mod_int(arg, resolve, "the pow exponent"), mt))
        groups = wires_of(call.operands)
        user = self.st.gates.get(call.name)
        if user is not None:
            n_par, n_q = len(user.params), len(user.qubits)
        elif call.name in QASM_GATES:
            n_par, n_q = QASM_GATES[call.name][:2]
        else:
            raise _qerr(f"unknown gate '{call.name}'", tok)
        if len(params) != n_par:
            raise _qerr(f"gate '{call.name}' takes {n_par} parameter(s), got {len(params)}", tok)
        if len(groups) != n_q + n_ctrl:
            extra = f" plus {n_ctrl} control(s)" if n_ctrl else ""
            raise _qerr(f"gate '{call.name}' acts on {n_q} qubit(s){extra}, got {len(groups)}", tok)
        out = []
        for wires in self._broadcast(groups, tok, f"gate '{call.name}'"):
            if len(set(wires)) != len(wires):
                raise _qerr(f"gate '{call.name}' repeats a qubit in its operands", tok)
            ctrl_wires, targets = wires[:n_ctrl], wires[n_ctrl:]
            try:
                if user is not None:
                    ops = self.expand_user(user, params, targets, tok)
                else:
                    ops = QASM_GATES[call.name][2](params, targets)
                pos = len(ctrl_wires)
                for kind, k, mt in reversed(mods):
                    if kind == "inv":
                        ops = [invert(g) for g in reversed(ops)]
                    elif kind == "pow":
                        base = ops if k >= 0 else [invert(g) for g in reversed(ops)]
                        ops = base * abs(k)
                    else:
                        cws = ctrl_wires[pos - k:pos]
                        pos -= k
                        for c in reversed(cws):
                            ops = [h for g in ops for h in control(g, c)]
                            if kind == "negctrl":
                                ops = [Gate("x", (c,))] + ops + [Gate("x", (c,))]
            except CircuitError as err:
                if isinstance(err, QasmError):
                    raise
                raise _qerr(str(err), tok) from None
            out.append(ops)
        return out

    def _mod_int(self, node, resolve, what) -> int:
        e = build_expr(node, resolve)
        if not isinstance(e, Const) or float(e.value) != int(e.value):
            raise _qerr(f"{what} must be a constant integer", node[-1])
        return int(e.value)

    def expand_user(self, gdef: _GateDef, params: list[Expr], wires: list[int], tok: Token,
                    depth: int = 0) -> list[Gate]:
        if depth > 64:
            raise _qerr(f"gate '{gdef.name}' is defined recursively", tok)
        env = dict(zip(gdef.params, params))
        qenv = dict(zip(gdef.qubits, wires))

        def resolve(name, t):
            if name in env:
                return env[name]
            if name in self.st.consts:
                return self.st.consts[name]
            raise _qerr(f"undeclared identifier '{name}' in the body of gate '{gdef.name}'", t)

        def wires_of(operands):
            out = []
            for o in operands:
                if o[0] != "reg" or o[1] not in qenv:
                    raise _qerr(f"gate '{gdef.name}' uses '{o[1]}', which is not one of its qubit arguments "
                                f"({', '.join(gdef.qubits)})", o[-1])
                out.append([qenv[o[1]]])
            return out

        ops: list[Gate] = []
        for call in gdef.body:
            inner = self.st.gates.get(call.name)
            if inner is gdef:
                raise _qerr(f"gate '{gdef.name}' calls itself", call.tok)
            for group in self.expand_call(call, resolve, wires_of):
                ops.extend(group)
        return ops

    # -- conditions --------------------------------------------------------------
    def condition(self, node) -> list[Condition]:
        """Disjoint conditions whose union is the ``if`` condition."""
        kind, tok = node[0], node[-1]
        if kind in ("name", "index"):
            bits = self._cbits_of(node)
            if len(bits) == 1:
                return [Condition(tuple(bits), 1)]
            return _complement([Condition(tuple(bits), 0)])
        if kind == "not":
            return _complement(self.condition(node[1]))
        if kind == "bin":
            op = node[1]
            if op == "&&":
                out = []
                for a in self.condition(node[2]):
                    for b in self.condition(node[3]):
                        m = merge_conditions(a, b)
                        if m is not NEVER:
                            out.append(m)
                return out
            if op in ("==", "!="):
                left, right = node[2], node[3]
                if left[0] not in ("name", "index") or left[1] in ("true", "false"):
                    left, right = right, left
                bits = self._cbits_of(left)
                value = self._cond_value(right)
                if not 0 <= value < 2 ** len(bits):
                    cond = []  # never equal
                else:
                    cond = [Condition(tuple(bits), value)]
                return cond if op == "==" else _complement(cond, bits)
            raise _qerr(f"operator '{op}' is not supported in an if condition (use ==, !=, !, &&)", tok)
        raise _qerr("unsupported if condition; use c[i], !c[i], c == value, c != value or &&", tok)

    def _cbits_of(self, node) -> list[int]:
        if node[0] == "name":
            return self._bits(("reg", node[1], node[-1]), quantum=False)
        if node[0] == "index":
            return self._bits(("bit", node[1], node[2], node[-1]), quantum=False)
        raise _qerr("an if condition must compare a bit or a bit register", node[-1])

    def _cond_value(self, node) -> int:
        if node[0] == "name" and node[1] in ("true", "false"):
            return int(node[1] == "true")
        return self.const_int(node, "the value in an if condition")

    # -- statements ------------------------------------------------------------
    def run(self, stmts: list, cond: list | None):
        """Execute statements; ``cond`` is a list of disjoint conditions (None = unconditional)."""
        st = self.st
        for s in stmts:
            if isinstance(s, _Decl):
                if cond is not None:
                    raise _qerr("declarations are not allowed inside an if block", s.tok)
                size = 1 if s.size is None else self.const_int(s.size, "a register size")
                if size < 1:
                    raise _qerr(f"register '{s.name}' must have a positive size, got {size}", s.tok)
                if s.name in st.qregs or s.name in st.cregs or s.name in st.params or s.name in st.consts:
                    raise _qerr(f"'{s.name}' is already declared", s.tok)
                if s.kind == "qubit":
                    if st.hw_max >= 0:
                        raise _qerr("qubit registers cannot be declared after physical qubits ($n) were used", s.tok)
                    st.qregs[s.name] = _Reg(st.n_qubits, size, s.size is None)
                    st.n_qubits += size
                else:
                    st.cregs[s.name] = _Reg(st.n_clbits, size, s.size is None)
                    st.n_clbits += size
            elif isinstance(s, _Input):
                pass  # handled before the run
            elif isinstance(s, _Const):
                if s.name in st.consts or s.name in st.params:
                    raise _qerr(f"'{s.name}' is already declared", s.tok)
                e = build_expr(s.expr, self.resolve_top)
                if not isinstance(e, Const):
                    raise _qerr(f"const '{s.name}' must have a constant value", s.tok)
                st.consts[s.name] = e
            elif isinstance(s, _GateDef):
                if s.name in st.gates:
                    raise _qerr(f"gate '{s.name}' is already defined", s.tok)
                if len(set(s.qubits)) != len(s.qubits) or len(set(s.params)) != len(s.params):
                    raise _qerr(f"gate '{s.name}' repeats an argument name", s.tok)
                if not self._same_as_builtin(s):
                    st.gates[s.name] = s
            elif isinstance(s, _Call):
                groups = self.expand_call(s, self.resolve_top,
                                          lambda ops: [self._bits(o, True) for o in ops])
                for group in groups:
                    for g in group:
                        if g.name == "gphase":
                            continue  # global phase: unobservable
                        for c in (cond or [None]):
                            st.ops.append((Gate(g.name, g.wires, g.params, g.matrix, c), s.tok))
            elif isinstance(s, _Measure):
                if cond is not None:
                    raise _qerr("measurement inside an if block is not supported (qlstm measurements "
                                "are unconditional)", s.tok)
                if s.target is None:
                    raise _qerr("a measurement needs a target bit: 'c[0] = measure q[0];' or "
                                "'measure q[0] -> c[0];'", s.tok)
                qs = self._bits(s.qubit, True)
                cs = self._bits(s.target, False)
                if len(qs) != len(cs):
                    raise _qerr(f"measuring {len(qs)} qubit(s) into {len(cs)} bit(s)", s.tok)
                for q, c in zip(qs, cs):
                    st.ops.append((Measure(q, c), s.tok))
            elif isinstance(s, _Reset):
                for q in self._bits(s.operand, True):
                    for c in (cond or [None]):
                        st.ops.append((Reset(q, c), s.tok))
            elif isinstance(s, _If):
                then_c = self.condition(s.cond)
                else_c = _complement(then_c) if s.orelse is not None else []
                for branch, conds in ((s.then, then_c), (s.orelse or [], else_c)):
                    merged = []
                    for outer in (cond or [None]):
                        for inner in conds:
                            m = merge_conditions(outer, inner)
                            if m is not NEVER:
                                merged.append(m)
                    if merged:
                        self.run(branch, merged)
                    else:
                        self._check_only(branch)
            elif isinstance(s, _Box):
                self.run(s.body, cond)
            else:  # pragma: no cover
                raise QasmError(f"internal: unknown statement {s!r}")

    def _same_as_builtin(self, gdef: _GateDef) -> bool:
        """Whether a definition of a standard gate name (Qiskit writes ``gate rzz ...``) is that gate.

        Then the built-in (one qlstm gate) is used instead of the expanded body.
        Checked numerically, global phase included, at two sets of random angles.
        """
        spec = QASM_GATES.get(gdef.name)
        if spec is None or spec[0] != len(gdef.params) or spec[1] != len(gdef.qubits) or not gdef.qubits:
            return False
        k = len(gdef.qubits)
        rng = _random.Random(1234)
        try:
            for _ in range(2):
                params = [Const(rng.uniform(-3, 3)) for _ in gdef.params]
                mine = _ops_matrix(self.expand_user(gdef, params, list(range(k)), gdef.tok), k)
                ref = _ops_matrix(spec[2](params, list(range(k))), k)
                if not torch.allclose(mine, ref, atol=1e-10):
                    return False
        except (CircuitError, ValueError):
            return False
        return True

    def _check_only(self, stmts):
        """A branch that can never run: still reject what we could not run."""
        for s in stmts:
            if isinstance(s, _Measure):
                raise _qerr("measurement inside an if block is not supported", s.tok)


def _ops_matrix(ops: list[Gate], k: int) -> torch.Tensor:
    """Matrix of a list of constant gates on wires ``0..k-1`` (global phase gates included)."""
    from ..sim import kernels as K

    from ._gates import const_matrix

    u = torch.eye(2 ** k, dtype=torch.complex128)  # rows: U|i> as they evolve
    for g in ops:
        m = const_matrix(g)
        if g.name == "gphase":
            u = u * m[0, 0]
        else:
            u = K.apply_matrix(u, m, list(g.wires), k)
    return u.T


def _parse_program(text: str):
    if not isinstance(text, str):
        raise TypeError(f"loads() needs OpenQASM text (a str), got {type(text).__name__}")
    p = _Parser(text)
    return p.program()


def loads(text: str, *, input_params: Sequence[str] | None = None, weight_params: Sequence[str] | None = None,
          bindings: Mapping[str, float] | None = None, return_mapping: bool = False, name: str | None = None):
    """Parse OpenQASM 3 text into a :class:`~qlstm.circuit.Circuit` (see the module docstring).

    Args:
        text: the program.
        input_params: names of the ``input`` parameters that are data inputs, in
            order (``input_params[i]`` becomes ``x_i``); default: names like
            ``x_i`` / ``_x_i_`` / ``x[i]``.
        weight_params: names of the weights in order; default: ``w_i``-like
            names keep ``i``, the rest follow in natural sorted order.
        bindings: ``{name: value}`` -- fix these ``input`` parameters to numbers.
        return_mapping: also return ``{name: ("weight" | "input", index)}``
            for the parameters that were not bound.
        name: the circuit's name.

    Raises:
        QasmError: malformed or unsupported OpenQASM, with the line number.
    """
    stmts = _parse_program(text)
    st = _State()
    declared: list[str] = []
    toks: dict[str, Token] = {}
    for s in stmts:
        if isinstance(s, _Input):
            if s.name in toks:
                raise _qerr(f"input '{s.name}' is already declared", s.tok)
            declared.append(s.name)
            toks[s.name] = s.tok
    bindings = dict(bindings or {})
    for k in bindings:
        if k not in toks:
            raise QasmError(f"binding for '{k}', which is not an input of the program "
                            f"(inputs: {', '.join(declared) or 'none'})")
    free = [n for n in declared if n not in bindings]
    try:
        mapping = classify(free, input_params, weight_params)
    except CircuitError as err:
        raise QasmError(str(err)) from None
    if input_params is not None:
        unknown = [n for n in input_params if n not in toks]
        if unknown:
            raise QasmError(f"input_params names {unknown} are not declared as inputs")
    for n in declared:
        if n in bindings:
            v = float(bindings[n])
            if not math.isfinite(v):
                raise InputError(f"binding for {n!r} must be finite, got {v}")
            st.params[n] = Const(v)
        else:
            kind, i = mapping[n]
            st.params[n] = Weight(i) if kind == "weight" else Input(i)
    mapping = {n: mapping[n] for n in free}
    _Interpreter(st).run(stmts, None)

    n_qubits = st.n_qubits if st.qregs else st.hw_max + 1
    if n_qubits < 1:
        raise QasmError("the program declares no qubits")
    circ = Circuit(n_qubits, name=name or "qasm")
    circ.n_clbits = st.n_clbits
    circ.n_weights = 1 + max((i for k, i in mapping.values() if k == "weight"), default=-1)
    circ.n_inputs = 1 + max((i for k, i in mapping.values() if k == "input"), default=-1)
    for op, tok in st.ops:
        try:
            circ.append(op)
        except CircuitError as err:
            raise QasmError(str(err), tok.line, tok.col) from None
    return (circ, mapping) if return_mapping else circ


def load(path, **kwargs):
    """:func:`loads` on the contents of a file (the circuit is named after the file)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    kwargs.setdefault("name", os.path.splitext(os.path.basename(str(path)))[0])
    return loads(text, **kwargs)


# ---------------------------------------------------------------------------
# writer

_FIXED_NAMES = {"i": "id", "h": "h", "x": "x", "y": "y", "z": "z", "s": "s", "sdg": "sdg", "t": "t", "tdg": "tdg",
                "sx": "sx", "cnot": "cx", "cy": "cy", "cz": "cz", "swap": "swap", "toffoli": "ccx"}
_PARAM_NAMES = {"rx": "rx", "ry": "ry", "rz": "rz", "phaseshift": "p", "u3": "u3", "crx": "crx", "cry": "cry",
                "crz": "crz", "cphase": "cp", "isingxx": "rxx", "isingyy": "ryy", "isingzz": "rzz"}
_DEFINITIONS = {
    "rxx": "gate rxx(theta) a, b {\n  h a;\n  h b;\n  cx a, b;\n  rz(theta) b;\n  cx a, b;\n  h a;\n  h b;\n}",
    "ryy": ("gate ryy(theta) a, b {\n  rx(pi/2) a;\n  rx(pi/2) b;\n  cx a, b;\n  rz(theta) b;\n  cx a, b;\n"
            "  rx(-pi/2) a;\n  rx(-pi/2) b;\n}"),
    "rzz": "gate rzz(theta) a, b {\n  cx a, b;\n  rz(theta) b;\n  cx a, b;\n}",
}


def _subst(e: Expr, weights, inputs) -> Expr:
    if isinstance(e, Weight) and weights is not None:
        return Const(float(weights[e.index]))
    if isinstance(e, Input) and inputs is not None:
        return Const(float(inputs[e.index]))
    try:
        if isinstance(e, Func):
            return fold(Func(e.name, _subst(e.arg, weights, inputs)))
        if isinstance(e, BinOp):
            return fold(BinOp(e.op, _subst(e.left, weights, inputs), _subst(e.right, weights, inputs)))
    except ValueError as err:  # e.g. ln of a negative bound value
        raise InputError(f"bound parameter value: {err}") from None
    return e


def _zyz(m: torch.Tensor) -> tuple[float, float, float]:
    """``(theta, phi, lam)`` with ``m = e^{i alpha} U3(theta, phi, lam)``."""
    m = m.to(torch.complex128)
    a, b, c, d = (complex(m[0, 0]), complex(m[0, 1]), complex(m[1, 0]), complex(m[1, 1]))
    theta = 2 * math.atan2(abs(c), abs(a))
    if abs(a) > 1e-12:
        alpha = math.atan2(a.imag, a.real)
        if abs(c) > 1e-12:
            phi = math.atan2(c.imag, c.real) - alpha
            lam = math.atan2((-b).imag, (-b).real) - alpha
        else:
            phi, lam = 0.0, math.atan2(d.imag, d.real) - alpha
    else:
        lam = 0.0
        alpha = math.atan2((-b).imag, (-b).real)
        phi = math.atan2(c.imag, c.real) - alpha
    return theta, phi, lam


def _as_list(values, n: int, what: str):
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float64).detach().reshape(-1)
    if t.numel() != n:
        raise InputError(f"{what} needs {n} value(s), got {t.numel()}")
    return t.tolist()


def dumps(circuit: Circuit, *, bind_weights=None, bind_inputs=None) -> str:
    """The circuit as OpenQASM 3 text (see the module docstring).

    Args:
        circuit: the circuit.
        bind_weights: optional ``[n_weights]`` values written in place of ``w_i``.
        bind_inputs: optional ``[n_inputs]`` values (one sample) written in place
            of ``x_i``; needed for amplitude encodings.

    Raises:
        CircuitError: noise channels, unitaries on several wires, or an
            amplitude encoding without ``bind_inputs``.
    """
    w = _as_list(bind_weights, circuit.n_weights, "bind_weights")
    x = _as_list(bind_inputs, circuit.n_inputs, "bind_inputs")
    body: list[tuple[Condition | None, str]] = []
    used_defs: set[str] = set()

    def fmt(e: Expr) -> str:
        return format_expr(_subst(e, w, x))

    def gate_lines(g: Gate) -> list[str]:
        ws = [f"q[{i}]" for i in g.wires]
        q = ", ".join(ws)
        n = g.name
        if n in _FIXED_NAMES:
            return [f"{_FIXED_NAMES[n]} {q};"]
        if n in _PARAM_NAMES:
            qn = _PARAM_NAMES[n]
            if qn in _DEFINITIONS:
                used_defs.add(qn)
            return [f"{qn}({', '.join(fmt(p) for p in g.params)}) {q};"]
        if n == "rot":
            phi, th, om = (fmt(p) for p in g.params)
            return [f"rz({phi}) {q};", f"ry({th}) {q};", f"rz({om}) {q};"]
        if n == "crot":
            phi, th, om = (fmt(p) for p in g.params)
            return [f"crz({phi}) {q};", f"cry({th}) {q};", f"crz({om}) {q};"]
        if n == "unitary":
            if len(g.wires) != 1:
                raise CircuitError(
                    f"a unitary on {len(g.wires)} wires has no OpenQASM 3 form here; export it with "
                    "qlstm.interop.to_qiskit and write it with qiskit.qasm3.dumps")
            th, ph, la = _zyz(g.matrix)
            return [f"U({format_expr(Const(th))}, {format_expr(Const(ph))}, {format_expr(Const(la))}) {q};"]
        raise CircuitError(f"gate {n!r} has no OpenQASM 3 form")  # pragma: no cover

    for op in circuit.ops:
        if isinstance(op, Gate):
            for line in gate_lines(op):
                body.append((op.condition, line))
        elif isinstance(op, Measure):
            body.append((None, f"c[{op.clbit}] = measure q[{op.wire}];"))
            if op.reset:
                body.append((None, f"reset q[{op.wire}];"))
        elif isinstance(op, Reset):
            body.append((op.condition, f"reset q[{op.wire}];"))
        elif isinstance(op, Channel):
            raise CircuitError("noise channels have no OpenQASM 3 form; strip them or export to Qiskit with "
                               "qiskit-aer (qlstm.interop.to_qiskit)")
        elif isinstance(op, AmplitudeEncoding):
            if x is None:
                raise CircuitError("amplitude encoding of symbolic inputs cannot be exported to OpenQASM 3; pass "
                                   "bind_inputs=[...] (one sample) to write it as a state preparation")
            amp = _amplitudes(op, x)
            for g in state_prep_ry(amp, op.wires):
                body.extend((None, line) for line in gate_lines(g))
        else:  # pragma: no cover
            raise CircuitError(f"cannot write operation {op!r}")

    label = " ".join(str(circuit.name).split())
    out = ["OPENQASM 3.0;", 'include "stdgates.inc";', f"// qlstm circuit '{label}': wire w is q[w], clbit k is c[k]"]
    if circuit.observables:
        out.append("// observables: " + " ".join(o.label() for o in circuit.observables))
    if w is None:
        out += [f"input float[64] w_{i};" for i in range(circuit.n_weights)]
    if x is None:
        out += [f"input float[64] x_{i};" for i in range(circuit.n_inputs)]
    for name in ("rxx", "ryy", "rzz"):
        if name in used_defs:
            out.append(_DEFINITIONS[name])
    if circuit.n_clbits:
        out.append(f"bit[{circuit.n_clbits}] c;")
    out.append(f"qubit[{circuit.n_qubits}] q;")
    nc = circuit.n_clbits
    i = 0
    while i < len(body):
        cond, line = body[i]
        if cond is None:
            out.append(line)
            i += 1
            continue
        j = i
        lines = []
        while j < len(body) and body[j][0] == cond:
            lines.append(body[j][1])
            j += 1
        if len(cond.clbits) > 1 and cond.clbits == tuple(range(nc)):
            heads = [f"if (c == {cond.value}) {{"]
        else:
            heads = [f"if ({'' if (cond.value >> k) & 1 else '!'}c[{b}]) {{" for k, b in enumerate(cond.clbits)]
        for depth, h in enumerate(heads):
            out.append("  " * depth + h)
        out += ["  " * len(heads) + ln for ln in lines]
        for depth in range(len(heads) - 1, -1, -1):
            out.append("  " * depth + "}")
        i = j
    return "\n".join(out) + "\n"


def _amplitudes(op: AmplitudeEncoding, x: list[float]) -> list[float]:
    a = [float(x[i]) for i in op.inputs]
    norm = math.sqrt(sum(v * v for v in a))
    if norm == 0:
        raise InputError("amplitude encoding got a zero vector; it cannot be prepared")
    if not op.normalize and abs(norm - 1) > 1e-6:
        raise InputError(f"amplitude encoding with normalize=False got norm {norm:.6g}")
    return a


def dump(circuit: Circuit, path, **kwargs) -> None:
    """Write :func:`dumps` to a file."""
    text = dumps(circuit, **kwargs)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------------------
# running a file


def simulate_qasm_file(path, shots: int | None = None, seed: int | None = None,
                       bindings: Mapping[str, float] | None = None) -> dict[str, float]:
    """Load an OpenQASM 3 file, simulate it with :func:`qlstm.run`, return ``{bitstring: probability}``.

    Bitstrings are in Qiskit's order (classical bit 0 rightmost) over all
    declared classical bits. A program without classical bits is read as if
    every qubit were measured at the end into bit ``k = qubit k`` (Qiskit's
    ``measure_all``), so the bitstring is then over the qubits, qubit 0
    rightmost. ``shots=None`` gives exact probabilities (only outcomes with
    probability > 0 are listed); ``shots=N`` gives frequencies of ``N``
    samples drawn with a ``torch.Generator`` seeded with ``seed``.

    Args:
        bindings: values of the program's ``input`` parameters; every declared
            input must be bound.

    Raises:
        InputError: the program declares inputs that are not bound.
        QasmError: the file is not valid or supported OpenQASM 3.
    """
    from ..circuit.execute import run

    with open(path, encoding="utf-8") as f:
        text = f.read()
    stmts = _parse_program(text)
    declared = [s.name for s in stmts if isinstance(s, _Input)]
    missing = [n for n in declared if n not in (bindings or {})]
    if missing:
        raise InputError(
            f"{os.path.basename(str(path))} declares input parameter(s) {', '.join(missing)}; they must be bound "
            "to numbers to simulate it: pass bindings={name: value, ...}")
    circ = loads(text, bindings=bindings, name=os.path.splitext(os.path.basename(str(path)))[0])
    if circ.n_clbits == 0:
        circ.measure_all()
    gen = None
    if shots is not None:
        gen = torch.Generator()
        if seed is not None:
            gen.manual_seed(int(seed))
    res = run(circ, shots=shots, generator=gen, dtype=torch.float64)
    probs = res.clbit_probs[0].detach().cpu().tolist()
    n = circ.n_clbits
    return {format(i, f"0{n}b"): float(p) for i, p in enumerate(probs) if p > 0}
