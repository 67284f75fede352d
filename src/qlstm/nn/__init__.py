"""The torch face of qlstm: modules that own weights and run circuits."""

from .layer import QuantumLayer

__all__ = ["QuantumLayer"]
