"""The training subcommands of the `qlstm` CLI: output, --help, exit codes and messages on bad input."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from qlstm.cli import main
from qlstm.train import commands, load_config, resume, train
from qlstm.train.checkpoint import load_checkpoint
from qlstm.train.plots import have_matplotlib

TINY = ["model=lstm", "data.n_points=80", "epochs=2", "batch_size=8", "progress=false"]
COMMANDS = ["train", "evaluate", "predict", "plot", "compare", "reproduce", "data", "bench"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, f"run_dir={run}"]) == 0
    return run


def fails(capsys, argv, code):
    """Run the CLI, expect exit ``code`` and a one-line message (no traceback); return stderr."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"qlstm {argv[0]}: "), err
    return err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: qlstm {command}" in capsys.readouterr().out


def test_train_reports_metrics_and_paths(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", *TINY, f"run_dir={run}"]) == 0
    out = capsys.readouterr().out
    assert "lstm(hidden_size=3) on sine: 2 epochs" in out
    assert "tolerance_accuracy" in out and "direction_accuracy" in out and "mse_original_units" in out
    assert f"checkpoint: {run / 'checkpoint.pt'}" in out
    assert f"plot:       {run / 'prediction.png'}" in out or not have_matplotlib()


def test_train_json_and_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('epochs = 1\nprogress = false\n[model]\nname = "lstm"\nhidden_size = 2\n[data]\nn_points = 60\n')
    assert main(["train", "--config", str(cfg), f"run_dir={tmp_path / 'r'}", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == "lstm" and res["model_kwargs"] == {"hidden_size": 2} and res["epochs"] == 1


@pytest.mark.parametrize("argv, code, match", [
    (["train", "epoch=3"], 2, "unknown config key 'epoch'; did you mean 'epochs'?"),
    (["train", "model=qlstmm"], 2, "unknown model 'qlstmm'; valid models: "),
    (["train", "data=sinus"], 2, "unknown series data set 'sinus'; valid: "),
    (["train", "model.hiden_size=2"], 2, "did you mean 'model.hidden_size'?"),
    (["train", "--config", "/nonexistent/x.toml"], 2, "config file not found"),
    (["train", "--resume", "/nonexistent/run"], 2, "no such run directory or checkpoint"),
    (["evaluate", "/nonexistent/run"], 2, "no such run directory or checkpoint"),
    (["compare", "--models", "lstm,mcm-qlstmm", "--seeds", "1"], 2, "unknown model 'mcm-qlstmm'; valid models: "),
])
def test_bad_input_exit_2(argv, code, match, capsys):
    assert match in fails(capsys, argv, code)


def test_unwritable_run_dir_exit_1(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = fails(capsys, ["train", *TINY, f"run_dir={blocker / 'run'}"], 1)
    assert "cannot write" in err and "choose another run_dir" in err


def test_full_disk_exit_1(tmp_path, capsys, monkeypatch):
    import errno

    from qlstm.train import checkpoint

    def full(obj, fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    err = fails(capsys, ["train", *TINY, f"run_dir={tmp_path / 'r'}"], 1)
    assert "disk is full" in err
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


def test_resume_with_another_model_exit_2(run_dir, capsys):
    err = fails(capsys, ["train", "--resume", str(run_dir), "model=qlstm"], 2)
    assert "holds a series run of model 'lstm'" in err and "run of model 'qlstm'" in err


def test_evaluate_recomputes_the_test_metrics(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    stored = json.loads((run_dir / "results.json").read_text())["test"]
    assert metrics == pytest.approx(stored, rel=1e-12)
    assert main(["evaluate", str(run_dir / "checkpoint.pt")]) == 0
    assert "after 2 of 2 epochs" in capsys.readouterr().out


def test_evaluate_rejects_a_foreign_file(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"hello")
    assert "not a readable checkpoint" in fails(capsys, ["evaluate", str(tmp_path / "x.pt")], 2)


def test_predict_on_a_csv_column(run_dir, tmp_path, capsys):
    data = tmp_path / "d.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t", "value"])
        for i in range(10):
            w.writerow([i, 0.1 * i])
    out = tmp_path / "p.csv"
    assert main(["predict", str(run_dir), "--input", str(data), "--column", "value", "--output", str(out)]) == 0
    assert "7 predictions (1 beyond the end of the data)" in capsys.readouterr().out
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == list(range(4, 11))
    assert rows[0]["true"] == "0.4" and rows[-1]["true"] == ""
    assert all(float(r["predicted"]) == float(r["predicted"]) for r in rows)
    # to stdout without --output
    assert main(["predict", str(run_dir), "--input", str(data), "--column", "value"]) == 0
    assert capsys.readouterr().out.startswith("index,true,predicted")


def test_predict_csv_errors(run_dir, tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    err = fails(capsys, ["predict", str(run_dir), "--input", str(data), "--column", "price"], 2)
    assert "column 'price' not found" in err and "['a', 'b']" in err
    assert "choose one with --column" in fails(capsys, ["predict", str(run_dir), "--input", str(data)], 2)
    short = tmp_path / "s.csv"
    short.write_text("v\n1\n2\n")
    assert "reads windows of 4" in fails(capsys, ["predict", str(run_dir), "--input", str(short)], 2)
    assert "no such input file" in fails(capsys, ["predict", str(run_dir), "--input", str(tmp_path / "no.csv")], 2)


def test_predict_on_the_test_split(run_dir, capsys):
    assert main(["predict", str(run_dir)]) == 0
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    info = load_checkpoint(run_dir)["data_info"]
    assert sum(r["true"] != "" for r in rows) == info["windows_test"]
    assert rows[0]["true"] != "" and rows[-1]["true"] == ""


@pytest.mark.skipif(not have_matplotlib(), reason="plots need matplotlib")
def test_plot_redraws(run_dir, capsys):
    (run_dir / "loss.png").unlink()
    capsys.readouterr()
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "loss.png").is_file() and "prediction.png" in capsys.readouterr().out


def test_compare_cli(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--models", "lstm", "--data", "sine", "--seeds", "1", "--epochs", "1", "--quiet",
                 "--out", str(out), "data.n_points=50"]) == 0
    text = capsys.readouterr().out
    assert "| `lstm` |" in text and (out / "compare.md").is_file() and (out / "compare.csv").is_file()


def test_reproduce_cli(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "proposal", "--scale", "smoke", "--quiet", "--out", str(out), "data.n_points=40",
                 "model.hidden_size=1"]) == 0
    text = capsys.readouterr().out
    assert "# Reproduction: the proposal" in text and "**Claim:**" in text and (out / "report.md").is_file()
    err = fails(capsys, ["reproduce", "qconvlstm", "--tables", "table7", "--out", str(tmp_path / "x")], 2)
    assert "unknown table 'table7'" in err


def test_data_command(monkeypatch, tmp_path, capsys):
    import qlstm.data  # noqa: F401  (the package re-exports the function under the submodule's name)

    prep = sys.modules["qlstm.data.prepare"]
    monkeypatch.setattr(prep, "prepare", lambda what, cache_dir=None: tmp_path / what)
    assert main(["data", "moving-mnist"]) == 0
    assert "moving-mnist: ready in" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["data", "cifar"])
    assert info.value.code == 2


def test_bench_without_the_script(monkeypatch, capsys):
    monkeypatch.setattr(commands, "_find_bench", lambda: None)
    assert "benchmarks/bench_qlstm.py not found" in fails(capsys, ["bench"], 2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_resume_is_exact(tmp_path, sig):
    """A real signal to a real `qlstm train` process: checkpoint, exit 128+N, then an exact resume."""
    run = tmp_path / "run"
    args = ["model=lstm", "data.n_points=80", "batch_size=8", "epochs=100000", f"run_dir={run}"]
    proc = subprocess.Popen([sys.executable, "-m", "qlstm.cli", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert f"resume with: qlstm train --resume {run}" in err and "Traceback" not in err

    stopped = load_checkpoint(run)["progress"]["epoch"]
    target = stopped + 2
    resumed = resume(run, [f"epochs={target}", "progress=false"])
    straight = train(load_config(overrides=[*args[:-2], f"epochs={target}", "progress=false",
                                            f"run_dir={tmp_path / 'straight'}"]))
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_train_without_matplotlib_or_yaml(tmp_path):
    """matplotlib and PyYAML are optional: training runs, says there are no plots, and writes none."""
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['yaml'] = None\n"
        "from qlstm.cli import main\n"
        f"sys.exit(main(['train', 'model=lstm', 'data.n_points=60', 'epochs=1', 'progress=false', "
        f"'run_dir={tmp_path / 'r'}']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "plots:      none (install matplotlib" in proc.stdout
    assert not list((tmp_path / "r").glob("*.png"))


def test_train_on_a_csv_column(tmp_path, capsys):
    import math

    data = tmp_path / "series.csv"
    data.write_text("t,y\n" + "".join(f"{i},{math.sin(0.3 * i):.6f}\n" for i in range(60)))
    run = tmp_path / "r"
    assert main(["train", "model=lstm", "data=csv", f"data.path={data}", "data.column=y", "epochs=1",
                 "progress=false", f"run_dir={run}"]) == 0
    assert "on csv: 1 epochs" in capsys.readouterr().out
    err = fails(capsys, ["train", "model=lstm", "data=csv", f"data.path={data}", "data.column=price",
                         "progress=false", f"run_dir={tmp_path / 'r2'}"], 2)
    assert "column 'price' not found" in err and "['t', 'y']" in err
    assert "data=csv needs data.path=FILE and data.column=NAME" in fails(capsys, ["train", "data=csv"], 2)


def test_resume_with_fewer_epochs_is_refused(run_dir, capsys):
    assert "has already trained 2 epochs; epochs=1 is fewer" in fails(
        capsys, ["train", "--resume", str(run_dir), "epochs=1"], 2)


def test_noise_override_trains_a_noisy_qlstm_and_a_bad_one_exits_2(tmp_path, capsys):
    noisy = ["model=qlstm", "model.hidden_size=1", "model.n_layers=1", "data.n_points=40", "epochs=1",
             "batch_size=16", "progress=false"]
    run = tmp_path / "noisy"
    assert main(["train", *noisy, "model.noise=bit_flip:0.1:end", f"run_dir={run}"]) == 0
    assert "bit_flip:0.1:end" in (run / "config.toml").read_text()
    capsys.readouterr()
    assert main(["train", *noisy, "model.noise=thermal:0.1", f"run_dir={tmp_path / 'bad'}"]) == 2
    assert "unknown noise channel 'thermal'" in capsys.readouterr().err
