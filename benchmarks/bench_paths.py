"""Heisenberg picture vs statevector for the same QLSTM training step, in one process.

    python benchmarks/bench_paths.py [--repeats 40]

Both paths are exact and give the same numbers (tests/test_heisenberg.py); this times one training
step (QLSTM faithful mode, 2 layers, window 4, linear head, MSE, backward, Adam) with
``BoundProgram.heisenberg`` on and off, alternating, for the sizes the planner can use it on.
Not part of the test suite.
"""

from __future__ import annotations

import os
import sys

if "--omp-passive" in sys.argv:  # see bench_qlstm.py
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from qlstm.circuit.plan import BoundProgram  # noqa: E402
from qlstm.models.qlstm import QLSTM  # noqa: E402


def step_time(n: int, batch: int, heisenberg: bool, repeats: int) -> float:
    """Minimum wall time (ms) of one training step over ``repeats`` steps after 5 warm-up steps."""
    BoundProgram.heisenberg = heisenberg
    torch.manual_seed(0)
    model = QLSTM(1, hidden_size=n - 1, n_layers=2)
    head = torch.nn.Linear(n - 1, 1)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=0.01)
    x, y = torch.randn(batch, 4, 1), torch.randn(batch, 1)

    def step():
        opt.zero_grad()
        out, _ = model(x)
        loss = (head(out[:, -1]) - y).square().mean()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--omp-passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE (read before parsing)")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print("| qubits | batch | statevector ms | Heisenberg ms | statevector / Heisenberg |")
    print("|---:|---:|---:|---:|---:|")
    for n, batch in ((3, 16), (4, 1), (4, 16), (4, 128)):
        # each path twice, keeping its best step: a slow phase of the shared machine rarely hits both runs
        sv = min(step_time(n, batch, False, args.repeats) for _ in range(2))
        he = min(step_time(n, batch, True, args.repeats) for _ in range(2))
        print(f"| {n} | {batch} | {sv:.2f} | {he:.2f} | {sv / he:.2f}x |")
    BoundProgram.heisenberg = True


if __name__ == "__main__":
    main()
