"""Circuit templates: plain functions that return a :class:`~qlstm.circuit.Circuit`.

* encodings: :func:`angle_encoding`, :func:`dense_angle_encoding`,
  :func:`amplitude_encoding`, :func:`chen_encoding`
* variational layers: :func:`chen_layers`, :func:`basic_entangler_layers`,
  :func:`strongly_entangling_layers` (by name: :data:`VQC_TEMPLATES`,
  :func:`variational_layers`); the full Chen-2020 VQC :func:`chen_vqc`
* the six QLSTM blocks: :data:`QLSTM_BLOCKS`, :func:`qlstm_block`, :func:`cell_order`
* QCNN trees: :func:`qcnn_tree` and the two-qubit modules :data:`TWO_QUBIT_MODULES`
"""

from .encodings import amplitude_encoding, angle_encoding, chen_encoding, dense_angle_encoding
from .layers import (INIT_SCHEMES, VQC_TEMPLATES, basic_entangler_layers, chen_layers, chen_vqc, init_weights,
                     strongly_entangling_layers, variational_layers)
from .qcnn import PAPER_CHOICE, PAPER_MODULES, TWO_QUBIT_MODULES, module, module_circuit, qcnn_tree, tree_levels
from .qlstm_blocks import QLSTM_BLOCKS, Block, block, block_weights, cell_order, qlstm_block

__all__ = [
    "angle_encoding", "dense_angle_encoding", "amplitude_encoding", "chen_encoding",
    "chen_layers", "basic_entangler_layers", "strongly_entangling_layers", "VQC_TEMPLATES", "variational_layers",
    "chen_vqc", "init_weights", "INIT_SCHEMES",
    "QLSTM_BLOCKS", "Block", "block", "qlstm_block", "block_weights", "cell_order",
    "TWO_QUBIT_MODULES", "module", "module_circuit", "qcnn_tree", "tree_levels", "PAPER_MODULES", "PAPER_CHOICE",
]
