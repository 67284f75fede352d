"""Speed of one QLSTM training step: qlstm vs PennyLane (default.qubit, lightning.qubit) vs TorchQuantum.

Workload (one "step"): the Chen-2020 QLSTM (input_size=1) over 4 time steps with all six VQCs per time
step, a linear head on the last output, MSE loss, backward, Adam step; 2 torch threads; 2 variational
layers per VQC. Every implementation builds the same architecture (same circuits, wiring, qubit counts and
parameter counts, asserted) and is checked against qlstm for equal forward outputs with identical weights
before anything is timed.

    python benchmarks/bench_qlstm.py [--qubits 4 8] [--batch 1 16 128] [--repeats R]
        [--skip pennylane-lightning ...] [--quick] [--markdown out.md] [--device cuda]

Implementations (names for --skip / --include):

* ``qlstm-faithful``: ``QLSTM(1, hidden_size=n-1, n_layers=2)``, n = input + hidden qubits (on the CPU
  the native kernels of ``qlstm/_native`` where they build, as for any user);
* ``qlstm-torch`` (opt-in with --include): the same model with ``native = False``: the fused torch node
  the kernels replace;
* ``qlstm-compiled`` (opt-in with --include): the same model with ``compiled=True`` (the whole
  recurrence with its VQC construction as one ``torch.compile`` region; compiled during the warm-up
  steps, which may take up to 300 s here before the cap applies);
* ``qlstm-adapter``: ``QLSTM(1, hidden_size=n, n_qubits=n, n_layers=2, mode="adapter")`` (a different
  architecture: linear maps in/out, six n-qubit VQCs; no counterpart in the other libraries here);
* ``pennylane-default``: default.qubit, backprop, torch interface, batch = broadcast dimension;
* ``pennylane-lightning``: lightning.qubit, adjoint; the broadcast batch is accepted, but PennyLane
  splits it into one circuit per sample (``broadcast_expand``), so this is a per-sample loop inside PL;
* ``pennylane-default-loop`` (opt-in with --include): default.qubit, backprop, one QNode call per sample;
* ``torchquantum``: TorchQuantum in its own virtual environment (``--tq-python``), run as a subprocess;
* ``torch-lstm``: the classical ``torch.nn.LSTM(1, n - 1)`` (same hidden size as the faithful QLSTM, one
  fused C++ cell): not a competitor but the floor of this harness for a recurrent model of this size.

Optimizer: Adam, torch's fused one-kernel implementation by default for every library
(``--optimizer foreach`` for torch's default multi-tensor Adam).

Timing: min over repeats of single-step wall times (median also recorded); see common.measure for the
caps that keep slow implementations bounded. Not part of the test suite.
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
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from common import (  # noqa: E402
    SEQ_LEN, PennyLaneQLSTM, Timing, fmt_ms, fmt_ratio, machine_info, md_table, measure, run_subprocess_json,
    set_threads, text_table, train_step_fn, wait_for_quiet,
)

IMPLS = ("qlstm-faithful", "qlstm-compiled", "qlstm-torch", "qlstm-adapter", "pennylane-default", "pennylane-lightning",
         "pennylane-default-loop", "torchquantum", "torch-lstm")
OPT_IN = ("pennylane-default-loop", "qlstm-compiled", "qlstm-torch")
LABEL = {
    "qlstm-faithful": "qlstm faithful",
    "qlstm-compiled": "qlstm faithful compiled",
    "qlstm-torch": "qlstm faithful torch node",
    "qlstm-adapter": "qlstm adapter",
    "pennylane-default": "PL default.qubit",
    "pennylane-lightning": "PL lightning",
    "pennylane-default-loop": "PL default.qubit loop",
    "torchquantum": "TorchQuantum",
    "torch-lstm": "torch.nn.LSTM",
}
# the issue's targets for qlstm (ms per training step)
TARGETS = {(4, 1): 0.5, (4, 16): 0.5, (4, 128): 0.5, (8, 16): 2.0, (8, 128): 10.0}
DEFAULT_TQ_PYTHON = os.environ.get("QLSTM_BENCH_TQ_PYTHON", "/tmp/tqvenv/bin/python")
HERE = os.path.dirname(os.path.abspath(__file__))


def qlstm_model(mode: str, n: int, layers: int, dtype, device):
    from qlstm.models.qlstm import QLSTM

    if mode in ("faithful", "compiled", "torch"):
        m = QLSTM(1, hidden_size=n - 1, n_layers=layers, dtype=dtype, device=device, compiled=mode == "compiled")
        m.native = mode == "faithful"  # the compiled region and the torch node run without the kernels
        return m
    return QLSTM(1, hidden_size=n, n_qubits=n, n_layers=layers, mode="adapter", dtype=dtype, device=device)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def pennylane_model(impl: str, n: int, layers: int, dtype):
    if impl == "pennylane-default":
        return PennyLaneQLSTM(n, layers, "default.qubit", "backprop", dtype=dtype)
    if impl == "pennylane-default-loop":
        return PennyLaneQLSTM(n, layers, "default.qubit", "backprop", per_sample=True, dtype=dtype)
    if impl == "pennylane-lightning":
        return PennyLaneQLSTM(n, layers, "lightning.qubit", "adjoint", dtype=dtype)
    raise ValueError(impl)


# -- correctness ----------------------------------------------------------------------------------------
def check_correctness(n: int, layers: int, impls: list[str], tq_python: str | None, log) -> dict:
    """Same weights everywhere; forward outputs (and, for PennyLane, weight gradients) must agree."""
    torch.manual_seed(1234)
    b = 3
    x = torch.randn(b, SEQ_LEN, 1, dtype=torch.float64)
    ref = qlstm_model("faithful", n, layers, torch.float64, "cpu")
    with torch.no_grad():  # larger weights than the 0.01 * N(0,1) init, so that the check is not trivial
        ref.gates.weight.copy_(torch.randn_like(ref.gates.weight))
        ref.process.weight.copy_(torch.randn_like(ref.process.weight))
    out_ref, (h_ref, _) = ref(x)
    (out_ref.square().sum() + h_ref.sum()).backward()
    report = {"n": n, "batch": b, "layers": layers, "T": SEQ_LEN, "max_abs_diff": {}}
    for impl in [i for i in impls if i.startswith("pennylane")]:
        m = pennylane_model(impl, n, layers, torch.float64)
        assert n_params(m) == n_params(ref), (impl, n_params(m), n_params(ref))
        with torch.no_grad():
            m.gates_weight.copy_(ref.gates.weight)
            m.process_weight.copy_(ref.process.weight)
        out, (h, _) = m(x)
        (out.square().sum() + h.sum()).backward()
        d_out = (out.double() - out_ref).abs().max().item()
        d_grad = max((m.gates_weight.grad - ref.gates.weight.grad).abs().max().item(),
                     (m.process_weight.grad - ref.process.weight.grad).abs().max().item())
        report["max_abs_diff"][impl] = {"forward": d_out, "grad": d_grad}
        log(f"  check {impl}: max |out - qlstm| = {d_out:.2e}, max |grad - qlstm| = {d_grad:.2e}")
        if not (d_out < 1e-5 and d_grad < 1e-5):
            raise SystemExit(f"CORRECTNESS CHECK FAILED: {impl} disagrees with qlstm (forward {d_out:.3e}, "
                             f"grad {d_grad:.3e}; tolerance 1e-5, float64)")
    if "torchquantum" in impls and tq_python:
        with tempfile.TemporaryDirectory() as tmp:
            fin, fout, fspec = (os.path.join(tmp, f) for f in ("in.pt", "out.pt", "spec.json"))
            torch.save({"n_qubits": n, "n_layers": layers, "x": x.float(),
                        "gates_weight": ref.gates.weight.detach().float(),
                        "process_weight": ref.process.weight.detach().float()}, fin)
            with open(fspec, "w") as f:
                json.dump({"threads": torch.get_num_threads(), "qubits": [], "batches": [], "layers": layers,
                           "repeats": 0, "warmup": 0, "cap_s": 0, "budget_s": 0,
                           "check": {"in": fin, "out": fout}}, f)
            res, err = run_subprocess_json([tq_python, os.path.join(HERE, "_tq_worker.py"), fspec], timeout=600)
            if res is None:
                report["torchquantum_error"] = err
                log(f"  check torchquantum: could not run ({err})")
            else:
                out = torch.load(fout)["out"]
                d_out = (out.double() - out_ref).abs().max().item()
                report["max_abs_diff"]["torchquantum"] = {"forward": d_out}
                log(f"  check torchquantum (complex64): max |out - qlstm float64| = {d_out:.2e}")
                if not d_out < 1e-4:
                    raise SystemExit(f"CORRECTNESS CHECK FAILED: torchquantum disagrees with qlstm ({d_out:.3e}; "
                                     "tolerance 1e-4 since TorchQuantum simulates in complex64)")
    return report


# -- timing ---------------------------------------------------------------------------------------------
def time_local(impl: str, n: int, b: int, args, dtype, device) -> tuple[Timing, int]:
    torch.manual_seed(0)
    if impl.startswith("qlstm"):
        m = qlstm_model(impl.split("-")[1], n, args.layers, dtype, device)
    elif impl == "torch-lstm":
        m = torch.nn.LSTM(1, n - 1, batch_first=True, dtype=dtype, device=device)
    else:
        m = pennylane_model(impl, n, args.layers, dtype)
    head = torch.nn.Linear(m.hidden_size, 1, dtype=dtype, device=device)
    x = torch.randn(b, SEQ_LEN, 1, dtype=dtype, device=device)
    y = torch.randn(b, 1, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else None
    warmup = args.warmup if impl.startswith("qlstm") else 1
    # the compiled model's first step compiles (20 to 60 s): not a slow step to stop at
    cap = max(args.cap, 300.0) if impl == "qlstm-compiled" else args.cap
    try:
        t = measure(train_step_fn(m, head, x, y, fused_adam=args.optimizer == "fused"), repeats=args.repeats,
                    warmup=warmup, cap_s=cap, budget_s=args.budget, sync=sync, min_time_s=args.min_time)
    except Exception as e:  # noqa: BLE001 - report, keep going
        t = Timing.skip(f"failed: {type(e).__name__}: {e}")
    return t, n_params(m)


def time_torchquantum(args, log) -> tuple[dict, dict]:
    """{(n, batch): (Timing, params)}, info; runs the worker once for all sizes."""
    if not os.path.exists(args.tq_python):
        return {}, {"skipped": f"no TorchQuantum interpreter at {args.tq_python} (see docs/benchmarks.md)"}
    if args.dtype != "float32":
        return {}, {"skipped": "TorchQuantum simulates in complex64 only; not timed with --dtype float64"}
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "spec.json")
        with open(spec, "w") as f:
            json.dump({"threads": args.threads, "qubits": args.qubits, "batches": args.batch, "layers": args.layers,
                       "repeats": args.repeats, "warmup": 1, "cap_s": args.cap, "budget_s": args.budget,
                       "min_time_s": args.min_time,
                       "wait_quiet": args.wait_quiet, "optimizer": args.optimizer}, f)
        log("  torchquantum: running worker subprocess ...")
        res, err = run_subprocess_json([args.tq_python, os.path.join(HERE, "_tq_worker.py"), spec], timeout=3600)
    if res is None:
        return {}, {"skipped": f"TorchQuantum worker failed: {err}"}
    out = {(r["n"], r["batch"]): (Timing.from_dict(r["timing"]), r["params"]) for r in res["timings"]}
    return out, {"versions": res["versions"], "torchvision_stubbed": res["torchvision_stubbed"]}


# -- main -----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--qubits", type=int, nargs="+", default=[4, 8])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16, 128])
    p.add_argument("--repeats", type=int, default=None, help="timed steps per measurement (default 20; 5 with --quick)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps for qlstm (others: 1)")
    p.add_argument("--skip", nargs="*", default=[], choices=IMPLS)
    p.add_argument("--include", nargs="*", default=[], choices=OPT_IN, help="opt-in implementations")
    p.add_argument("--quick", action="store_true", help="fewer repeats, 10 s cap and 10 s budget per measurement")
    p.add_argument("--cap", type=float, default=None, help="report a single step if one step exceeds this (s; 30)")
    p.add_argument("--budget", type=float, default=None, help="stop repeating after this many seconds (s; 30)")
    p.add_argument("--min-time", type=float, default=0.0, metavar="S",
                   help="repeat past --repeats until S seconds of timed steps (within --budget), so that every "
                        "implementation's minimum covers the same stretch of a machine whose speed varies")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--optimizer", choices=("fused", "foreach"), default="fused",
                   help="Adam implementation for every library (fused: torch's one-kernel Adam where available)")
    p.add_argument("--tune-malloc", action="store_true",
                   help="keep freed memory for reuse (qlstm.train.malloc.tune_malloc, what the qlstm CLI does)")
    p.add_argument("--omp-passive", action="store_true",
                   help="OMP_WAIT_POLICY=PASSIVE (read before argument parsing; for oversubscribed machines)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="weights/inputs of qlstm and PennyLane models (PennyLane simulates in complex128 either way)")
    p.add_argument("--device", default="cpu", help="torch device; anything but cpu times qlstm only")
    p.add_argument("--tq-python", default=DEFAULT_TQ_PYTHON, help="python of the TorchQuantum virtual env")
    p.add_argument("--wait-quiet", type=float, default=None, metavar="CPUS",
                   help="before each measurement wait (<= 60 s) until other processes keep < CPUS cores busy")
    p.add_argument("--no-check", action="store_true", help="skip the correctness check (not recommended)")
    p.add_argument("--markdown", help="write the results as markdown to this file")
    p.add_argument("--json", help="write the raw results as JSON to this file")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.cap = args.cap or (10.0 if args.quick else 30.0)
    args.budget = args.budget or (10.0 if args.quick else 30.0)
    set_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch reports no CUDA device here")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    impls = [i for i in IMPLS if i not in args.skip and (i not in OPT_IN or i in args.include)]
    if device.type != "cpu":
        impls = [i for i in impls if i.startswith("qlstm")]
        log(f"device {device}: timing qlstm only")
    if args.tune_malloc:
        from qlstm.train.malloc import tune_malloc

        if not tune_malloc():
            raise SystemExit("--tune-malloc: mallopt is not available here (glibc only)")
    info = machine_info(args.threads)
    info["malloc"] = "tuned (tune_malloc)" if args.tune_malloc else "default"
    info["command"] = "python benchmarks/bench_qlstm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    info["device"] = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    info["dtype"] = args.dtype
    info["optimizer"] = f"Adam ({args.optimizer})"
    log(json.dumps(info))
    t_start = time.perf_counter()

    check = None
    if not args.no_check and device.type == "cpu" and "qlstm-faithful" in impls:
        # every register size: the paths differ (Heisenberg picture at 4 qubits, layered statevectors at 8)
        check = []
        for k, n in enumerate(sorted(set(args.qubits))):
            log(f"correctness check (float64, n={n}):")
            tq = args.tq_python if k == 0 and os.path.exists(args.tq_python) else None
            check.append(check_correctness(n, args.layers, impls, tq, log))

    results: dict[tuple[str, int, int], tuple[Timing, int]] = {}
    local = [i for i in impls if i != "torchquantum"]
    for n in args.qubits:
        for b in args.batch:
            for impl in local:
                busy = wait_for_quiet(args.wait_quiet, log=log)
                t, k = time_local(impl, n, b, args, dtype, device)
                t.others_busy = busy
                results[(impl, n, b)] = (t, k)
                log(f"  {impl:24s} n={n} batch={b:4d}: min {t.min_ms} ms over {t.runs} runs {t.note}")
    tq_info = {}
    if "torchquantum" in impls:
        tq_res, tq_info = time_torchquantum(args, log)
        if "skipped" in tq_info:
            log("  torchquantum skipped: " + tq_info["skipped"])
        for (n, b), v in tq_res.items():
            results[("torchquantum", n, b)] = v
    # same parameter counts for the same architecture
    for n in args.qubits:
        counts = {i: results[(i, n, b)][1] for i in impls if i not in ("qlstm-adapter", "torch-lstm")
                  for b in args.batch if (i, n, b) in results}
        assert len(set(counts.values())) <= 1, f"parameter counts differ at n={n}: {counts}"

    header = ["n", "batch"] + [LABEL[i] + " ms" for i in impls]
    others = [i for i in impls if not i.startswith("qlstm")]
    if "qlstm-faithful" in impls:
        header += [LABEL[i] + " / qlstm" for i in others]
    rows = []
    for n in args.qubits:
        for b in args.batch:
            g = lambda i: results.get((i, n, b), (None, 0))[0]  # noqa: E731
            row = [n, b] + [fmt_ms(g(i)) if (i, n, b) in results else "skipped" for i in impls]
            if "qlstm-faithful" in impls:
                row += [fmt_ratio(g(i), g("qlstm-faithful")) for i in others]
            rows.append(row)
    detail = []
    for (impl, n, b), (t, k) in results.items():
        detail.append([LABEL[impl], n, b, k, t.runs, f"{t.min_ms:.3f}" if t.min_ms is not None else "-",
                       f"{t.median_ms:.3f}" if t.median_ms is not None else "-",
                       "-" if t.others_busy is None else f"{t.others_busy:.2f}",
                       " / ".join(f"{v:.1f}" for v in t.load) or "-", t.note or ""])
    dheader = ["implementation", "n", "batch", "params", "runs", "min ms", "median ms", "others' busy CPUs before",
               "load1 before / after", "note"]

    target_lines = []
    for (n, b), lim in TARGETS.items():
        for mode in ("qlstm-faithful", "qlstm-compiled", "qlstm-adapter"):
            if (mode, n, b) in results and results[(mode, n, b)][0].min_ms is not None:
                v = results[(mode, n, b)][0].min_ms
                target_lines.append(f"{LABEL[mode]}, {n} qubits, batch {b}: {v:.3f} ms vs target <= {lim:g} ms: "
                                    + ("MET" if v <= lim else f"MISSED ({v / lim:.1f}x the target)"))
    wall = time.perf_counter() - t_start

    print()
    print(text_table(header, rows))
    print("\n* = capped measurement (see details); ratios use min-of-repeats of both sides")
    print()
    print(text_table(dheader, detail))
    if tq_info.get("skipped"):
        print("\nTorchQuantum skipped: " + tq_info["skipped"])
    print("\nTargets (qlstm):")
    for line in target_lines:
        print("  " + line)
    print(f"\nbenchmark wall time {wall:.0f} s")

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Command: `{info['command']}`\n\n")
            f.write("Machine: " + ", ".join(f"{k}={v}" for k, v in info.items() if k != "command") + "\n\n")
            if tq_info:
                f.write("TorchQuantum: " + json.dumps(tq_info) + "\n\n")
            if check:
                f.write("Correctness check: " + json.dumps(check) + "\n\n")
            f.write(md_table(header, rows) + "\n\n")
            f.write("Details (all times ms per training step; min and median over `runs` timed steps):\n\n")
            f.write(md_table(dheader, detail) + "\n\n")
            f.write("Targets:\n\n" + "\n".join("- " + s for s in target_lines) + "\n\n")
            f.write(f"Benchmark wall time: {wall:.0f} s\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "check": check, "torchquantum": tq_info,
                       "results": [{"impl": i, "n": n, "batch": b, "params": k, **t.as_dict()}
                                   for (i, n, b), (t, k) in results.items()]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
