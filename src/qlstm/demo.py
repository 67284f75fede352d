"""A small end-to-end demo: train a Chen-2020 VQC to forecast a sine series.

``qlstm demo`` runs it: a 4-qubit, 4-layer VQC reads a window of 4 scaled
values (Chen's encoding) and predicts the next one from ``<Z_0>``. It trains
with Adam on the chronological first 67% of the series and reports MSE and
tolerance accuracy on the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .circuit.templates import chen_vqc
from .data.series import series_dataset
from .metrics.regression import mse, tolerance_accuracy
from .nn import QuantumLayer
from .progress import Progress

__all__ = ["DemoResult", "train_vqc_regressor"]


@dataclass
class DemoResult:
    train_mse: float
    test_mse: float
    test_tolerance_accuracy: float
    tolerance: float
    epochs: int
    seconds: float
    n_train: int
    n_test: int


def train_vqc_regressor(*, epochs: int = 100, n_layers: int = 4, lr: float = 0.1, batch_size: int = 16,
                        seed: int = 0, tolerance: float = 0.1, progress: bool = True) -> DemoResult:
    """Train ``chen_vqc(4, n_layers)`` (measuring ``<Z_0>``) as a one-step sine forecaster; see the module docstring."""
    gen = torch.Generator().manual_seed(seed)
    data = series_dataset("sine", window=4)
    x_tr, y_tr = data.x_train[..., 0].float(), data.y_train.float()
    x_te, y_te = data.x_test[..., 0].float(), data.y_test.float()
    vqc = QuantumLayer(chen_vqc(4, n_layers, measure_wires=[0]), init="normal", init_scale=0.1, generator=gen)
    opt = torch.optim.Adam(vqc.parameters(), lr=lr)
    start = time.perf_counter()
    bar = Progress(range(epochs), desc="training VQC", disable=not progress)
    for _ in bar:
        perm = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for i in range(0, len(x_tr), batch_size):
            idx = perm[i:i + batch_size]
            loss = torch.nn.functional.mse_loss(vqc(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        bar.set_postfix(loss=total / len(x_tr))
    with torch.no_grad():
        p_tr, p_te = vqc(x_tr), vqc(x_te)
    return DemoResult(
        train_mse=float(mse(p_tr, y_tr)), test_mse=float(mse(p_te, y_te)),
        test_tolerance_accuracy=float(tolerance_accuracy(p_te, y_te, tol=tolerance)), tolerance=tolerance,
        epochs=epochs, seconds=time.perf_counter() - start, n_train=len(x_tr), n_test=len(x_te),
    )
