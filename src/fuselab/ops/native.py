"""The native kernels of :mod:`fuselab.ops`: ``csrc/*.cpp`` built once per machine with the
system C++ compiler into one shared library and called through :mod:`ctypes`.

The sources use no torch headers, so a build takes seconds (about 8 s on 2 cores, mostly the
per-channel-count template instances; a torch C++ extension takes over a minute). The kernels use
OpenMP and bind to the libgomp that torch has already loaded, so they share torch's thread team
(a second thread pool would spin against it).

The build cache, ``$FUSELAB_CACHE`` (default ``~/.cache/fuselab``)/``kernels``:

* is created private to the user (mode 0700) and refused when another user owns it or others
  may write to it (a library loaded from there runs with your rights);
* keys every build by the sources, the compiler command and its ``--version``, the torch version
  and this CPU's instruction-set flags, so a cache shared between machines or upgrades never hands
  one a binary built for another;
* records each library's sha256 at build time and checks it before loading: a damaged file is
  rebuilt, not a permanent fallback;
* builds once across concurrent processes (a file lock; the others wait and load the result);
* removes builds unused for :data:`PRUNE_DAYS` days (left behind by upgrades).

No compiler, another platform, an unsafe cache, or ``FUSELAB_NATIVE=0``: :func:`library` warns
once and returns ``None``, and the callers use their PyTorch implementation (same results, slower).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

_CSRC = Path(__file__).parent / "csrc"
_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=c++17", "-ffp-contract=off", "-fopenmp"]
PRUNE_DAYS = 30
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


def private_dir(path: Path) -> Path:
    """``path``, created with mode 0700; ``OSError`` unless it is a directory of this user that
    no one else may write to."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"the kernel cache {path} is not a directory")
    if st.st_uid != os.getuid():
        raise OSError(f"the kernel cache {path} belongs to uid {st.st_uid}, not to you "
                      f"({os.getuid()}); set FUSELAB_CACHE to a directory of your own")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OSError(f"the kernel cache {path} is writable by others (mode "
                      f"{stat.S_IMODE(st.st_mode):o}); run chmod go-w on it or set FUSELAB_CACHE")
    return path


def build_key(cxx: str) -> str:
    """Hash of everything a build depends on: sources, compiler and its version, flags, torch
    version, CPU flags."""
    proc = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise OSError(f"{cxx} --version failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    parts = [p.read_bytes() for p in sorted(_CSRC.glob("*.[ch]*"))]
    parts += [s.encode() for s in (" ".join([cxx, *_FLAGS]), proc.stdout, torch.__version__,
                                   _cpu_signature())]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(lib: Path) -> Path:
    return lib.with_name(lib.name + ".sha256")


def _verified(lib: Path) -> bool:
    """Whether ``lib`` exists and still has the sha256 recorded when it was built."""
    try:
        return _record(lib).read_text().strip() == _sha256(lib)
    except OSError:
        return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock shared by every process using the cache (released on exit, even a crash)."""
    import fcntl  # POSIX only; the native kernels are built on Linux only

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _compile(cxx: str, out: Path) -> None:
    """Build into a private temporary directory beside ``out``, record the sha256, then rename:
    a reader never sees a partial library or a library without its record."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        part = Path(tmp) / out.name
        sources = [str(p) for p in sorted(_CSRC.glob("*.cpp"))]
        proc = subprocess.run([cxx, *_FLAGS, *sources, "-o", str(part)],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise OSError(f"{cxx} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        record = Path(tmp) / _record(out).name
        record.write_text(_sha256(part) + "\n")
        os.replace(part, out)
        os.replace(record, _record(out))


def _prune(directory: Path, keep: Path) -> None:
    """Remove other builds (and crashed builds' temporary folders) unused for PRUNE_DAYS days."""
    cutoff = time.time() - PRUNE_DAYS * 86400
    for lib in directory.glob("fuselab-ops-*.so"):
        if lib == keep:
            continue
        used = _record(lib) if _record(lib).exists() else lib
        if used.stat().st_mtime < cutoff:
            lib.unlink(missing_ok=True)
            _record(lib).unlink(missing_ok=True)
    for tmp in directory.glob("tmp*"):
        if tmp.is_dir() and tmp.stat().st_mtime < time.time() - 86400:
            shutil.rmtree(tmp, ignore_errors=True)


def _build() -> ctypes.CDLL:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not sys.platform.startswith("linux") or cxx is None:
        raise OSError("they need Linux and a C++ compiler (g++, c++ or $CXX)")
    directory = private_dir(cache_dir())
    out = directory / f"fuselab-ops-{build_key(cxx)}.so"
    with _file_lock(directory / ".lock"):
        if not _verified(out):  # missing, or damaged since it was built
            _compile(cxx, out)
        os.utime(_record(out))  # last use, for pruning
        _prune(directory, keep=out)
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
