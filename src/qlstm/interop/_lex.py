"""Tokens and angle expressions, shared by the OpenQASM 3 reader/writer and the Qiskit bridge.

Pure Python: nothing here imports qiskit.

* :func:`tokenize` -- OpenQASM 3 text (also a Qiskit ``ParameterExpression``
  string) into :class:`Token` s with line and column numbers.
* :class:`ExprParser` -- a Pratt parser for angle expressions, giving a small
  tuple AST that :func:`build_expr` turns into a qlstm
  :class:`~qlstm.circuit.expr.Expr` once the names are known (constants are
  folded on the way).
* :func:`format_expr` -- a qlstm expression as OpenQASM 3 text that reads back
  to the same float64 value (17 significant digits, parentheses kept where the
  evaluation order matters).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

from ..circuit.expr import BinOp, Const, Expr, Func, Input, Weight
from ..errors import CircuitError

__all__ = ["QasmError", "Token", "tokenize", "ExprParser", "build_expr", "format_expr", "fold"]


class QasmError(CircuitError):
    """Malformed or unsupported OpenQASM 3 (or a Qiskit expression that has no qlstm form).

    Attributes:
        line: 1-based line number of the offending text, or None.
        column: 1-based column, or None.
    """

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.line, self.column = line, column
        where = f"line {line}" + (f", column {column}" if column else "") + ": " if line else ""
        super().__init__(where + message)


@dataclass(frozen=True)
class Token:
    kind: str  # 'num', 'int', 'id', 'str', 'op', 'hwq', 'dur', 'eof'
    value: object
    line: int
    col: int

    def show(self) -> str:
        if self.kind == "eof":
            return "end of input"
        if self.kind == "str":
            return f'"{self.value}"'
        return f"'{self.value}'"


_OPS3 = ("**=", "<<=", ">>=")
_OPS2 = ("**", "==", "!=", "<=", ">=", "&&", "||", "->", "<<", ">>", "++", "+=", "-=", "*=", "/=", "&=", "|=", "^=")
_OPS1 = set("+-*/%^()[]{},;:=<>!~@&|.")
_NUM = re.compile(r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?")
_INT_BASE = re.compile(r"0[bB][01_]+|0[xX][0-9a-fA-F_]+|0[oO][0-7_]+")
_IDENT = re.compile(r"[^\W\d]\w*")
_DUR = re.compile(r"(dt|ns|us|µs|ms|s)(?!\w)")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; comments, ``pragma`` lines and annotations are dropped."""
    toks: list[Token] = []
    i, line, line_start = 0, 1, 0
    n = len(text)
    at_stmt_start = True
    while i < n:
        ch = text[i]
        col = i - line_start + 1
        if ch == "\n":
            line += 1
            line_start = i + 1
            i += 1
            continue
        if ch in " \t\r\f\v":
            i += 1
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise QasmError("unterminated /* comment", line, col)
            chunk = text[i:j + 2]
            line += chunk.count("\n")
            if "\n" in chunk:
                line_start = i + chunk.rfind("\n") + 1
            i = j + 2
            continue
        if at_stmt_start and (text.startswith("#pragma", i) or text.startswith("pragma", i) or ch == "@"):
            if ch == "@" or re.match(r"#?pragma\b", text[i:]):
                j = text.find("\n", i)
                i = n if j < 0 else j
                continue
        m = _INT_BASE.match(text, i)
        if m:
            s = m.group().replace("_", "")
            toks.append(Token("int", int(s, 0), line, col))
            i = m.end()
            at_stmt_start = False
            continue
        m = _NUM.match(text, i)
        if m:
            s = m.group().replace("_", "")
            d = _DUR.match(text, m.end())
            if d:
                toks.append(Token("dur", s + d.group(1), line, col))
                i = d.end()
            elif re.fullmatch(r"\d+", s):
                toks.append(Token("int", int(s), line, col))
                i = m.end()
            else:
                toks.append(Token("num", float(s), line, col))
                i = m.end()
            at_stmt_start = False
            continue
        m = _IDENT.match(text, i)
        if m:
            toks.append(Token("id", m.group(), line, col))
            i = m.end()
            at_stmt_start = False
            continue
        if ch == "$":
            m = re.compile(r"\$(\d+)").match(text, i)
            if not m:
                raise QasmError("'$' must be followed by a physical qubit number", line, col)
            toks.append(Token("hwq", int(m.group(1)), line, col))
            i = m.end()
            at_stmt_start = False
            continue
        if ch in "\"'":
            j = text.find(ch, i + 1)
            if j < 0 or "\n" in text[i:j]:
                raise QasmError("unterminated string", line, col)
            toks.append(Token("str", text[i + 1:j], line, col))
            i = j + 1
            at_stmt_start = False
            continue
        for group in (_OPS3, _OPS2):
            op = next((o for o in group if text.startswith(o, i)), None)
            if op:
                break
        else:
            op = ch if ch in _OPS1 else None
        if op is None:
            raise QasmError(f"unexpected character {ch!r}", line, col)
        toks.append(Token("op", op, line, col))
        i += len(op)
        at_stmt_start = op in (";", "{", "}")
    toks.append(Token("eof", None, line, i - line_start + 1))
    return toks


# ---------------------------------------------------------------------------
# expressions
#
# AST nodes (tuples, first item the node kind, last item the token for errors):
#   ("num", float, tok)            ("name", str, tok)          ("index", str, int, tok)
#   ("call", fname, [args], tok)   ("neg", e, tok)             ("not", e, tok)
#   ("bin", op, left, right, tok)

# binding powers: (left bp, right bp) for infix operators
_INFIX = {
    "||": (1, 2), "&&": (3, 4), "|": (5, 6), "^": (7, 8), "&": (9, 10),
    "==": (11, 12), "!=": (11, 12), "<": (13, 14), "<=": (13, 14), ">": (13, 14), ">=": (13, 14),
    "<<": (15, 16), ">>": (15, 16), "+": (17, 18), "-": (17, 18), "*": (19, 20), "/": (19, 20), "%": (19, 20),
    "**": (24, 23),  # right associative, tighter than unary minus
}
_UNARY_BP = 21


class ExprParser:
    """Recursive-descent (Pratt) parser over a token list; shared with the statement parser."""

    def __init__(self, toks: list[Token], *, caret_is_power: bool = False):
        self.toks = toks
        self.pos = 0
        self.caret_is_power = caret_is_power

    # -- cursor ---------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        t = self.toks[self.pos]
        if t.kind != "eof":
            self.pos += 1
        return t

    def prev(self) -> Token:
        return self.toks[max(self.pos - 1, 0)]

    def at(self, value, kind: str = "op") -> bool:
        return self.tok.kind == kind and self.tok.value == value

    def accept(self, value, kind: str = "op") -> bool:
        if self.at(value, kind):
            self.advance()
            return True
        return False

    def error(self, message: str, tok: Token | None = None) -> QasmError:
        tok = tok or self.tok
        return QasmError(message, tok.line, tok.col)

    def expect(self, value, what: str | None = None, kind: str = "op") -> Token:
        if not self.at(value, kind):
            if value == ";":
                p = self.prev()
                raise QasmError(f"expected ';' after {what or 'the statement'}, found {self.tok.show()}", p.line)
            raise self.error(f"expected '{value}'{' ' + what if what else ''}, found {self.tok.show()}")
        return self.advance()

    def expect_ident(self, what: str) -> Token:
        if self.tok.kind != "id":
            raise self.error(f"expected {what}, found {self.tok.show()}")
        return self.advance()

    # -- expressions -------------------------------------------------------------
    def expression(self, min_bp: int = 0):
        t = self.advance()
        if t.kind in ("num", "int"):
            left = ("num", float(t.value) if t.kind == "num" else int(t.value), t)
        elif t.kind == "id":
            if self.at("("):
                self.advance()
                args = []
                if not self.at(")"):
                    args.append(self.expression())
                    while self.accept(","):
                        args.append(self.expression())
                self.expect(")", f"to close the arguments of {t.value}()")
                left = ("call", t.value, args, t)
            elif self.at("["):
                self.advance()
                idx = self.expression()
                self.expect("]", "to close the index")
                left = ("index", t.value, idx, t)
            else:
                left = ("name", t.value, t)
        elif t.kind == "op" and t.value == "(":
            left = self.expression()
            self.expect(")", "to close '('")
        elif t.kind == "op" and t.value in ("-", "+"):
            arg = self.expression(_UNARY_BP)
            left = ("neg", arg, t) if t.value == "-" else arg
        elif t.kind == "op" and t.value in ("!", "~"):
            left = ("not", self.expression(_UNARY_BP), t)
        else:
            raise QasmError(f"expected an expression, found {t.show()}", t.line, t.col)
        while True:
            t = self.tok
            if t.kind != "op" or t.value not in _INFIX:
                break
            op = t.value
            if op == "^" and self.caret_is_power:
                op = "**"
            lbp, rbp = _INFIX[op]
            if lbp < min_bp:
                break
            self.advance()
            right = self.expression(rbp)
            left = ("bin", op, left, right, t)
        return left


# ---------------------------------------------------------------------------
# AST -> qlstm Expr

_CONSTANTS = {"pi": math.pi, "π": math.pi, "tau": math.tau, "τ": math.tau, "euler": math.e, "ℇ": math.e,
              "e": None}  # 'e' is not a constant in OpenQASM 3 (it is euler); kept out on purpose
_CONSTANTS.pop("e")

# OpenQASM 3 / Qiskit function names -> qlstm FUNCTIONS names
FUNC_ALIASES = {
    "atan": "atan", "arctan": "atan", "sin": "sin", "cos": "cos", "tan": "tan", "asin": "asin", "arcsin": "asin",
    "acos": "acos", "arccos": "acos", "exp": "exp", "ln": "ln", "log": "ln", "sqrt": "sqrt", "tanh": "tanh",
}
_MATH = {"atan": math.atan, "arctan": math.atan, "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
         "acos": math.acos, "exp": math.exp, "ln": math.log, "log": math.log, "sqrt": math.sqrt,
         "tanh": math.tanh, "neg": lambda v: -v}
_PYOPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
          "/": lambda a, b: a / b, "**": lambda a, b: a ** b}


def fold(e: Expr) -> Expr:
    """Constant-fold the top node of ``e`` (children are assumed folded already)."""
    try:
        if isinstance(e, Func) and isinstance(e.arg, Const):
            v = _MATH[e.name](float(e.arg.value))
        elif isinstance(e, BinOp) and isinstance(e.left, Const) and isinstance(e.right, Const):
            v = _PYOPS[e.op](float(e.left.value), float(e.right.value))
        else:
            return e
    except (ValueError, ZeroDivisionError, OverflowError) as err:
        raise ValueError(f"constant expression {e.to_str()} has no real value ({err})") from None
    if isinstance(v, complex) or not math.isfinite(v):
        raise ValueError(f"constant expression {e.to_str()} has no finite real value")
    return Const(float(v))


def build_expr(node, resolve: Callable[[str, Token], Expr], *, index_name: Callable[[str, int], str] | None = None
               ) -> Expr:
    """Turn an expression AST into a folded qlstm :class:`Expr`.

    ``resolve(name, tok)`` gives the expression of an identifier (parameter,
    constant, gate argument); ``x[3]`` is resolved as the name ``"x[3]"``.
    """

    def go(n) -> Expr:
        kind = n[0]
        tok = n[-1]
        try:
            if kind == "num":
                return Const(float(n[1]))
            if kind == "name":
                if n[1] in _CONSTANTS:
                    return Const(_CONSTANTS[n[1]])
                return resolve(n[1], tok)
            if kind == "index":
                idx = go(n[2])
                if not isinstance(idx, Const) or float(idx.value) != int(idx.value):
                    raise QasmError(f"index of {n[1]}[...] must be a constant integer", tok.line, tok.col)
                return resolve(f"{n[1]}[{int(idx.value)}]", tok)
            if kind == "neg":
                a = go(n[1])
                return Const(-float(a.value)) if isinstance(a, Const) else Func("neg", a)
            if kind == "call":
                fname, args = n[1], n[2]
                if fname == "pow" and len(args) == 2:
                    return fold(BinOp("**", go(args[0]), go(args[1])))
                key = FUNC_ALIASES.get(fname)
                if key is None:
                    raise QasmError(
                        f"unsupported function '{fname}' in an angle expression; supported: "
                        + ", ".join(sorted(set(FUNC_ALIASES) | {"pow"})), tok.line, tok.col)
                if len(args) != 1:
                    raise QasmError(f"function '{fname}' takes 1 argument, got {len(args)}", tok.line, tok.col)
                return fold(Func(key, go(args[0])))
            if kind == "bin":
                op = n[1]
                if op not in _PYOPS:
                    raise QasmError(f"operator '{op}' is not allowed in an angle expression"
                                    + ("; '^' is bitwise xor in OpenQASM 3, use '**' for powers" if op == "^" else ""),
                                    tok.line, tok.col)
                return fold(BinOp(op, go(n[2]), go(n[3])))
            if kind == "not":
                raise QasmError("'!'/'~' are not allowed in an angle expression", tok.line, tok.col)
        except ValueError as err:
            if isinstance(err, QasmError):
                raise
            raise QasmError(str(err), tok.line, tok.col) from None
        raise QasmError(f"unexpected expression node {kind!r}", tok.line, tok.col)  # pragma: no cover

    return go(node)


# ---------------------------------------------------------------------------
# qlstm Expr -> OpenQASM 3 text

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "**": 4}
_UNARY = 3
_ATOM = 5
_QASM_FUNC = {"atan": "arctan", "arctan": "arctan", "asin": "arcsin", "acos": "arccos", "ln": "log", "log": "log",
              "sin": "sin", "cos": "cos", "tan": "tan", "exp": "exp", "sqrt": "sqrt"}


def _const_text(v: float) -> tuple[str, int]:
    if v < 0 or (v == 0 and math.copysign(1, v) < 0):
        s, _ = _const_text(-v)
        return "-" + s, _UNARY
    for name, ref in (("pi", math.pi), ("2*pi", 2 * math.pi), ("pi/2", math.pi / 2), ("pi/4", math.pi / 4),
                      ("pi/8", math.pi / 8)):
        if v == ref:
            return name, (_ATOM if name == "pi" else 2)
    if v.is_integer() and v < 1e15:
        return str(int(v)), _ATOM
    return repr(v), _ATOM


def format_expr(e: Expr, names: Callable[[Expr], str] | None = None) -> str:
    """OpenQASM 3 text of ``e``: ``w_i`` / ``x_i`` leaves (or ``names(leaf)``), QASM function names.

    ``tanh`` has no OpenQASM 3 name and is written as ``1 - 2/(exp(2*a) + 1)``.
    """

    def go(e: Expr) -> tuple[str, int]:
        if isinstance(e, Const):
            return _const_text(float(e.value))
        if isinstance(e, (Weight, Input)):
            if names is not None:
                return names(e), _ATOM
            return (f"w_{e.index}" if isinstance(e, Weight) else f"x_{e.index}"), _ATOM
        if isinstance(e, Func):
            if e.name == "neg":
                s, p = go(e.arg)
                return "-" + (s if p > _UNARY else f"({s})"), _UNARY
            if e.name == "tanh":
                s, _ = go(e.arg)
                return f"1 - 2/(exp(2*({s})) + 1)", 1
            if e.name not in _QASM_FUNC:
                raise CircuitError(f"function '{e.name}' has no OpenQASM 3 form")
            s, _ = go(e.arg)
            return f"{_QASM_FUNC[e.name]}({s})", _ATOM
        if isinstance(e, BinOp):
            p = _PREC[e.op]
            ls, lp = go(e.left)
            rs, rp = go(e.right)
            if e.op == "**":
                ls = ls if lp > p else f"({ls})"
                rs = rs if rp >= p else f"({rs})"
                return f"{ls}**{rs}", p
            ls = ls if lp >= p else f"({ls})"
            rs = rs if rp > p else f"({rs})"
            return f"{ls} {e.op} {rs}", p
        raise CircuitError(f"cannot write expression {e!r} as OpenQASM 3")

    return go(e)[0]
