"""Train several models over several seeds on one task and tabulate them: the proposal's evaluation.

For every model spec and seed, :func:`compare` runs :func:`qlstm.train.train`
with the same configuration apart from the model and the seed, then writes

* ``runs.csv`` -- one row per (model, seed): test metrics, time, resources;
* ``compare.csv`` -- one row per model: mean and sample standard deviation
  over seeds of every number;
* ``compare.md`` -- the same as a Markdown table with the command, seeds,
  data sizes and machine.

Comparisons also get two rows that need no training (:func:`naive_baselines`):
persistence and linear extrapolation on a series, the last frame repeated and
black frames on Moving-MNIST. They show what the numbers mean on the data at hand.

A model spec is a registry name, optionally with constructor arguments after
colons: ``qlstm:mode=adapter:n_layers=3``.

Resource columns (per time step of the recurrence, per sample), all counted
the same way with :func:`qlstm.resources.count_resources` on the circuits a
model runs (its :class:`~qlstm.nn.QuantumLayer` circuits, each run once per
step as in QLSTM, or its ``cell_circuit()`` as in MCM-QLSTM):

* **qubits (widest circuit)** -- what a simulator or device must hold at once
  when the circuits of a step run one after another; 0 for classical models.
* **qubits (all circuits of a step)** -- the circuits of one step side by side.
* **idle-qubit share** -- idle qubit-layer slots over all qubit-layer slots
  of the circuits run in one step (:func:`qlstm.resources.count_resources`'s
  ``idle_share``, weighted by circuit size); 0 means every qubit is busy in
  every layer.
* **encodings / step** -- operations that load classical data into a
  circuit, summed over the circuit executions of one step.
* **circuit executions / step** -- circuits run per time step (QLSTM: six
  VQCs; MCM-QLSTM: one).
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..progress import Progress
from .checkpoint import atomic_write, run_dir_error
from .config import ConfigError, TrainConfig, apply_overrides, parse_value, resolve

__all__ = ["compare", "model_resources", "naive_baselines", "parse_model_spec", "CompareResult", "METRIC_COLUMNS",
           "FRAME_METRIC_COLUMNS", "metric_columns"]

# (key in the run row, column header, format)
METRIC_COLUMNS = [
    ("tolerance_accuracy", "tolerance acc.", "pct"),
    ("direction_accuracy", "direction acc.", "pct"),
    ("mse", "test MSE", "sci"),
    ("r2", "R²", "f3"),
    ("parameters", "parameters", "int"),
    ("qubits", "qubits (widest circuit)", "int"),
    ("qubits_all", "qubits (all circuits of a step)", "int"),
    ("idle_share", "idle-qubit share", "pct"),
    ("encodings_per_step", "encodings / step", "int"),
    ("executions_per_step", "circuit executions / step", "int"),
    ("seconds_per_epoch", "s / epoch", "f3"),
]

_RESOURCE_COLUMNS = METRIC_COLUMNS[4:]

# frames task: the paper's and OpenSTL's metrics first
FRAME_METRIC_COLUMNS = [
    ("mse_frame_sum", "MSE / frame", "f1"),
    ("mae_frame_sum", "MAE / frame", "f1"),
    ("ssim", "SSIM", "f3"),
    ("ssim_openstl", "SSIM (OpenSTL)", "f3"),
    ("psnr", "PSNR dB", "f2"),
    ("lpips", "LPIPS", "f3"),
    ("mse", "MSE / pixel", "sci"),
] + _RESOURCE_COLUMNS


def metric_columns(task: str) -> list[tuple[str, str, str]]:
    """``(key, header, format)`` of the table columns for ``task`` (``"series"`` or ``"frames"``)."""
    return FRAME_METRIC_COLUMNS if task == "frames" else METRIC_COLUMNS


@dataclass
class CompareResult:
    out_dir: Path
    runs: list[dict]
    summary: list[dict]
    markdown: str


def parse_model_spec(spec: str) -> tuple[str, dict]:
    """``"qlstm:mode=adapter:n_layers=3"`` -> ``("qlstm", {"mode": "adapter", "n_layers": 3})``.

    A part without ``=`` continues the previous value, so values may hold colons:
    ``"qconvlstm:noise=bit_flip:0.05:end"`` -> ``{"noise": "bit_flip:0.05:end"}``.
    """
    name, *parts = spec.strip().split(":")
    raw: dict[str, str] = {}
    last = None
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep and last is not None:
            raw[last] += ":" + part
            continue
        if not sep or not key:
            raise ConfigError(f"model spec {spec!r}: {part!r} is not key=value (e.g. qlstm:mode=adapter)")
        last = key.strip()
        raw[last] = value
    kwargs = {k: parse_value(v) for k, v in raw.items()}
    if not name:
        raise ConfigError(f"empty model name in {spec!r}")
    return name, kwargs


def _circuits(core: nn.Module) -> list[tuple[object, int]]:
    """``(circuit, executions per time step)`` of every circuit a recurrent core runs."""
    cell = getattr(core, "cell_circuit", None)
    if callable(cell):  # one dynamic circuit per cell (MCM-QLSTM)
        return [(cell(), 1)]
    from ..nn import QuantumLayer

    return [(m.circuit, m.copies or 1) for m in core.modules() if isinstance(m, QuantumLayer)]


def model_resources(model: nn.Module) -> dict:
    """Quantum resources per time step of a (wrapped) model, counted from its circuits.

    Returns ``qubits`` (widest circuit), ``qubits_all`` (all circuits of one
    step side by side), ``idle_share``, ``encodings_per_step`` and
    ``executions_per_step``; classical models get zeros (idle share None).
    Every model is counted the same way, with
    :func:`qlstm.resources.count_resources` on the circuits it runs.
    """
    core = getattr(model, "core", model)
    circuits = _circuits(core)
    if not circuits:
        return {"qubits": 0, "qubits_all": 0, "idle_share": None, "encodings_per_step": 0, "executions_per_step": 0}
    try:
        from ..resources import count_resources
    except ImportError:  # qlstm.resources absent: count what needs no circuit layering
        count_resources = None

    out = {"qubits": 0, "qubits_all": 0, "idle_share": None, "encodings_per_step": 0, "executions_per_step": 0}
    idle = slots = 0
    for circuit, runs in circuits:
        out["qubits"] = max(out["qubits"], circuit.n_qubits)
        out["qubits_all"] += runs * circuit.n_qubits
        out["executions_per_step"] += runs
        if count_resources is None:
            out["encodings_per_step"] += runs * _encoding_ops(circuit)
            continue
        r = count_resources(circuit)
        out["encodings_per_step"] += runs * r.encodings
        idle += runs * r.idle_slots
        slots += runs * r.qubits * r.depth
    if slots:
        out["idle_share"] = idle / slots
    return out


def _encoding_ops(circuit) -> int:
    """Operations of ``circuit`` that read a data input (as ``count_resources`` counts ``encodings``)."""
    from ..circuit.expr import Input
    from ..circuit.ops import AmplitudeEncoding

    return sum(1 for op in circuit.ops if isinstance(op, AmplitudeEncoding)
               or any(isinstance(leaf, Input) for p in getattr(op, "params", ()) for leaf in p.leaves()))


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} logical CPUs ({cpu}), "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "sci":
        return f"{value:.2e}"
    if kind in ("f1", "f2"):
        return f"{value:.{kind[1]}f}"
    if kind == "int":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return f"{value:.3f}"


def _cell(mean, std, kind: str) -> str:
    text = _fmt(mean, kind)
    if std is None or mean is None or std == 0:
        return text
    spread = _fmt(std, kind).rstrip("%")
    return f"{text} ± {spread}{'%' if kind == 'pct' else ''}".replace("% ±", " ±")


def _summarise(runs: list[dict], labels: list[str], columns=METRIC_COLUMNS) -> list[dict]:
    rows = []
    for label in labels:
        mine = [r for r in runs if r["model"] == label]
        row = {"model": label, "seeds": len(mine)}
        for key, _, _ in columns:
            vals = [r[key] for r in mine if r.get(key) is not None]
            row[f"{key}_mean"] = statistics.fmean(vals) if vals else None
            row[f"{key}_std"] = statistics.stdev(vals) if len(vals) > 1 else None
        rows.append(row)
    return rows


def _markdown(summary: list[dict], header: list[str], columns=METRIC_COLUMNS) -> str:
    columns = [c for c in columns if any(row.get(f"{c[0]}_mean") is not None for row in summary)] or columns
    cols = ["model"] + [title for _, title, _ in columns]
    lines = header + ["", "| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for row in summary:
        cells = [f"`{row['model']}`"] + [_cell(row.get(f"{k}_mean"), row.get(f"{k}_std"), kind)
                                         for k, _, kind in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_text(rows: list[dict]) -> str:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def naive_baselines(cfg: TrainConfig) -> list[dict]:
    """Forecasts that need no training, scored on the same test split as the models.

    Series:

    * ``naive: last value`` -- persistence: predict the last value of the window.
    * ``naive: linear extrapolation`` -- ``x_T + horizon * (x_T - x_(T-1))`` from the last two values.

    Frames:

    * ``naive: last frame`` -- every predicted frame is the last observed one;
    * ``naive: black frames`` -- every predicted frame is zero.

    They show what the numbers mean on a given data set: on a smooth series sampled
    finely, persistence already passes a loose tolerance; on Moving-MNIST a model whose
    MSE is above the black-frame row has not yet learnt the background.
    """
    from ..metrics import regression as R
    from .tasks import get_task

    cfg = resolve(cfg)
    task = get_task(cfg, torch.device("cpu"), torch.float64)
    data = task.load_data()
    no_resources = {"parameters": 0, "qubits": 0, "qubits_all": 0, "idle_share": None, "encodings_per_step": 0,
                    "executions_per_step": 0, "seconds_per_epoch": None}
    if cfg.task == "frames":
        y = data.y_test.double() / 255.0
        last = (data.x_test[:, -1:].double() / 255.0).expand_as(y)
        return [{"model": name, **task.score(p, y), **no_resources}
                for name, p in (("naive: last frame", last), ("naive: black frames", torch.zeros_like(y)))]
    x, y = data.x_test[..., 0].double(), data.y_test.double()
    last = x[:, -1:]
    preds = {"naive: last value": last}
    if cfg.window >= 2:
        preds["naive: linear extrapolation"] = last + cfg.horizon * (last - x[:, -2:-1])
    rows = []
    for name, p in preds.items():
        rows.append({"model": name, "mse": R.mse(p, y), "r2": R.r2(p, y),
                     "tolerance_accuracy": R.tolerance_accuracy(p, y, cfg.tolerance),
                     "direction_accuracy": R.direction_accuracy(p, y, last), **no_resources})
    return rows


def _fresh_dir(base: Path) -> Path:
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _reuse_or_train(cfg: TrainConfig):
    """Train ``cfg``, or reuse (finished) or resume (unfinished) the run already in ``cfg.run_dir``.

    This makes ``compare --out DIR`` continue an interrupted comparison, or
    re-tabulate a finished one, without retraining. A run directory that holds
    a run of another configuration is an error.
    """
    from .checkpoint import CHECKPOINT_NAME, load_checkpoint
    from .config import check_resume_compatible, config_from_dict
    from .loop import TrainResult, load_run, resume, train

    run = Path(cfg.run_dir)
    if not (run / CHECKPOINT_NAME).exists():
        return train(cfg)
    ckpt = load_checkpoint(run)
    stored = config_from_dict(ckpt["config"])
    try:
        check_resume_compatible(stored, cfg)
        if stored.epochs != cfg.epochs:
            raise ConfigError(f"epochs: {stored.epochs} -> {cfg.epochs}")
    except ConfigError as exc:
        raise ConfigError(f"{run} holds a run with another configuration ({exc}); choose another --out") from None
    results = run / "results.json"
    if ckpt["progress"]["epoch"] < cfg.epochs or not results.exists():
        return resume(run, [("progress", False)])
    import json

    _, _, _, model, ckpt = load_run(run, device=cfg.device)
    stored_results = json.loads(results.read_text())
    history = ckpt["progress"]["history"]
    return TrainResult(run_dir=run, config=cfg, metrics=stored_results["test"], history=history,
                       checkpoint=run / CHECKPOINT_NAME, plots=[], parameters=stored_results["parameters"],
                       seconds=sum(r["seconds"] for r in history), model=model)


def compare(models: list[str], base: TrainConfig, seeds: list[int], out_dir: str | os.PathLike | None = None,
            command: str = "", progress: bool = True, baselines: bool = True) -> CompareResult:
    """Train every model spec at every seed with ``base`` otherwise; tabulate (see the module docstring).

    All configurations are resolved before anything is trained, so an unknown
    model name fails at once with the list of valid ones. With ``baselines``, the rows of
    :func:`naive_baselines` (series or frames) are added to the table.
    """
    if not models:
        raise ConfigError("no models to compare; give --models lstm,qlstm,...")
    if not seeds:
        raise ConfigError("no seeds; give --seeds N (N >= 1)")
    specs = [(spec, *parse_model_spec(spec)) for spec in models]
    out = Path(out_dir) if out_dir else _fresh_dir(Path("runs") / f"compare-{base.data.name or 'default'}")
    plan = []
    for label, name, kwargs in specs:
        for seed in seeds:
            cfg = apply_overrides(base, [("model.name", name), ("seed", seed), ("progress", False),
                                         ("run_dir", str(out / re.sub(r"[^A-Za-z0-9_.=-]+", "_", label) / f"seed{seed}"))]
                                  + [(f"model.{k}", v) for k, v in kwargs.items()])
            plan.append((label, seed, resolve(cfg)))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise run_dir_error(out, exc) from None

    runs = []
    bar = Progress(plan, desc="compare", disable=not progress)
    for label, seed, cfg in bar:
        bar.set_postfix(model=label, seed=seed)
        t0 = time.perf_counter()
        res = _reuse_or_train(cfg)
        row = {"model": label, "seed": seed, **{k: res.metrics.get(k) for k in res.metrics},
               "parameters": res.parameters, **model_resources(res.model),
               "seconds_per_epoch": res.seconds / max(1, len(res.history)), "epochs": len(res.history),
               "wall_seconds": round(time.perf_counter() - t0, 2), "run_dir": str(res.run_dir)}
        runs.append(row)

    labels = [label for label, _, _ in specs]
    first = plan[0][2]
    columns = metric_columns(first.task)
    summary = _summarise(runs, labels, columns)
    if baselines:
        for row in naive_baselines(first):
            summary.append({"model": row["model"], "seeds": 0,
                            **{f"{k}{suffix}": (row.get(k) if suffix == "_mean" else None)
                               for k, _, _ in columns for suffix in ("_mean", "_std")}})
    info = runs and _data_sentence(first)
    header = [
        f"Command: `{command}`" if command else "",
        f"Seeds: {', '.join(map(str, seeds))} (mean ± sample standard deviation over seeds; "
        "resource columns do not vary with the seed).",
        f"Task: {first.task}, data `{first.data.name}` {info}; {first.epochs} epochs, batch {first.batch_size}, "
        f"{first.optimizer} lr {first.lr}, torch threads {first.threads or torch.get_num_threads()}.",
        (f"Accuracy: tolerance acc. = share of test predictions with |pred - true| <= {first.tolerance} on the "
         "series scaled to [-1, 1]; direction acc. = share of test steps whose up/down move from the last input "
         "value is predicted correctly." if first.task == "series" else
         "Metrics on the test sequences, frames in [0, 1], averaged over predicted frames: MSE / frame and "
         "MAE / frame = sum over a frame's pixels (the papers' and OpenSTL's MSE/MAE); SSIM = Wang et al. 2004 "
         "(11x11 Gaussian window); SSIM (OpenSTL) = scikit-image defaults, data_range 2; PSNR with peak 1; "
         "LPIPS = AlexNet v0.1 (when computed); MSE / pixel = the training loss."),
        f"Machine: {_machine()}.",
    ]
    if any(r["model"].startswith("naive:") for r in summary):
        header.append("Rows `naive: ...` need no training: the last input value (persistence) and linear "
                      "extrapolation from the last two values, scored on the same test windows."
                      if first.task == "series" else
                      "Rows `naive: ...` need no training: the last observed frame repeated, and black frames, "
                      "scored on the same test sequences.")
    md = _markdown(summary, [h for h in header if h], columns)
    atomic_write(out / "runs.csv", lambda fh: fh.write(_csv_text(runs)), mode="w")
    atomic_write(out / "compare.csv", lambda fh: fh.write(_csv_text(summary)), mode="w")
    atomic_write(out / "compare.md", lambda fh: fh.write(md), mode="w")
    return CompareResult(out_dir=out, runs=runs, summary=summary, markdown=md)


def _data_sentence(cfg: TrainConfig) -> str:
    import json

    try:
        info = json.loads((Path(cfg.run_dir) / "results.json").read_text())["data_info"]
    except (OSError, ValueError, KeyError):
        return ""
    if cfg.task == "series":
        return (f"({info['points']} points, window {info['window']}, {info['windows_train']} train / "
                f"{info['windows_val']} validation / {info['windows_test']} test windows)")
    return (f"({info['sequences_train']} train / {info['sequences_val']} validation / {info['sequences_test']} test "
            f"sequences of {info['frame_size']}x{info['frame_size']} frames)")
