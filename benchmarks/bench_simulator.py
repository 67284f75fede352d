"""Speed of single circuits (forward + backward): qlstm vs PennyLane.

Cases:

* ``chen``: Chen et al.'s VQC on 20 qubits (``--chen-qubits``) (2 variational layers, <Z> on every wire), batch 1;
  qlstm (float32 and float64 weights; complex64 / complex128 state) vs PennyLane default.qubit
  (backprop, torch interface, complex128) and lightning.qubit (adjoint, complex128).
* ``noisy``: the same VQC on 10 qubits (``--noisy-qubits``) with a depolarizing channel (p = 0.01) on every wire after each
  variational layer, simulated as a density matrix; qlstm vs PennyLane default.mixed (backprop, torch).

One step = forward of the circuit, ``sum`` of the expectation values, backward. Each implementation
runs in its own subprocess so that its peak memory can be reported: ``VmHWM`` from /proc/self/status
(peak resident set of the worker) and ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the same, except that
on Linux it never reports less than the parent's peak at the fork; the parent stays small for that reason);
also the peak after imports and set-up, before the first step.
qlstm and PennyLane are first checked for equal expectation values and gradients (float64).

    python benchmarks/bench_simulator.py [--cases chen noisy] [--repeats R] [--skip ...]
        [--markdown out.md] [--quick]
"""

from __future__ import annotations

# OpenMP settings must be in the environment before torch / PennyLane-Lightning load their OpenMP runtime.
# The OpenMP default wait policy (threads spin a while before sleeping) is what users get, and on an idle
# machine it is about 2x faster for qlstm's many small parallel kernels than PASSIVE (measured
# 2026-12-01: QLSTM step at 4 and 8 qubits, 2 threads). --omp-passive sets OMP_WAIT_POLICY=PASSIVE, which
# helps on an oversubscribed machine (spinning threads there made lightning.qubit many times slower).
import os  # noqa: E402
import sys  # noqa: E402

if "--omp-passive" in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if "--threads" in sys.argv[:-1]:
    os.environ.setdefault("OMP_NUM_THREADS", sys.argv[sys.argv.index("--threads") + 1])
os.environ.setdefault("OMP_NUM_THREADS", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from common import (  # noqa: E402
    Timing, fmt_ms, fmt_ratio, machine_info, md_table, measure, run_subprocess_json, set_threads, text_table,
    wait_for_quiet,
)

CASES = {  # n, batch, layers and p are set from the command line
    "chen": {"n": 20, "layers": 2, "noise_p": 0.0, "batch": 1},
    "noisy": {"n": 10, "layers": 2, "noise_p": 0.01, "batch": 1},
}
IMPLS = {
    "chen": ("qlstm-float32", "qlstm-float64", "pennylane-default", "pennylane-lightning"),
    "noisy": ("qlstm-float32", "qlstm-float64", "pennylane-mixed"),
}
BASE = "qlstm-float64"  # ratios: other / qlstm float64 (same precision as PennyLane)


def qlstm_circuit(n: int, layers: int, noise_p: float):
    from qlstm.circuit.templates import chen_encoding, chen_layers

    c = chen_encoding(n)
    c.name = f"chen{n}" + ("_noisy" if noise_p else "")
    for _ in range(layers):
        c.compose(chen_layers(n, 1))
        if noise_p:
            for i in range(n):
                c.channel("depolarizing", i, noise_p)
    c.expval_each("Z", range(n))
    return c


def build(impl: str, case: dict, x: torch.Tensor, w: torch.Tensor):
    """A function () -> expvals [B, n] (autograd-connected to the returned weight tensor), and that weight."""
    n, layers, p = case["n"], case["layers"], case["noise_p"]
    if impl.startswith("qlstm"):
        from qlstm.nn import QuantumLayer

        dtype = torch.float64 if impl.endswith("64") else torch.float32
        layer = QuantumLayer(qlstm_circuit(n, layers, p), dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(w.reshape(-1))
        xs = x.to(dtype)
        return (lambda: layer(xs)), layer.weight
    from common import chen_qnode

    dev, diff = {"pennylane-default": ("default.qubit", "backprop"),
                 "pennylane-lightning": ("lightning.qubit", "adjoint"),
                 "pennylane-mixed": ("default.mixed", "backprop")}[impl]
    qnode = chen_qnode(dev, diff, n, layers, noise_p=p)
    wp = w.detach().clone().reshape(layers, n, 3).requires_grad_(True)
    xs = x[0] if x.shape[0] == 1 else x  # batch 1: a plain (unbroadcast) circuit
    return (lambda: torch.stack(list(qnode(xs, wp)), dim=-1).reshape(x.shape[0], n)), wp


def inputs(case: dict, seed: int = 7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case["batch"], case["n"], dtype=torch.float64, generator=g)
    w = torch.randn(case["layers"] * case["n"] * 3, dtype=torch.float64, generator=g)
    return x, w


def maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MB. On Linux this high-water mark survives fork + exec, so in a
    worker it is max(parent's peak at the fork, worker's own peak); the parent is kept small for that reason."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def vmhwm_mb() -> float | None:
    """Peak resident set size of this process image (``VmHWM`` in /proc/self/status; reset by exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- worker (one implementation, one case, own process) ---------------------------------------------------
def worker(impl: str, case_name: str, repeats: int, cap: float, budget: float, threads: int) -> None:
    set_threads(threads)
    case = CASES[case_name]
    x, w = inputs(case)
    fwd, weight = build(impl, case, x, w)
    base_mb = vmhwm_mb()

    def step():
        weight.grad = None
        fwd().sum().backward()

    t = measure(step, repeats=repeats, warmup=1, cap_s=cap, budget_s=budget)
    print("JSON " + json.dumps({"timing": t.as_dict(), "maxrss_mb": maxrss_mb(), "vmhwm_mb": vmhwm_mb(),
                                "baseline_mb": base_mb}), flush=True)


# -- correctness ----------------------------------------------------------------------------------------
def check(case_name: str, impls: list[str], log) -> dict:
    case = CASES[case_name]
    x, w = inputs(case, seed=11)
    ref_f, ref_w = build("qlstm-float64", case, x, w)
    ref = ref_f()
    ref.sum().backward()
    out = {}
    for impl in [i for i in impls if i.startswith("pennylane")]:
        f, wp = build(impl, case, x, w)
        e = f()
        e.sum().backward()
        d_e = (e.double() - ref).abs().max().item()
        d_g = (wp.grad.reshape(-1) - ref_w.grad.reshape(-1)).abs().max().item()
        out[impl] = {"expval": d_e, "grad": d_g}
        log(f"  check {case_name} {impl}: max |expval diff| = {d_e:.2e}, max |grad diff| = {d_g:.2e}")
        if not (d_e < 1e-5 and d_g < 1e-5):
            raise SystemExit(f"CORRECTNESS CHECK FAILED: {case_name}: {impl} vs qlstm: {d_e:.3e} / {d_g:.3e}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=int, default=None, help="timed steps (default 5; 3 with --quick)")
    p.add_argument("--skip", nargs="*", default=[], help="implementations to leave out")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cap", type=float, default=None, help="single step reported if one exceeds this (s; 60)")
    p.add_argument("--budget", type=float, default=None, help="stop repeating after this (s; 60)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--omp-passive", action="store_true",
                   help="OMP_WAIT_POLICY=PASSIVE (read before argument parsing; for oversubscribed machines)")
    p.add_argument("--chen-qubits", type=int, default=20)
    p.add_argument("--noisy-qubits", type=int, default=10)
    p.add_argument("--noise-p", type=float, default=0.01, help="depolarizing probability (noisy case)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--no-check", action="store_true")
    p.add_argument("--wait-quiet", type=float, default=None, metavar="CPUS",
                   help="before each measurement wait (<= 60 s) until other processes keep < CPUS cores busy")
    p.add_argument("--markdown")
    p.add_argument("--json")
    p.add_argument("--_worker", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    p.add_argument("--_check", metavar="CASE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.cap = args.cap or (20.0 if args.quick else 60.0)
    args.budget = args.budget or (20.0 if args.quick else 60.0)
    CASES["chen"].update(n=args.chen_qubits, layers=args.layers, batch=args.batch)
    CASES["noisy"].update(n=args.noisy_qubits, layers=args.layers, batch=args.batch, noise_p=args.noise_p)
    if args._worker:
        worker(*args._worker, args.repeats, args.cap, args.budget, args.threads)
        return 0
    if args._check:
        set_threads(args.threads)
        impls = [i for i in IMPLS[args._check] if i not in args.skip]
        print("JSON " + json.dumps(check(args._check, impls, lambda s: print(s, file=sys.stderr, flush=True))))
        return 0
    passthrough = ["--repeats", str(args.repeats), "--cap", str(args.cap), "--budget", str(args.budget),
                   "--threads", str(args.threads), "--chen-qubits", str(args.chen_qubits), "--noisy-qubits",
                   str(args.noisy_qubits), "--noise-p", str(args.noise_p), "--layers", str(args.layers),
                   "--batch", str(args.batch), "--skip", *args.skip]
    me = [sys.executable, os.path.abspath(__file__)]
    set_threads(args.threads)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    info = machine_info(args.threads)
    info["command"] = "python benchmarks/bench_simulator.py " + " ".join(argv if argv is not None else sys.argv[1:])
    log(json.dumps(info))
    t_start = time.perf_counter()
    checks, rows, detail = {}, [], []
    for case_name in args.cases:
        impls = [i for i in IMPLS[case_name] if i not in args.skip]
        if not args.no_check and BASE in IMPLS[case_name]:
            # in a subprocess, so that this process stays small (ru_maxrss is inherited by the workers)
            r, err = run_subprocess_json(me + ["--_check", case_name] + passthrough, timeout=1800)
            if r is None:
                raise SystemExit(f"correctness check for {case_name} did not pass: {err}")
            checks[case_name] = r
            log(f"  check {case_name}: " + json.dumps(r))
        res = {}
        for impl in impls:
            busy = wait_for_quiet(args.wait_quiet, log=log)
            r, err = run_subprocess_json(me + ["--_worker", impl, case_name] + passthrough,
                                         timeout=args.cap * 3 + args.budget + 600)
            if r is None:
                res[impl] = (Timing.skip(f"failed: {err}"), None, None, None)
            else:
                res[impl] = (Timing.from_dict(r["timing"]), r["vmhwm_mb"], r["baseline_mb"], r["maxrss_mb"])
            res[impl][0].others_busy = busy
            t = res[impl][0]
            log(f"  {case_name} {impl}: min {t.min_ms} ms over {t.runs} runs, peak RSS {res[impl][1]} MB {t.note}")
        case = CASES[case_name]
        base = res.get(BASE, (None,))[0]
        for impl, (t, mx, bl, ru) in res.items():
            rows.append([case_name, case["n"], case["batch"], impl, fmt_ms(t), fmt_ratio(t, base),
                         f"{mx:.0f}" if mx else "-", f"{bl:.0f}" if bl else "-", f"{ru:.0f}" if ru else "-"])
            detail.append([case_name, impl, t.runs, f"{t.min_ms:.1f}" if t.min_ms else "-",
                           f"{t.median_ms:.1f}" if t.median_ms else "-",
                           " ".join(f"{v:.0f}" for v in t.warmup_ms),
                           "-" if t.others_busy is None else f"{t.others_busy:.2f}",
                           " / ".join(f"{v:.1f}" for v in t.load) or "-", t.note])
    header = ["case", "qubits", "batch", "implementation", "fwd+bwd ms (min)", f"/ {BASE}", "peak RSS MB",
              "peak RSS before 1st step MB", "ru_maxrss MB"]
    dheader = ["case", "implementation", "runs", "min ms", "median ms", "first (warm-up) step ms",
               "others' busy CPUs before", "load1 before / after",
               "note"]
    wall = time.perf_counter() - t_start
    print()
    print(text_table(header, rows))
    print()
    print(text_table(dheader, detail))
    print(f"\nbenchmark wall time {wall:.0f} s")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Command: `{info['command']}`\n\n")
            f.write("Machine: " + ", ".join(f"{k}={v}" for k, v in info.items() if k != "command") + "\n\n")
            if checks:
                f.write("Correctness check (float64, max abs differences vs qlstm): " + json.dumps(checks) + "\n\n")
            f.write(md_table(header, rows) + "\n\n" + md_table(dheader, detail) + "\n\n")
            f.write(f"Benchmark wall time: {wall:.0f} s\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "checks": checks, "rows": rows, "detail": detail}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
