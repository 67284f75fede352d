"""Native CPU kernels, compiled on first use with the system C++ compiler and loaded with ctypes.

Why: at 4 qubits a faithful QLSTM training step is a few hundred small tensor operations, and
their dispatch (Python, autograd, and even ``torch.compile``'s wrappers) costs far more than the
arithmetic. :mod:`qlstm.models._native_qlstm` runs the whole recurrence, with its VQCs'
transfer tables, as one call forward and one backward into ``qlstm_kernels.cpp``.

The source is plain C++ with a C ABI (no torch headers), compiled in about 10 s at ``-O2``. The
library is cached under ``$QLSTM_CACHE_DIR`` (default ``~/.cache/qlstm``), keyed by a hash of the
source, the compiler command and the CPU, and rebuilt when any of them changes. Where no
compiler works, or with ``QLSTM_NATIVE=0`` in the environment, :func:`library` returns None and
qlstm runs its torch paths (the same numbers; the tests compare the two).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

__all__ = ["library", "available"]

_SOURCE = Path(__file__).with_name("qlstm_kernels.cpp")
_FLAGS = ["-O2", "-march=native", "-fno-math-errno", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC"]
_lock = threading.Lock()
_state: dict = {}


def _cpu_key() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
        return "".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("QLSTM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "qlstm")
    return Path(root) / "native"


def _compiler() -> str | None:
    cxx = os.environ.get("CXX")
    if cxx:
        return cxx
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return name
    return None


def _flag_sets() -> list[list[str]]:
    """The extra flags to try, best first: OpenMP (the library then shares the OpenMP runtime torch
    has loaded, the same libgomp.so.1, so its parallel loops run on torch's threads, as many as
    torch.set_num_threads), on x86 with 512-bit vectors where the CPU has them; serial last."""
    wide = ["-mprefer-vector-width=512"] if platform.machine().lower() in ("x86_64", "amd64") else []
    return [[*wide, "-fopenmp"], ["-fopenmp"], []]


def _build() -> ctypes.CDLL:
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++)")
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + repr([cxx, _FLAGS, _flag_sets()]).encode() + _cpu_key().encode()).hexdigest()[:16]
    target = _cache_dir() / f"qlstm_kernels_{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            for flags in _flag_sets():
                proc = subprocess.run([cxx, *_FLAGS, *flags, "-o", tmp, str(_SOURCE)], capture_output=True, text=True)
                if proc.returncode == 0:
                    break
            if proc.returncode != 0:
                raise RuntimeError(f"{cxx} failed to compile {_SOURCE.name}:\n{proc.stderr[-2000:]}")
            os.replace(tmp, target)  # atomic: concurrent builders agree on the result
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(target))
    i64p, vpp = ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p  # the pointer table: any buffer of 64-bit addresses
    lib.qlstm_native_version.restype = ctypes.c_int64
    lib.qlstm_ws_size.argtypes, lib.qlstm_ws_size.restype = [i64p], ctypes.c_int64
    for stem in ("qlstm_step_forward", "qlstm_step_backward", "qlstm_layered_forward", "qlstm_layered_backward",
                 "qlstm_adapter_forward", "qlstm_adapter_backward", "qlstm_layered_adapter_forward",
                 "qlstm_layered_adapter_backward"):
        for name in (stem + "_f32", stem + "_f64"):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = [i64p, vpp], ctypes.c_int
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first call; None where it cannot be (a warning says why,
    once) or where ``QLSTM_NATIVE=0``."""
    if os.environ.get("QLSTM_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                try:
                    _state["lib"] = _build()
                except Exception as exc:  # no compiler, a failed build, an unloadable library
                    _state["lib"] = None
                    warnings.warn(f"qlstm: native kernels unavailable ({exc}); using the torch paths", stacklevel=2)
    return _state["lib"]


def available() -> bool:
    """Whether :func:`library` loads."""
    return library() is not None
