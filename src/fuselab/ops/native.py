"""The native kernels of :mod:`fuselab.ops`: ``csrc/*.cpp`` built once per machine with the
system C++ compiler into one shared library and called through :mod:`ctypes`.

The sources use no torch headers, so a build takes seconds (about 8 s on 2 cores, mostly the
per-channel-count template instances; a torch C++ extension takes over a minute). The shared library is cached under ``$FUSELAB_CACHE`` (default
``~/.cache/fuselab``)/``kernels``, keyed by the source, the compiler command and this CPU's
instruction-set flags, so a cache directory shared between machines never hands one a binary
built for another. The kernels use OpenMP and bind to the libgomp that torch has
already loaded, so they share torch's thread team (a second thread pool would spin against it).

No compiler, another platform, or ``FUSELAB_NATIVE=0``: :func:`library` returns ``None`` and the
callers use their PyTorch implementation (same results, slower).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import torch

_CSRC = Path(__file__).parent / "csrc"
_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=c++17", "-ffp-contract=off", "-fopenmp"]
_lock = threading.Lock()
_state: dict[str, object] = {}


def _cpu_signature() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def cache_dir() -> Path:
    root = os.environ.get("FUSELAB_CACHE") or Path.home() / ".cache" / "fuselab"
    return Path(root) / "kernels"


def _build() -> ctypes.CDLL:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not sys.platform.startswith("linux") or cxx is None:
        raise OSError("they need Linux and a C++ compiler (g++, c++ or $CXX)")
    sources = sorted(_CSRC.glob("*.cpp"))
    text = [p.read_bytes() for p in sorted(_CSRC.glob("*.[ch]*"))]
    key = hashlib.sha256(b"\0".join([*text, " ".join([cxx, *_FLAGS]).encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    out = cache_dir() / f"fuselab-ops-{key}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        # Build beside the target and rename: concurrent processes never load a partial file.
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            part = Path(tmp) / out.name
            proc = subprocess.run([cxx, *_FLAGS, *map(str, sources), "-o", str(part)],
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise OSError(f"{cxx} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
            os.replace(part, out)
    return ctypes.CDLL(str(out))


def library() -> ctypes.CDLL | None:
    """The loaded kernels, building them on first use; ``None`` when they cannot be built."""
    with _lock:
        if "lib" not in _state:
            lib: ctypes.CDLL | None = None
            if os.environ.get("FUSELAB_NATIVE", "1") != "0":
                try:
                    lib = _build()
                except (OSError, subprocess.SubprocessError) as e:
                    warnings.warn(f"fuselab.ops: native kernels unavailable ({e}); using the "
                                  "PyTorch implementation (same results, slower)", stacklevel=3)
            _state["lib"] = lib
        return _state["lib"]  # type: ignore[return-value]


def reset() -> None:
    """Forget the loaded library (tests; a changed ``FUSELAB_NATIVE``)."""
    with _lock:
        _state.pop("lib", None)


def threads(work: int) -> int:
    """OpenMP team size for a call touching ``work`` elements: torch's intra-op thread count,
    or 1 for small calls, where waking the team costs more than it saves."""
    return torch.get_num_threads() if work >= 1 << 16 else 1
