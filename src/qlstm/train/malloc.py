"""Process-wide memory-allocator settings for long runs (Linux with glibc only).

PyTorch's CPU tensors come straight from the C library's ``malloc``. With glibc's defaults, a
training step that frees many megabyte-sized tensors (a QLSTM at 8 qubits and batch 128 keeps
about 1 MB per saved state) hands that memory back to the operating system, and the next step
takes it again page by page: measured 2026-12-01, about a quarter of such a step
(docs/benchmarks.md). :func:`tune_malloc` keeps freed memory for reuse instead, the effect
PyTorch's performance guide gets from jemalloc or tcmalloc. The ``qlstm`` command line calls it
once at start (as a console command, not when ``main`` is called from Python); a library user
may call it, or set ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456`` in the
environment. The price: freed memory (at least up to ``trim_threshold`` bytes at the top of the
heap) stays with the process instead of going back to the system.
"""

from __future__ import annotations

import ctypes
import platform

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Serve allocations below ``mmap_threshold`` bytes from the heap and keep up to
    ``trim_threshold`` bytes of freed memory at the top of the heap; returns whether the settings
    took effect (False on anything but glibc, which is left alone). Both must be set together:
    fixing only the trim threshold turns off glibc's adaptive mmap threshold and makes every large
    tensor a fresh mapping (measured twice as slow). Each call applies its arguments (32 MiB is
    glibc's largest mmap threshold on 64-bit systems)."""
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise ValueError(f"{name} must be an int of bytes in [0, 2**31), got {value!r}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
