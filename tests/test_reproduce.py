"""`qlstm reproduce`: the experiments of the two source documents, their report and verdicts."""

import csv

import pytest

from qlstm.train import tasks as tasks_mod
from qlstm.train.compare import parse_model_spec
from qlstm.train.config import ConfigError
from qlstm.train.reproduce import PAPERS, SCALES, reproduce
from test_train import synthetic_digits

TINY = ["data.num_train=2", "data.num_val=1", "data.num_test=2", "data.size=16", "frames_in=2", "frames_out=2",
        "batch_size=2"]


def test_model_spec_values_may_hold_colons():
    assert parse_model_spec("qconvlstm:noise=bit_flip:0.05:end:tree_layers=2") == (
        "qconvlstm", {"noise": "bit_flip:0.05:end", "tree_layers": 2})
    assert parse_model_spec("convlstm:hidden_channels=[4]") == ("convlstm", {"hidden_channels": [4]})


def test_qconvlstm_tables_cover_the_paper():
    tables = {t.key: t for t in PAPERS["qconvlstm"](0.05)}
    assert list(tables) == ["table1", "table2", "table3", "table4"]
    assert set(tables["table1"].paper) == {"LSTM", "ConvLSTM", "QLSTM", "QConvLSTM"}
    assert tables["table1"].paper["QConvLSTM"] == {"mse_frame_sum": 64.8, "ssim": 0.861, "lpips": 0.083}
    labels2 = [label for label, _ in tables["table2"].rows]
    assert sum(label.endswith("(end)") for label in labels2) == 4 and sum("every layer" in lb for lb in labels2) == 4
    assert [s for _, s in tables["table3"].rows] == [f"qconvlstm:module=c:tree_layers={k}" for k in (1, 2, 3)]
    assert [s.split(":")[1] for _, s in tables["table4"].rows] == [f"module={m}" for m in "abcdef"]
    # the noiseless QConvLSTM is the same spec everywhere, so it is trained once
    assert len({tables[k].rows[i][1] for k, i in (("table1", 3), ("table2", 0), ("table3", 1), ("table4", 2))}) == 1
    assert SCALES["qconvlstm"]["paper"]["overrides"][:3] == ["data.num_train=500", "data.num_val=50",
                                                            "data.num_test=200"]


def test_reproduce_qconvlstm_layers_table_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks_mod, "_load_digits", synthetic_digits)
    res = reproduce("qconvlstm", "smoke", out_dir=tmp_path / "rep", tables=["table3"], overrides=TINY,
                    lpips=False, progress=False, command="qlstm reproduce qconvlstm ...")
    rows = res.tables["table3"]
    assert [r["label"] for r in rows] == ["1 layer", "2 layers", "3 layers"]
    assert all(r["mse_frame_sum_mean"] > 0 and r["ssim_mean"] is not None for r in rows)
    # one tree has 3 modules; U_13 (design c) has 6 parameters: more layers, more parameters
    assert rows[0]["parameters_mean"] < rows[1]["parameters_mean"] < rows[2]["parameters_mean"]
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "## Table 3: tree (circuit) layers" in report and "| 1 layer | `qconvlstm:module=c:tree_layers=1` | 67.5 |" in report
    assert "**Claim:** one layer is worst" in report
    assert ("**Ours:** holds:" in report) or ("**Ours:** does not hold:" in report)
    assert "Command: `qlstm reproduce qconvlstm ...`" in report and "lr 0.001" in report
    table_md = (tmp_path / "rep" / "table3.md").read_text()
    assert "MSE / frame" in table_md and "SSIM (OpenSTL)" in table_md and "tolerance acc." not in table_md
    with open(tmp_path / "rep" / "table3.csv", newline="") as fh:
        assert [r["model"] for r in csv.DictReader(fh)] == [s for s in
                                                           (f"qconvlstm:module=c:tree_layers={k}" for k in (1, 2, 3))]
    # a second call reuses the finished runs: same numbers
    again = reproduce("qconvlstm", "smoke", out_dir=tmp_path / "rep", tables=["table3"], overrides=TINY,
                      lpips=False, progress=False, command="qlstm reproduce qconvlstm ...")
    assert again.report == res.report


def test_reproduce_table1_has_the_naive_frame_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks_mod, "_load_digits", synthetic_digits)
    from qlstm.train.compare import naive_baselines
    from qlstm.train.config import load_config

    cfg = load_config(None, ["task=frames", *TINY])
    rows = {r["model"]: r for r in naive_baselines(cfg)}
    assert set(rows) == {"naive: last frame", "naive: black frames"}
    black = rows["naive: black frames"]
    # black frames: the squared error of a frame is the sum of its squared pixel values
    res = reproduce("qconvlstm", "smoke", out_dir=tmp_path / "rep", tables=["table1"], overrides=TINY,
                    lpips=False, progress=False)
    import torch

    from qlstm.train.config import resolve

    data = tasks_mod.get_task(resolve(cfg), torch.device("cpu"), torch.float64).load_data()
    y = data.y_test.double() / 255
    assert black["mse_frame_sum"] == pytest.approx(float(y.square().sum((2, 3, 4)).mean()), rel=1e-12)
    last = (data.x_test[:, -1:].double() / 255).expand_as(y)
    assert rows["naive: last frame"]["mse_frame_sum"] == pytest.approx(
        float((last - y).square().sum((2, 3, 4)).mean()), rel=1e-12)
    assert black["parameters"] == 0
    assert "| naive: black frames | – | – |" in res.report and "| naive: last frame |" in res.report
    md = (tmp_path / "rep" / "table1.md").read_text()
    assert "the last observed frame repeated, and black frames" in md


def test_reproduce_proposal_reports_the_target_and_qubits(tmp_path):
    res = reproduce("proposal", "smoke", out_dir=tmp_path / "p", overrides=["data.n_points=40"], progress=False)
    report = res.report
    assert "## The proposal's evaluation on the sine series" in report
    assert "QLSTM tolerance accuracy" in report and "70%" in report
    assert "MCM-QLSTM uses 7 qubits against 22 for QLSTM" in report and "idle-qubit share" in report
    assert "| naive: last value |" in report


@pytest.mark.parametrize("kwargs,match", [
    (dict(paper="nope"), "unknown paper 'nope'; valid: qconvlstm, proposal"),
    (dict(paper="qconvlstm", scale="huge"), "unknown scale 'huge'; valid: smoke, small, paper"),
    (dict(paper="qconvlstm", tables=["table9"]), "unknown table 'table9'; valid: table1, table2, table3, table4"),
    (dict(paper="qconvlstm", noise_p=1.5), r"noise probability must be in \[0, 1\]"),
    (dict(paper="proposal", seeds=0), "seeds must be a positive int"),
])
def test_reproduce_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        reproduce(out_dir=tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()
