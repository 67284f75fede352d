"""Process-wide memory-allocator settings for long runs (Linux with glibc only).

PyTorch's CPU tensors come straight from the C library's ``malloc``. With glibc's defaults, a
training step that frees many megabyte-sized tensors (a QLSTM at 8 qubits and batch 128 keeps
about 1 MB per saved state) hands that memory back to the operating system, and the next step
takes it again page by page: measured 2026-12-01, about a quarter of such a step
(docs/benchmarks.md). :func:`tune_malloc` keeps freed memory for reuse instead, the effect
PyTorch's performance guide gets from jemalloc or tcmalloc. The ``qlstm`` command line calls it
once at start; a library user may call it, or set ``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=268435456`` in the environment. The price: the process does not return
up to ``trim_threshold`` bytes of freed memory to the system until it exits.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done: bool | None = None


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Serve allocations below ``mmap_threshold`` bytes from the heap and keep up to
    ``trim_threshold`` bytes of freed heap memory; returns whether the settings took effect
    (False on anything but glibc). Both must be set together: fixing only the trim threshold
    turns off glibc's adaptive mmap threshold and makes every large tensor a fresh mapping
    (measured twice as slow). Idempotent."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    return _done
