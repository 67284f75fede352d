"""qlstm.train: configuration, the training loop, exact resume, atomic checkpoints, outputs, compare."""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from qlstm.train import (CheckpointError, ConfigError, RunDirError, TrainConfig, TrainingInterrupted, load_config,
                         resolve, resume, train)
from qlstm.train import checkpoint as ckpt_mod
from qlstm.train import tasks as tasks_mod
from qlstm.train.config import apply_overrides, config_from_dict, parse_overrides, read_config_file, to_toml
from qlstm.train.plots import have_matplotlib

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
MPL = have_matplotlib()  # matplotlib is optional: without it runs write no PNGs


def tiny(run_dir, *extra, model="lstm"):
    """A series run that takes well under a second per epoch: 80 points, few epochs."""
    return load_config(overrides=[f"model={model}", "data.n_points=80", "epochs=3", "batch_size=8",
                                  "progress=false", f"run_dir={run_dir}", *extra])


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    return train(tiny(tmp_path_factory.mktemp("runs") / "lstm"))


def synthetic_digits(split: str) -> np.ndarray:
    """Stand-in for MNIST in the frames tests: 8x8 bright blocks with a few dark pixels, seeded per split."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    d = np.full((20, 8, 8), 255, dtype=np.uint8)
    d[rng.random((20, 8, 8)) < 0.3] = 0
    return d


# -- configuration -------------------------------------------------------------------------------


def test_defaults_resolve_to_the_main_job():
    cfg = resolve(TrainConfig())
    assert (cfg.task, cfg.model.name, cfg.data.name) == ("series", "qlstm", "sine")
    assert cfg.model.kwargs == {"hidden_size": 3, "n_layers": 2}
    assert cfg.epochs == 30 and cfg.threads == 1
    frames = resolve(load_config(overrides=["task=frames"]))
    assert (frames.model.name, frames.data.name, frames.model.patch_size) == ("convlstm", "moving-mnist", 4)


def test_overrides_types_and_tables():
    cfg = load_config(overrides=["epochs=7", "lr=1", "model=lstm", "model.hidden_size=5", "data.noise_std=0.1",
                                 "progress=false", "run_dir=123", "model.peephole=false"])
    assert cfg.epochs == 7 and isinstance(cfg.lr, float) and cfg.lr == 1.0
    assert cfg.model.name == "lstm" and cfg.model.kwargs == {"hidden_size": 5, "peephole": False}
    assert cfg.data.kwargs == {"noise_std": 0.1}
    assert cfg.progress is False and cfg.run_dir == "123"
    assert parse_overrides(["--epochs=3", "model.hidden_channels=[8, 8]"]) == [
        ("epochs", 3), ("model.hidden_channels", [8, 8])]


@pytest.mark.parametrize("item, match", [
    ("epoch=3", "unknown config key 'epoch'; did you mean 'epochs'"),
    ("optimiser=adam", "did you mean 'optimizer'"),
    ("modle.name=lstm", "unknown config key 'modle.name'; did you mean 'model.name'"),
    ("epochs=three", "'epochs' must be an integer"),
    ("progress=maybe", "'progress' must be true or false"),
    ("epochs", "not of the form key=value"),
])
def test_bad_overrides_name_the_key(item, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=[item])


@pytest.mark.parametrize("items, match", [
    (["model.hidden_sze=4"], r"model 'qlstm' has no argument 'hidden_sze'.*did you mean 'model.hidden_size'"),
    (["model=lstm", "model.n_layers=2"], "did you mean 'model.num_layers'"),
    (["model=lstmm"], r"unknown model 'lstmm'; valid models: .*lstm.*qlstm"),
    (["data=sin"], r"unknown series data set 'sin'; valid: .*sine"),
    (["data.noise=0.1"], "did you mean 'data.noise_std'"),
    (["model=convlstm"], "use task=frames"),
    (["task=frames", "model=mcm-qlstm"], "cannot run on frames.*frame models: convlstm, qconvlstm, lstm, qlstm"),
    (["task=movie"], "unknown task 'movie'"),
    (["optimizer=adan"], "did you mean 'adam'"),
    (["data=csv"], "data=csv needs data.path=FILE and data.column=NAME"),
    (["model.input_size=2"], "set by the series task itself"),
    (["lr=-1"], "lr must be a positive number"),
])
def test_resolve_rejects_with_clear_messages(items, match):
    with pytest.raises(ConfigError, match=match):
        resolve(load_config(overrides=items))


def test_config_files_toml_yaml_json(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "a.toml").write_text('epochs = 4\n[model]\nname = "lstm"\nhidden_size = 2\n[data]\nname = "sine"\n')
    (tmp_path / "a.yaml").write_text("epochs: 4\nmodel:\n  name: lstm\n  hidden_size: 2\ndata:\n  name: sine\n")
    (tmp_path / "a.json").write_text('{"epochs": 4, "model": {"name": "lstm", "hidden_size": 2}, "data": {"name": "sine"}}')
    cfgs = [load_config(tmp_path / f"a.{ext}") for ext in ("toml", "yaml", "json")]
    assert cfgs[0] == cfgs[1] == cfgs[2]
    assert cfgs[0].epochs == 4 and cfgs[0].model.kwargs == {"hidden_size": 2}
    # command-line overrides win over the file
    assert load_config(tmp_path / "a.toml", ["epochs=9"]).epochs == 9


def test_config_file_errors(tmp_path):
    (tmp_path / "bad.toml").write_text("epochs = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text("epohcs = 3\n")
    with pytest.raises(ConfigError, match=r"'epohcs' in .*typo.toml; did you mean 'epochs'"):
        load_config(tmp_path / "typo.toml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "x.ini").write_text("")
    with pytest.raises(ConfigError, match="unknown config format"):
        load_config(tmp_path / "x.ini")


def test_toml_round_trip(tmp_path):
    cfg = resolve(load_config(overrides=["model=lstm", "model.hidden_size=4", "data.noise_std=0.05", "lr=0.01"]))
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    assert resolve(load_config(tmp_path / "c.toml")) == cfg
    assert config_from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.*")), ids=lambda p: p.name)
def test_shipped_configs_resolve(path):
    if path.suffix in (".yaml", ".yml"):
        pytest.importorskip("yaml")
    cfg = resolve(load_config(path))
    assert cfg.model.name and cfg.data.name


def test_sine_qlstm_config_is_the_default():
    assert resolve(load_config(REPO / "configs" / "sine_qlstm.toml")) == resolve(TrainConfig())


# -- training runs and their outputs --------------------------------------------------------------


def test_series_lstm_run_writes_every_output(lstm_run):
    run = lstm_run.run_dir
    pngs = ("loss.png", "prediction.png") if MPL else ()
    for name in ("config.toml", "checkpoint.pt", "metrics.csv", "results.json", *pngs):
        assert (run / name).is_file(), name
    assert not [p for p in run.iterdir() if p.name.startswith(".")], "temporary files left behind"
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_tolerance_accuracy", "seconds"} <= set(rows[0])
    assert all(float(r["train_loss"]) > 0 for r in rows)
    res = json.loads((run / "results.json").read_text())
    assert res["model"] == "lstm" and res["epochs"] == 3 and res["parameters"] == lstm_run.parameters
    assert set(res["test"]) == {"mse", "mae", "rmse", "r2", "tolerance_accuracy", "direction_accuracy",
                                "mse_original_units"}
    assert res["test"] == pytest.approx(lstm_run.metrics)
    assert 0.0 <= res["test"]["tolerance_accuracy"] <= 1.0
    assert res["data_info"]["windows_train"] + res["data_info"]["windows_val"] > res["data_info"]["windows_test"] > 0
    # the original-units MSE is the scaled MSE divided by the squared scale of the min-max map
    s = res["data_info"]["scaler"]
    scale = 2.0 / (s["data_max"] - s["data_min"])
    assert res["test"]["mse_original_units"] == pytest.approx(res["test"]["mse"] / scale**2, rel=1e-6)
    for png in pngs:
        data = (run / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    stored = load_config(run / "config.toml")
    assert resolve(stored) == lstm_run.config


def test_same_seed_same_weights_other_seed_differs(tmp_path, lstm_run):
    again = train(tiny(tmp_path / "again"))
    for k, v in lstm_run.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    other = train(tiny(tmp_path / "other", "seed=1"))
    assert not torch.equal(other.model.state_dict()["head.weight"], again.model.state_dict()["head.weight"])


def test_series_qlstm_run(tmp_path):
    res = train(tiny(tmp_path / "q", "epochs=2", model="qlstm"))
    assert res.config.model.kwargs == {"hidden_size": 3, "n_layers": 2}
    assert len(res.history) == 2 and np.isfinite(res.metrics["mse"])
    assert (tmp_path / "q" / "prediction.png").is_file() or not MPL


def test_frames_convlstm_run(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks_mod, "_load_digits", synthetic_digits)
    cfg = load_config(overrides=["task=frames", "data.num_train=4", "data.num_val=2", "data.num_test=2",
                                 "data.size=16", "frames_in=3", "frames_out=2", "model.hidden_channels=[4]",
                                 "epochs=2", "batch_size=2", "progress=false", f"run_dir={tmp_path / 'f'}"])
    res = train(cfg)
    assert set(res.metrics) == {"mse", "mse_frame_sum", "mae", "mae_frame_sum", "psnr", "ssim", "ssim_openstl"}
    # per-frame sum over 16x16 pixels vs per-pixel mean
    assert res.metrics["mse_frame_sum"] == pytest.approx(256 * res.metrics["mse"], rel=1e-9)
    assert res.metrics["mae_frame_sum"] == pytest.approx(256 * res.metrics["mae"], rel=1e-9)
    assert not MPL or (tmp_path / "f" / "frames.png").read_bytes().startswith(PNG)
    assert res.history[-1]["val_loss"] > 0 and "val_ssim" in res.history[-1]


def test_frame_heads_start_at_the_mean_pixel(monkeypatch):
    monkeypatch.setattr(tasks_mod, "_load_digits", synthetic_digits)
    cfg = resolve(load_config(overrides=["task=frames", "data.num_train=3", "data.num_val=1", "data.num_test=1",
                                         "data.size=16", "frames_in=2", "frames_out=1", "model.hidden_channels=[2]"]))
    task = tasks_mod.get_task(cfg, torch.device("cpu"), torch.float32)
    data = task.load_data()
    mean = float(data.x_train.double().mean()) / 255
    model = task.build_model(torch.Generator().manual_seed(0))
    assert torch.sigmoid(model.head.bias).sub(mean).abs().max() < 1e-6
    assert 0 < mean < 0.5


@pytest.mark.parametrize("name", ["lstm", "qlstm"])
def test_frames_sequence_core_runs_flattened(tmp_path, monkeypatch, name):
    """LSTM and QLSTM on frames: the FC-LSTM setup (FlatFramePredictor), every parameter trained."""
    from qlstm.models.wrappers import FlatFramePredictor

    monkeypatch.setattr(tasks_mod, "_load_digits", synthetic_digits)
    cfg = load_config(overrides=["task=frames", "data.num_train=4", "data.num_val=2", "data.num_test=2",
                                 "data.size=16", "frames_in=3", "frames_out=2", f"model={name}", "model.hidden_size=4",
                                 "epochs=1", "batch_size=2", "progress=false", f"run_dir={tmp_path / name}"])
    res = train(cfg)
    assert isinstance(res.model, FlatFramePredictor)
    assert res.model.encoder.in_features == 256 and res.model.encoder.out_features == tasks_mod.FLAT_FEATURES
    assert np.isfinite(res.metrics["mse"]) and 0 < res.metrics["ssim"] <= 1
    x = torch.rand(2, 3, 1, 16, 16)
    res.model.zero_grad()
    y = res.model(x)
    assert y.shape == (2, 2, 1, 16, 16)
    y.square().sum().backward()
    for pname, p in res.model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


# -- interrupt and exact resume --------------------------------------------------------------------


def _interrupt_at(epoch: int, batch: int):
    def hook(pos):
        if pos.epoch == epoch and pos.batch == batch:
            raise KeyboardInterrupt

    return hook


@pytest.mark.parametrize("model, stops", [("lstm", [(0, 2), (1, 5)]), ("qlstm", [(1, 3)])])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, model, stops):
    extra = ["epochs=3"] if model == "lstm" else ["epochs=2", "data.n_points=50"]
    straight = train(tiny(tmp_path / "straight", *extra, model=model))

    run = tmp_path / "interrupted"
    cfg = tiny(run, *extra, model=model)
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg, on_step=_interrupt_at(*stops[0]))
    assert info.value.saved and info.value.exit_code == 130
    assert f"qlstm train --resume {run}" in str(info.value)
    for epoch, batch in stops[1:]:
        with pytest.raises(TrainingInterrupted):
            resume(run, on_step=_interrupt_at(epoch, batch))
    resumed = resume(run)

    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), f"{k} differs after resume"
    assert resumed.metrics == straight.metrics
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.history] == \
           [{k: v for k, v in r.items() if k not in drop} for r in straight.history]
    with open(run / "metrics.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(1, len(straight.history) + 1))


def test_resume_can_extend_epochs_but_not_change_the_run(tmp_path, lstm_run):
    run = tmp_path / "r"
    train(tiny(run, "epochs=2"))
    with pytest.raises(ConfigError, match=r"cannot resume with a changed configuration \(lr: 0.05 -> 0.1\)"):
        resume(run, ["lr=0.1"])
    with pytest.raises(ConfigError, match="holds a series run of model 'lstm'.*run of model 'qlstm'"):
        resume(run, ["model=qlstm"])
    longer = resume(run, ["epochs=3"])
    assert len(longer.history) == 3
    # two epochs then one more == three epochs straight (the fixture's run)
    for k, v in lstm_run.model.state_dict().items():
        assert torch.equal(v, longer.model.state_dict()[k]), k


def test_new_run_refuses_an_occupied_run_dir(lstm_run):
    with pytest.raises(ConfigError, match="already holds a run; continue it with `qlstm train --resume"):
        train(tiny(lstm_run.run_dir))


# -- checkpoints and files --------------------------------------------------------------------------


def test_atomic_checkpoint_survives_a_failed_write(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    ckpt_mod.save_checkpoint(path, {"config": {}, "value": torch.arange(3)})
    before = path.read_bytes()

    def full_disk(obj, fh):
        fh.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    with pytest.raises(RunDirError, match="disk is full"):
        ckpt_mod.save_checkpoint(path, {"config": {}, "value": torch.arange(5)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_atomic_write_cleans_up_on_any_error(tmp_path):
    def boom(fh):
        fh.write("partial")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        ckpt_mod.atomic_write(tmp_path / "x.json", boom, mode="w")
    assert list(tmp_path.iterdir()) == []


def test_run_dir_under_a_file_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirError, match="a file is in the way"):
        train(tiny(blocker / "run"))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_run_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RunDirError, match="no permission"):
            train(tiny(ro / "run"))
    finally:
        ro.chmod(0o700)


def test_checkpoint_errors(tmp_path, lstm_run):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        ckpt_mod.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a qlstm training checkpoint"):
        ckpt_mod.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="holds no checkpoint.pt"):
        ckpt_mod.load_checkpoint(tmp_path)
    ckpt = ckpt_mod.load_checkpoint(lstm_run.run_dir)
    qlstm = tasks_mod.SeriesTask(resolve(load_config()), torch.device("cpu"), torch.float32).build_model(
        torch.Generator().manual_seed(0))
    with pytest.raises(CheckpointError, match="holds weights of model 'lstm', not 'qlstm'"):
        ckpt_mod.load_model_state(qlstm, ckpt, "ckpt.pt", "qlstm")
    bigger = tasks_mod.SeriesTask(resolve(tiny(tmp_path, "model.hidden_size=5")), torch.device("cpu"),
                                  torch.float32).build_model(torch.Generator().manual_seed(0))
    with pytest.raises(CheckpointError, match="other sizes or options"):
        ckpt_mod.load_model_state(bigger, ckpt, "ckpt.pt", "lstm")


# -- compare ----------------------------------------------------------------------------------------


def test_compare_lstm_qlstm(tmp_path):
    from qlstm.train.compare import compare

    base = load_config(overrides=["data.n_points=50", "epochs=1", "batch_size=16"])
    res = compare(["lstm", "qlstm"], base, [0, 1], tmp_path / "cmp", command="qlstm compare ...", progress=False)
    assert [r["model"] for r in res.runs] == ["lstm", "lstm", "qlstm", "qlstm"]
    by = {r["model"]: r for r in res.summary}
    assert by["lstm"]["qubits_mean"] == 0 and by["lstm"]["executions_per_step_mean"] == 0
    assert by["qlstm"]["qubits_mean"] == 4 and by["qlstm"]["qubits_all_mean"] == 4 * 4 + 2 * 3
    assert by["qlstm"]["executions_per_step_mean"] == 6 and by["qlstm"]["encodings_per_step_mean"] > 0
    assert 0 < by["qlstm"]["idle_share_mean"] < 1 and by["qlstm"]["idle_share_std"] == 0
    assert by["lstm"]["seeds"] == 2 and by["lstm"]["tolerance_accuracy_std"] is not None
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| `lstm` |" in md and "| `qlstm` |" in md and "tolerance acc." in md and "Seeds: 0, 1" in md
    with open(tmp_path / "cmp" / "compare.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ["lstm", "qlstm", "naive: last value", "naive: linear extrapolation"]
    assert "direction_accuracy_mean" in rows[0]
    # persistence never predicts a move, so it never gets a direction right
    assert float(rows[2]["direction_accuracy_mean"]) == 0.0 and rows[2]["parameters_mean"] == "0"
    assert "| `naive: last value` |" in md
    with open(tmp_path / "cmp" / "runs.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4

    # the same --out again: finished runs are reused, not retrained, and give the same table
    again = compare(["lstm", "qlstm"], base, [0, 1], tmp_path / "cmp", progress=False)
    assert again.summary == res.summary
    # another configuration in the same folder is refused
    with pytest.raises(ConfigError, match="holds a run with another configuration"):
        compare(["lstm"], apply_overrides(base, ["lr=0.01"]), [0], tmp_path / "cmp", progress=False)


def test_compare_unknown_model_fails_before_training(tmp_path):
    from qlstm.train.compare import compare

    with pytest.raises(ConfigError, match="unknown model 'nope'; valid models:"):
        compare(["lstm", "nope"], load_config(), [0], tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


def test_compare_model_specs():
    from qlstm.train.compare import parse_model_spec

    assert parse_model_spec("qlstm:mode=adapter:n_layers=3") == ("qlstm", {"mode": "adapter", "n_layers": 3})
    with pytest.raises(ConfigError, match="is not key=value"):
        parse_model_spec("qlstm:adapter")


def test_apply_overrides_does_not_mutate():
    cfg = load_config()
    apply_overrides(cfg, ["model.hidden_size=9", "epochs=2"])
    assert cfg.model.kwargs == {} and cfg.epochs is None


@pytest.mark.slow
def test_frames_qconvlstm_run(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks_mod, "_load_digits", synthetic_digits)
    cfg = load_config(overrides=["task=frames", "model=qconvlstm", "data.num_train=2", "data.num_val=1",
                                 "data.num_test=1", "data.size=16", "frames_in=2", "frames_out=2", "epochs=1",
                                 "batch_size=2", "progress=false", f"run_dir={tmp_path / 'q'}"])
    res = train(cfg)
    assert res.config.model.kwargs == {"hidden_channels": 4} and np.isfinite(res.metrics["mse"])
