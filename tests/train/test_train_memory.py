"""The heap setting (``TrainConfig.retain_memory``, :mod:`fuselab.train.memory`): opt-in in a
user's process, on where fuselab owns the process, every mallopt attempted, and its effect on
page faults measured relative to the same process before the setting."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest
import torch
from train_helpers import make_classification, tiny_model

from fuselab import _process
from fuselab.train import TrainConfig, fit
from fuselab.train import memory as mem
from fuselab.train import trainer as trainer_module


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records Trainer's calls of ``retain_freed_memory`` (never applied in the test process)."""
    seen: list[bool] = []
    monkeypatch.setattr(trainer_module, "retain_freed_memory", lambda: seen.append(True) or True)
    return seen


def _fit(retain: bool | str) -> None:
    data = make_classification(40, 0)
    fit(tiny_model(), data, None, TrainConfig(epochs=1, batch_size=20, progress=False,
                                             retain_memory=retain))


def test_auto_is_off_in_a_users_process(calls: list[bool], monkeypatch) -> None:
    monkeypatch.setattr(_process, "_owned", [])
    _fit("auto")
    assert calls == []
    _fit(True)  # explicit opt-in
    assert calls == [True]


def test_auto_is_on_where_fuselab_owns_the_process(calls: list[bool], monkeypatch) -> None:
    monkeypatch.setattr(_process, "_owned", [])
    _process.own_process()
    _fit("auto")
    assert calls == [True]
    _fit(False)
    assert calls == [True]


def test_setting_is_validated() -> None:
    with pytest.raises(ValueError, match=r"'retain_memory': expected true, false or 'auto', got 'yes'"):
        TrainConfig(retain_memory="yes")
    assert TrainConfig().retain_memory == "auto"


def test_the_fuselab_program_owns_its_process_and_main_with_argv_does_not() -> None:
    code = textwrap.dedent("""
        import sys
        from fuselab import _process, cli
        cli.main(["operators", "--dims", "a=2,b=3", "--out-dim", "4"])
        print("argv", _process.process_owned())
        sys.argv = ["fuselab", "operators", "--dims", "a=2,b=3", "--out-dim", "4"]
        cli.main()
        print("program", _process.process_owned())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("argv", "program"))]
    assert lines == ["argv False", "program True"]


class FakeLibc:
    def __init__(self, results: dict[int, int]) -> None:
        self.results, self.calls = results, []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(param)
        return self.results[param]


def test_every_setting_is_attempted_and_partial_success_is_reported(monkeypatch, caplog) -> None:
    """glibc rejecting one setting must not hide that the other took effect."""
    monkeypatch.setattr(mem.platform, "system", lambda: "Linux")
    monkeypatch.setattr(mem.platform, "libc_ver", lambda: ("glibc", "2.36"))
    for first_ok in (0, 1):
        libc = FakeLibc({mem._M_TRIM_THRESHOLD: first_ok, mem._M_MMAP_MAX: 1 - first_ok})
        monkeypatch.setattr(mem.ctypes, "CDLL", lambda _name, lib=libc: lib)
        with caplog.at_level(logging.WARNING, logger="fuselab.train.memory"):
            assert mem._apply() is False
        assert sorted(libc.calls) == sorted([mem._M_TRIM_THRESHOLD, mem._M_MMAP_MAX])
        assert "mallopt applied only" in caplog.text
        caplog.clear()
    libc = FakeLibc({mem._M_TRIM_THRESHOLD: 1, mem._M_MMAP_MAX: 1})
    monkeypatch.setattr(mem.ctypes, "CDLL", lambda _name: libc)
    assert mem._apply() is True


FAULTS = textwrap.dedent("""
    import ctypes, ctypes.util, logging, resource, torch
    from fuselab.train.memory import retain_freed_memory
    logging.basicConfig(level=logging.INFO)
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    SIZE = 64 * 2**20
    def via_torch():
        torch.empty(SIZE // 4).fill_(1.0)
    def via_libc():
        p = libc.malloc(SIZE)
        ctypes.memset(p, 1, SIZE)
        libc.free(p)
    def faults(alloc):
        for _ in range(3):  # warm-up: the heap grows to its steady state
            alloc()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            alloc()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    before = faults(via_libc), faults(via_torch)
    ok = retain_freed_memory()
    print(*before, ok, faults(via_libc), faults(via_torch))
""")


def test_retained_heap_stops_page_faults() -> None:
    """In a fresh process, 5 x 64 MiB allocations: after the setting, glibc's own malloc must
    page-fault at most a tenth as often as before in the same process; torch's CPU tensors, which
    allocate through it, likewise. Skipped (with the numbers) where the environment cannot show
    the effect: not glibc, or fresh pages that do not fault one by one (transparent huge pages)."""
    out = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True,
                         check=True)
    libc_before, torch_before, ok, libc_after, torch_after = out.stdout.split()
    if ok != "True":
        pytest.skip("not glibc on Linux: the heap setting does not apply")
    assert "glibc malloc now keeps freed memory" in out.stderr  # logged once, at INFO here
    pages = 5 * 64 * 2**20 // 4096
    if int(libc_before) < pages // 4:
        pytest.skip(f"fresh 64 MiB blocks made only {libc_before} page faults (not one per 4 KiB "
                    "page, e.g. transparent huge pages): nothing for the setting to save")
    assert int(libc_after) < int(libc_before) / 10, out.stdout
    if int(torch_before) >= pages // 4:
        if torch.version.cuda is not None and int(torch_after) >= int(torch_before) / 10:
            # torch 2.13.0+cu130, five fresh processes: 81925 -> 0 to 81920 (CPU build: -> 0)
            pytest.skip(f"this CUDA build's CPU tensors keep faulting ({torch_before} -> "
                        f"{torch_after}) while glibc's malloc stops ({libc_before} -> "
                        f"{libc_after}); docs/training.md, 'The heap setting'")
        assert int(torch_after) < int(torch_before) / 10, out.stdout
