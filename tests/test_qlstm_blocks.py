"""The six QLSTM blocks as data, and their reference VQCs."""

from __future__ import annotations

import pytest
import torch

from qlstm.circuit import run
from qlstm.circuit.templates import QLSTM_BLOCKS, block, block_weights, cell_order, chen_vqc, qlstm_block
from qlstm.errors import CircuitError


def test_six_blocks_in_order():
    assert cell_order() == ("forget", "input", "candidate", "output", "hidden_processing", "output_processing")
    assert [QLSTM_BLOCKS[n].vqc for n in cell_order()] == [1, 2, 3, 4, 5, 6]
    assert [QLSTM_BLOCKS[n].order for n in cell_order()] == [1, 2, 3, 4, 5, 6]


def test_nonlinearities_and_stages():
    assert [QLSTM_BLOCKS[n].nonlinearity for n in cell_order()] == ["sigmoid", "sigmoid", "tanh", "sigmoid",
                                                                   "none", "none"]
    assert [QLSTM_BLOCKS[n].stage for n in cell_order()] == [1, 1, 1, 1, 2, 2]
    t = torch.linspace(-2, 2, 5)
    torch.testing.assert_close(block("forget").activate(t), torch.sigmoid(t))
    torch.testing.assert_close(block("candidate").activate(t), torch.tanh(t))
    torch.testing.assert_close(block("output_processing").activate(t), t)


def test_sizes():
    for name in ("forget", "input", "candidate", "output"):
        assert block(name).input_size(1, 3) == 4 and block(name).output_size(1, 3) == 3
        assert block(name).reads.startswith("v_t")
    for name in ("hidden_processing", "output_processing"):
        assert block(name).input_size(1, 3) == 3 and block(name).output_size(1, 3) == 3


@pytest.mark.parametrize("alias,name", [("update", "candidate"), ("UPDATE", "candidate"), ("vqc1", "forget"),
                                        ("hidden", "hidden_processing"), ("vqc6", "output_processing"),
                                        ("output-processing", "output_processing"), ("Forget", "forget")])
def test_aliases(alias, name):
    assert block(alias).name == name
    assert qlstm_block(alias, 3, 1).name == name


def test_unknown_block():
    with pytest.raises(CircuitError, match="unknown QLSTM block 'gate7'"):
        block("gate7")


def test_block_circuit_is_chen_vqc():
    gen = torch.Generator().manual_seed(0)
    for name in cell_order():
        c = qlstm_block(name, 4, n_layers=2)
        ref = chen_vqc(4, 2)
        assert c.name == name
        assert c.n_inputs == 4 and c.n_weights == 24 and len(c.observables) == 4
        x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
        w = torch.randn(24, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(run(c, x, w).expvals, run(ref, x, w).expvals)
    c = qlstm_block("forget", 4, 2, n_outputs=3)
    assert [o.wires for o in c.observables] == [(0,), (1,), (2,)]
    with pytest.raises(CircuitError, match="n_outputs"):
        qlstm_block("forget", 4, 2, n_outputs=5)


def test_block_weights_default_to_chen_init():
    g = torch.Generator().manual_seed(3)
    w = block_weights(4, 2, generator=g)
    assert w.shape == (24,) and w.abs().max() < 0.1  # 0.01 * N(0, 1)
    g2 = torch.Generator().manual_seed(3)
    torch.testing.assert_close(w, 0.01 * torch.randn(24, generator=g2))
    assert block_weights(2, 1, "zeros").abs().sum() == 0
    u = block_weights(4, 1, "uniform", generator=g)
    assert u.min() >= 0 and u.max() <= 2 * torch.pi
    with pytest.raises(CircuitError, match="unknown weight init"):
        block_weights(4, 2, "xavier")
