"""One training loop for every model and task.

:func:`train` starts a run from a resolved-or-not :class:`TrainConfig`;
:func:`resume` continues a run from its directory. Both end in :func:`_run`,
which reads top to bottom: directory, seeds, data, model, optimizer, restore,
epochs (batches, validation, metrics.csv, checkpoint), test metrics, plots.

Guarantees:

* **Determinism.** Model initialisation and data shuffling draw from two
  ``torch.Generator`` streams derived from ``seed``; nothing depends on the
  global random state (it is seeded too, for layers that use it anyway).
* **Exact resume.** A checkpoint holds the model, the optimizer, the epoch and
  batch reached, the epoch's shuffled order and the generator states. An
  interrupted run that is resumed ends with the same weights, bit for bit, as
  one that ran straight through (on the same machine and device).
* **Safe interrupts.** SIGINT (Ctrl-C) and SIGTERM do not kill a step half
  way: they are noted, the current batch finishes, a checkpoint is saved and
  :class:`TrainingInterrupted` is raised (the CLI exits with 128 + signal
  number and prints how to resume). A second signal stops at once, keeping
  the last checkpoint.
* **No torn files.** Every file is written atomically (see
  :mod:`qlstm.train.checkpoint`).

Outputs in the run directory: ``config.toml`` (the resolved configuration),
``checkpoint.pt``, ``metrics.csv`` (one row per epoch), ``results.json``
(final test metrics and facts about the run), ``loss.png`` and
``prediction.png`` (series) or ``frames.png`` (frames).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import QlstmError
from ..progress import Progress
from .checkpoint import (CHECKPOINT_NAME, atomic_write, checkpoint_path, load_checkpoint, load_model_state,
                         run_dir_error, save_checkpoint)
from .config import (ConfigError, TrainConfig, apply_overrides, check_resume_compatible, check_same_model,
                     config_from_dict, resolve, to_toml)
from .tasks import get_task

__all__ = ["train", "resume", "TrainResult", "TrainingInterrupted", "Position", "load_run", "stream_seed"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    config: TrainConfig
    metrics: dict
    """Test metrics (see the task's ``test_metrics``)."""
    history: list[dict]
    """One dict per epoch, as in metrics.csv."""
    checkpoint: Path
    plots: list[Path]
    parameters: int
    seconds: float
    """Training time summed over epochs (evaluation and plotting excluded)."""
    model: torch.nn.Module = field(repr=False)


class TrainingInterrupted(Exception):
    """Training was stopped by a signal or KeyboardInterrupt; the message says how to resume."""

    def __init__(self, run_dir: Path, signum: int, epoch: int, batch: int, n_batches: int, saved: bool,
                 saved_epoch: int | None):
        self.run_dir, self.signum, self.saved = run_dir, signum, saved
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        if saved:
            where = f"checkpoint saved at epoch {epoch + 1}, batch {batch}/{n_batches}"
        elif saved_epoch is not None:
            where = f"stopped inside a step; the last checkpoint is from the end of epoch {saved_epoch}"
        else:
            where = "stopped before the first checkpoint; nothing to resume"
        how = f"; resume with: qlstm train --resume {run_dir}" if (saved or saved_epoch is not None) else ""
        super().__init__(f"interrupted by {name}: {where} in {run_dir / CHECKPOINT_NAME}{how}")


@dataclass
class Position:
    """Where training stands; saved in every checkpoint.

    ``epoch`` counts completed epochs; ``batch`` completed batches of the
    current one, whose shuffled order is ``perm``. ``clean`` is False while
    a step is in flight (weights may be half-updated), when saving would
    store an inconsistent state.
    """

    epoch: int = 0
    batch: int = 0
    perm: torch.Tensor | None = None
    loss_sum: float = 0.0
    seen: int = 0
    epoch_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    clean: bool = True

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "perm": self.perm, "loss_sum": self.loss_sum,
                "seen": self.seen, "epoch_seconds": self.epoch_seconds, "history": self.history}

    @classmethod
    def from_dict(cls, d: dict) -> "Position":
        return cls(**d)


def stream_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for random stream ``stream`` of run seed ``seed``."""
    hi, lo = (int(v) for v in np.random.SeedSequence([seed, stream]).generate_state(2, np.uint32))
    return ((hi << 32) | lo) >> 1


# -- small helpers ----------------------------------------------------------------------------------


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but torch sees no CUDA device; use device=cpu (or auto)")
    return torch.device(name)


def _make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params, kw = model.parameters(), {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **kw)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, **kw)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=0.9, **kw)
    return torch.optim.RMSprop(params, **kw)


def _train_step(model, optimizer, task, x, y, grad_clip: float) -> float:
    """One optimizer step on one batch; returns the batch's mean loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = task.loss(model(task.to_input(x)), y)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


def _count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _write_json(path: Path, obj) -> None:
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2, default=float) + "\n"), mode="w")


def _write_metrics_csv(path: Path, history: list[dict]) -> None:
    """Rewrite metrics.csv from the whole history, so a resumed run never duplicates or loses rows."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]

    def write(fh):
        w = csv.DictWriter(fh, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(history)

    atomic_write(path, write, mode="w")


def _fresh_run_dir(cfg: TrainConfig) -> Path:
    """``runs/<task>-<model>-<data>-seed<seed>``, with ``-2``, ``-3``, ... if that is taken."""
    base = Path("runs") / f"{cfg.task}-{cfg.model.name}-{cfg.data.name}-seed{cfg.seed}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _prepare_run_dir(cfg: TrainConfig, resuming: bool) -> Path:
    """Create the run directory and write the resolved config into it.

    Done before any data are loaded, so an unwritable folder or a full disk
    fails in the first second rather than after the first epoch.
    """
    run_dir = Path(cfg.run_dir) if cfg.run_dir else _fresh_run_dir(cfg)
    if not resuming and (run_dir / CHECKPOINT_NAME).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with `qlstm train --resume {run_dir}` "
                          "or choose another run_dir=...")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise run_dir_error(run_dir, exc) from None
    cfg.run_dir = str(run_dir)
    atomic_write(run_dir / "config.toml", lambda fh: fh.write(to_toml(cfg)), mode="w")
    return run_dir


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run with ``n`` torch CPU threads (0 = leave torch's setting), restoring the old value after."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class _StopFlag:
    signum: int = 0


@contextlib.contextmanager
def _stop_on_signals():
    """Turn the first SIGINT/SIGTERM into a flag the loop checks between steps.

    A step is never cut in half: the loop finishes the batch, saves and
    stops. A second signal raises KeyboardInterrupt at once. Handlers can
    only be installed from the main thread; elsewhere signals keep their
    default behaviour.
    """
    stop = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.signum:
            raise KeyboardInterrupt
        stop.signum = signum
        print(f"\n{signal.Signals(signum).name} received: finishing this step, then saving a checkpoint "
              "(send again to stop at once)", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# -- the loop ---------------------------------------------------------------------------------------


def train(cfg: TrainConfig | None = None, *, on_step: Callable[[Position], None] | None = None) -> TrainResult:
    """Train a model as ``cfg`` describes (defaults: QLSTM on the sine series) and evaluate it.

    Args:
        cfg: a :class:`TrainConfig`; resolved here (task defaults, checks).
        on_step: called with the :class:`Position` after every optimizer
            step (a hook for tests and tools). Raising KeyboardInterrupt
            from it interrupts training like Ctrl-C does.

    Returns:
        a :class:`TrainResult`.

    Raises:
        ConfigError: invalid configuration (unknown key, model, data set).
        RunDirError: the run directory cannot be written (an ``OSError``).
        TrainingInterrupted: stopped by a signal after saving a checkpoint.
    """
    cfg = resolve(cfg if cfg is not None else TrainConfig())
    with _torch_threads(cfg.threads), _stop_on_signals() as stop:
        return _run(cfg, None, stop, on_step)


def resume(run_dir, changes=(), *, on_step: Callable[[Position], None] | None = None) -> TrainResult:
    """Continue the run in ``run_dir`` (or from a checkpoint file) where it stopped.

    ``changes`` (``["epochs=50"]`` or ``[(key, value)]``) are applied on top of
    the stored configuration; only :data:`~qlstm.train.config.RESUMABLE_KEYS`
    may differ (e.g. more ``epochs``). Anything else would make the resumed
    run differ from an uninterrupted one, so it is refused with a message.
    """
    path = checkpoint_path(run_dir)
    ckpt = load_checkpoint(path)
    stored = config_from_dict(ckpt["config"])
    requested = apply_overrides(stored, list(changes))
    requested.run_dir = str(path.parent)
    check_same_model(stored, requested)  # before resolve, whose messages would be about model arguments
    requested = resolve(requested)
    check_resume_compatible(stored, requested)
    with _torch_threads(requested.threads), _stop_on_signals() as stop:
        return _run(requested, ckpt, stop, on_step)


def _run(cfg: TrainConfig, ckpt: dict | None, stop: _StopFlag, on_step) -> TrainResult:
    run_dir = _prepare_run_dir(cfg, resuming=ckpt is not None)
    device, dtype = _device(cfg.device), _DTYPES[cfg.dtype]

    # Two independent random streams: a model that draws more initial values
    # (say, QLSTM vs LSTM) must not change the order in which batches are seen,
    # so that models compared at one seed see the same data in the same order.
    init_gen = torch.Generator().manual_seed(stream_seed(cfg.seed, 0))
    shuffle_gen = torch.Generator().manual_seed(stream_seed(cfg.seed, 1))
    torch.manual_seed(cfg.seed)  # belt and braces: layers that ignore our generators (dropout) use this

    task = get_task(cfg, device, dtype)
    data = task.load_data()
    # Built on the CPU (where the generator lives), then moved: the same initial weights on every device.
    model = task.build_model(init_gen).to(device=device, dtype=dtype)
    optimizer = _make_optimizer(cfg, model)
    pos = Position()
    ckpt_file = run_dir / CHECKPOINT_NAME
    saved_epoch: int | None = None

    if ckpt is not None:
        load_model_state(model, ckpt, ckpt_file, cfg.model.name)
        optimizer.load_state_dict(ckpt["optimizer_state"])
        pos = Position.from_dict(ckpt["progress"])
        shuffle_gen.set_state(ckpt["shuffle_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        saved_epoch = pos.epoch
        if cfg.epochs < pos.epoch:
            raise ConfigError(f"{run_dir} has already trained {pos.epoch} epochs; epochs={cfg.epochs} is fewer "
                              f"(give epochs >= {pos.epoch}, or evaluate it with `qlstm evaluate {run_dir}`)")
        if cfg.progress and pos.epoch < cfg.epochs:
            print(f"resuming {run_dir} at epoch {pos.epoch + 1}, batch {pos.batch}", file=sys.stderr)

    def save() -> None:
        save_checkpoint(ckpt_file, {
            "config": cfg.to_dict(), "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
            "progress": pos.to_dict(), "shuffle_rng": shuffle_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "data_info": data.info,
        })

    n = len(data.x_train)
    bs = min(cfg.batch_size, n)
    n_batches = math.ceil(n / bs)
    bar = Progress(range(pos.epoch, cfg.epochs), desc=f"training {cfg.model.name}",
                   disable=not cfg.progress or pos.epoch >= cfg.epochs)
    try:
        for epoch in bar:
            if pos.perm is None:
                pos.perm = torch.randperm(n, generator=shuffle_gen)
            model.train()
            batches = Progress(range(pos.batch, n_batches), total=n_batches - pos.batch, desc=f"  epoch {epoch + 1}",
                               disable=not cfg.progress or n_batches < 50)
            for b in batches:
                t0 = time.perf_counter()
                idx = pos.perm[b * bs:(b + 1) * bs]
                pos.clean = False
                loss = _train_step(model, optimizer, task, data.x_train[idx], data.y_train[idx], cfg.grad_clip)
                if not math.isfinite(loss):
                    raise QlstmError(f"training diverged at epoch {epoch + 1}, batch {b + 1}: loss is {loss}; "
                                     "lower lr=... or set grad_clip=1.0")
                pos.batch, pos.loss_sum, pos.seen = b + 1, pos.loss_sum + loss * len(idx), pos.seen + len(idx)
                pos.epoch_seconds += time.perf_counter() - t0
                pos.clean = True
                batches.set_postfix(loss=pos.loss_sum / pos.seen)
                if on_step is not None:
                    on_step(pos)
                if stop.signum:
                    save()
                    raise TrainingInterrupted(run_dir, stop.signum, pos.epoch, pos.batch, n_batches, True, saved_epoch)

            row = {"epoch": epoch + 1, "train_loss": pos.loss_sum / pos.seen, "seconds": round(pos.epoch_seconds, 4)}
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                model.eval()
                row.update(task.val_metrics(model, data))
            # Marked unclean while the position moves to the next epoch, so an interrupt
            # in between cannot save a half-advanced position.
            pos.clean = False
            pos.history.append(row)
            pos.epoch, pos.batch, pos.perm, pos.loss_sum, pos.seen, pos.epoch_seconds = epoch + 1, 0, None, 0.0, 0, 0.0
            pos.clean = True
            _write_metrics_csv(run_dir / "metrics.csv", pos.history)
            if pos.epoch % cfg.checkpoint_every == 0 or pos.epoch == cfg.epochs:
                save()
                saved_epoch = pos.epoch
            bar.set_postfix(loss=row["train_loss"], **({"val": row["val_loss"]} if "val_loss" in row else {}))
            if stop.signum:
                if saved_epoch != pos.epoch:
                    save()
                raise TrainingInterrupted(run_dir, stop.signum, pos.epoch, 0, n_batches, True, saved_epoch)
    except KeyboardInterrupt:
        # Not through our handler: a second signal, or raised by on_step. Save only
        # at a step boundary; mid-step the weights may be half-updated.
        if pos.clean:
            save()
        raise TrainingInterrupted(run_dir, signal.SIGINT, pos.epoch, pos.batch, n_batches, pos.clean,
                                  saved_epoch) from None

    model.eval()
    metrics = task.test_metrics(model, data)
    seconds = sum(row["seconds"] for row in pos.history)
    params = _count_parameters(model)
    _write_json(run_dir / "results.json", {
        "task": cfg.task, "model": cfg.model.name, "model_kwargs": cfg.model.kwargs, "data": cfg.data.name,
        "seed": cfg.seed, "epochs": pos.epoch, "parameters": params, "train_seconds": round(seconds, 3),
        "seconds_per_epoch": round(seconds / max(1, len(pos.history)), 4), "device": str(device),
        "torch_threads": torch.get_num_threads(), "data_info": data.info, "test": metrics,
        "final": pos.history[-1] if pos.history else {},
    })
    from .plots import have_matplotlib

    plots = task.plots(model, data, pos.history, run_dir) if have_matplotlib() else []
    return TrainResult(run_dir=run_dir, config=cfg, metrics=metrics, history=pos.history, checkpoint=ckpt_file,
                       plots=plots, parameters=params, seconds=seconds, model=model)


def load_run(path, device: str = "cpu"):
    """Load a run for evaluation: ``(cfg, task, data, model, ckpt)`` with the checkpoint's weights.

    ``path`` is a run directory or a checkpoint file. The model is rebuilt
    from the configuration stored in the checkpoint itself.
    """
    cp = checkpoint_path(path)
    ckpt = load_checkpoint(cp)
    cfg = config_from_dict(ckpt["config"])
    cfg.device = device
    cfg = resolve(cfg)
    dev, dtype = _device(cfg.device), _DTYPES[cfg.dtype]
    task = get_task(cfg, dev, dtype)
    data = task.load_data()
    model = task.build_model(torch.Generator().manual_seed(0)).to(device=dev, dtype=dtype)
    load_model_state(model, ckpt, cp, cfg.model.name)
    model.eval()
    return cfg, task, data, model, ckpt
