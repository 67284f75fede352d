"""The training subcommands of ``qlstm``: train, evaluate, predict, plot, compare, reproduce, data, bench.

:func:`add_commands` adds them to the CLI's subparsers. Every handler returns
an exit code and prints one clear line on failure, never a traceback:

* 0 -- success;
* 1 -- an output could not be written (unwritable run directory, full disk),
  a download failed, or a benchmark failed;
* 2 -- invalid input: unknown config key, model or data set, bad value,
  missing file or CSV column, a checkpoint that does not fit;
* 128 + N -- interrupted by signal N (130 for Ctrl-C, 143 for SIGTERM) after
  saving a checkpoint; the message says how to resume.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

from ..errors import QlstmError

__all__ = ["add_commands"]

_OVERRIDE_HELP = ("configuration overrides KEY=VALUE, e.g. epochs=10 model=lstm model.hidden_size=4 "
                  "data=damped_pendulum data.noise_std=0.05 (see docs/training.md)")


def _wrap(text: str) -> str:
    """A description paragraph wrapped for RawDescriptionHelpFormatter (which keeps line breaks)."""
    return textwrap.fill(text, 88)


def _fail(command: str, message: str, code: int) -> int:
    print(f"qlstm {command}: {message}", file=sys.stderr)
    return code


def _guarded(command: str):
    """Map the errors a command can meet to a one-line message and an exit code."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(args) -> int:
            from ..data._fetch import DataDownloadError
            from .checkpoint import RunDirError
            from .loop import TrainingInterrupted

            try:
                return fn(args)
            except TrainingInterrupted as exc:
                return _fail(command, str(exc), exc.exit_code)
            except RunDirError as exc:
                return _fail(command, str(exc), 1)
            except DataDownloadError as exc:
                return _fail(command, f"download failed: {exc}", 1)
            except FileNotFoundError as exc:
                return _fail(command, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 2)
            except QlstmError as exc:
                return _fail(command, str(exc), 2)
            except OSError as exc:
                return _fail(command, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 1)

        return wrapper

    return deco


# -- train ----------------------------------------------------------------------------------------


def _print_metrics(metrics: dict, tolerance: float | None, task: str) -> None:
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        if key.endswith("accuracy"):
            note = ""
            if key == "tolerance_accuracy":
                note = f"  (|pred - true| <= {tolerance} on the series scaled to [-1, 1])"
            elif key == "direction_accuracy":
                note = "  (up/down move from the last input value predicted correctly)"
            print(f"  {key:<{width}}  {value:.1%}{note}")
        else:
            print(f"  {key:<{width}}  {value:.6g}")


def _report(result) -> None:
    cfg = result.config
    n = len(result.history)
    extra = ", ".join(f"{k}={v}" for k, v in cfg.model.kwargs.items())
    print(f"{cfg.model.name}({extra}) on {cfg.data.name}: {n} epochs in {result.seconds:.1f} s "
          f"({result.seconds / max(1, n):.2f} s/epoch), {result.parameters} trainable parameters, seed {cfg.seed}")
    print("test metrics" + (" (scaled test split)" if cfg.task == "series" else " (test split)") + ":")
    _print_metrics(result.metrics, cfg.tolerance, cfg.task)
    plots = {p.name: p for p in result.plots}
    main = plots.get("prediction.png") or plots.get("frames.png")
    print(f"run directory: {result.run_dir}")
    if main is not None:
        print(f"  plot:       {main}" + (f" (loss curves: {plots['loss.png'].name})" if "loss.png" in plots else ""))
    elif not result.plots:
        print("  plots:      none (install matplotlib for PNG plots)")
    print(f"  checkpoint: {result.checkpoint}")
    print(f"  metrics:    {result.run_dir / 'metrics.csv'}, {result.run_dir / 'results.json'}")


def _changes(args) -> list:
    from .config import parse_overrides, read_config_file

    pairs = read_config_file(args.config) if args.config else []
    return pairs + parse_overrides(args.overrides)


@_guarded("train")
def _cmd_train(args) -> int:
    from .config import load_config
    from .loop import resume, train

    if args.resume:
        result = resume(args.resume, _changes(args))
    else:
        result = train(load_config(args.config, args.overrides))
    if args.json:
        print((result.run_dir / "results.json").read_text().rstrip())
    else:
        _report(result)
    return 0


# -- evaluate, predict, plot -----------------------------------------------------------------------


@_guarded("evaluate")
def _cmd_evaluate(args) -> int:
    from .loop import load_run

    cfg, task, data, model, ckpt = load_run(args.run, device=args.device)
    metrics = task.test_metrics(model, data)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    epochs = ckpt["progress"]["epoch"]
    print(f"{cfg.model.name} on {cfg.data.name}, checkpoint after {epochs} of {cfg.epochs} epochs "
          f"({len(data.x_test)} test {'windows' if cfg.task == 'series' else 'sequences'}):")
    _print_metrics(metrics, cfg.tolerance, cfg.task)
    return 0


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [h.strip() for h in next(csv.reader(fh), [])]


def _series_rows(cfg, task, model, scaler, values) -> list[dict]:
    """Predict from every window of ``values`` (original units), including the last, whose target lies beyond."""
    import numpy as np
    import torch

    w, h = cfg.window, cfg.horizon
    if len(values) < w:
        raise QlstmError(f"the input has {len(values)} values but the model reads windows of {w}; "
                         f"give at least {w} values")
    scaled = scaler.transform(np.asarray(values, dtype=np.float64))
    idx = np.arange(len(values) - w + 1)[:, None] + np.arange(w)[None, :]
    x = torch.as_tensor(scaled[idx], dtype=task.dtype)[..., None]
    pred = scaler.inverse_transform(task.predict(model, x)[:, 0].numpy())
    rows = []
    for i, p in enumerate(pred):
        t = i + w + h - 1
        rows.append({"index": t, "true": values[t] if t < len(values) else "", "predicted": float(p)})
    return rows


def _write_rows(rows: list[dict], path: Path | None) -> None:
    from .checkpoint import atomic_write

    def write(fh):
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        wr.writeheader()
        wr.writerows(rows)

    if path is None:
        write(sys.stdout)
    else:
        atomic_write(path, write, mode="w")


@_guarded("predict")
def _cmd_predict(args) -> int:
    from ..data.series import MinMaxScaler, load_csv_series
    from .loop import load_run

    if args.input and not Path(args.input).is_file():
        raise FileNotFoundError(2, "no such input file", args.input)
    cfg, task, data, model, ckpt = load_run(args.run, device=args.device)
    run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    if cfg.task == "frames":
        if args.input:
            raise QlstmError("--input CSV applies to series models; a frames model predicts on its test split "
                             "(run without --input)")
        import numpy as np

        pred = task.predict(model, data.x_test).numpy().astype(np.float32)
        out = Path(args.output) if args.output else run_dir / "predictions.npy"
        from .checkpoint import atomic_write

        atomic_write(out, lambda fh: np.save(fh, pred))
        print(f"predicted {pred.shape[0]} test sequences x {pred.shape[1]} frames -> {out} "
              f"(float32 {list(pred.shape)}, values in [0, 1])")
        return 0

    s = ckpt["data_info"]["scaler"]
    scaler = MinMaxScaler(tuple(s["feature_range"]))
    scaler.data_min_, scaler.data_max_ = s["data_min"], s["data_max"]
    if args.input:
        column = args.column
        if column is None:
            header = _csv_header(Path(args.input))
            if len(header) != 1:
                raise QlstmError(f"{args.input} has {len(header)} columns {header}; choose one with --column NAME")
            column = header[0]
        values = load_csv_series(args.input, column).tolist()
        rows = _series_rows(cfg, task, model, scaler, values)
        out = Path(args.output) if args.output else None
    else:
        raw = data.raw.tolist()
        first_test = len(raw) - len(data.x_test) - cfg.window - cfg.horizon + 1  # first window of the test split
        rows = _series_rows(cfg, task, model, scaler, raw[first_test:])
        for r in rows:
            r["index"] += first_test
        out = Path(args.output) if args.output else run_dir / "predictions.csv"
    _write_rows(rows, out)
    if out is not None:
        beyond = sum(1 for r in rows if r["true"] == "")
        print(f"{len(rows)} predictions ({beyond} beyond the end of the data) -> {out}")
    return 0


@_guarded("plot")
def _cmd_plot(args) -> int:
    from .loop import load_run
    from .plots import have_matplotlib

    if not have_matplotlib():
        raise QlstmError("plots need matplotlib (pip install matplotlib)")
    cfg, task, data, model, ckpt = load_run(args.run, device=args.device)
    run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    for p in task.plots(model, data, ckpt["progress"]["history"], run_dir):
        print(p)
    return 0


# -- compare, data, bench --------------------------------------------------------------------------


@_guarded("compare")
def _cmd_compare(args) -> int:
    from .compare import compare
    from .config import load_config

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.name={args.data}")
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    base = load_config(args.config, overrides)
    models = [m for m in args.models.split(",") if m.strip()]
    command = "qlstm " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["compare"] else ""
    res = compare(models, base, list(range(args.seed0, args.seed0 + args.seeds)), args.out, command=command,
                  progress=not args.quiet, baselines=not args.no_baselines)
    print(res.markdown)
    print(f"written: {res.out_dir / 'compare.md'}, {res.out_dir / 'compare.csv'}, {res.out_dir / 'runs.csv'}")
    return 0


@_guarded("reproduce")
def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    tables = [t.strip() for t in (args.tables or "").split(",") if t.strip()] or None
    command = "qlstm " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["reproduce"] else ""
    res = reproduce(args.paper, args.scale, out_dir=args.out, seeds=args.seeds, tables=tables,
                    overrides=list(args.overrides), noise_p=args.noise_p,
                    lpips=None if args.lpips is None else args.lpips == "on", progress=not args.quiet,
                    command=command)
    print(res.report)
    print(f"written: {res.out_dir / 'report.md'} (one table per experiment beside it; runs in {res.out_dir / 'runs'})")
    return 0


@_guarded("data")
def _cmd_data(args) -> int:
    from ..data.prepare import prepare

    path = prepare(args.what, cache_dir=args.cache_dir)
    print(f"{args.what}: ready in {path}")
    return 0


def _find_bench() -> Path | None:
    here = Path(__file__).resolve()
    for root in (Path.cwd(), here.parents[3]):
        p = root / "benchmarks" / "bench_qlstm.py"
        if p.is_file():
            return p
    return None


def _cmd_bench(args) -> int:
    script = _find_bench()
    if script is None:
        return _fail("bench", "benchmarks/bench_qlstm.py not found; it lives in the source checkout, not in the "
                              "installed package: run `qlstm bench` from the repository root", 2)
    cmd = [sys.executable, str(script), "--quick", *args.extra]
    print("running: " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
    return subprocess.call(cmd)


# -- parsers --------------------------------------------------------------------------------------


EPILOG_REPRODUCE = """examples:
  qlstm reproduce qconvlstm                 # scale small: 128 training sequences, 10 epochs, 1 seed
  qlstm reproduce qconvlstm --scale paper   # 500 / 200 sequences, 20 epochs, 2 seeds
  qlstm reproduce proposal --scale paper    # 30 epochs, 3 seeds"""


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the training subcommands to the ``qlstm`` parser's subparsers."""
    p = sub.add_parser(
        "train", help="train a model (default: QLSTM on the sine series) and report test metrics",
        description=_wrap("Train one model on one task with the single training loop. Without arguments: the "
                          "default QLSTM on the sine series (under a minute on a laptop CPU). Prints test metrics "
                          "and where the plots, checkpoint and metrics are. Ctrl-C saves a checkpoint; --resume "
                          "continues exactly."),
        epilog="examples:\n  qlstm train\n  qlstm train model=lstm epochs=50\n"
               "  qlstm train --config configs/moving_mnist_convlstm.toml\n  qlstm train --resume runs/RUN epochs=60",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=_OVERRIDE_HELP)
    p.add_argument("--config", metavar="FILE", help="a .toml/.yaml/.json config (see configs/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped; overrides may "
                                                       "only change epochs, device, threads, progress, ...")
    p.add_argument("--json", action="store_true", help="print results.json instead of the summary")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="recompute the test metrics of a trained run",
                       description="Rebuild the model of a run from its checkpoint and recompute its test metrics.")
    p.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="predict with a trained run, on a CSV column or on its test split",
                       description="Series runs: predict the value `horizon` steps after every window of the input "
                                   "(a CSV column, scaled with the run's training scaler; the last window forecasts "
                                   "beyond the data) or of the test split. Writes CSV: index,true,predicted in "
                                   "original units. Frames runs: predicted test frames as .npy.")
    p.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--input", metavar="CSV", help="a CSV file with a header row (default: the run's test split)")
    p.add_argument("--column", metavar="NAME", help="the CSV column to read (needed if it has several)")
    p.add_argument("--output", metavar="FILE", help="where to write (default: stdout for --input, else "
                                                    "RUN_DIR/predictions.csv or .npy)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("plot", help="redraw the PNG plots of a run",
                       description="Redraw loss.png and prediction.png (series) or frames.png (frames) of a run "
                                   "from its checkpoint.")
    p.add_argument("run", metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser(
        "compare", help="train several models over several seeds and tabulate accuracy, cost and qubit use",
        description=_wrap("The proposal's evaluation: train each model at each seed with one configuration and "
                          "write a table (Markdown and CSV) of tolerance and direction accuracy, MSE, parameters, "
                          "qubits, idle-qubit share, encodings and circuit executions per step and time per epoch, "
                          "as mean and spread over seeds. A model may carry constructor arguments: "
                          "qlstm:mode=adapter."),
        epilog="example:\n  qlstm compare --models lstm,qlstm,mcm-qlstm --data sine --seeds 3",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=_OVERRIDE_HELP + "; applied to every model")
    p.add_argument("--models", required=True, help="comma-separated model specs, e.g. lstm,qlstm,qlstm:mode=adapter")
    p.add_argument("--data", help="data set name (default: the task's default, sine)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument("--seed0", type=int, default=0, help="first seed (default 0): seeds are seed0 .. seed0+N-1")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the config's)")
    p.add_argument("--config", metavar="FILE", help="base configuration file")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/compare-<data>, numbered if taken); "
                                               "an earlier compare's folder reuses its finished runs and resumes "
                                               "unfinished ones")
    p.add_argument("--no-baselines", action="store_true",
                   help="leave out the untrained rows (series: persistence, linear extrapolation; frames: last frame, black frames)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "reproduce", help="run the experiments of a source document and report where its claims hold",
        description=_wrap("qconvlstm: the QConvLSTM paper's Tables 1-4 on Moving-MNIST (models; noise at the end "
                          "of the circuits and after every layer; tree layers 1-3; modules a-f). proposal: "
                          "LSTM, QLSTM and MCM-QLSTM on the sine series with the 70 % target and the qubit "
                          "claims. Writes report.md (the paper's numbers beside ours, and a verdict per claim), "
                          "one Markdown/CSV table per experiment, and every run under runs/; rerunning with the "
                          "same --out resumes."),
        epilog=EPILOG_REPRODUCE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paper", choices=["qconvlstm", "proposal"])
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=_OVERRIDE_HELP + "; applied to every run")
    p.add_argument("--scale", default="small", choices=["smoke", "small", "paper"],
                   help="data size, epochs and seeds (default small)")
    p.add_argument("--seeds", type=int, help="seeds per model (default: the scale's)")
    p.add_argument("--tables", help="comma-separated experiments to run (qconvlstm: table1,table2,table3,table4; "
                                    "proposal: evaluation); default all")
    p.add_argument("--noise-p", type=float, default=0.05, help="noise probability of table2 (default 0.05)")
    p.add_argument("--lpips", choices=["on", "off"],
                   help="compute LPIPS (default: on when `qlstm data lpips` has cached its weights)")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/reproduce-<paper>-<scale>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_reproduce)

    from ..data.prepare import PREPARABLE

    p = sub.add_parser("data", help="download data sets and weights once for offline use",
                       description="Fetch MNIST (also what Moving-MNIST is generated from) or the LPIPS weights "
                                   "into the cache ($QLSTM_CACHE or ~/.cache/qlstm).")
    p.add_argument("what", choices=PREPARABLE)
    p.add_argument("--cache-dir", metavar="DIR", help="cache folder (default $QLSTM_CACHE or ~/.cache/qlstm)")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("bench", help="run the quick speed benchmark (benchmarks/bench_qlstm.py --quick)",
                       description="Run benchmarks/bench_qlstm.py --quick from the source checkout; extra "
                                   "arguments are passed on.")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="arguments for the benchmark script")
    p.set_defaults(func=_cmd_bench)
