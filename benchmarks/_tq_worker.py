"""TorchQuantum side of ``bench_qlstm.py``; runs in a separate virtual environment.

Started by ``bench_qlstm.py`` as ``<tq-python> benchmarks/_tq_worker.py SPEC.json``; prints one line
``JSON {...}`` with the timings (and, if the spec names a check file, the forward output of the model
with the weights from that file, for the correctness check done by the caller).

Imports neither qlstm nor PennyLane. torchquantum 0.1.8 imports torchvision only for its data sets; the
torchvision wheel that pip resolves next to a CPU-only torch may fail to load its C extension
("operator torchvision::nms does not exist"), so a stub ``torchvision`` module is installed first when
the real one does not import. No torchvision functionality is used here.
"""

from __future__ import annotations

import json
import sys
import types

import torch

from common import SEQ_LEN, Timing, measure, set_threads, train_step_fn, wait_for_quiet  # noqa: E402


def _import_torchquantum():
    stubbed = False
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - broken binary wheel: stub it
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]

        class _Any:
            def __getattr__(self, k):
                if k.startswith("__"):
                    raise AttributeError(k)
                return _Any()

            def __call__(self, *a, **k):
                return _Any()

        def _getattr(k):
            if k.startswith("__"):
                raise AttributeError(k)
            return type(k, (), {}) if k[:1].isupper() and k != "InterpolationMode" else _Any()

        for name in ("torchvision", "torchvision.datasets", "torchvision.transforms", "torchvision.datasets.utils"):
            m = types.ModuleType(name)
            m.__getattr__ = _getattr
            sys.modules[name] = m
        stubbed = True
    import torchquantum as tq
    import torchquantum.functional as tqf
    from torchquantum.measurement import expval

    return tq, tqf, expval, stubbed


tq, tqf, tq_expval, TORCHVISION_STUBBED = _import_torchquantum()


class TorchQuantumQLSTM(torch.nn.Module):
    """The faithful QLSTM (input_size=1) on TorchQuantum (batched state vector, complex64)."""

    def __init__(self, n_qubits: int, n_layers: int, input_size: int = 1):
        super().__init__()
        h = n_qubits - input_size
        self.hidden_size, self.n_qubits, self.n_layers = h, n_qubits, n_layers
        self.gates_weight = torch.nn.Parameter(0.01 * torch.randn(4, 3 * n_qubits * n_layers))
        self.process_weight = torch.nn.Parameter(0.01 * torch.randn(2, 3 * h * n_layers))
        self._obs = {}

    def _vqc(self, v: torch.Tensor, w: torch.Tensor, n_meas: int) -> torch.Tensor:
        b, n = v.shape
        qdev = tq.QuantumDevice(n_wires=n, bsz=b, device=v.device)
        for i in range(n):
            tqf.hadamard(qdev, wires=i)
            tqf.ry(qdev, wires=i, params=torch.arctan(v[:, i]))
            tqf.rz(qdev, wires=i, params=torch.arctan(v[:, i] ** 2))
        w = w.reshape(self.n_layers, n, 3)
        for layer in range(self.n_layers):
            for step in (1, 2):
                if n > step or (step == 1 and n == 2):
                    for i in range(n):
                        j = (i + step) % n
                        if j != i:
                            tqf.cnot(qdev, wires=[i, j])
            for i in range(n):
                tqf.rot(qdev, wires=i, params=w[layer, i].unsqueeze(0))
        return tq_expval(qdev, list(range(n_meas)), [tq.PauliZ() for _ in range(n_meas)])

    def forward(self, x: torch.Tensor):
        b = x.shape[0]
        h = torch.zeros(b, self.hidden_size, dtype=x.dtype, device=x.device)
        c = torch.zeros_like(h)
        outputs = []
        for t in range(x.shape[1]):
            v = torch.cat([x[:, t], h], dim=1)
            f, i, g, o = (self._vqc(v, self.gates_weight[k], self.hidden_size) for k in range(4))
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            z = torch.sigmoid(o) * torch.tanh(c)
            h = self._vqc(z, self.process_weight[0], self.hidden_size)
            outputs.append(self._vqc(z, self.process_weight[1], self.hidden_size))
        return torch.stack(outputs, dim=1), (h.unsqueeze(0), c.unsqueeze(0))


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    set_threads(spec["threads"])
    from importlib.metadata import version

    result = {"versions": {"torch": torch.__version__, "torchquantum": version("torchquantum")},
              "torchvision_stubbed": TORCHVISION_STUBBED, "timings": [], "check": None}
    chk = spec.get("check")
    if chk:
        d = torch.load(chk["in"])
        m = TorchQuantumQLSTM(d["n_qubits"], d["n_layers"])
        with torch.no_grad():
            m.gates_weight.copy_(d["gates_weight"])
            m.process_weight.copy_(d["process_weight"])
            out, _ = m(d["x"].float())
        torch.save({"out": out}, chk["out"])
        result["check"] = chk["out"]
    for n in spec["qubits"]:
        for b in spec["batches"]:
            torch.manual_seed(0)
            m = TorchQuantumQLSTM(n, spec["layers"])
            head = torch.nn.Linear(m.hidden_size, 1)
            n_params = sum(p.numel() for p in m.parameters())
            x, y = torch.randn(b, SEQ_LEN, 1), torch.randn(b, 1)
            busy = wait_for_quiet(spec.get("wait_quiet"), log=lambda s: print(s, file=sys.stderr, flush=True))
            try:
                step = train_step_fn(m, head, x, y, fused_adam=spec.get("optimizer", "fused") == "fused")
                t = measure(step, repeats=spec["repeats"], warmup=spec["warmup"],
                            cap_s=spec["cap_s"], budget_s=spec["budget_s"], min_time_s=spec.get("min_time_s", 0.0))
            except Exception as e:  # noqa: BLE001 - report, keep going
                t = Timing.skip(f"failed: {type(e).__name__}: {e}")
            t.others_busy = busy
            result["timings"].append({"n": n, "batch": b, "params": n_params, "timing": t.as_dict()})
            print(f"  torchquantum n={n} batch={b}: {t.min_ms} ms", file=sys.stderr, flush=True)
    print("JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
