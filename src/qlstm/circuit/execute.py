"""Running a circuit: input checks, the execution planner and the simulators.

:func:`run` is the one entry point. It looks at the circuit and picks the
cheapest exact method:

* **statevector** for circuits without noise channels. Mid-circuit
  measurements split the state into measurement *branches* (unnormalised
  statevectors tagged with the classical bits they wrote), which is exact and
  keeps classical control trivial: a conditioned gate acts on the branches
  whose bits satisfy the condition.
* **density matrix** when a circuit has noise channels, or when branching
  would cost more than a density matrix (many resets/measurements on few
  qubits). Branches with equal classical bits are merged, so resets never
  branch.
* Measurements that nothing reads or acts after (*terminal* measurements) do
  not branch at all: their distribution is read off the final probabilities.
* Noisy circuits whose data enters before the noise (or through one-qubit
  operations only), read out exactly, go through
  :mod:`~qlstm.circuit.heisenberg_mixed`: the observables are pulled back
  through the noisy rest of the circuit once, instead of carrying a density
  matrix per sample (``Result.method == "heisenberg"``).
* Pure circuits without measurements go through :class:`~qlstm.circuit.plan.Program`,
  which encodes product-state prefixes in one Kronecker product and fuses
  data-independent gate runs into one matrix when that is cheaper
  (see :mod:`qlstm.circuit.plan`).

``method="reference"`` forces the plain gate-by-gate path (no fusion, no
terminal-measurement shortcut); tests check that every fast path agrees with it.
``method="trajectory"`` samples measurement outcomes and Kraus operators shot
by shot (quantum trajectories) instead of tracking every branch.

Finite shots: with ``shots=N`` expectation values and classical-bit
distributions are estimated from ``N`` samples per batch element, drawn with
the given ``torch.Generator``. The estimates carry the exact gradient
(straight-through: ``exact + (estimate - exact).detach()``), the usual choice
for training on a shot-based simulator without parameter-shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import CircuitError, InputError
from ..sim import channels as _channels
from ..sim import kernels as K
from ..sim.gates import complex_dtype_for, lookup, real_dtype_for
from .circuit import Circuit, Observable
from .ops import AmplitudeEncoding, Channel, Gate, Measure, Reset

__all__ = ["Result", "run", "expval", "check_inputs", "gate_matrix_of", "analyse", "Analysis"]

METHODS = ("auto", "statevector", "density", "reference", "trajectory")


@dataclass
class Result:
    """What :func:`run` returns.

    Attributes:
        expvals: ``[B, n_observables]`` real expectation values (exact, or
            shot estimates when ``shots`` was given); None without observables.
        clbit_probs: ``[B, 2**n_clbits]`` distribution of the classical
            register, index ``sum_c bit_c 2**c`` (Qiskit's order: clbit 0 is
            the least significant); estimated frequencies when ``shots`` was given.
        samples: ``[B, shots]`` sampled register values (same indexing), or None.
        probs: one ``[B, 2**k]`` tensor per ``circuit.probs(wires)`` request (first
            wire most significant); frequencies when ``shots`` was given.
        state: final statevector ``[B, 2**n]`` for a circuit that never branched,
            else the density matrix ``[B, 2**n, 2**n]`` summed over branches
            (the classical record traced out); only with ``return_state=True``.
        method: the method the planner used.
    """

    expvals: Optional[torch.Tensor]
    clbit_probs: Optional[torch.Tensor]
    samples: Optional[torch.Tensor]
    state: Optional[torch.Tensor]
    method: str
    probs: tuple[torch.Tensor, ...] = ()

    def counts(self, index: int = 0) -> dict[str, float]:
        """``{bitstring: probability}`` for batch element ``index``; bitstrings in Qiskit order (clbit 0 rightmost)."""
        if self.clbit_probs is None:
            return {}
        n = max(1, (self.clbit_probs.shape[-1] - 1).bit_length())
        probs = self.clbit_probs[index].detach().cpu().tolist()
        return {format(i, f"0{n}b"): p for i, p in enumerate(probs) if p > 0}


# ---------------------------------------------------------------------------
# input handling


def check_inputs(
    circuit: Circuit,
    inputs: torch.Tensor | None,
    weights: torch.Tensor | None,
    *,
    dtype: torch.dtype | None = None,
    device=None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, int, torch.dtype]:
    """Validate and normalise the data batch and weights for ``circuit``.

    Returns ``(inputs [B, n_inputs] or None, weights [n_weights] or None, B, real_dtype)``.
    """
    ref = inputs if isinstance(inputs, torch.Tensor) else weights if isinstance(weights, torch.Tensor) else None
    rdtype = real_dtype_for(dtype) if dtype is not None else (
        real_dtype_for(ref.dtype) if ref is not None and ref.is_floating_point() else torch.float64
    )
    device = device if device is not None else (ref.device if ref is not None else None)

    x = None
    batch = 1
    if circuit.n_inputs > 0:
        if inputs is None:
            raise InputError(f"{circuit.name} needs {circuit.n_inputs} input(s) per sample; got no inputs")
        x = torch.as_tensor(inputs, device=device)
        if x.is_complex():
            raise InputError("circuit inputs must be real numbers, got a complex tensor")
        x = x.to(rdtype)
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[1] != circuit.n_inputs:
            raise InputError(
                f"{circuit.name} expects inputs shaped [batch, {circuit.n_inputs}], got {list(torch.as_tensor(inputs).shape)}"
            )
        bad = ~torch.isfinite(x)
        if bad.any():
            b, j = bad.nonzero()[0].tolist()
            raise InputError(f"input x_{j} at batch index {b} is {x[b, j].item()}; inputs must be finite")
        batch = x.shape[0]
    elif inputs is not None and torch.as_tensor(inputs).numel() > 0:
        shape = list(torch.as_tensor(inputs).shape)
        if len(shape) == 2 and shape[1] == 0:
            batch = shape[0]
        else:
            raise InputError(f"{circuit.name} takes no inputs, got a tensor shaped {shape}")

    w = None
    if circuit.n_weights > 0:
        if weights is None:
            raise InputError(f"{circuit.name} has {circuit.n_weights} weight(s); got no weights")
        w = torch.as_tensor(weights, device=device)
        if w.is_complex():
            raise InputError("circuit weights must be real numbers, got a complex tensor")
        w = w.to(rdtype)
        if w.dim() != 1 or w.shape[0] != circuit.n_weights:
            raise InputError(f"{circuit.name} expects weights shaped [{circuit.n_weights}], got {list(w.shape)}")
        if not torch.isfinite(w).all():
            raise InputError("weights contain NaN or infinite values")
    elif weights is not None and torch.as_tensor(weights).numel() > 0:
        raise InputError(f"{circuit.name} has no weights, got {torch.as_tensor(weights).numel()}")
    return x, w, batch, rdtype


def gate_matrix_of(op: Gate, x, w, cdtype, device) -> torch.Tensor:
    """Matrix ``[2**k, 2**k]`` or ``[B, 2**k, 2**k]`` of a gate for the given inputs and weights."""
    if op.name == "unitary":
        return op.matrix.to(device=device, dtype=cdtype)
    spec = lookup(op.name)
    if spec.num_params == 0:
        return spec.matrix((), dtype=cdtype, device=device)
    params = [p.evaluate(x, w) for p in op.params]
    rd = real_dtype_for(cdtype)
    params = [p.to(device=device, dtype=rd) if p.device != device or p.dtype != rd else p for p in params]
    return spec.matrix(params, dtype=cdtype, device=device)


def channel_kraus_of(op: Channel, cdtype, device) -> torch.Tensor:
    """Kraus operators ``[m, 2**k, 2**k]`` of a channel operation (named or user-given)."""
    if op.name == "kraus":
        return op.kraus.to(device=device, dtype=cdtype)
    return _channels.channel_kraus(op.name, op.p, dtype=cdtype, device=device)


def amplitude_vector(op: AmplitudeEncoding, x: torch.Tensor, cdtype) -> torch.Tensor:
    """Normalised, zero-padded amplitudes ``[B, 2**k]`` for an amplitude encoding."""
    a = x[:, list(op.inputs)]
    norms = a.norm(dim=1)
    zero = norms == 0
    if zero.any():
        b = int(zero.nonzero()[0])
        raise InputError(
            f"amplitude encoding got a zero vector at batch index {b}; add a bias to the inputs or use angle encoding"
        )
    if op.normalize:
        a = a / norms.unsqueeze(1)
    elif ((norms - 1).abs() > 1e-6).any():
        b = int(((norms - 1).abs() > 1e-6).nonzero()[0])
        raise InputError(f"amplitude encoding with normalize=False got norm {norms[b].item():.6g} at batch index {b}")
    pad = 2 ** len(op.wires) - a.shape[1]
    if pad:
        a = torch.nn.functional.pad(a, (0, pad))
    return a.to(cdtype)


def embed_fresh(state: torch.Tensor, amp: torch.Tensor, wires, n: int) -> torch.Tensor:
    """Put amplitudes ``amp [B, 2**k]`` on ``wires`` of ``state [..., B, 2**n]`` where those wires are in |0>."""
    k = len(wires)
    lead = state.shape[:-1]
    nl = len(lead)
    psi = state.reshape(*lead, *([2] * n))
    src = [nl + w for w in wires]
    dst = list(range(nl + n - k, nl + n))
    psi = psi.movedim(src, dst)
    moved = psi.shape
    rest = psi.reshape(*lead, 2 ** (n - k), 2**k)[..., :1]  # component with the wires in |0>
    out = rest * amp.unsqueeze(-2)
    return out.reshape(moved).movedim(dst, src).reshape(*lead, 2**n)


# ---------------------------------------------------------------------------
# analysis


@dataclass
class Analysis:
    """What the planner learned about a circuit."""

    terminal: frozenset[int]  # indices of measurements that need no branching
    has_channels: bool
    n_branching: int  # measurements and resets that branch the state
    has_conditions: bool
    has_amplitude: bool

    @property
    def pure_unitary(self) -> bool:
        return not self.has_channels and self.n_branching == 0 and not self.has_conditions


def analyse(circuit: Circuit) -> Analysis:
    """Find terminal measurements and count what forces branching or density matrices."""
    terminal: set[int] = set()
    # an X or Y observable reads a measured wire after the collapse: the measurement
    # must really happen (it dephases the wire), so it is not terminal
    touched_after: set[int] = {
        w for o in circuit.observables for p, w in zip(o.paulis, o.wires) if p in "XY"
    }
    read_after: set[int] = set()
    written_after: set[int] = set()
    for i in range(len(circuit.ops) - 1, -1, -1):
        op = circuit.ops[i]
        if isinstance(op, Measure):
            if (not op.reset and op.wire not in touched_after and op.clbit not in read_after
                    and op.clbit not in written_after):
                terminal.add(i)
            written_after.add(op.clbit)
        cond = getattr(op, "condition", None)
        if cond is not None:
            read_after.update(cond.clbits)
        touched_after.update(op.wires)
    n_branching = sum(
        1 for i, op in enumerate(circuit.ops) if (isinstance(op, Measure) and i not in terminal) or isinstance(op, Reset)
    )
    return Analysis(
        terminal=frozenset(terminal),
        has_channels=any(isinstance(op, Channel) for op in circuit.ops),
        n_branching=n_branching,
        has_conditions=any(getattr(op, "condition", None) is not None for op in circuit.ops),
        has_amplitude=any(isinstance(op, AmplitudeEncoding) for op in circuit.ops),
    )


def choose_method(circuit: Circuit, info: Analysis) -> str:
    """The cheapest exact representation for this circuit."""
    if info.has_channels:
        return "density"
    n = circuit.n_qubits
    # Branching statevectors cost 2^m * 2^n amplitudes; a density matrix with
    # merged branches costs at most 2^min(m, n_clbits) * 4^n.
    sv_cost = 2 ** (info.n_branching + n)
    dm_cost = 2 ** (min(info.n_branching, circuit.n_clbits) + 2 * n)
    return "statevector" if sv_cost <= dm_cost else "density"


# ---------------------------------------------------------------------------
# branch simulator (statevector or density matrix)


class _Branches:
    """A classical-quantum state: ``data [K, B, ...]`` tagged with ``bits [K, n_clbits]``.

    Statevector branches are unnormalised (their squared norm is the branch
    probability); density branches are unnormalised density matrices.
    """

    def __init__(self, data: torch.Tensor, bits: torch.Tensor, density: bool, n: int):
        self.data, self.bits, self.density, self.n = data, bits, density, n

    # -- unitary and channel updates -------------------------------------
    def _where(self, cond, new: torch.Tensor) -> torch.Tensor:
        if cond is None:
            return new
        mask = cond.holds(self.bits)
        shape = [-1] + [1] * (new.dim() - 1)
        return torch.where(mask.view(shape), new, self.data)

    def gate(self, matrix: torch.Tensor, wires, cond) -> None:
        if self.density:
            new = K.apply_matrix_dm(self.data, matrix, wires, self.n)
        else:
            new = K.apply_matrix(self.data, matrix, wires, self.n)
        self.data = self._where(cond, new)

    def channel(self, kraus: torch.Tensor, wires, cond) -> None:
        if not self.density:
            raise CircuitError("internal: noise channel reached the statevector simulator")
        self.data = self._where(cond, K.apply_kraus_dm(self.data, kraus, wires, self.n))

    def embed(self, amp: torch.Tensor, wires) -> None:
        if self.density:
            n = self.n
            vec = self.data.reshape(*self.data.shape[:-2], 4**n)
            amp2 = (amp.unsqueeze(-1) * amp.conj().unsqueeze(-2)).reshape(amp.shape[0], -1)
            vec = embed_fresh(vec, amp2, list(wires) + [n + w for w in wires], 2 * n)
            self.data = vec.reshape(*vec.shape[:-1], 2**n, 2**n)
        else:
            self.data = embed_fresh(self.data, amp, wires, self.n)

    # -- projections -------------------------------------------------------
    def _project(self, wire: int, outcome: int, flip: bool) -> torch.Tensor:
        """Branch data projected on ``wire == outcome`` (then X on the wire if ``flip``)."""
        n = self.n
        p = torch.zeros(2, 2, dtype=self.data.dtype, device=self.data.device)
        if flip:
            p[0, outcome] = 1  # |0><outcome|
        else:
            p[outcome, outcome] = 1
        if self.density:
            return K.apply_matrix_dm(self.data, p, [wire], n)
        return K.apply_matrix(self.data, p, [wire], n)

    def measure(self, wire: int, clbit: int, reset: bool) -> None:
        zero = self._project(wire, 0, False)
        one = self._project(wire, 1, reset)
        bits0 = self.bits.clone()
        bits1 = self.bits.clone()
        bits0[:, clbit] = 0
        bits1[:, clbit] = 1
        self.data = torch.cat([zero, one])
        self.bits = torch.cat([bits0, bits1])
        if self.density:
            self._merge()

    def reset(self, wire: int, cond) -> None:
        zero = self._project(wire, 0, False)
        one = self._project(wire, 1, True)
        if self.density:
            self.data = self._where(cond, zero + one)
            return
        keep = self._where(cond, zero)
        moved = torch.where(cond.holds(self.bits).view([-1] + [1] * (one.dim() - 1)), one, torch.zeros_like(one)) \
            if cond is not None else one
        self.data = torch.cat([keep, moved])
        self.bits = torch.cat([self.bits, self.bits])

    def _merge(self) -> None:
        """Sum density branches that carry the same classical bits."""
        uniq, inverse = torch.unique(self.bits, dim=0, return_inverse=True)
        if uniq.shape[0] == self.bits.shape[0]:
            return
        out = torch.zeros(uniq.shape[0], *self.data.shape[1:], dtype=self.data.dtype, device=self.data.device)
        self.data = out.index_add(0, inverse, self.data)
        self.bits = uniq

    # -- read-out ------------------------------------------------------------
    def probs(self) -> torch.Tensor:
        """Basis probabilities per branch ``[K, B, 2**n]``."""
        return K.probabilities_dm(self.data) if self.density else K.probabilities(self.data)

    def expval(self, obs: Observable) -> torch.Tensor:
        if self.density:
            return K.expval_pauli_dm(self.data, obs.paulis, obs.wires, self.n).sum(0)
        return K.expval_pauli(self.data, obs.paulis, obs.wires, self.n).sum(0)

    def final_state(self) -> torch.Tensor:
        if self.density:
            return self.data.sum(0)
        if self.data.shape[0] == 1:
            return self.data[0]
        return K.to_density(self.data).sum(0)


def _clbit_distribution(circuit: Circuit, branches: _Branches, terminal_ops: list[Measure]) -> torch.Tensor:
    """``[B, 2**n_clbits]`` distribution over the classical register."""
    nc = circuit.n_clbits
    probs = branches.probs()  # [K, B, 2^n]
    kb, batch = probs.shape[0], probs.shape[1]
    term_clbits = [m.clbit for m in terminal_ops]
    base_bits = branches.bits.clone()
    if term_clbits:
        base_bits[:, term_clbits] = 0
        marg = K.marginal(probs, [m.wire for m in terminal_ops], circuit.n_qubits)  # [K, B, 2^t]
        t = len(term_clbits)
        # outcome index j of the marginal has terminal_ops[0] as its most significant bit
        offsets = torch.zeros(2**t, dtype=torch.long, device=probs.device)
        for pos, c in enumerate(term_clbits):
            offsets |= ((torch.arange(2**t, device=probs.device) >> (t - 1 - pos)) & 1) << c
    else:
        marg = probs.sum(-1, keepdim=True)
        offsets = torch.zeros(1, dtype=torch.long, device=probs.device)
    weights_c = (1 << torch.arange(nc, device=probs.device)).long()
    base = (base_bits.long().to(probs.device) * weights_c).sum(1)  # [K]
    index = (base[:, None] | offsets[None, :])  # [K, 2^t]
    out = torch.zeros(batch, 2**nc, dtype=probs.dtype, device=probs.device)
    flat_idx = index.unsqueeze(1).expand(kb, batch, -1).permute(1, 0, 2).reshape(batch, -1)
    return out.scatter_add(1, flat_idx, marg.permute(1, 0, 2).reshape(batch, -1))


#: widest run of unconditional, data-free gates that the branch simulator multiplies out into one
#: matrix (``2**k x 2**k``) before applying it (:func:`_fused_runs`); 0 turns the fusion off
FUSE_MAX_WIRES = 5


def _fused_runs(circuit: Circuit) -> list:
    """``circuit.ops`` with maximal runs (two or more) of consecutive unconditional gates that read
    no inputs and together touch at most :data:`FUSE_MAX_WIRES` wires replaced by
    ``("fused", (wires, gates))``; other entries are ``(index, op)``. Cached on the circuit.

    A mid-circuit-measurement circuit multiplies its branches with every measurement, and each
    gate is then a pass over all of them; a run of ``m`` gates multiplied out once per call costs
    one pass instead of ``m``.
    """
    key = ("fused_runs", circuit._version, FUSE_MAX_WIRES)
    cache = circuit.__dict__.setdefault("_fused_runs_cache", {})
    if key in cache:
        return cache[key]
    items, run, wires = [], [], set()

    def flush():
        if len(run) >= 2:
            items.append(("fused", (tuple(sorted(wires)), [op for _, op in run])))
        else:
            items.extend(run)
        run.clear()
        wires.clear()

    for i, op in enumerate(circuit.ops):
        fusable = (isinstance(op, Gate) and op.condition is None and not op.uses_input
                   and FUSE_MAX_WIRES > 0 and len(op.wires) <= FUSE_MAX_WIRES)
        if fusable and len(wires | set(op.wires)) > FUSE_MAX_WIRES:
            flush()
        if fusable:
            run.append((i, op))
            wires.update(op.wires)
        else:
            flush()
            items.append((i, op))
    flush()
    cache.clear()
    cache[key] = items
    return items


def _run_matrix(gates: list, wires: tuple, w, cdtype, device) -> torch.Tensor:
    """The ``2**k x 2**k`` matrix of ``gates`` (applied in order) on ``wires`` (``wires[0]`` most significant)."""
    k = len(wires)
    local = {wire: j for j, wire in enumerate(wires)}
    rows = torch.eye(2**k, dtype=cdtype, device=device)  # row j: the image of basis state j
    for g in gates:
        rows = K.apply_matrix(rows, gate_matrix_of(g, None, w, cdtype, device), [local[q] for q in g.wires], k)
    return rows.T


def _simulate_branches(circuit, x, w, batch, cdtype, device, density: bool, use_terminal: bool,
                       info: Analysis, want_state: bool):
    n = circuit.n_qubits
    if density:
        data = torch.zeros(1, batch, 2**n, 2**n, dtype=cdtype, device=device)
        data[..., 0, 0] = 1
    else:
        data = K.zero_state(n, (1, batch), dtype=cdtype, device=device)
    bits = torch.zeros(1, max(circuit.n_clbits, 0), dtype=torch.long, device=device)
    br = _Branches(data, bits, density, n)
    terminal_ops = []
    for i, op in _fused_runs(circuit):
        if i == "fused":
            wires, gates = op
            br.gate(_run_matrix(gates, wires, w, cdtype, device), wires, None)
        elif isinstance(op, Gate):
            br.gate(gate_matrix_of(op, x, w, cdtype, device), op.wires, op.condition)
        elif isinstance(op, AmplitudeEncoding):
            br.embed(amplitude_vector(op, x, cdtype), op.wires)
        elif isinstance(op, Measure):
            if use_terminal and i in info.terminal:
                terminal_ops.append(op)
            else:
                br.measure(op.wire, op.clbit, op.reset)
        elif isinstance(op, Reset):
            br.reset(op.wire, op.condition)
        elif isinstance(op, Channel):
            br.channel(channel_kraus_of(op, cdtype, device), op.wires, op.condition)
        else:
            raise CircuitError(f"cannot simulate operation {op!r}")
    expv = torch.stack([br.expval(o) for o in circuit.observables], dim=-1) if circuit.observables else None
    clp = _clbit_distribution(circuit, br, terminal_ops) if circuit.n_clbits else None
    state = br.final_state() if want_state else None
    return expv, clp, br, state


# ---------------------------------------------------------------------------
# shots


_BASIS_CHANGE = {
    # maps the eigenbasis of X / Y onto Z so that <P> = sum_z p(z) * (+-1)
    "X": lambda cd, dev: torch.tensor([[1, 1], [1, -1]], dtype=cd, device=dev) / 2**0.5,
    "Y": lambda cd, dev: torch.tensor([[1, -1j], [1, 1j]], dtype=cd, device=dev) / 2**0.5,
}


def _sample_expvals(circuit, br: _Branches, exact: torch.Tensor, shots: int, gen) -> torch.Tensor:
    """Estimate each observable from ``shots`` samples of the basis it is diagonal in."""
    n = circuit.n_qubits
    groups: dict[tuple, list[int]] = {}
    for j, obs in enumerate(circuit.observables):
        # a measurement basis per wire; Z-only observables share the computational basis
        key = tuple(sorted((w, p) for p, w in zip(obs.paulis, obs.wires) if p in "XY"))
        groups.setdefault(key, []).append(j)
    est = torch.empty_like(exact)
    for key, members in groups.items():
        data = br.data
        for w, p in key:
            u = _BASIS_CHANGE[p](data.dtype, data.device)
            data = K.apply_matrix_dm(data, u, [w], n) if br.density else K.apply_matrix(data, u, [w], n)
        probs = (K.probabilities_dm(data) if br.density else K.probabilities(data)).sum(0)  # [B, 2^n]
        idx = _multinomial(probs, shots, gen)  # [B, shots]
        for j in members:
            obs = circuit.observables[j]
            zw = [w for p, w in zip(obs.paulis, obs.wires) if p != "I"]
            signs = K.z_signs(n, zw, dtype=exact.dtype, device=exact.device)
            est[:, j] = signs[idx].mean(dim=1)
    return exact + (est - exact).detach()


def _multinomial(probs: torch.Tensor, shots: int, gen) -> torch.Tensor:
    p = probs.detach().clamp_min(0)
    p = p / p.sum(-1, keepdim=True)
    if gen is not None and gen.device != p.device:
        raise InputError(f"the torch.Generator is on {gen.device} but the simulation runs on {p.device}")
    return torch.multinomial(p, shots, replacement=True, generator=gen)


def _frequencies(idx: torch.Tensor, size: int, dtype) -> torch.Tensor:
    counts = torch.zeros(idx.shape[0], size, dtype=dtype, device=idx.device)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=dtype))
    return counts / idx.shape[1]


# ---------------------------------------------------------------------------
# entry points


def run(
    circuit: Circuit,
    inputs: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    *,
    shots: int | None = None,
    generator: torch.Generator | None = None,
    method: str = "auto",
    dtype: torch.dtype | None = None,
    device=None,
    return_state: bool = False,
) -> Result:
    """Simulate ``circuit`` on a batch.

    Args:
        circuit: the circuit.
        inputs: ``[B, circuit.n_inputs]`` real data (``[n_inputs]`` is taken as B=1);
            None for a circuit without inputs (then B = 1).
        weights: ``[circuit.n_weights]`` real weights.
        shots: None for exact results, else the number of samples per batch element.
        generator: ``torch.Generator`` used for every random draw (shots, trajectories).
        method: ``"auto"`` (planner), ``"statevector"``, ``"density"``,
            ``"reference"`` (plain gate-by-gate path) or ``"trajectory"`` (per-shot
            sampling of measurements and noise; needs ``shots``).
        dtype: real (float32/float64) or complex dtype of the simulation; by
            default from the inputs/weights (float32 -> complex64), else complex128.
        device: torch device; by default that of inputs/weights.
        return_state: also return the final state.

    Returns:
        :class:`Result` with ``expvals [B, n_obs]`` and ``clbit_probs [B, 2**n_clbits]``.
    """
    if method not in METHODS:
        raise CircuitError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise InputError(f"shots must be a positive integer or None, got {shots!r}")
    if method == "trajectory" and shots is None:
        raise InputError("method='trajectory' samples shot by shot; give shots=N")
    x, w, batch, rdtype = check_inputs(circuit, inputs, weights, dtype=dtype, device=device)
    cdtype = complex_dtype_for(rdtype)
    device = x.device if x is not None else (w.device if w is not None else (device or torch.device("cpu")))
    info = analyse(circuit)

    if method == "trajectory":
        from .trajectory import run_trajectories

        return run_trajectories(circuit, x, w, batch, cdtype, device, shots, generator, return_state)

    # terminal measurements are read off the final state without collapsing it; a caller who
    # asks for the final state gets the measured (dephased) one, as on the reference path
    shortcut = not (return_state and info.terminal)
    if method == "auto" and shots is None and not return_state and info.has_channels:
        from .heisenberg_mixed import NoisyBound, prefers_heisenberg, split_noisy

        split = split_noisy(circuit)
        if split is not None and prefers_heisenberg(circuit, batch):
            expv = NoisyBound(circuit, split, w, cdtype, device).expvals(x, batch)
            return Result(expv, None, None, None, "heisenberg")
    if method == "auto" and shortcut and info.pure_unitary and circuit.n_clbits == len(info.terminal):
        from .plan import compile_program

        prog = compile_program(circuit)
        state = prog.bind(w, dtype=cdtype, device=device).state(x, batch)
        br = _Branches(state.unsqueeze(0), torch.zeros(1, circuit.n_clbits, dtype=torch.long, device=device),
                       False, circuit.n_qubits)
        expv = torch.stack([br.expval(o) for o in circuit.observables], -1) if circuit.observables else None
        terminal_ops = [op for op in circuit.ops if isinstance(op, Measure)]
        clp = _clbit_distribution(circuit, br, terminal_ops) if circuit.n_clbits else None
        used, final = "statevector", (state if return_state else None)
    else:
        if method in ("auto", "reference"):
            used = choose_method(circuit, info)
        else:
            used = method
        if used == "statevector" and info.has_channels:
            raise CircuitError("this circuit has noise channels; simulate it with method='density' or 'auto'")
        expv, clp, br, final = _simulate_branches(
            circuit, x, w, batch, cdtype, device, used == "density", method != "reference" and shortcut, info,
            return_state
        )
        if method == "reference":
            used = "reference-" + used

    probs = ()
    if circuit.prob_wires:
        full = br.probs().sum(0)  # [B, 2^n], summed over measurement branches
        probs = tuple(K.marginal(full, list(ws), circuit.n_qubits) for ws in circuit.prob_wires)
    samples = None
    if shots is not None:
        probs = tuple(_frequencies(_multinomial(p, shots, generator), p.shape[-1], p.dtype) for p in probs)
        if expv is not None:
            expv = _sample_expvals(circuit, br, expv, shots, generator)
        if clp is not None:
            samples = _multinomial(clp, shots, generator)
            clp = _frequencies(samples, clp.shape[-1], clp.dtype)
    return Result(expv, clp, samples, final, used, probs)


def expval(circuit: Circuit, inputs=None, weights=None, **kwargs) -> torch.Tensor:
    """``run(...).expvals``: ``[B, n_observables]`` expectation values."""
    res = run(circuit, inputs, weights, **kwargs)
    if res.expvals is None:
        raise CircuitError(f"{circuit.name} has no observables; add some with circuit.expval(...)")
    return res.expvals
