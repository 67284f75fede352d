"""The torch.nn contract of the quantum models: state_dict round trips and noise given as config values."""

import io

import pytest
import torch

from qlstm.circuit.noise import NoiseModel
from qlstm.errors import QlstmError
from qlstm.models import build

F64 = torch.float64


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


QUANTUM = [
    ("qlstm-faithful", lambda: build("qlstm", input_size=1, hidden_size=2, n_layers=1, generator=_gen(), dtype=F64),
     lambda: torch.randn(2, 3, 1, dtype=F64, generator=torch.Generator().manual_seed(1))),
    # 6- and 5-qubit VQCs: the fused node with layered-statevector evaluators (models/_fused_general.py)
    ("qlstm-faithful-6q", lambda: build("qlstm", input_size=1, hidden_size=5, n_layers=1, generator=_gen(), dtype=F64),
     lambda: torch.randn(2, 3, 1, dtype=F64, generator=torch.Generator().manual_seed(1))),
    ("qlstm-adapter", lambda: build("qlstm", input_size=2, hidden_size=2, n_qubits=3, mode="adapter", n_layers=1,
                                    generator=_gen(), dtype=F64),
     lambda: torch.randn(2, 3, 2, dtype=F64, generator=torch.Generator().manual_seed(1))),
    ("mcm-qlstm", lambda: build("mcm-qlstm", input_size=1, hidden_size=1, generator=_gen(), dtype=F64),
     lambda: torch.randn(2, 2, 1, dtype=F64, generator=torch.Generator().manual_seed(1))),
    ("qconvlstm", lambda: build("qconvlstm", input_channels=16, hidden_channels=1, frame_size=(2, 2),
                                module="U_TTN", tree_layers=1, generator=_gen()),
     lambda: torch.rand(1, 2, 16, 2, 2, generator=torch.Generator().manual_seed(1))),
]


@pytest.mark.parametrize("name,make,data", QUANTUM, ids=[q[0] for q in QUANTUM])
def test_state_dict_round_trip_restores_outputs_exactly(name, make, data):
    model, x = make(), data()
    out, _ = model(x)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    other = make()
    with torch.no_grad():  # move every weight away, so that only the load can restore them
        for p in other.parameters():
            p.add_(0.5)
    assert (other(x)[0] - out).abs().max() > 1e-6
    other.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(other(x)[0], out, atol=0, rtol=0)


def test_noise_from_string_and_mapping_equals_the_noise_model():
    x = torch.randn(2, 3, 1, dtype=F64, generator=torch.Generator().manual_seed(2))
    ref, _ = build("qlstm", input_size=1, hidden_size=2, n_layers=1, generator=_gen(), dtype=F64,
                   noise=NoiseModel("bit_flip", 0.2, "layer"))(x)
    for form in ("bit_flip:0.2:layer", "bit-flip:0.2:layer", {"channel": "bit_flip", "p": 0.2, "placement": "layer"}):
        out, _ = build("qlstm", input_size=1, hidden_size=2, n_layers=1, generator=_gen(), dtype=F64, noise=form)(x)
        torch.testing.assert_close(out, ref, atol=0, rtol=0)
    clean, _ = build("qlstm", input_size=1, hidden_size=2, n_layers=1, generator=_gen(), dtype=F64)(x)
    assert (clean - ref).abs().max() > 1e-4
    assert NoiseModel.coerce("depolarizing:0.01") == NoiseModel("depolarizing", 0.01, "end")


@pytest.mark.parametrize("bad,message", [
    ("depolarizing", "is not 'channel:p[:placement]'"),
    ("depolarizing:lots", "probability 'lots' is not a number"),
    ("thermal:0.1", "unknown noise channel 'thermal'"),
    ("depolarizing:1.5", "noise probability"),
    ("depolarizing:0.1:everywhere", "unknown noise placement 'everywhere'"),
    ({"channel": "bit_flip"}, "needs keys 'channel' and 'p'"),
    (0.1, "noise must be a NoiseModel"),
])
def test_bad_noise_values_name_the_problem(bad, message):
    with pytest.raises(QlstmError, match=message.replace("[", r"\[").replace("(", r"\(")):
        build("qlstm", input_size=1, hidden_size=2, n_layers=1, noise=bad)


@pytest.mark.parametrize("name,make,data", QUANTUM, ids=[q[0] for q in QUANTUM])
def test_module_to_float32_and_back_follows_the_parameters(name, make, data):
    """`.to(dtype)` moves the simulation with the parameters (complex64 <-> complex128), like torch.nn.LSTM."""
    model, x = make(), data()
    ref = model(x.to(next(model.parameters()).dtype))[0].double()
    model.float()
    out32 = model(x.float())[0]
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), ref, atol=2e-4, rtol=0)
    model.double()
    out64 = model(x.double())[0]
    assert out64.dtype == F64
    torch.testing.assert_close(out64, ref, atol=1e-6, rtol=0)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@CUDA
@pytest.mark.parametrize("name,make,data", QUANTUM, ids=[q[0] for q in QUANTUM])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_quantum_models_on_cuda_match_cpu(name, make, data, dtype):
    model, x = make().to(dtype), data().to(dtype)
    ref = model(x)[0]
    gpu = model.to("cuda")
    out = gpu(x.cuda())[0]
    assert out.device.type == "cuda" and out.dtype == dtype
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4 if dtype == torch.float32 else 1e-10, rtol=0)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda and torch.isfinite(p.grad).all() for p in gpu.parameters())
