"""`QuantumLayer`: a :class:`torch.nn.Module` that owns a circuit's weights and runs it."""

from __future__ import annotations

import torch
from torch import nn

from ..circuit import Circuit, compile_program, run
from ..circuit.execute import analyse, check_inputs
from ..circuit.heisenberg_mixed import NoisyBound, split_noisy
from ..circuit.noise import NoiseModel, insert_noise
from ..circuit.plan import BoundProgram
from ..circuit.templates import init_weights
from ..errors import CircuitError, InputError
from ..sim.gates import complex_dtype_for

__all__ = ["QuantumLayer"]


class QuantumLayer(nn.Module):
    r"""Run a circuit on a batch of inputs with trainable weights.

    Args:
        circuit: a :class:`~qlstm.circuit.Circuit` with observables.
        copies: if given, the layer holds ``copies`` independent weight sets for
            the same circuit structure (e.g. the four gate VQCs of a QLSTM cell)
            and evaluates them in one batched call.
        init: weight initialisation scheme (see :func:`~qlstm.circuit.templates.init_weights`).
        init_scale: scale for the ``normal`` / ``uniform`` schemes.
        noise: a :class:`~qlstm.circuit.noise.NoiseModel` (exact mixed-state simulation: observables
            pulled back through the noise where the circuit allows, else density matrices).
        shots: None for exact expectation values, else a finite number of shots
            (estimates with straight-through gradients).
        generator: ``torch.Generator`` for weight initialisation and shot sampling.
        dtype: real dtype of the weights (float32 -> complex64 simulation).

    Shape:
        - input: ``[B, circuit.n_inputs]``
        - output: ``[B, n_observables]``, or ``[copies, B, n_observables]``

    Example:
        >>> from qlstm.circuit.templates import chen_vqc
        >>> layer = QuantumLayer(chen_vqc(4, n_layers=2))
        >>> layer(torch.randn(16, 4)).shape
        torch.Size([16, 4])
    """

    #: pull noisy circuits' observables back (:mod:`~qlstm.circuit.heisenberg_mixed`) where that
    #: applies; False runs them as density matrices, one weight copy at a time (the reference)
    heisenberg = True

    def __init__(
        self,
        circuit: Circuit,
        *,
        copies: int | None = None,
        init: str = "chen",
        init_scale: float | None = None,
        noise: NoiseModel | None = None,
        shots: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device=None,
    ):
        super().__init__()
        if not circuit.observables:
            raise CircuitError(f"{circuit.name} has no observables; add some with circuit.expval(...)")
        if copies is not None and (not isinstance(copies, int) or copies < 1):
            raise CircuitError(f"copies must be a positive integer, got {copies!r}")
        if shots is not None and (not isinstance(shots, int) or shots < 1):
            raise InputError(f"shots must be a positive integer or None, got {shots!r}")
        noise = NoiseModel.coerce(noise)
        self.circuit = insert_noise(circuit, noise)
        self.copies, self.noise, self.shots, self.generator = copies, noise, shots, generator
        shape = (circuit.n_weights,) if copies is None else (copies, circuit.n_weights)
        self.weight = nn.Parameter(init_weights(shape, init, scale=init_scale, generator=generator,
                                                dtype=dtype, device=device))
        info = analyse(self.circuit)
        self._pure = info.pure_unitary and self.circuit.n_clbits == len(info.terminal)
        self._noisy_split = None if self._pure else split_noisy(self.circuit)

    @property
    def bindable(self) -> bool:
        """Whether :meth:`bind` applies: exact expectation values of a pure circuit, or of a
        noisy one of the form :func:`~qlstm.circuit.heisenberg_mixed.split_noisy` accepts."""
        return self.shots is None and (self._pure or (self.heisenberg and self._noisy_split is not None))

    @property
    def n_outputs(self) -> int:
        return len(self.circuit.observables)

    def bind(self) -> BoundProgram | NoisyBound:
        """Bind the current weights once; reuse the result across time steps.

        Pure circuits get a :class:`~qlstm.circuit.plan.BoundProgram` (fused matrices
        or a Pauli transfer table). Noisy circuits whose data enters before the noise
        (or through one-qubit operations only) get a
        :class:`~qlstm.circuit.heisenberg_mixed.NoisyBound`: every observable pulled
        back through the noisy, data-free rest of the circuit once. Call
        ``bound.expvals(x)`` on each input batch. Circuits with mid-circuit
        measurements run through :meth:`forward`.
        """
        cdtype = complex_dtype_for(self.weight.dtype)
        if not self._pure:
            if self._noisy_split is None or not self.heisenberg:
                raise CircuitError("bind() needs a pure circuit or a noisy one whose data enters before the noise; "
                                   "this one runs through forward()")
            return NoisyBound(self.circuit, self._noisy_split, self.weight, cdtype, self.weight.device)
        prog = compile_program(self.circuit, light_cone=True)
        return prog.bind(self.weight, dtype=cdtype, device=self.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.circuit.n_inputs:
            raise InputError(
                f"QuantumLayer({self.circuit.name}) expects input [batch, {self.circuit.n_inputs}], got {list(x.shape)}"
            )
        x = x.to(self.weight.dtype)
        if self.bindable:
            check_inputs(self.circuit, x, self.weight[0] if self.copies else self.weight)
            return self.bind().expvals(x)
        ws = [self.weight] if self.copies is None else list(self.weight)
        method = "density" if not self.heisenberg and self._noisy_split is not None else "auto"
        outs = [run(self.circuit, x, w, shots=self.shots, generator=self.generator, method=method).expvals
                for w in ws]
        return outs[0] if self.copies is None else torch.stack(outs)

    def extra_repr(self) -> str:
        extra = f", copies={self.copies}" if self.copies else ""
        extra += f", noise={self.noise}" if self.noise else ""
        extra += f", shots={self.shots}" if self.shots else ""
        return f"{self.circuit.name}: qubits={self.circuit.n_qubits}, weights={self.circuit.n_weights}{extra}"
