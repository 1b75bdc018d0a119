"""The native kernels' build cache: private directory, owner and mode checks, sha256 recorded at
build time (a damaged library is rebuilt), compiler and torch versions in the key, one build
across concurrent processes, old builds pruned."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fuselab.ops import native

CXX = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or CXX is None,
                                reason="the native kernels need Linux and a C++ compiler")


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiler wrapper that logs every build (not ``--version``); one path for the module, so
    every test's cache has the same key and can start from the one :func:`built` library."""
    root = tmp_path_factory.mktemp("cxx")
    cxx = root / "cxx"
    cxx.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        [ "$1" = "--version" ] || echo build >> "$FUSELAB_CACHE/builds.log"
        exec {CXX} "$@"
    """))
    cxx.chmod(0o755)
    return cxx


@pytest.fixture(scope="module")
def built(wrapper: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real build (library + sha256 record) that tests copy instead of compiling again."""
    root = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUSELAB_CACHE", str(root))
        mp.setenv("CXX", str(wrapper))
        mp.setenv("FUSELAB_NATIVE", "1")
        native.reset()
        assert native.library() is not None
        native.reset()
    return root / "kernels"


@pytest.fixture
def cache(tmp_path: Path, wrapper: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache root for this test, the logging compiler wrapper as $CXX."""
    monkeypatch.setenv("FUSELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(wrapper))
    monkeypatch.setenv("FUSELAB_NATIVE", "1")
    (tmp_path / "cache").mkdir()
    native.reset()
    yield tmp_path / "cache" / "kernels"
    native.reset()


def _seed(cache: Path, built: Path) -> Path:
    """Copy the module's build into ``cache`` (a private directory, as fuselab makes it)."""
    cache.mkdir(mode=0o700)
    for f in built.glob("fuselab-ops-*"):
        shutil.copy2(f, cache / f.name)
    return _only_library(cache)


def _builds(cache: Path) -> int:
    log = cache.parent / "builds.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _only_library(cache: Path) -> Path:
    (lib,) = cache.glob("fuselab-ops-*.so")
    return lib


def test_fresh_cache_is_private_and_records_the_hash(cache: Path, built: Path) -> None:
    lib = _only_library(built)
    assert stat.S_IMODE(built.stat().st_mode) == 0o700
    assert (built / (lib.name + ".sha256")).read_text().strip() == native._sha256(lib)
    _seed(cache, built)
    assert native.library() is not None and _builds(cache) == 0  # reused, not rebuilt


@pytest.mark.parametrize("problem", ["group_writable", "other_owner"])
def test_unsafe_cache_is_refused(cache: Path, problem: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache.mkdir()
    if problem == "group_writable":
        cache.chmod(0o770)
        match = r"writable by others \(mode 770\)"
    else:
        monkeypatch.setattr(native.os, "getuid", lambda: os.stat(cache).st_uid + 1)
        match = r"belongs to uid \d+, not to you"
    with pytest.warns(UserWarning, match=match):
        assert native.library() is None
    assert _builds(cache) == 0


def test_key_covers_compiler_version_and_torch_version(tmp_path: Path, wrapper: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cxx = tmp_path / "cxx"
    shutil.copy2(wrapper, cxx)
    key = native.build_key(str(cxx))
    assert native.build_key(str(cxx)) == key
    text = cxx.read_text().splitlines()
    cxx.write_text("\n".join([text[0], '[ "$1" = "--version" ] && { echo "g++ 99.0"; exit 0; }',
                              *text[1:]]) + "\n")  # same path, another compiler version
    assert native.build_key(str(cxx)) != key
    cxx.write_text("\n".join(text) + "\n")
    assert native.build_key(str(cxx)) == key
    monkeypatch.setattr(torch, "__version__", "0.0.1+other")
    assert native.build_key(str(cxx)) != key


def test_damaged_library_is_rebuilt_once_across_concurrent_processes(cache: Path,
                                                                    built: Path) -> None:
    """Three processes start on a cache whose library was truncated: the damage is detected by
    the recorded sha256, exactly one of them rebuilds (the file lock), all load the kernels and
    none falls back to the slow path."""
    lib = _seed(cache, built)
    lib.write_bytes(lib.read_bytes()[:1000])
    code = ("import warnings; warnings.filterwarnings('error', 'fuselab.ops'); "
            "from fuselab.ops import native; "
            "assert native.library() is not None")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())
             for _ in range(3)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0, 0]
    assert _builds(cache) == 1 and native._verified(lib)
    assert list(cache.glob("fuselab-ops-*.so")) == [lib]


def test_builds_unused_for_a_month_are_pruned(cache: Path, built: Path) -> None:
    _seed(cache, built)
    old = time.time() - (native.PRUNE_DAYS + 1) * 86400
    for name, when in (("0000000000000000", old), ("1111111111111111", time.time())):
        lib = cache / f"fuselab-ops-{name}.so"
        lib.write_bytes(b"stale")
        (cache / (lib.name + ".sha256")).write_text("x\n")
        for p in (lib, cache / (lib.name + ".sha256")):
            os.utime(p, (when, when))
    assert native.library() is not None and _builds(cache) == 0
    names = sorted(p.name for p in cache.glob("fuselab-ops-*.so"))
    assert "fuselab-ops-0000000000000000.so" not in names
    assert "fuselab-ops-1111111111111111.so" in names and len(names) == 2
