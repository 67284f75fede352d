r"""QCNN tree circuits and the two-qubit modules they are built from.

Two-qubit modules
-----------------
The catalogue of Hur, Kim & Park, "Quantum convolutional neural network for
classical data classification" (Quantum Mach. Intell. 4, 3 (2022),
arXiv:2108.00661). Each module is a function ``f(circuit, (a, b), params)``
that appends its gates on wires ``a, b`` with the given weight expressions;
:func:`module` looks one up by name, :data:`TWO_QUBIT_MODULES` lists them with
their parameter counts, :func:`module_circuit` returns one as a 2-qubit circuit.

=========  ======  ==========================================================
name       params  gates (time order; ``a`` = first wire, ``b`` = second)
=========  ======  ==========================================================
``U_TTN``  2       RY(a) RY(b) CNOT(a,b)  -- tree tensor network (Grant et al. 2018)
``U_5``    10      RX RX RZ RZ, CRZ(b->a) CRZ(a->b), RX RX RZ RZ  -- Sim et al. circuit 5
``U_6``    10      RX RX RZ RZ, CRX(b->a) CRX(a->b), RX RX RZ RZ  -- Sim et al. circuit 6
``U_9``    2       H H, CZ(a,b), RX RX  -- Sim et al. circuit 9
``U_13``   6       RY RY, CRZ(b->a), RY RY, CRZ(a->b)  -- Sim et al. circuit 13
``U_14``   6       RY RY, CRX(b->a), RY RY, CRX(a->b)  -- Sim et al. circuit 14
``U_15``   4       RY RY, CNOT(b,a), RY RY, CNOT(a,b)  -- Sim et al. circuit 15
``U_SO4``  6       RY RY, CNOT(a,b), RY RY, CNOT(a,b), RY RY  -- SO(4) (Wei & Di 2012 style)
``U_SU4``  15      U3 U3, CNOT(a,b), RY(a) RZ(b), CNOT(b,a), RY(a), CNOT(a,b), U3 U3 -- general SU(4)
=========  ======  ==========================================================

In each pair of single-qubit gates the one on ``a`` comes first and takes the
lower-numbered parameter (``RY(p0) a, RY(p1) b``); the parameters are used in
the order the gates appear. ``U3`` is Qiskit's ``U`` / PennyLane's ``U3``
(``U3(theta, phi, lambda)``). ``U_SO4`` has real matrix entries and
determinant 1 (it lies in SO(4)); ``U_SU4`` is the 3-CNOT decomposition of a
general two-qubit unitary (Vatan & Williams 2004), which reaches every SU(4)
element up to a global phase.

Pooling
-------
A tree keeps one qubit of each pair. ``pool=`` says what happens to the other:

* ``"discard"`` -- nothing: the qubit is simply not used again (the reduced
  state of the kept qubits is the partial trace; this is the "hierarchical"
  tree of Grant et al. and of the QConvLSTM paper's Section 4.2).
* ``"measure"`` -- Cong, Choi & Lukin (2019): the discarded qubit is measured
  mid-circuit and a trainable rotation acts on the kept qubit conditioned on the
  outcome: ``RZ(p0)`` if it read 1, ``RX(p1)`` if it read 0 (2 weights per pooling).
  This is the measured form of Hur et al.'s pooling ansatz ``CRZ(p0), X, CRX(p1)``.
* ``"controlled"`` -- that coherent form itself: ``CRZ(p0) (d->k), X(d), CRX(p1) (d->k)``
  with ``d`` the discarded and ``k`` the kept qubit, no measurement. By the
  principle of deferred measurement it gives the kept qubits exactly the same
  state as ``"measure"``.

With all pooling angles zero, ``"measure"`` gives the same ``<Z>`` as
``"discard"``: measuring a qubit that is never used again does not change the
reduced state of the others.

The tree
--------
:func:`qcnn_tree` pairs the active qubits ``(q0, q1), (q2, q3), ...``, applies
``layers_per_level`` module layers to every pair, keeps the **second** qubit of
each pair (the target of the last CNOT in ``U_TTN``, ``U_15``, ``U_SO4``), and
repeats until one qubit -- wire ``n - 1`` -- remains; its ``<Z>`` is the
output. This is the "Hierarchical" classifier of Hur et al.'s benchmark (and
Grant et al.'s TTN): for 8 qubits, levels ``(0,1) (2,3) (4,5) (6,7)``, then
``(1,3) (5,7)``, then ``(3,7)``, read out on wire 7.

QConvLSTM's six modules (a)-(f)
-------------------------------
Xu, Yu, Zhang & Chen, "Quantum Convolutional Long Short-Term Memory Based on
Variational Quantum Algorithms in the Era of NISQ" (Information 15, 175
(2024)) compare six module designs "(a)-(f)" in their Figure 5 / Table 4 and
pick (c). The figure's content is not in the text. :data:`PAPER_MODULES` is
qlstm's **inference**, not something the paper states; see its docstring and
``docs/qcnn.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ...errors import CircuitError
from ..circuit import Circuit
from ..expr import Expr, as_expr
from .encodings import angle_encoding

__all__ = [
    "TwoQubitModule", "TWO_QUBIT_MODULES", "module", "module_circuit", "POOLING", "POOL_PARAMS",
    "apply_pool", "tree_levels", "qcnn_tree", "PAPER_MODULES", "PAPER_CHOICE",
    "u_ttn", "u_5", "u_6", "u_9", "u_13", "u_14", "u_15", "u_so4", "u_su4",
]


# ---------------------------------------------------------------------------
# the modules


def _ab(wires) -> tuple[int, int]:
    a, b = wires
    return int(a), int(b)


def u_ttn(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """``RY(p0) a, RY(p1) b, CNOT(a, b)`` (2 params)."""
    a, b = _ab(wires)
    return c.ry(a, p[0]).ry(b, p[1]).cnot(a, b)


def _sim_5_6(c: Circuit, wires, p, ctrl: str) -> Circuit:
    a, b = _ab(wires)
    c.rx(a, p[0]).rx(b, p[1]).rz(a, p[2]).rz(b, p[3])
    c.gate(ctrl, (b, a), p[4]).gate(ctrl, (a, b), p[5])
    return c.rx(a, p[6]).rx(b, p[7]).rz(a, p[8]).rz(b, p[9])


def u_5(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """Sim et al. circuit 5 on two qubits (10 params): ``RX RX RZ RZ, CRZ(b->a), CRZ(a->b), RX RX RZ RZ``."""
    return _sim_5_6(c, wires, p, "crz")


def u_6(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """Sim et al. circuit 6 on two qubits (10 params): ``RX RX RZ RZ, CRX(b->a), CRX(a->b), RX RX RZ RZ``."""
    return _sim_5_6(c, wires, p, "crx")


def u_9(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """Sim et al. circuit 9 on two qubits (2 params): ``H a, H b, CZ(a, b), RX(p0) a, RX(p1) b``."""
    a, b = _ab(wires)
    return c.h(a).h(b).cz(a, b).rx(a, p[0]).rx(b, p[1])


def _sim_13_14(c: Circuit, wires, p, ctrl: str) -> Circuit:
    a, b = _ab(wires)
    c.ry(a, p[0]).ry(b, p[1]).gate(ctrl, (b, a), p[2])
    return c.ry(a, p[3]).ry(b, p[4]).gate(ctrl, (a, b), p[5])


def u_13(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """Sim et al. circuit 13 on two qubits (6 params): ``RY RY, CRZ(b->a), RY RY, CRZ(a->b)``."""
    return _sim_13_14(c, wires, p, "crz")


def u_14(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """Sim et al. circuit 14 on two qubits (6 params): ``RY RY, CRX(b->a), RY RY, CRX(a->b)``."""
    return _sim_13_14(c, wires, p, "crx")


def u_15(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """Sim et al. circuit 15 on two qubits (4 params): ``RY RY, CNOT(b, a), RY RY, CNOT(a, b)``."""
    a, b = _ab(wires)
    return c.ry(a, p[0]).ry(b, p[1]).cnot(b, a).ry(a, p[2]).ry(b, p[3]).cnot(a, b)


def u_so4(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """SO(4) module (6 params): ``RY RY, CNOT(a, b), RY RY, CNOT(a, b), RY RY`` -- a real orthogonal matrix."""
    a, b = _ab(wires)
    c.ry(a, p[0]).ry(b, p[1]).cnot(a, b)
    c.ry(a, p[2]).ry(b, p[3]).cnot(a, b)
    return c.ry(a, p[4]).ry(b, p[5])


def u_su4(c: Circuit, wires, p: Sequence[Expr]) -> Circuit:
    """General SU(4) module (15 params), 3 CNOTs::

        U3(p0,p1,p2) a, U3(p3,p4,p5) b, CNOT(a,b), RY(p6) a, RZ(p7) b, CNOT(b,a),
        RY(p8) a, CNOT(a,b), U3(p9,p10,p11) a, U3(p12,p13,p14) b
    """
    a, b = _ab(wires)
    c.u3(a, p[0], p[1], p[2]).u3(b, p[3], p[4], p[5])
    c.cnot(a, b).ry(a, p[6]).rz(b, p[7]).cnot(b, a).ry(a, p[8]).cnot(a, b)
    return c.u3(a, p[9], p[10], p[11]).u3(b, p[12], p[13], p[14])


@dataclass(frozen=True)
class TwoQubitModule:
    """A two-qubit module: ``mod(circuit, (a, b), params)`` appends it and returns the circuit."""

    name: str
    n_params: int
    build: Callable[[Circuit, tuple[int, int], Sequence[Expr]], Circuit]
    source: str
    gates: str

    def __call__(self, circuit: Circuit, wires, params: Sequence) -> Circuit:
        wires = tuple(wires)
        if len(wires) != 2:
            raise CircuitError(f"{self.name} acts on two wires, got {list(wires)}")
        params = [as_expr(p) for p in params]
        if len(params) != self.n_params:
            raise CircuitError(f"{self.name} takes {self.n_params} parameters, got {len(params)}")
        return self.build(circuit, wires, params)


TWO_QUBIT_MODULES: dict[str, TwoQubitModule] = {
    m.name: m
    for m in (
        TwoQubitModule("U_TTN", 2, u_ttn, "Grant et al. 2018 (tree tensor network)", "RY RY CNOT(a,b)"),
        TwoQubitModule("U_5", 10, u_5, "Sim et al. 2019, circuit 5", "RX RX RZ RZ CRZ(b,a) CRZ(a,b) RX RX RZ RZ"),
        TwoQubitModule("U_6", 10, u_6, "Sim et al. 2019, circuit 6", "RX RX RZ RZ CRX(b,a) CRX(a,b) RX RX RZ RZ"),
        TwoQubitModule("U_9", 2, u_9, "Sim et al. 2019, circuit 9", "H H CZ RX RX"),
        TwoQubitModule("U_13", 6, u_13, "Sim et al. 2019, circuit 13", "RY RY CRZ(b,a) RY RY CRZ(a,b)"),
        TwoQubitModule("U_14", 6, u_14, "Sim et al. 2019, circuit 14", "RY RY CRX(b,a) RY RY CRX(a,b)"),
        TwoQubitModule("U_15", 4, u_15, "Sim et al. 2019, circuit 15", "RY RY CNOT(b,a) RY RY CNOT(a,b)"),
        TwoQubitModule("U_SO4", 6, u_so4, "SO(4), Wei & Di 2012 style (RY and CNOT only)",
                       "RY RY CNOT(a,b) RY RY CNOT(a,b) RY RY"),
        TwoQubitModule("U_SU4", 15, u_su4, "general SU(4), 3 CNOTs (Vatan & Williams 2004)",
                       "U3 U3 CNOT(a,b) RY RZ CNOT(b,a) RY CNOT(a,b) U3 U3"),
    )
}
"""The catalogue of Hur, Kim & Park (2022), in their order, with parameter counts (``.n_params``)."""


def _key(name: str) -> str:
    return name.upper().replace("(", "").replace(")", "").replace("-", "_").replace(" ", "")


_ALIASES = {_key(k): k for k in TWO_QUBIT_MODULES}
_ALIASES.update({_key(k[2:]): k for k in TWO_QUBIT_MODULES})  # "TTN", "SO4", "15", ...


def module(name: str | TwoQubitModule) -> TwoQubitModule:
    """The module called ``name`` (``"U_SO4"``; also ``"so4"``, ``"SO(4)"``, ``"TTN"``, ``"15"``).

    The result is callable: ``module("U_SO4")(circuit, (a, b), weights)``.
    """
    if isinstance(name, TwoQubitModule):
        return name
    key = _ALIASES.get(_key(str(name)))
    if key is None:
        raise CircuitError(f"unknown two-qubit module {name!r}; valid: {', '.join(TWO_QUBIT_MODULES)}")
    return TWO_QUBIT_MODULES[key]


_module = module  # qcnn_tree's argument is also called ``module``


def module_circuit(name: str) -> Circuit:
    """The module alone on a 2-qubit circuit, weights ``w_0 .. w_{n_params-1}``, no observables.

    For example ``print(module_circuit("U_SO4").draw())``::

        q0: ─RY(w_0)─●─RY(w_2)─●─RY(w_4)─
        q1: ─RY(w_1)─X─RY(w_3)─X─RY(w_5)─
    """
    m = module(name)
    c = Circuit(2, name=m.name)
    m(c, (0, 1), c.weights(m.n_params))
    return c


# ---------------------------------------------------------------------------
# pooling

POOLING = ("discard", "measure", "controlled")
POOL_PARAMS = {"discard": 0, "measure": 2, "controlled": 2}
"""Trainable weights per pooling step."""


def apply_pool(c: Circuit, discarded: int, kept: int, pool: str, params: Sequence[Expr] = ()) -> Circuit:
    """Append one pooling step that drops ``discarded`` and keeps ``kept`` (see the module docstring)."""
    if pool == "discard":
        return c
    if pool == "measure":
        bit = c.measure(discarded)
        c.rz(kept, params[0], condition=bit)
        return c.rx(kept, params[1], condition=((bit,), 0))
    if pool == "controlled":
        c.crz(discarded, kept, params[0]).x(discarded)
        return c.crx(discarded, kept, params[1])
    raise CircuitError(f"unknown pooling {pool!r}; valid: {', '.join(POOLING)}")


# ---------------------------------------------------------------------------
# the tree


def tree_levels(n_qubits: int) -> list[list[tuple[int, int]]]:
    """The pairs of each level of a tree on ``n_qubits`` (a power of two >= 2).

    ``tree_levels(8) == [[(0, 1), (2, 3), (4, 5), (6, 7)], [(1, 3), (5, 7)], [(3, 7)]]``;
    the second qubit of each pair is kept.
    """
    if isinstance(n_qubits, bool) or not isinstance(n_qubits, int) or n_qubits < 2 or n_qubits & (n_qubits - 1):
        raise CircuitError(
            f"a QCNN tree halves the qubits at every level, so it needs a power-of-two number of qubits "
            f"(2, 4, 8, 16, ...), got {n_qubits!r}"
        )
    levels = []
    active = list(range(n_qubits))
    while len(active) > 1:
        pairs = [(active[k], active[k + 1]) for k in range(0, len(active), 2)]
        levels.append(pairs)
        active = [b for _, b in pairs]
    return levels


def qcnn_tree(n_qubits: int, module: str = "U_SO4", layers_per_level: int = 1, pool: str = "discard",
              encoding: str | None = "amplitude", *, share_weights: bool = False,
              name: str | None = None) -> Circuit:
    r"""A hierarchical (tree) QCNN: two-qubit modules, halving the qubits at each level, ``<Z>`` on the last.

    Args:
        n_qubits: a power of two >= 2.
        module: a name from :data:`TWO_QUBIT_MODULES` (or a :class:`TwoQubitModule`).
        layers_per_level: module layers stacked on every pair at every level
            (each with its own weights; the QConvLSTM paper's Table 3 compares 1, 2 and 3).
        pool: ``"discard"``, ``"measure"`` (mid-circuit measurement + conditioned
            rotation, Cong et al.) or ``"controlled"`` (its coherent form).
        encoding: ``"amplitude"`` (``2**n_qubits`` inputs as amplitudes, as in the
            QConvLSTM paper), ``"angle"`` (``RY(x_i)`` on wire ``i``) or None (no inputs;
            compose your own encoding in front).
        share_weights: False (default): every module has its own weights, as in
            Hur et al.'s hierarchical classifier. True: all modules of one layer of
            one level share one weight set (and all poolings of a level share one),
            as in their QCNN and in Cong et al.
        name: circuit name (default ``"qcnn_tree_<module>"``).

    Weights, in order: for each level, for each stacked layer, for each pair
    (once if shared) the module's parameters; then that level's pooling weights.
    Output: ``<Z>`` on wire ``n_qubits - 1``, shape ``[B, 1]``.

    4 qubits, ``U_SO4``, one layer per level, discard pooling, no encoding
    (``print(qcnn_tree(4, encoding=None).draw())``)::

        q0: ─RY(w_0)─●─RY(w_2)─●─RY(w_4)─────────────────────────────────
        q1: ─RY(w_1)─X─RY(w_3)─X─RY(w_5)──RY(w_12)─●─RY(w_14)─●─RY(w_16)─
        q2: ─RY(w_6)─●─RY(w_8)─●─RY(w_10)──────────│──────────│──────────
        q3: ─RY(w_7)─X─RY(w_9)─X─RY(w_11)─RY(w_13)─X─RY(w_15)─X─RY(w_17)─ <Z>

    (see ``docs/qcnn.md`` for the drawing with measure pooling).
    """
    mod = _module(module)
    levels = tree_levels(n_qubits)
    if isinstance(layers_per_level, bool) or not isinstance(layers_per_level, int) or layers_per_level < 1:
        raise CircuitError(f"layers_per_level must be a positive integer, got {layers_per_level!r}")
    if pool not in POOLING:
        raise CircuitError(f"unknown pooling {pool!r}; valid: {', '.join(POOLING)}")
    c = Circuit(n_qubits, name=name or f"qcnn_tree_{mod.name}")
    if encoding == "amplitude":
        c.amplitude_encoding(2**n_qubits, range(n_qubits))
    elif encoding == "angle":
        c.compose(angle_encoding(n_qubits, "Y"))
    elif encoding is not None:
        raise CircuitError(f"unknown encoding {encoding!r}; valid: 'amplitude', 'angle', None")
    for pairs in levels:
        for _ in range(layers_per_level):
            shared = c.weights(mod.n_params) if share_weights else None
            for a, b in pairs:
                mod(c, (a, b), shared if shared is not None else c.weights(mod.n_params))
        k = POOL_PARAMS[pool]
        shared = c.weights(k) if (share_weights and k) else None
        for a, b in pairs:
            apply_pool(c, a, b, pool, shared if shared is not None else c.weights(k))
    c.expval("Z", levels[-1][0][1])
    return c


# ---------------------------------------------------------------------------
# the QConvLSTM paper's Figure 5

PAPER_MODULES: dict[str, str] = {
    "a": "U_TTN",
    "b": "U_9",
    "c": "U_13",
    "d": "U_14",
    "e": "U_15",
    "f": "U_SO4",
}
"""qlstm's reading of the six module designs (a)-(f) of the QConvLSTM paper's Figure 5.

**This is an inference, not a statement of the paper.** Figure 5 is an image;
the text says only that (a)-(f) are "design schemes of a single VQC module in
the quantum convolution circuit based on a hierarchical tree structure", that
the circuits are stacked in layers (Table 3: 1, 2, 3) and that (c) worked best
(Table 4). The reasoning:

1. The QConvLSTM circuit (Section 4.2: apply two-qubit modules, discard one
   qubit of each, repeat until one remains, measure it; amplitude encoding,
   PennyLane, 4 qubits) is exactly the "hierarchical" classifier benchmarked by
   Hur, Kim & Park (2022) with amplitude encoding in PennyLane, so their module
   catalogue (U_TTN, U_5, U_6, U_9, U_13, U_14, U_15, U_SO4, U_SU4) is the
   natural source of the six designs.
2. Six of nine: the paper stresses *fewer* parameters and compares models
   "with equal parameters"; the modules of at most 6 parameters are exactly
   six -- U_TTN (2), U_9 (2), U_13 (6), U_14 (6), U_15 (4), U_SO4 (6); the
   dropped ones are U_5, U_6 (10) and U_SU4 (15).
3. Order: the catalogue's own order with the three heavy modules removed.

Under this reading the paper's chosen design (c) is ``U_13`` (:data:`PAPER_CHOICE`).
Other orders (e.g. by parameter count, which would make (c) ``U_15``) fit the
text equally well; ``qcnn_tree`` takes any module, so experiments do not depend
on this table.
"""

PAPER_CHOICE = "c"
"""The design the QConvLSTM paper selected (Table 4); ``PAPER_MODULES[PAPER_CHOICE]``."""
