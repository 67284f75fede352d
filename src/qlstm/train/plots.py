"""PNG plots of a run: loss curves, predicted vs true series, Moving-MNIST frame grids.

matplotlib is imported lazily with the non-interactive Agg backend, so plots
work on machines without a display and ``import qlstm.train`` does not need
matplotlib. Each function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import QlstmError
from .checkpoint import atomic_write

__all__ = ["plot_losses", "plot_series", "plot_frames", "have_matplotlib"]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise QlstmError("plots need matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")  # no display needed; must be chosen before pyplot is imported
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return path


def plot_losses(history: list[dict], path: Path) -> Path:
    """Training and validation loss (MSE) per epoch, log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], "o-", ms=3, label="train")
    val = [(row["epoch"], row["val_loss"]) for row in history if row.get("val_loss") not in (None, "")]
    if val:
        ax.plot(*zip(*val), "s-", ms=3, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss")
    if all(v > 0 for row in history for v in (row["train_loss"],)):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_series(raw: np.ndarray, preds: list[np.ndarray], first: int, path: Path, title: str = "") -> Path:
    """The series and the one-window-ahead predictions on train, validation and test windows.

    Args:
        raw: the whole series in original units, ``[n]``.
        preds: predictions in original units for the train, validation and
            test windows, consecutive windows in time order.
        first: index in ``raw`` of the first training window's target.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(np.arange(len(raw)), raw, color="0.3", lw=1.2, label="true")
    start = first
    for p, name, color in zip(preds, ("train", "validation", "test"), ("C0", "C2", "C3")):
        idx = np.arange(start, start + len(p))
        ax.plot(idx, p, ".", ms=3.5, color=color, label=f"predicted ({name})")
        if name == "test" and len(p):
            ax.axvspan(idx[0] - 0.5, idx[-1] + 0.5, color="C3", alpha=0.07)
        start += len(p)
    ax.set_xlabel("time step")
    ax.set_ylabel("value")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.17))
    return _save(fig, path)


def plot_frames(inputs: np.ndarray, truth: np.ndarray, pred: np.ndarray, path: Path, title: str = "") -> Path:
    """A grid per sequence: input frames, true future frames, predicted future frames.

    Args:
        inputs: ``[K, T_in, 1, H, W]`` in ``[0, 1]``.
        truth, pred: ``[K, T_out, 1, H, W]`` in ``[0, 1]``.
    """
    plt = _pyplot()
    k, t_in, t_out = inputs.shape[0], inputs.shape[1], truth.shape[1]
    cols = max(t_in, t_out)
    fig, axes = plt.subplots(3 * k, cols, figsize=(cols * 0.9, 3 * k * 0.95), squeeze=False)
    for s in range(k):
        for r, (label, frames) in enumerate((("input", inputs[s]), ("truth", truth[s]), ("prediction", pred[s]))):
            row = axes[3 * s + r]
            for c in range(cols):
                ax = row[c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c < len(frames):
                    ax.imshow(frames[c, 0], cmap="gray", vmin=0.0, vmax=1.0)
                else:
                    ax.axis("off")
            row[0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
