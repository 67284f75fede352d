"""Shared helpers for the benchmark scripts (not part of the test suite).

Only the standard library and torch are imported at module level, so that the
TorchQuantum worker (which runs in a separate virtual environment without
qlstm or PennyLane) can use the timing helpers too. PennyLane is imported
inside the functions that need it.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch

__all__ = [
    "Timing", "measure", "wait_for_quiet", "busy_cpus", "set_threads", "machine_info", "md_table", "fmt_ms", "fmt_ratio",
    "chen_qnode", "PennyLaneQLSTM", "make_adam", "train_step_fn", "SEQ_LEN",
]

SEQ_LEN = 4  # time steps per training sample (the workload)


# -- timing ---------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall-clock times of one measurement, in milliseconds."""

    times_ms: list[float] = field(default_factory=list)
    warmup_ms: list[float] = field(default_factory=list)
    note: str = ""
    skipped: bool = False
    load: list[float] = field(default_factory=list)  # 1-min load average before / after the measurement
    others_busy: float | None = None  # CPUs kept busy by other processes just before (see wait_for_quiet)

    @property
    def min_ms(self) -> float | None:
        return min(self.times_ms) if self.times_ms else None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    @property
    def runs(self) -> int:
        return len(self.times_ms)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(min_ms=self.min_ms, median_ms=self.median_ms, runs=self.runs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Timing":
        return cls(times_ms=list(d.get("times_ms", [])), warmup_ms=list(d.get("warmup_ms", [])),
                   note=d.get("note", ""), skipped=bool(d.get("skipped", False)), load=list(d.get("load", [])),
                   others_busy=d.get("others_busy"))

    @classmethod
    def skip(cls, note: str) -> "Timing":
        return cls(note=note, skipped=True)


def measure(step: Callable[[], object], *, repeats: int, warmup: int = 1, cap_s: float = 30.0,
            budget_s: float = 30.0, sync: Callable[[], None] | None = None, min_time_s: float = 0.0) -> Timing:
    """Time ``step()`` ``repeats`` times after ``warmup`` untimed calls; min-of-repeats is the headline.

    ``min_time_s``: keep repeating past ``repeats`` until this many seconds of timed steps have
    passed (within ``budget_s``), so that a fast implementation's minimum is taken over as long a
    stretch of the machine's time as a slow one's: on a shared machine the speed comes and goes
    in phases of seconds (docs/benchmarks.md), and 20 steps of 0.5 ms see one 10 ms slice of it.

    Caps, so that slow implementations do not take forever:

    * if the first warm-up call alone takes longer than ``cap_s``, no further calls are made and that
      single call is reported (note says so; it includes any first-call overhead);
    * timed repeats stop early once ``budget_s`` seconds have been spent on them (at least one is kept).
    """
    sync = sync or (lambda: None)
    t = Timing(load=[_load1()])
    for k in range(max(warmup, 1)):
        t0 = time.perf_counter()
        step()
        sync()
        dt = time.perf_counter() - t0
        t.warmup_ms.append(dt * 1e3)
        if dt > cap_s:
            t.times_ms = [dt * 1e3]
            t.note = f"one step took {dt:.1f} s > cap {cap_s:g} s: single (first) step reported, not repeated"
            t.load.append(_load1())
            return t
    start = time.perf_counter()
    k = 0
    while k < repeats or time.perf_counter() - start < min(min_time_s, budget_s):
        t0 = time.perf_counter()
        step()
        sync()
        t.times_ms.append((time.perf_counter() - t0) * 1e3)
        k += 1
        if time.perf_counter() - start > budget_s:
            break
    if t.runs < repeats:
        t.note = f"time budget {budget_s:g} s reached after {t.runs} of {repeats} repeats"
    t.load.append(_load1())
    return t


def _load1() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def busy_cpus(interval_s: float = 1.0) -> float | None:
    """CPUs busy (user + system, all processes) over ``interval_s``, from /proc/stat; None if unavailable.

    Called while this process is idle, it measures everybody else's load on the machine.
    """
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
        return sum(v[:8]) - idle, sum(v[:8])
    try:
        b0, t0 = snap()
        time.sleep(interval_s)
        b1, t1 = snap()
    except (OSError, ValueError, IndexError):
        return None
    return round((b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1), 2)


def wait_for_quiet(max_busy: float | None, max_wait_s: float = 60.0, log=None) -> float | None:
    """Wait until other processes keep fewer than ``max_busy`` CPUs busy (sampled over 1 s; at most
    ``max_wait_s``); with ``max_busy`` None just take one sample. Returns the last sample (CPUs busy by
    others), or None if /proc/stat is unavailable.

    The machine is shared (other people's test runs); this only reduces, never removes, interference.
    """
    if not max_busy:
        return busy_cpus()
    t0 = time.perf_counter()
    busy = busy_cpus()
    while busy is not None and busy >= max_busy and time.perf_counter() - t0 < max_wait_s:
        busy = busy_cpus()
    waited = time.perf_counter() - t0
    if log and waited > 1.5:
        log(f"    waited {waited:.0f} s for other load < {max_busy:g} CPUs (last sample {busy})")
    return busy


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only allowed once per process)
        pass


# -- machine description --------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_rev() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (+ uncommitted changes under src/)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(threads: int) -> dict:
    info = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "git": _git_rev(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
    }
    try:
        info["loadavg_at_start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    for mod in ("pennylane", "pennylane_lightning"):
        try:
            from importlib.metadata import version

            info[mod] = version(mod.replace("_", "-"))
        except Exception:  # noqa: BLE001 - not installed
            pass
    return info


# -- formatting -----------------------------------------------------------------------------------------
def fmt_ms(t: Timing | None) -> str:
    if t is None:
        return "-"
    if t.skipped or t.min_ms is None:
        return "skipped"
    v = t.min_ms
    s = f"{v:.3f}" if v < 10 else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")
    return s + ("*" if t.note else "")


def fmt_ratio(other: Timing | None, base: Timing | None) -> str:
    if other is None or base is None or other.min_ms is None or base.min_ms is None:
        return "-"
    r = other.min_ms / base.min_ms
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cols = [header] + [list(map(str, r)) for r in rows]
    w = [max(len(c[i]) for c in cols) for i in range(len(header))]
    line = lambda r: "  ".join(str(x).rjust(w[i]) for i, x in enumerate(r))  # noqa: E731
    return "\n".join([line(header), line(["-" * k for k in w])] + [line(r) for r in rows[0:]])


# -- the training step ----------------------------------------------------------------------------------
def make_adam(params, lr: float, fused: bool = True) -> torch.optim.Optimizer:
    """Adam; ``fused=True`` takes torch's single-kernel implementation where this torch has it
    (the same optimizer for every library timed), else the default multi-tensor one."""
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch or an unsupported device
            pass
    return torch.optim.Adam(params, lr=lr)


def train_step_fn(model: torch.nn.Module, head: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  lr: float = 0.01, fused_adam: bool = True) -> Callable[[], float]:
    """One training step: forward over the sequence, linear head on the last output, MSE, backward, Adam."""
    opt = make_adam(list(model.parameters()) + list(head.parameters()), lr, fused_adam)

    def step() -> float:
        out, _ = model(x)
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


# -- PennyLane reference implementation -----------------------------------------------------------------
def chen_qnode(device_name: str, diff_method: str, n_qubits: int, n_layers: int,
               measure_wires: Sequence[int] | None = None, *, noise_p: float = 0.0):
    """Chen et al.'s VQC as a PennyLane QNode ``(x [..., n], w [n_layers, n, 3]) -> tuple of <Z>``.

    On every qubit ``H, RY(arctan x_i), RZ(arctan x_i^2)``; per layer a ring ``CNOT(i, i+1 mod n)``, a
    ring ``CNOT(i, i+2 mod n)`` (omitted for n < 3; for n = 2 the first ring is CNOT(0,1) CNOT(1,0)),
    ``Rot(a, b, c)`` on every qubit; ``noise_p > 0`` adds a depolarizing channel on every wire after
    each variational layer (for a mixed-state device). Mirrors ``qlstm.circuit.templates.chen_vqc``.
    """
    import pennylane as qml

    n = n_qubits
    wires = list(range(n)) if measure_wires is None else list(measure_wires)
    dev = qml.device(device_name, wires=n)

    @qml.qnode(dev, interface="torch", diff_method=diff_method)
    def circuit(x, w):
        for i in range(n):
            qml.Hadamard(wires=i)
            qml.RY(torch.arctan(x[..., i]), wires=i)
            qml.RZ(torch.arctan(x[..., i] ** 2), wires=i)
        for layer in range(n_layers):
            for step in (1, 2):
                if n > step or (step == 1 and n == 2):
                    for i in range(n):
                        j = (i + step) % n
                        if j != i:
                            qml.CNOT(wires=[i, j])
            for i in range(n):
                qml.Rot(w[layer, i, 0], w[layer, i, 1], w[layer, i, 2], wires=i)
            if noise_p > 0:
                for i in range(n):
                    qml.DepolarizingChannel(noise_p, wires=i)
        return [qml.expval(qml.PauliZ(i)) for i in wires]

    return circuit


class PennyLaneQLSTM(torch.nn.Module):
    """The faithful QLSTM of ``qlstm.models.qlstm.QLSTM`` (input_size=1) built on PennyLane QNodes.

    Same wiring, same circuits, same parameters (``gates_weight [4, 3 n L]``, ``process_weight
    [2, 3 h L]``, ordered layer, wire, (alpha, beta, gamma)) as qlstm's ``gates.weight`` /
    ``process.weight``. ``per_sample=True`` calls each QNode once per batch element (the common loop);
    otherwise the batch is the broadcast dimension of the encoding angles.
    """

    def __init__(self, n_qubits: int, n_layers: int, device_name: str, diff_method: str, *,
                 per_sample: bool = False, dtype: torch.dtype = torch.float32, input_size: int = 1):
        super().__init__()
        h = n_qubits - input_size
        self.input_size, self.hidden_size, self.n_qubits, self.n_layers = input_size, h, n_qubits, n_layers
        self.per_sample = per_sample
        self.gates_weight = torch.nn.Parameter(0.01 * torch.randn(4, 3 * n_qubits * n_layers, dtype=dtype))
        self.process_weight = torch.nn.Parameter(0.01 * torch.randn(2, 3 * h * n_layers, dtype=dtype))
        self.gate_qnode = chen_qnode(device_name, diff_method, n_qubits, n_layers, range(h))
        self.process_qnode = chen_qnode(device_name, diff_method, h, n_layers, range(h))

    def _vqc(self, qnode, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        w = w.reshape(self.n_layers, v.shape[1], 3)
        if self.per_sample:
            out = torch.stack([torch.stack(list(qnode(v[b], w))) for b in range(v.shape[0])])
        else:
            out = torch.stack(list(qnode(v, w)), dim=-1).reshape(v.shape[0], -1)
        return out.to(v.dtype)

    def forward(self, x: torch.Tensor):
        b = x.shape[0]
        x = x.to(self.gates_weight.dtype)
        h = torch.zeros(b, self.hidden_size, dtype=x.dtype)
        c = torch.zeros_like(h)
        outputs = []
        for t in range(x.shape[1]):
            v = torch.cat([x[:, t], h], dim=1)
            f, i, g, o = (self._vqc(self.gate_qnode, v, self.gates_weight[k]) for k in range(4))
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            z = torch.sigmoid(o) * torch.tanh(c)
            h = self._vqc(self.process_qnode, z, self.process_weight[0])
            outputs.append(self._vqc(self.process_qnode, z, self.process_weight[1]))
        return torch.stack(outputs, dim=1), (h.unsqueeze(0), c.unsqueeze(0))


def run_subprocess_json(cmd: Sequence[str], timeout: float) -> tuple[dict | None, str]:
    """Run ``cmd``; parse the last stdout line starting with ``JSON `` (returns (obj, error_text))."""
    import json

    try:
        p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s"
    except OSError as e:
        return None, str(e)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("JSON "):
            return json.loads(line[5:]), ""
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    return None, f"exit code {p.returncode}: " + " | ".join(tail)


if __name__ == "__main__":  # pragma: no cover
    print(machine_info(torch.get_num_threads()), file=sys.stderr)
