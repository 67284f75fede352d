"""Shot-by-shot (quantum trajectory) simulation.

Every shot of every batch element is its own normalised statevector. A
measurement samples its outcome with the Born probability and collapses the
state, a reset measures and flips back to ``|0>``, a noise channel applies
one Kraus operator drawn with probability ``||K_k psi||^2``, and a classically
conditioned operation acts on the shots whose own bits satisfy the condition --
what a real device does, one shot at a time. Memory is ``B * shots * 2^n``
amplitudes, never a density matrix.

Results are sample estimates without gradients (use the exact methods with
``shots=`` for differentiable shot estimates).
"""

from __future__ import annotations

import torch

from ..errors import InputError
from ..sim import kernels as K
from .execute import (Result, _BASIS_CHANGE, _frequencies, amplitude_vector, channel_kraus_of, embed_fresh,
                      gate_matrix_of)
from .ops import AmplitudeEncoding, Channel, Gate, Measure, Reset

__all__ = ["run_trajectories"]


def _uniform(n: int, gen, device, dtype) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device, dtype=dtype)


def _wire_prob_one(state: torch.Tensor, wire: int, n: int) -> torch.Tensor:
    return K.marginal(K.probabilities(state), [wire], n)[..., 1]


@torch.no_grad()
def run_trajectories(circuit, x, w, batch, cdtype, device, shots: int, gen, return_state: bool) -> Result:
    """Simulate ``shots`` trajectories per batch element; see the module docstring."""
    if gen is not None and gen.device != torch.device(device):
        raise InputError(f"the torch.Generator is on {gen.device} but the simulation runs on {device}")
    n = circuit.n_qubits
    total = batch * shots
    rd = torch.float64 if cdtype == torch.complex128 else torch.float32
    state = K.zero_state(n, (total,), dtype=cdtype, device=device)
    bits = torch.zeros(total, circuit.n_clbits, dtype=torch.long, device=device)

    def per_shot(t: torch.Tensor) -> torch.Tensor:
        # batched quantities [B, ...] -> one copy per shot [B*shots, ...]
        return t.repeat_interleave(shots, dim=0) if t.dim() > 2 or (t.dim() == 2 and t.shape[0] == batch) else t

    def mask_of(cond) -> torch.Tensor | None:
        return None if cond is None else cond.holds(bits)

    def where(mask, new, old):
        return new if mask is None else torch.where(mask[:, None], new, old)

    def collapse(state, wire, flip_to_zero):
        p1 = _wire_prob_one(state, wire, n)
        outcome = (_uniform(total, gen, device, rd) < p1).long()
        proj = torch.zeros(total, 2, 2, dtype=cdtype, device=device)
        proj[outcome == 0, 0, 0] = 1
        proj[outcome == 1, 0 if flip_to_zero else 1, 1] = 1
        new = K.apply_matrix(state, proj, [wire], n)
        norm = torch.where(outcome == 1, p1, 1 - p1).clamp_min(1e-30).sqrt()
        return new / norm[:, None].to(cdtype), outcome

    for op in circuit.ops:
        if isinstance(op, Gate):
            m = gate_matrix_of(op, x, w, cdtype, device)
            state = where(mask_of(op.condition), K.apply_matrix(state, per_shot(m) if m.dim() == 3 else m, op.wires, n), state)
        elif isinstance(op, AmplitudeEncoding):
            state = embed_fresh(state, per_shot(amplitude_vector(op, x, cdtype)), op.wires, n)
        elif isinstance(op, Measure):
            state, outcome = collapse(state, op.wire, op.reset)
            bits[:, op.clbit] = outcome
        elif isinstance(op, Reset):
            new, _ = collapse(state, op.wire, True)
            state = where(mask_of(op.condition), new, state)
        elif isinstance(op, Channel):
            kraus = channel_kraus_of(op, cdtype, device)
            branches = K.apply_matrix(state.unsqueeze(0), kraus.unsqueeze(1), op.wires, n)  # [m, total, 2^n]
            probs = K.probabilities(branches).sum(-1).T  # [total, m]
            pick = torch.multinomial(probs / probs.sum(1, keepdim=True), 1, generator=gen).squeeze(1)
            chosen = branches[pick, torch.arange(total, device=device)]
            chosen = chosen / probs[torch.arange(total, device=device), pick].clamp_min(1e-30).sqrt()[:, None].to(cdtype)
            state = where(mask_of(op.condition), chosen, state)

    expv = None
    if circuit.observables:
        expv = torch.empty(batch, len(circuit.observables), dtype=rd, device=device)
        for j, obs in enumerate(circuit.observables):
            data = state
            for p, wire in zip(obs.paulis, obs.wires):
                if p in "XY":
                    data = K.apply_matrix(data, _BASIS_CHANGE[p](cdtype, device), [wire], n)
            idx = torch.multinomial(K.probabilities(data), 1, generator=gen).squeeze(1)
            signs = K.z_signs(n, [wr for p, wr in zip(obs.paulis, obs.wires) if p != "I"], dtype=rd, device=device)
            expv[:, j] = signs[idx].view(batch, shots).mean(1)
    clp = samples = None
    if circuit.n_clbits:
        weights_c = 1 << torch.arange(circuit.n_clbits, device=device)
        samples = (bits * weights_c).sum(1).view(batch, shots)
        clp = _frequencies(samples, 2**circuit.n_clbits, rd)
    probs = ()
    if circuit.prob_wires:
        idx = torch.multinomial(K.probabilities(state), 1, generator=gen).squeeze(1)  # one final sample per shot
        for ws in circuit.prob_wires:
            sub = torch.zeros(total, dtype=torch.long, device=device)
            for wire in ws:
                sub = sub * 2 + ((idx >> (n - 1 - wire)) & 1)
            probs += (_frequencies(sub.view(batch, shots), 2 ** len(ws), rd),)
    final = None
    if return_state:
        final = K.to_density(state).view(batch, shots, 2**n, 2**n).mean(1)
    return Result(expv, clp, samples, final, "trajectory", probs)
