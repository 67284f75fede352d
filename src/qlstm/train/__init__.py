"""Training: configuration dataclasses, one training loop, checkpoints, plots, model comparison.

* :mod:`qlstm.train.config` -- :class:`TrainConfig` and friends; TOML/YAML files; ``key=value`` overrides.
* :mod:`qlstm.train.loop` -- :func:`train`, :func:`resume` (exact), :class:`TrainResult`.
* :mod:`qlstm.train.tasks` -- the series and frames tasks: data, models, metrics, plots.
* :mod:`qlstm.train.checkpoint` -- atomic writes and checkpoint files.
* :mod:`qlstm.train.compare` -- train several models over several seeds and tabulate them.
* :mod:`qlstm.train.commands` -- the ``qlstm train/evaluate/predict/plot/compare/data/bench`` subcommands.

Example::

    from qlstm.train import TrainConfig, load_config, train
    cfg = load_config(overrides=["model=lstm", "epochs=10", "progress=false"])
    result = train(cfg)
    result.metrics["tolerance_accuracy"], result.run_dir
"""

from .checkpoint import CheckpointError, RunDirError
from .config import ConfigError, DataConfig, ModelConfig, TrainConfig, load_config, resolve
from .loop import TrainingInterrupted, TrainResult, resume, train

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "RunDirError",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "load_config",
    "resolve",
    "resume",
    "train",
]
