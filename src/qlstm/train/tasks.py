"""The two tasks the training loop knows: series forecasting and frame prediction.

A task turns a resolved :class:`~qlstm.train.config.TrainConfig` into data
splits and a model, and knows its metrics and plots. Both tasks have the same
methods (``load_data``, ``build_model``, ``batch``, ``val_metrics``,
``test_metrics``, ``plots``) so that :func:`qlstm.train.loop.train` never
asks which one it runs; they share no code by inheritance.

* :class:`SeriesTask` -- a :class:`~qlstm.models.wrappers.SeriesForecaster`
  around ``qlstm.models.build(name, input_size=1, ...)``; a window of a
  min-max scaled series (``[-1, 1]``, fitted on the training part) to the
  value ``horizon`` steps later.
* :class:`FramesTask` -- a :class:`~qlstm.models.wrappers.FramePredictor`
  around a convolutional core (``convlstm``, ``qconvlstm``), or a
  :class:`~qlstm.models.wrappers.FlatFramePredictor` around a sequence core
  (``lstm``, ``qlstm``: the FC-LSTM setup, frames flattened and linearly
  encoded to :data:`FLAT_FEATURES` features) on Moving-MNIST, ``frames_in``
  frames to ``frames_out`` frames.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.series import SERIES, MinMaxScaler, load_csv_series, make_series, series_dataset
from ..errors import QlstmError
from ..models import MODELS, build, model_names
from .config import ConfigError, TrainConfig, _suggest, signature_keys

__all__ = ["Splits", "SeriesTask", "FramesTask", "get_task", "FRAME_MODELS", "FLAT_MODELS", "check_names", "check_kwargs",
           "moving_mnist_splits", "build_core"]

FRAME_MODELS = ("convlstm", "qconvlstm")
"""Registry names of convolutional cores (frames task only); every other model is a sequence core, which
the series task runs directly and the frames task inside a :class:`~qlstm.models.wrappers.FlatFramePredictor`."""

FLAT_MODELS = ("lstm", "qlstm")
"""Sequence cores the frames task accepts (wrapped in a :class:`~qlstm.models.wrappers.FlatFramePredictor`)."""

FLAT_FEATURES = 16
"""Features per frame that a sequence core reads on the frames task (the paper's 16-dim vectors)."""

# Arguments a task passes to a core itself; a configuration may not set them.
_TASK_SUPPLIED = {"input_size", "input_channels", "frame_size", "generator", "device", "dtype", "batch_first"}


@dataclass
class Splits:
    """Train/validation/test tensors of one task, on the CPU.

    Series: ``x_* [N, window, 1]`` and ``y_* [N, 1]``, float, scaled.
    Frames: ``x_* [N, frames_in, 1, H, W]`` and ``y_* [N, frames_out, 1, H, W]``, uint8 (pixel values).
    """

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    info: dict = field(default_factory=dict)
    """JSON-ready facts about the data (sizes, scaler range) for results.json and checkpoints."""
    scaler: MinMaxScaler | None = None
    raw: np.ndarray | None = None
    """Series: the whole series in original units (for plots)."""


# -- names and arguments ----------------------------------------------------------------------------


def _model_signature(name: str) -> tuple[set[str], bool]:
    return signature_keys(MODELS[name])


def check_names(cfg: TrainConfig) -> None:
    """Model and data-set names exist and fit the task; raise a ConfigError listing the valid ones."""
    name = cfg.model.name
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(model_names())}"
                          + _suggest(name, model_names()))
    series_models = [m for m in model_names() if m not in FRAME_MODELS]
    if cfg.task == "series" and name in FRAME_MODELS:
        raise ConfigError(f"model {name!r} predicts frames; use task=frames, or a series model: "
                          f"{', '.join(series_models)}")
    if cfg.task == "frames" and name not in FRAME_MODELS + FLAT_MODELS:
        raise ConfigError(f"model {name!r} cannot run on frames (its circuit would need a qubit per frame "
                          f"feature); frame models: {', '.join(FRAME_MODELS + FLAT_MODELS)}")
    valid = sorted(SERIES) + ["csv"] if cfg.task == "series" else ["moving-mnist"]
    if cfg.data.name not in valid:
        raise ConfigError(f"unknown {cfg.task} data set {cfg.data.name!r}; valid: {', '.join(valid)}"
                          + _suggest(cfg.data.name, valid))


def _check_args(given: dict, accepted: set[str], var_kw: bool, what: str, prefix: str) -> None:
    if var_kw:
        return
    for key in given:
        if key not in accepted:
            raise ConfigError(
                f"{what} has no argument {key!r} ({prefix}.{key})"
                + (_suggest(f"{prefix}.{key}", [f"{prefix}.{a}" for a in sorted(accepted)]) or ".")
                + f" Valid: {', '.join(sorted(accepted)) or 'none'}."
            )


def check_kwargs(cfg: TrainConfig) -> None:
    """Model and data keyword arguments exist in their constructors' signatures (where readable)."""
    clash = sorted(set(cfg.model.kwargs) & _TASK_SUPPLIED)
    if clash:
        raise ConfigError(f"model.{clash[0]} is set by the {cfg.task} task itself; remove it from the config")
    names, var_kw = _model_signature(cfg.model.name)
    _check_args(cfg.model.kwargs, names - _TASK_SUPPLIED, var_kw, f"model {cfg.model.name!r}", "model")
    if cfg.task == "frames":
        names, var_kw = signature_keys(moving_mnist_splits)
        names -= {"frames_in", "frames_out"}
    elif cfg.data.name == "csv":
        names, var_kw = {"path", "column"}, False
        missing = [k for k in ("path", "column") if k not in cfg.data.kwargs]
        if missing:
            raise ConfigError("data=csv needs data.path=FILE and data.column=NAME; missing: "
                              + ", ".join(f"data.{k}" for k in missing))
    else:
        names, var_kw = signature_keys(SERIES[cfg.data.name])
    _check_args(cfg.data.kwargs, names, var_kw, f"data set {cfg.data.name!r}", "data")


# -- building models --------------------------------------------------------------------------------


def _reset_head(head: nn.Module, generator: torch.Generator) -> None:
    """Redraw a Linear/Conv2d head from ``generator`` with torch's default bound 1/sqrt(fan_in).

    The wrappers create their heads from torch's global RNG; redrawing them
    from the run's generator keeps initialisation independent of global state.
    """
    fan_in = head.weight[0].numel()
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_((torch.rand(p.shape, generator=generator, dtype=p.dtype) * 2 - 1) * bound)


def build_core(name: str, kwargs: dict, supplied: dict, generator: torch.Generator) -> nn.Module:
    """``build(name, **supplied, **kwargs)``, passing ``generator`` and supplied arguments the core accepts."""
    names, var_kw = _model_signature(name)
    args = {k: v for k, v in supplied.items() if var_kw or k in names}
    if var_kw or "generator" in names:
        args["generator"] = generator
    try:
        return build(name, **args, **kwargs)
    except TypeError as exc:
        if "generator" in args and "generator" in str(exc):
            # A constructor behind **kwargs that takes no generator: it draws from the
            # global RNG, which the loop seeds as well.
            args.pop("generator")
            return build(name, **args, **kwargs)
        raise ConfigError(f"model {name!r} rejected its arguments {sorted({**args, **kwargs})}: {exc}") from None


def _batched(model: nn.Module, x: Tensor, batch_size: int, to_input) -> Tensor:
    """Model outputs for ``x`` in chunks, without gradients, gathered on the CPU as float64."""
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(to_input(x[i:i + batch_size])).detach().to("cpu", torch.float64))
    return torch.cat(outs)


# -- series ---------------------------------------------------------------------------------------


class SeriesTask:
    """Forecast the value ``horizon`` steps after a window of a scaled univariate series."""

    name = "series"

    def __init__(self, cfg: TrainConfig, device: torch.device, dtype: torch.dtype):
        self.cfg, self.device, self.dtype = cfg, device, dtype

    def load_data(self) -> Splits:
        cfg = self.cfg
        if cfg.data.name == "csv":
            raw = load_csv_series(cfg.data.kwargs["path"], cfg.data.kwargs["column"])
        else:
            raw = make_series(cfg.data.name, **cfg.data.kwargs)
        d = series_dataset(raw, window=cfg.window, train_frac=cfg.train_frac, horizon=cfg.horizon,
                           dtype=self.dtype)
        # Validation = the chronologically last windows of the training part, so it lies
        # between training and test in time, as the test split does after it.
        n_val = max(1, int(round(cfg.val_frac * len(d.x_train))))
        if len(d.x_train) - n_val < 1:
            raise ConfigError(f"{len(d.x_train)} training windows cannot spare {n_val} for validation; "
                              "lower val_frac or use a longer series")
        cut = len(d.x_train) - n_val
        info = {"points": len(raw), "windows_train": cut, "windows_val": n_val, "windows_test": len(d.x_test),
                "window": cfg.window, "horizon": cfg.horizon,
                "scaler": {"data_min": d.scaler.data_min_, "data_max": d.scaler.data_max_,
                           "feature_range": list(d.scaler.feature_range)}}
        return Splits(d.x_train[:cut], d.y_train[:cut], d.x_train[cut:], d.y_train[cut:], d.x_test, d.y_test,
                      info=info, scaler=d.scaler, raw=raw)

    def build_model(self, generator: torch.Generator) -> nn.Module:
        from ..models.wrappers import SeriesForecaster

        core = build_core(self.cfg.model.name, self.cfg.model.kwargs, {"input_size": 1}, generator)
        model = SeriesForecaster(core)
        _reset_head(model.head, generator)
        return model

    def to_input(self, x: Tensor) -> Tensor:
        return x.to(self.device, self.dtype)

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        return nn.functional.mse_loss(pred, y.to(pred.device, pred.dtype))

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """Scaled predictions ``[N, 1]`` (float64, CPU)."""
        return _batched(model, x, 1024, self.to_input)

    def val_metrics(self, model: nn.Module, data: Splits) -> dict[str, float]:
        from ..metrics import regression as R

        p = self.predict(model, data.x_val)
        y = data.y_val.double()
        return {"val_loss": R.mse(p, y), "val_tolerance_accuracy": R.tolerance_accuracy(p, y, self.cfg.tolerance)}

    def test_metrics(self, model: nn.Module, data: Splits) -> dict[str, float]:
        """Metrics on the scaled test split, plus MSE in the data's original units."""
        from ..metrics import regression as R

        p, y = self.predict(model, data.x_test), data.y_test.double()
        prev = data.x_test[:, -1, :].double()
        out = {"mse": R.mse(p, y), "mae": R.mae(p, y), "rmse": R.rmse(p, y), "r2": R.r2(p, y),
               "tolerance_accuracy": R.tolerance_accuracy(p, y, self.cfg.tolerance),
               "direction_accuracy": R.direction_accuracy(p, y, prev)}
        inv = data.scaler.inverse_transform
        out["mse_original_units"] = R.mse(inv(p), inv(y))
        return out

    def plots(self, model: nn.Module, data: Splits, history: list[dict], run_dir: Path) -> list[Path]:
        from . import plots

        preds = [self.predict(model, x)[:, 0].numpy() for x in (data.x_train, data.x_val, data.x_test)]
        inv = data.scaler.inverse_transform
        first = self.cfg.window + self.cfg.horizon - 1  # index of the first window's target in the series
        title = f"{self.cfg.model.name} on {self.cfg.data.name} (test split shaded)"
        return [plots.plot_losses(history, run_dir / "loss.png"),
                plots.plot_series(data.raw, [inv(p) for p in preds], first, run_dir / "prediction.png", title)]


# -- frames ---------------------------------------------------------------------------------------


def _load_digits(split: str) -> np.ndarray:
    """MNIST digit images of a split (a seam for tests, which substitute synthetic digits)."""
    from ..data.mnist import load_mnist

    return load_mnist(split)[0].numpy()


def moving_mnist_splits(frames_in: int = 10, frames_out: int = 10, *, num_train: int = 256, num_val: int = 32,
                        num_test: int = 64, size: int = 64, num_digits: int = 2, step_length: float = 0.1,
                        seed: int | None = None) -> dict[str, np.ndarray]:
    """Moving-MNIST train/val/test sequences, uint8 ``[S, frames_in + frames_out, size, size]``.

    Training and validation sequences use MNIST training digits (different
    generator seeds), the test sequences MNIST test digits with the fixed
    :data:`~qlstm.data.TEST_SEED`, so the test set never depends on the
    run's seed. ``seed`` (``data.seed``; default :data:`~qlstm.data.TRAIN_SEED`)
    moves the training and validation sequences only; the run's own ``seed``
    does not change the data, as for the series task.
    """
    from ..data.moving_mnist import TEST_SEED, TRAIN_SEED, generate_moving_mnist

    base = TRAIN_SEED if seed is None else seed
    train_digits, test_digits = _load_digits("train"), _load_digits("test")
    seq_len = frames_in + frames_out

    def make(digits, n, s):
        # Sequence i from rng([s, i]), as MovingMNIST does: item i never depends on how many are drawn.
        return np.stack([generate_moving_mnist(digits, 1, seq_len, size, num_digits, step_length,
                                               seed=np.random.default_rng([s, i]))[0] for i in range(n)])

    return {"train": make(train_digits, num_train, base), "val": make(train_digits, num_val, base + 1_000_003),
            "test": make(test_digits, num_test, TEST_SEED)}


class FramesTask:
    """Predict ``frames_out`` Moving-MNIST frames from ``frames_in`` observed ones."""

    name = "frames"

    def __init__(self, cfg: TrainConfig, device: torch.device, dtype: torch.dtype):
        self.cfg, self.device, self.dtype = cfg, device, dtype

    def load_data(self) -> Splits:
        cfg = self.cfg
        kw = dict(cfg.data.kwargs)
        seqs = moving_mnist_splits(cfg.frames_in, cfg.frames_out, **kw)
        t = cfg.frames_in

        def split(a):
            a = torch.from_numpy(a).unsqueeze(2)  # [S, T, 1, H, W] uint8
            return a[:, :t], a[:, t:]

        (xtr, ytr), (xva, yva), (xte, yte) = split(seqs["train"]), split(seqs["val"]), split(seqs["test"])
        size = int(xtr.shape[-1])
        p = cfg.model.patch_size
        if size % p:
            raise ConfigError(f"frame size {size} is not divisible by model.patch_size={p}; "
                              "pick a patch size that divides it")
        info = {"sequences_train": len(xtr), "sequences_val": len(xva), "sequences_test": len(xte),
                "frame_size": size, "frames_in": cfg.frames_in, "frames_out": cfg.frames_out}
        self._pixel_mean = float(xtr.double().mean()) / 255.0 if xtr.numel() else None
        return Splits(xtr, ytr, xva, yva, xte, yte, info=info)

    def _init_head_bias(self, head: nn.Module) -> None:
        """Start the frame head's bias at the logit of the training frames' mean pixel value.

        Moving-MNIST is mostly black (mean pixel about 0.05); with a zero-mean bias the
        sigmoid head starts at mid-grey, and a short run spends its steps just learning the
        background. Every frame model gets the same start.
        """
        mean = getattr(self, "_pixel_mean", None)
        if mean is None:
            return
        m = min(max(mean, 1e-3), 0.5)
        with torch.no_grad():
            head.bias.fill_(math.log(m / (1 - m)))

    def build_model(self, generator: torch.Generator) -> nn.Module:
        from ..models.wrappers import FlatFramePredictor, FramePredictor

        p = self.cfg.model.patch_size
        default_size = inspect.signature(moving_mnist_splits).parameters["size"].default
        size = int(self.cfg.data.kwargs.get("size", default_size))
        if self.cfg.model.name not in FRAME_MODELS:  # a sequence core: flattened frames, FC encoder/decoder
            core = build_core(self.cfg.model.name, self.cfg.model.kwargs, {"input_size": FLAT_FEATURES}, generator)
            model = FlatFramePredictor(core, (size, size), n_out=self.cfg.frames_out, out_channels=1, patch_size=p)
            _reset_head(model.encoder, generator)
            _reset_head(model.head, generator)
            self._init_head_bias(model.head)
            return model
        supplied = {"input_channels": p * p, "frame_size": (size // p, size // p)}
        core = build_core(self.cfg.model.name, self.cfg.model.kwargs, supplied, generator)
        model = FramePredictor(core, n_out=self.cfg.frames_out, out_channels=1, patch_size=p)
        _reset_head(model.head, generator)
        self._init_head_bias(model.head)
        return model

    def to_input(self, x: Tensor) -> Tensor:
        return x.to(self.device).to(self.dtype) / 255.0

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        return nn.functional.mse_loss(pred, self.to_input(y))

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """Predicted frames ``[N, frames_out, 1, H, W]`` in ``[0, 1]`` (float64, CPU)."""
        return _batched(model, x, max(1, self.cfg.batch_size), self.to_input)

    def val_metrics(self, model: nn.Module, data: Splits) -> dict[str, float]:
        from ..metrics import frames as Fm

        p = self.predict(model, data.x_val)
        y = data.y_val.double() / 255.0
        return {"val_loss": Fm.mse(p, y), "val_ssim": Fm.ssim(p, y)}

    def test_metrics(self, model: nn.Module, data: Splits) -> dict[str, float]:
        """OpenSTL's metric set on the test split (``mse`` per pixel, ``mse_frame_sum`` per frame, ...)."""
        return self.score(self.predict(model, data.x_test), data.y_test.double() / 255.0)

    def score(self, p: Tensor, y: Tensor) -> dict[str, float]:
        """The test metrics of predicted frames ``p`` against ``y`` (both in ``[0, 1]``)."""
        from ..metrics import frames as Fm

        out = {"mse": Fm.mse(p, y), "mse_frame_sum": Fm.mse_frame_sum(p, y), "mae": Fm.mae(p, y),
               "mae_frame_sum": Fm.mae_frame_sum(p, y), "psnr": Fm.psnr(p, y), "ssim": Fm.ssim(p, y),
               "ssim_openstl": Fm.ssim_openstl(p, y)}
        if self.cfg.lpips:
            out["lpips"] = Fm.lpips(p, y, download=False)
        return out

    def plots(self, model: nn.Module, data: Splits, history: list[dict], run_dir: Path) -> list[Path]:
        from . import plots

        k = min(2, len(data.x_test))
        pred = self.predict(model, data.x_test[:k]).numpy()
        title = f"{self.cfg.model.name} on Moving-MNIST: input, truth, prediction"
        return [plots.plot_losses(history, run_dir / "loss.png"),
                plots.plot_frames(data.x_test[:k].numpy() / 255.0, data.y_test[:k].numpy() / 255.0, pred,
                                  run_dir / "frames.png", title)]


def get_task(cfg: TrainConfig, device: torch.device, dtype: torch.dtype) -> Any:
    """The task object for ``cfg.task``."""
    if cfg.task == "series":
        return SeriesTask(cfg, device, dtype)
    if cfg.task == "frames":
        return FramesTask(cfg, device, dtype)
    raise QlstmError(f"unknown task {cfg.task!r}")
