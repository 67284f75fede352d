"""Noisy models: observables pulled back (heisenberg_mixed) against per-copy density matrices.

One training step (forward, mean-square loss, backward, Adam) of a noisy QLSTM (4 qubits,
2 layers, window 4, batch 16) and one QConvLSTM core call (16 -> 4 channels, 16x16, batch 4,
3 steps), with depolarizing noise p = 0.01 at the end of every circuit and after every layer.
Both paths run in this process, one after the other; ratios are the point.

    python benchmarks/bench_noise.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from qlstm.models.qconvlstm import QConvLSTM
from qlstm.models.qlstm import QLSTM


def step_time(model, x, density: bool, repeats: int) -> float:
    if density:
        for m in model.modules():
            if hasattr(m, "bindable"):
                m.heisenberg = False
    opt = torch.optim.Adam(model.parameters())
    times = []
    for _ in range(repeats + 1):  # the first step warms up
        t = time.perf_counter()
        opt.zero_grad()
        model(x)[0].square().mean().backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return min(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="timed QLSTM steps (QConvLSTM: a third of them)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for placement in ("end", "layer"):
        noise = f"depolarizing:0.01:{placement}"
        cases = [("QLSTM step", lambda: QLSTM(1, 3, n_layers=2, noise=noise,
                                              generator=torch.Generator().manual_seed(0)),
                  torch.randn(16, 4, 1), args.repeats),
                 ("QConvLSTM core call", lambda: QConvLSTM(16, 4, (16, 16), noise=noise,
                                                           generator=torch.Generator().manual_seed(0)),
                  torch.rand(4, 3, 16, 16, 16), max(1, args.repeats // 3))]
        for name, make, x, reps in cases:
            dm = step_time(make(), x, True, reps)
            hb = step_time(make(), x, False, reps)
            rows.append((name, placement, dm, hb))
    print(f"torch {torch.__version__}, {args.threads} thread(s), min of repeats")
    print("| workload | noise placement | density matrices, per copy | observables pulled back | ratio |")
    print("|---|---|---:|---:|---:|")
    for name, placement, dm, hb in rows:
        print(f"| {name} | {placement} | {dm * 1e3:.1f} ms | {hb * 1e3:.1f} ms | {dm / hb:.0f}x |")


if __name__ == "__main__":
    main()
