"""Training configuration: dataclasses, TOML/YAML files and ``key=value`` overrides.

A run is described by one :class:`TrainConfig`. It is built in three layers,
later ones winning:

1. the dataclass defaults, with task-dependent defaults filled in by
   :func:`resolve` (``TASK_DEFAULTS``, ``MODEL_DEFAULTS``);
2. a file (``--config FILE``): TOML (``.toml``), YAML (``.yaml``/``.yml``,
   needs PyYAML) or JSON (``.json``);
3. overrides ``key=value`` on the command line.

Files and overrides use the same keys. Top-level keys are the fields of
:class:`TrainConfig`; ``model.<key>`` and ``data.<key>`` address the two
tables. ``model.name`` / ``data.name`` pick the registry entry
(``model=lstm`` and ``data=sine`` are short for them); any other key in those
tables is passed to the model constructor or the data generator as a keyword
argument. A file::

    task = "series"
    epochs = 30

    [model]
    name = "qlstm"
    hidden_size = 3

    [data]
    name = "sine"
    noise_std = 0.05

is the same as ``task=series epochs=30 model=qlstm model.hidden_size=3
data=sine data.noise_std=0.05``. Values are read as JSON where they parse
(``4``, ``0.1``, ``true``, ``[16, 16]``, ``"text"``), else as plain strings,
then converted to the field's type. A key that does not exist is an error
naming it and the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import QlstmError

__all__ = [
    "ConfigError",
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "TASKS",
    "TASK_DEFAULTS",
    "MODEL_DEFAULTS",
    "RESUMABLE_KEYS",
    "load_config",
    "read_config_file",
    "apply_overrides",
    "parse_overrides",
    "resolve",
    "config_from_dict",
    "to_toml",
    "valid_keys",
]

TASKS = ("series", "frames")


class ConfigError(QlstmError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


@dataclass
class ModelConfig:
    """Which model to train and the keyword arguments of its constructor.

    ``name`` is a :func:`qlstm.models.build` registry name. ``kwargs`` go to
    the core's constructor (``hidden_size``, ``n_layers``, ``mode``, ...);
    the task supplies ``input_size`` (series) or ``input_channels`` and
    ``frame_size`` (frames). ``patch_size`` is the space-to-depth patch of
    :class:`~qlstm.models.wrappers.FramePredictor` (frames only).
    """

    name: str = ""
    kwargs: dict = field(default_factory=dict)
    patch_size: int = 0


@dataclass
class DataConfig:
    """Which data set, and keyword arguments of its generator.

    Series task: ``name`` is a :data:`qlstm.data.SERIES` name (``sine``,
    ``damped_pendulum``, ...; ``kwargs`` go to the generator, e.g.
    ``n_points``, ``noise_std``) or ``csv`` (``kwargs``: ``path``,
    ``column``). Frames task: ``moving-mnist`` (``kwargs``: ``num_train``,
    ``num_val``, ``num_test``, ``size``, ``num_digits``, ``step_length``).
    """

    name: str = ""
    kwargs: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Everything one training run needs. ``None`` means "the task's default" (see :func:`resolve`)."""

    task: str = "series"
    """``"series"`` (window -> next value) or ``"frames"`` (Moving-MNIST, frames in -> frames out)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)

    window: int = 4
    """Series: values per input window."""
    horizon: int = 1
    """Series: predict the value this many steps after the window."""
    train_frac: float = 0.67
    """Series: chronological share of the series used for training (+ validation)."""
    val_frac: float = 0.2
    """Share of the training windows held out for validation (the chronologically last ones for series)."""
    frames_in: int = 10
    """Frames: observed frames per sequence."""
    frames_out: int = 10
    """Frames: predicted frames per sequence."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str = "adam"
    """``adam``, ``adamw``, ``sgd`` (momentum 0.9) or ``rmsprop``."""
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value; 0 = no clipping."""

    seed: int = 0
    """Seeds model initialisation, data shuffling (two separate ``torch.Generator`` streams) and noise."""
    device: str = "cpu"
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available)."""
    dtype: str = "float32"
    """``float32`` or ``float64`` (model parameters and data)."""
    threads: int | None = None
    """torch CPU threads during the run; 0 = torch's default. Small recurrent models run fastest on 1."""

    run_dir: str = ""
    """Output folder; empty = ``runs/<task>-<model>-<data>-seed<seed>`` (a numbered suffix if taken)."""
    eval_every: int = 1
    """Validate every N epochs (and always after the last)."""
    checkpoint_every: int = 1
    """Save a checkpoint every N epochs (and always after the last, and on interrupt)."""
    tolerance: float = 0.1
    """Series: tolerance of ``tolerance_accuracy`` in scaled units (the series is scaled to [-1, 1])."""
    lpips: bool = False
    """Frames: also compute LPIPS on the test split (needs ``qlstm data lpips`` once)."""
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Defaults that depend on the task (fields left at None / "" / 0 above).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "series": {"model.name": "qlstm", "data.name": "sine", "epochs": 30, "batch_size": 16, "lr": 0.05,
               "threads": 1},
    "frames": {"model.name": "convlstm", "data.name": "moving-mnist", "epochs": 5, "batch_size": 8, "lr": 1e-3,
               "threads": 0, "model.patch_size": 4},
}

# Constructor keyword arguments used when the configuration names none (per task and model).
MODEL_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("series", "lstm"): {"hidden_size": 3},
    ("series", "qlstm"): {"hidden_size": 3, "n_layers": 2},
    # 3 + 3 * hidden qubits and 2**(4 * hidden) measurement branches: 2 keeps it at 7 qubits and 256 branches
    ("series", "mcm-qlstm"): {"hidden_size": 2, "n_layers": 1},
    ("series", "*"): {"hidden_size": 3},
    ("frames", "convlstm"): {"hidden_channels": [32, 32], "kernel_size": 3},
    ("frames", "qconvlstm"): {"hidden_channels": 4},
    # sequence cores on frames (FlatFramePredictor: 16 features per frame in, a linear decoder out)
    ("frames", "lstm"): {"hidden_size": 16},
    ("frames", "qlstm"): {"hidden_size": 16, "mode": "adapter", "n_qubits": 4, "n_layers": 2},
    ("frames", "*"): {"hidden_channels": 16},
}

# Keys that may change when a run is resumed without changing what has been computed so far.
RESUMABLE_KEYS = ("epochs", "progress", "device", "threads", "eval_every", "checkpoint_every", "lpips", "run_dir")

_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
_DTYPES = ("float32", "float64")
_SHORT = {"model": "model.name", "data": "data.name"}


def _top_fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in fields(TrainConfig) if f.name not in ("model", "data")}


def valid_keys() -> list[str]:
    """Every fixed key (kwargs of models and data sets come on top)."""
    keys = [k for k in _top_fields()]
    keys += ["model", "model.name", "model.patch_size", "data", "data.name"]
    return keys


def _suggest(key: str, candidates) -> str:
    """``"; did you mean 'x'?"`` for the nearest candidate, or ``""``."""
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown(key: str, source: str) -> ConfigError:
    return ConfigError(
        f"unknown config key {key!r}{source}{_suggest(key, valid_keys()) or '.'} "
        f"Valid keys: {', '.join(valid_keys())}, plus model.<constructor argument> and data.<generator argument>."
    )


def parse_value(text: str) -> Any:
    """Read an override value: JSON where it parses (numbers, true/false, null, lists, quoted strings), else the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(items) -> list[tuple[str, Any]]:
    """``["epochs=5", "model.hidden_size=4"]`` -> ``[("epochs", 5), ("model.hidden_size", 4)]``."""
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. epochs=5, model.hidden_size=4)")
        out.append((key, parse_value(value)))
    return out


def _coerce(key: str, value: Any, f: dataclasses.Field) -> Any:
    """Convert ``value`` to the type of field ``f`` or raise a ConfigError naming ``key``."""
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    optional = "None" in kind
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {key!r} cannot be empty")
    base = kind.replace(" | None", "").strip()
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if base == "int":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return int(value)
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if base == "str":
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return str(value)
    return value


def set_key(cfg: TrainConfig, key: str, value: Any, source: str = "") -> None:
    """Set one dotted key on ``cfg`` in place (see the module docstring for the key syntax)."""
    key = _SHORT.get(key, key)
    head, dot, rest = key.partition(".")
    if not dot:
        f = _top_fields().get(key)
        if f is None:
            raise _unknown(key, source)
        setattr(cfg, key, _coerce(key, value, f))
        return
    if head not in ("model", "data") or not rest or "." in rest:
        raise _unknown(key, source)
    table = cfg.model if head == "model" else cfg.data
    if rest == "kwargs":
        raise ConfigError(f"set constructor arguments one by one ({head}.<name>=value), not {key!r}")
    sub = {f.name: f for f in fields(table) if f.name != "kwargs"}
    if rest in sub:
        setattr(table, rest, _coerce(key, value, sub[rest]))
    else:
        table.kwargs[rest] = value


def apply_overrides(cfg: TrainConfig, overrides, source: str = "") -> TrainConfig:
    """Apply ``[(key, value), ...]`` (or ``["key=value", ...]``) to a copy of ``cfg``."""
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kwargs=dict(cfg.model.kwargs)),
                              data=dataclasses.replace(cfg.data, kwargs=dict(cfg.data.kwargs)))
    items = parse_overrides(overrides) if overrides and isinstance(next(iter(overrides)), str) else overrides
    for key, value in items or []:
        set_key(cfg, key, value, source)
    return cfg


def _flatten(d: dict, source: str) -> list[tuple[str, Any]]:
    """A file's nested tables -> dotted keys (``{"model": {"name": "x"}}`` -> ``("model.name", "x")``)."""
    out = []
    for key, value in d.items():
        if key in ("model", "data") and isinstance(value, dict):
            for sub, v in value.items():
                if sub == "kwargs" and isinstance(v, dict):  # the layout written by to_dict()
                    out += [(f"{key}.{k}", x) for k, x in v.items()]
                elif isinstance(v, dict):
                    raise ConfigError(f"{source}: [{key}] entry {sub!r} is a nested table; only scalars and lists "
                                      "are supported")
                else:
                    out.append((f"{key}.{sub}", v))
        elif isinstance(value, dict):
            raise _unknown(key, f" in {source}")
        else:
            out.append((key, value))
    return out


def read_config_file(path: str | os.PathLike) -> list[tuple[str, Any]]:
    """Read a TOML, YAML or JSON config file into dotted ``(key, value)`` pairs."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10: the same parser as a package
                try:
                    import tomli as tomllib
                except ImportError:
                    raise ConfigError(f"{path}: reading TOML needs Python 3.11+ or `pip install tomli`") from None
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); "
                                  "or write the config as TOML") from None
            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: unknown config format {suffix!r}; use .toml, .yaml, .yml or .json")
    except ConfigError:
        raise
    except Exception as exc:  # the parsers raise their own error types; all mean "not a valid file"
        raise ConfigError(f"{path} is not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of keys at the top level, got {type(data).__name__}")
    return _flatten(data, str(path))


def load_config(path: str | os.PathLike | None = None, overrides=None) -> TrainConfig:
    """Defaults, then the file at ``path`` (if any), then ``overrides``; not yet resolved."""
    cfg = TrainConfig()
    if path is not None:
        cfg = apply_overrides(cfg, read_config_file(path), f" in {path}")
    return apply_overrides(cfg, overrides or [])


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of :meth:`TrainConfig.to_dict` (as stored in checkpoints and ``config.toml``)."""
    return apply_overrides(TrainConfig(), _flatten(d, "stored config"), " in a stored config")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill the task defaults and check every value; returns a new, complete config.

    Model and data-set names are checked against their registries, and
    constructor / generator arguments against their signatures where they
    can be read.
    """
    _check(cfg.task in TASKS, f"unknown task {cfg.task!r}; valid tasks: {', '.join(TASKS)}"
           + _suggest(cfg.task, TASKS))
    cfg = apply_overrides(cfg, [])
    for key, value in TASK_DEFAULTS[cfg.task].items():
        head, _, rest = key.partition(".")
        holder, name = ((cfg.model if head == "model" else cfg.data), rest) if rest else (cfg, key)
        current = getattr(holder, name)
        if current is None or current == "" or (name == "patch_size" and current == 0):
            setattr(holder, name, value)
    if cfg.task == "series":
        cfg.model.patch_size = 0
    from . import tasks  # the registries live with the tasks; imported here to keep config light

    tasks.check_names(cfg)
    defaults = MODEL_DEFAULTS.get((cfg.task, cfg.model.name), MODEL_DEFAULTS[(cfg.task, "*")])
    cfg.model.kwargs = {**defaults, **cfg.model.kwargs}
    tasks.check_kwargs(cfg)
    if cfg.data.name == "csv":
        # absolute, so that `qlstm evaluate` / `predict` find the file from any working directory
        cfg.data.kwargs["path"] = str(Path(cfg.data.kwargs["path"]).expanduser().resolve())

    for key in ("window", "horizon", "frames_in", "frames_out", "epochs", "batch_size", "eval_every",
                "checkpoint_every"):
        v = getattr(cfg, key)
        _check(v >= 1, f"{key} must be >= 1, got {v}")
    _check(cfg.threads >= 0, f"threads must be >= 0, got {cfg.threads}")
    _check(0.0 < cfg.train_frac < 1.0, f"train_frac must be in (0, 1), got {cfg.train_frac}")
    _check(0.0 < cfg.val_frac < 1.0, f"val_frac must be in (0, 1), got {cfg.val_frac}")
    _check(math.isfinite(cfg.lr) and cfg.lr > 0, f"lr must be a positive number, got {cfg.lr}")
    _check(cfg.weight_decay >= 0, f"weight_decay must be >= 0, got {cfg.weight_decay}")
    _check(cfg.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {cfg.grad_clip}")
    _check(cfg.tolerance >= 0, f"tolerance must be >= 0, got {cfg.tolerance}")
    _check(cfg.optimizer in _OPTIMIZERS, f"unknown optimizer {cfg.optimizer!r}; valid: {', '.join(_OPTIMIZERS)}"
           + _suggest(cfg.optimizer, _OPTIMIZERS))
    _check(cfg.dtype in _DTYPES, f"dtype must be one of {', '.join(_DTYPES)}, got {cfg.dtype!r}")
    dev = cfg.device
    _check(dev in ("cpu", "auto", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit()),
           f"device must be cpu, cuda, cuda:N or auto, got {dev!r}")
    if cfg.task == "frames":
        _check(cfg.model.patch_size >= 1, f"model.patch_size must be >= 1, got {cfg.model.patch_size}")
    return cfg


def check_same_model(stored: TrainConfig, requested: TrainConfig) -> None:
    """Raise if ``requested`` names another task or model than the checkpoint's ``stored`` config."""
    if stored.model.name != requested.model.name or stored.task != requested.task:
        raise ConfigError(
            f"the checkpoint holds a {stored.task} run of model {stored.model.name!r}, but the requested "
            f"configuration is a {requested.task} run of model {requested.model.name!r}; resume with the run's own "
            "configuration (drop --config and model/task overrides) or start a new run"
        )


def check_resume_compatible(stored: TrainConfig, requested: TrainConfig) -> None:
    """Raise unless ``requested`` differs from ``stored`` only in :data:`RESUMABLE_KEYS`."""
    check_same_model(stored, requested)
    da, db = dict(_flatten(stored.to_dict(), "checkpoint")), dict(_flatten(requested.to_dict(), "request"))
    changed = sorted(k for k in set(da) | set(db) if k not in RESUMABLE_KEYS and da.get(k) != db.get(k))
    if changed:
        diffs = ", ".join(f"{k}: {da.get(k)!r} -> {db.get(k)!r}" for k in changed)
        raise ConfigError(
            f"cannot resume with a changed configuration ({diffs}); only {', '.join(RESUMABLE_KEYS)} may change "
            "when resuming; start a new run for anything else"
        )


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def to_toml(cfg: TrainConfig) -> str:
    """The config as TOML text that :func:`load_config` reads back to an equal config."""
    d = cfg.to_dict()
    lines = []
    for key, value in d.items():
        if key in ("model", "data") or value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    for table in ("model", "data"):
        lines += ["", f"[{table}]"]
        for key, value in d[table].items():
            if key == "kwargs":
                continue
            if not (table == "model" and key == "patch_size" and value == 0):
                lines.append(f"{key} = {_toml_value(value)}")
        for key, value in d[table]["kwargs"].items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def signature_keys(fn) -> tuple[set[str], bool]:
    """Keyword names ``fn`` accepts and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)
