"""The ``qlstm`` command line.

Subcommands:

* ``qlstm demo`` -- train a small VQC forecaster on a sine series (progress bar, result).
* ``qlstm simulate FILE.qasm [--shots N] [--seed S] [--bind name=value ...] [--json]`` --
  simulate an OpenQASM 3 circuit and print the distribution over its classical bits.
* ``qlstm verify FILE --against forget [--qubits N] [--layers L] [--map name=x_0 ...] [--no-fit] [--json]``
  -- check a user's VQC (.py building a Qiskit circuit, or .qasm) against a reference QLSTM block.
* ``qlstm resources (TEMPLATE|FILE) [--qubits N] [--layers L] [--module U_SO4] [--json]`` -- count
  qubits, depth, gates, parameters, measurements, idle and dead qubits.
* ``qlstm export TEMPLATE --format qasm3|qiskit-py [--qubits N] [--layers L] [-o FILE]`` -- write a
  template as OpenQASM 3 or as a Python file that builds the Qiskit circuit.

Exit codes: 0 success, 1 a check failed, 2 unreadable or invalid input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def _cmd_demo(args) -> int:
    from .demo import train_vqc_regressor

    res = train_vqc_regressor(epochs=args.epochs, n_layers=args.layers, lr=args.lr, seed=args.seed,
                              progress=not args.quiet)
    if args.json:
        print(json.dumps(res.__dict__, indent=2))
        return 0
    print(f"VQC forecaster (chen_vqc, 4 qubits, {args.layers} layers) on the sine series, seed {args.seed}")
    print(f"  train / test windows : {res.n_train} / {res.n_test}")
    print(f"  train MSE            : {res.train_mse:.4f}")
    print(f"  test MSE             : {res.test_mse:.4f}")
    print(f"  test tolerance acc.  : {res.test_tolerance_accuracy:.1%} (|pred - true| <= {res.tolerance} on [-1, 1])")
    print(f"  training time        : {res.seconds:.1f} s for {res.epochs} epochs")
    return 0


def _parse_bindings(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--bind expects name=value, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--bind {name}: {value!r} is not a number") from None
    return out


def _cmd_simulate(args) -> int:
    from .errors import QlstmError
    from .interop import simulate_qasm_file

    try:
        bindings = _parse_bindings(args.bind)
        dist = simulate_qasm_file(args.file, shots=args.shots, seed=args.seed, bindings=bindings)
    except FileNotFoundError:
        print(f"qlstm simulate: no such file: {args.file}", file=sys.stderr)
        return 2
    except (QlstmError, ValueError, OSError, UnicodeDecodeError) as exc:
        print(f"qlstm simulate: {args.file}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(dist, sort_keys=True))
        return 0
    kind = f"{args.shots} shots, seed {args.seed}" if args.shots else "exact"
    print(f"{args.file}: distribution over classical bits ({kind}; clbit 0 rightmost)")
    width = max((len(k) for k in dist), default=0)
    for bits, p in sorted(dist.items()):
        print(f"  {bits.rjust(width)}  {p:.6f}")
    return 0


# ---------------------------------------------------------------------------
# verify / resources / export


def _parse_map(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, target = item.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"--map expects name=x_i or name=w_i, got {item!r}")
        out[name.strip()] = target.strip()
    return out


def _fail_input(cmd: str, exc: BaseException) -> int:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    print(f"qlstm {cmd}: {msg}", file=sys.stderr)
    return 2


def _cmd_verify(args) -> int:
    try:
        from .errors import QlstmError
        from .verify import VerifyInputError, verify

        mapping = _parse_map(args.map)
        report = verify(args.file, against=args.against, n_qubits=args.qubits, n_layers=args.layers,
                        mapping=mapping, fit=not args.no_fit, seed=args.seed, n_outputs=args.outputs,
                        accept=args.accept, fit_steps=args.fit_steps)
    except (VerifyInputError, QlstmError, ValueError, OSError, ImportError) as exc:
        return _fail_input("verify", exc)
    except Exception as exc:  # noqa: BLE001 - a one-line message, never a traceback
        return _fail_input("verify", RuntimeError(f"{args.file}: {type(exc).__name__}: {exc}"))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.report())
    return report.exit_code


def _template(name: str, args):
    """A template circuit by name (None if ``name`` is not a template)."""
    from .circuit.templates import chen_encoding, chen_layers, chen_vqc, module_circuit, qcnn_tree, qlstm_block
    from .circuit.templates.qcnn import _ALIASES, _key
    from .circuit.templates.qlstm_blocks import _LOOKUP

    key = name.strip().lower().replace("-", "_")
    qubits, layers = args.qubits, args.layers
    if key == "chen_vqc":
        return chen_vqc(qubits or 4, 2 if layers is None else layers)
    if key == "chen_layers":
        return chen_layers(qubits or 4, 2 if layers is None else layers)
    if key == "chen_encoding":
        return chen_encoding(qubits or 4)
    if key in ("qcnn_tree", "qcnn"):
        enc = None if args.encoding == "none" else args.encoding
        return qcnn_tree(qubits or 4, args.module, 1 if layers is None else layers, args.pool, enc)
    if key in _LOOKUP:
        return qlstm_block(key, qubits or 4, 2 if layers is None else layers)
    if _key(name) in _ALIASES and name.upper().startswith("U_"):
        return module_circuit(name)
    return None


def _template_names() -> str:
    from .circuit.templates import QLSTM_BLOCKS, TWO_QUBIT_MODULES

    return ", ".join(["chen_vqc", "chen_layers", "chen_encoding", "qcnn_tree", *QLSTM_BLOCKS, *TWO_QUBIT_MODULES])


def _circuit_for(target: str, args, allow_files: bool):
    import os

    from .verify import load_circuit

    looks_like_file = os.path.exists(target) or target.lower().endswith((".qasm", ".qasm3", ".py"))
    if allow_files and looks_like_file:
        return load_circuit(target).circuit
    circ = _template(target, args)
    if circ is None:
        what = "a template or a .qasm/.py file" if allow_files else "a template"
        raise ValueError(f"{target!r} is not {what}; templates: {_template_names()}")
    return circ


def _cmd_resources(args) -> int:
    try:
        from .resources import count_resources

        circ = _circuit_for(args.target, args, allow_files=True)
        if args.qubits is not None and args.qubits != circ.n_qubits:
            raise ValueError(f"{args.target}: the circuit has {circ.n_qubits} qubits, not --qubits {args.qubits}")
        res = count_resources(circ)
    except Exception as exc:  # noqa: BLE001 - one line, exit code 2
        return _fail_input("resources", exc)
    if args.json:
        print(json.dumps(res.as_dict(), indent=2))
    else:
        print(res.report())
    return 0


def _py_expr(e) -> str:
    """A qlstm expression as Python source over ParameterVectors ``x`` and ``w``."""
    from .circuit.expr import BinOp, Const, Func, Input, Weight
    from .errors import CircuitError

    if e.is_constant:
        v = float(e.evaluate(None, None))
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(e, Weight):
        return f"w[{e.index}]"
    if isinstance(e, Input):
        return f"x[{e.index}]"
    if isinstance(e, BinOp):
        return f"({_py_expr(e.left)} {e.op} {_py_expr(e.right)})"
    if isinstance(e, Func):
        a = _py_expr(e.arg)
        a = a if isinstance(e.arg, BinOp) else f"({a})" if isinstance(e.arg, Func) or a.startswith("-") else a
        methods = {"atan": "arctan", "arctan": "arctan", "sin": "sin", "cos": "cos", "tan": "tan", "asin": "arcsin",
                   "acos": "arccos", "exp": "exp", "ln": "log", "log": "log"}
        if e.name in methods:
            return f"{a}.{methods[e.name]}()"
        if e.name == "sqrt":
            return f"{a} ** 0.5"
        if e.name == "neg":
            return f"-({a})"
        if e.name == "tanh":
            return f"(1 - 2 / ((2 * ({a})).exp() + 1))"
    if isinstance(e, Const):  # pragma: no cover - handled by is_constant
        return repr(float(e.value))
    raise CircuitError(f"cannot write the expression {e.to_str()!r} as Qiskit Python")


_PY_FIXED = {"i": "id", "h": "h", "x": "x", "y": "y", "z": "z", "s": "s", "sdg": "sdg", "t": "t", "tdg": "tdg",
             "sx": "sx", "cnot": "cx", "cy": "cy", "cz": "cz", "swap": "swap", "toffoli": "ccx", "rx": "rx",
             "ry": "ry", "rz": "rz", "phaseshift": "p", "u3": "u", "crx": "crx", "cry": "cry", "crz": "crz",
             "cphase": "cp", "isingxx": "rxx", "isingyy": "ryy", "isingzz": "rzz"}


def qiskit_python_source(circuit) -> str:
    """Python source of a file that builds ``circuit`` in Qiskit (``build()`` and ``circuit``).

    Inputs become ``ParameterVector("x")``, weights ``ParameterVector("w")`` -- the
    naming convention ``qlstm verify`` reads back; ``rot`` is written as ``rz, ry, rz``.
    Amplitude encodings, noise channels and arbitrary unitaries have no form here.
    """
    from .circuit.ops import AmplitudeEncoding, Channel, Gate, Measure, Reset
    from .errors import CircuitError

    c = circuit
    body: list[str] = []
    for op in c.ops:
        cond = getattr(op, "condition", None)
        stmts: list[str] = []
        if isinstance(op, Gate):
            q = ", ".join(str(wr) for wr in op.wires)
            if op.name == "rot":
                a, b, g = (_py_expr(p) for p in op.params)
                w0 = op.wires[0]
                stmts += [f"qc.rz({a}, {w0})", f"qc.ry({b}, {w0})", f"qc.rz({g}, {w0})"]
            elif op.name == "crot":
                a, b, g = (_py_expr(p) for p in op.params)
                stmts += [f"qc.crz({a}, {q})", f"qc.cry({b}, {q})", f"qc.crz({g}, {q})"]
            elif op.name in _PY_FIXED:
                ps = "".join(f"{_py_expr(p)}, " for p in op.params)
                stmts.append(f"qc.{_PY_FIXED[op.name]}({ps}{q})")
            else:
                raise CircuitError(f"gate {op.name!r} has no Qiskit-Python form here; export it with --format qasm3")
        elif isinstance(op, Measure):
            stmts.append(f"qc.measure({op.wire}, {op.clbit})")
            if op.reset:
                stmts.append(f"qc.reset({op.wire})")
        elif isinstance(op, Reset):
            stmts.append(f"qc.reset({op.wire})")
        elif isinstance(op, AmplitudeEncoding):
            raise CircuitError("amplitude encoding of symbolic inputs cannot be exported; use an angle "
                               "encoding (e.g. --encoding angle) or none")
        elif isinstance(op, Channel):
            raise CircuitError("noise channels cannot be exported as Qiskit Python; strip them first")
        if cond is None:
            body += stmts
            continue
        if len(cond.clbits) == 1:
            target = f"(qc.clbits[{cond.clbits[0]}], {cond.value})"
        elif cond.clbits == tuple(range(c.n_clbits)):
            target = f"(qc.cregs[0], {cond.value})"
        else:
            raise CircuitError(f"condition {cond.to_str()} on part of the register has no Qiskit-Python form here")
        body.append(f"with qc.if_test({target}):")
        body += [f"    {s}" for s in stmts]
    outs = ", ".join(o.label() for o in c.observables) or "none"
    head = [
        f'"""{c.name}: {c.n_qubits} qubits, {c.n_inputs} inputs, {c.n_weights} weights -- written by `qlstm export`.',
        "",
        "Naming convention of `qlstm verify`: inputs are ParameterVector x, weights ParameterVector w.",
        f"Outputs (expectation values): {outs}.",
        '"""',
        "",
        "from qiskit import QuantumCircuit",
        "from qiskit.circuit import ParameterVector",
        "",
        "",
        "def build() -> QuantumCircuit:",
    ]
    if c.n_inputs:
        head.append(f'    x = ParameterVector("x", {c.n_inputs})')
    if c.n_weights:
        head.append(f'    w = ParameterVector("w", {c.n_weights})')
    regs = f"{c.n_qubits}, {c.n_clbits}" if c.n_clbits else f"{c.n_qubits}"
    head.append(f"    qc = QuantumCircuit({regs}, name={c.name!r})")
    tail = ["    return qc", "", "", "circuit = build()", ""]
    return "\n".join(head + [f"    {s}" for s in body] + tail)


def _cmd_export(args) -> int:
    try:
        circ = _circuit_for(args.template, args, allow_files=False)
        from .circuit.ops import AmplitudeEncoding

        if any(isinstance(op, AmplitudeEncoding) for op in circ.ops):
            raise ValueError(f"{args.template}: an amplitude encoding of symbolic inputs cannot be exported; "
                             "use --encoding angle or --encoding none")
        if args.format == "qasm3":
            from .interop import dumps

            text = dumps(circ)
        else:
            text = qiskit_python_source(circ)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text if text.endswith("\n") else text + "\n")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    except Exception as exc:  # noqa: BLE001 - one line, exit code 2
        return _fail_input("export", exc)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qlstm", description="Quantum LSTMs on a fast exact simulator.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train a small VQC forecaster on a sine series",
                       description="Train chen_vqc(4 qubits) to predict the next value of a sine series "
                                   "from a window of 4, and report test metrics.")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("simulate", help="simulate an OpenQASM 3 file and print its bitstring distribution",
                       description="Read an OpenQASM 3 circuit, simulate it with qlstm and print the distribution "
                                   "over its classical bits (exact unless --shots is given). Bitstrings are in "
                                   "Qiskit's order: clbit 0 is the rightmost character. A circuit without "
                                   "classical bits is read as if every qubit were measured at the end.")
    p.add_argument("file", help="an OpenQASM 3 file")
    p.add_argument("--shots", type=int, default=None, help="sample this many shots instead of exact probabilities")
    p.add_argument("--seed", type=int, default=None, help="seed of the shot sampler")
    p.add_argument("--bind", action="append", metavar="NAME=VALUE", help="value of an `input float` parameter")
    p.add_argument("--json", action="store_true", help='print {"bitstring": probability, ...} as JSON')
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("verify", help="check a user's VQC against a reference QLSTM block",
                       description="Check a VQC -- an OpenQASM 3 file, or a Python file that defines `circuit` or "
                                   "build()/build_circuit() returning a Qiskit QuantumCircuit -- against a "
                                   "reference QLSTM block (Chen et al.'s VQC). Parameters follow the naming "
                                   "convention: x[i] / x_i are data inputs, w[i] / w_i weights ordered layer, wire, "
                                   "(alpha, beta, gamma). Prints PASS/FAIL with reasons. Exit codes: 0 pass, "
                                   "1 fail, 2 unreadable input.")
    p.add_argument("file", help="the circuit: .py (Qiskit) or .qasm / .qasm3")
    p.add_argument("--against", default="forget",
                   help="reference block: forget, input, candidate (update), output, hidden_processing, "
                        "output_processing (default: forget)")
    p.add_argument("--qubits", type=int, default=None, help="qubits of the reference (default: the circuit's)")
    p.add_argument("--layers", type=int, default=2, help="variational layers of the reference (default 2)")
    p.add_argument("--outputs", type=int, default=None,
                   help="reference reads <Z> on wires 0..OUTPUTS-1 (default: from the circuit's measurements)")
    p.add_argument("--map", action="append", metavar="NAME=SLOT",
                   help="map a parameter of the circuit to x_i or w_i (repeatable), e.g. --map theta_0=w_3")
    p.add_argument("--no-fit", action="store_true", help="skip the trainability fit when the circuits differ")
    p.add_argument("--fit-steps", type=int, default=300, help="Adam steps per start of the fit (default 300)")
    p.add_argument("--accept", choices=("exact", "trainable"), default="exact",
                   help="exact: PASS only if equal to the reference (default); trainable: also PASS if the "
                        "circuit can be trained to reproduce the reference's function")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (stable keys)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("resources", help="count qubits, depth, gates, measurements, idle qubits of a circuit",
                       description="Count the resources of a template or of a circuit file (.qasm/.qasm3, or .py "
                                   "building a Qiskit circuit): qubits, depth, gate counts, parameters, mid-circuit "
                                   "measurements, resets, conditional ops, encodings, idle and dead qubits, idle "
                                   "qubit-slots. Templates: chen_vqc, chen_layers, chen_encoding, qcnn_tree, the "
                                   "QLSTM blocks (forget, input, candidate, output, hidden_processing, "
                                   "output_processing) and the two-qubit modules (U_TTN ... U_SU4).")
    p.add_argument("target", metavar="TEMPLATE|FILE", help="a template name or a circuit file")
    p.add_argument("--qubits", type=int, default=None, help="qubits of the template (default 4)")
    p.add_argument("--layers", type=int, default=None,
                   help="layers: variational layers (default 2), or module layers per tree level for qcnn_tree "
                        "(default 1)")
    p.add_argument("--module", default="U_SO4", help="two-qubit module of qcnn_tree (default U_SO4)")
    p.add_argument("--pool", choices=("discard", "measure", "controlled"), default="discard",
                   help="pooling of qcnn_tree (default discard)")
    p.add_argument("--encoding", choices=("amplitude", "angle", "none"), default="amplitude",
                   help="encoding of qcnn_tree (default amplitude)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(func=_cmd_resources)

    p = sub.add_parser("export", help="write a template as OpenQASM 3 or as a Qiskit Python file",
                       description="Write a template circuit as OpenQASM 3 (inputs x_i and weights w_i as `input "
                                   "float[64]`) or as a Python file defining build() and `circuit` (a Qiskit "
                                   "QuantumCircuit with ParameterVectors x and w, readable by `qlstm verify`).")
    p.add_argument("template", help="a template name (see `qlstm resources --help`)")
    p.add_argument("--format", choices=("qasm3", "qiskit-py"), default="qasm3", help="output format (default qasm3)")
    p.add_argument("--qubits", type=int, default=None, help="qubits of the template (default 4)")
    p.add_argument("--layers", type=int, default=None, help="layers (see `qlstm resources --help`)")
    p.add_argument("--module", default="U_SO4", help="two-qubit module of qcnn_tree (default U_SO4)")
    p.add_argument("--pool", choices=("discard", "measure", "controlled"), default="discard",
                   help="pooling of qcnn_tree (default discard)")
    p.add_argument("--encoding", choices=("amplitude", "angle", "none"), default="angle",
                   help="encoding of qcnn_tree (default angle: amplitude encodings cannot be exported symbolically)")
    p.add_argument("-o", "--output", default=None, help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_export)

    from .train.commands import add_commands  # train, evaluate, predict, plot, compare, data, bench

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # KEY=VALUE overrides after options (`qlstm reproduce qconvlstm --scale paper threads=2`): argparse
        # stops matching positionals once an option has come between them
        if isinstance(getattr(args, "overrides", None), list) and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = args.overrides + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "shots", None) is not None and args.shots < 1:
        parser.error("--shots must be a positive integer")
    if argv is None:  # the console command (not main() called from Python, e.g. by the tests)
        from .train.malloc import tune_malloc

        tune_malloc()  # keep freed memory for reuse: large-batch steps otherwise page it back in every time
    try:
        return args.func(args)
    except BrokenPipeError:  # `qlstm ... | head`: the reader went away
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
