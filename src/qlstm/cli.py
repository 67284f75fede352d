"""The ``qlstm`` command line.

Subcommands:

* ``qlstm demo`` -- train a small VQC forecaster on a sine series (progress bar, result).
* ``qlstm simulate FILE.qasm [--shots N] [--seed S] [--bind name=value ...] [--json]`` --
  simulate an OpenQASM 3 circuit and print the distribution over its classical bits.

Exit codes: 0 success, 1 a check failed, 2 unreadable or invalid input.
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

    from .train.commands import add_commands  # train, evaluate, predict, plot, compare, data, bench

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "shots", None) is not None and args.shots < 1:
        parser.error("--shots must be a positive integer")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
