"""``fuselab.device``: device settings, pinned non-blocking transfers, synchronisation, precision.

CUDA is simulated where a test needs its decisions on a machine without one: ``torch.cuda``'s
availability and device count are monkeypatched, and a tensor subclass records the calls a
transfer makes (``pin_memory``, ``to(..., non_blocking=True)``) without touching a GPU.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from fuselab import device as D


@pytest.mark.parametrize("setting", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_well_formed_settings_pass_the_syntax_check(setting: str) -> None:
    assert D.check_device_setting(setting) == setting


@pytest.mark.parametrize("setting", ["gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1x", "cuda0", "mps",
                                     "", 0, None])
def test_malformed_settings_are_refused_with_the_allowed_forms(setting: Any) -> None:
    with pytest.raises(D.DeviceError, match=r"expected one of \['auto', 'cpu', 'cuda', 'cuda:N'\]"):
        D.resolve_device(setting)


def _cuda(monkeypatch: pytest.MonkeyPatch, count: int, built: str | None = "12.4") -> None:
    """Pretend this torch sees ``count`` CUDA devices (built with CUDA ``built``)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.version, "cuda", built)


def test_auto_is_cpu_without_cuda_and_cuda_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _cuda(monkeypatch, 0)
    assert D.resolve_device("auto") == torch.device("cpu")
    _cuda(monkeypatch, 1)
    assert D.resolve_device("auto") == torch.device("cuda")
    assert D.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(("built", "why"), [(None, "built without CUDA"),
                                            ("12.4", "no CUDA device is visible")])
def test_cuda_without_a_device_says_why(monkeypatch: pytest.MonkeyPatch, built: str | None,
                                        why: str) -> None:
    _cuda(monkeypatch, 0, built)
    for setting in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(D.DeviceError, match=why):
            D.resolve_device(setting)


def test_cuda_index_must_be_below_the_device_count(monkeypatch: pytest.MonkeyPatch) -> None:
    _cuda(monkeypatch, 2)
    assert D.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert D.resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(D.DeviceError, match=r"'cuda:2' asked but this machine has 2 CUDA devices "
                                            r"\(cuda:0 \.\. cuda:1\)"):
        D.resolve_device("cuda:2")
    _cuda(monkeypatch, 1)
    with pytest.raises(D.DeviceError, match=r"has 1 CUDA device \(cuda:0\)"):
        D.resolve_device("cuda:1")


def test_only_host_to_cuda_copies_are_pinned() -> None:
    cpu, cuda, meta = torch.device("cpu"), torch.device("cuda", 0), torch.device("meta")
    assert D.pins_memory(cpu, cuda)
    assert not D.pins_memory(cpu, cpu)
    assert not D.pins_memory(cuda, cuda)
    assert not D.pins_memory(cuda, cpu)
    assert not D.pins_memory(cpu, meta)


class Recording(torch.Tensor):
    """Records transfer calls instead of running them (``pin_memory`` needs a CUDA driver)."""

    calls: ClassVar[list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = []

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in ("pin_memory", "to", "is_pinned"):
            cls.calls.append((name, tuple(args[1:]), dict(kwargs)))
            return False if name == "is_pinned" else args[0]
        return super().__torch_function__(func, types, args, kwargs)


def test_host_to_cuda_transfer_is_pinned_then_non_blocking() -> None:
    Recording.calls = []
    x = torch.randn(4, 3).as_subclass(Recording)
    D.move({"a": x}, torch.device("cuda", 0))
    names = [c[0] for c in Recording.calls]
    assert names == ["is_pinned", "pin_memory", "to"]
    _, args, kwargs = Recording.calls[-1]
    assert args == (torch.device("cuda", 0),) and kwargs == {"non_blocking": True}


def test_other_transfers_are_plain() -> None:
    Recording.calls = []
    x = torch.randn(4, 3).as_subclass(Recording)
    D.move_tensor(x, torch.device("cpu"))
    assert Recording.calls == [("to", (torch.device("cpu"),), {})]
    y = torch.arange(6.0)
    assert D.move_tensor(y, torch.device("cpu")) is y  # already there: no copy
    moved = D.move({"y": y}, torch.device("meta"))["y"]
    assert moved.device.type == "meta" and moved.shape == y.shape


def test_synchronize_waits_on_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "synchronize", waited.append)
    D.synchronize(torch.device("cpu"))
    assert waited == []
    D.synchronize(torch.device("cuda", 1))
    assert waited == [torch.device("cuda", 1)]


@pytest.mark.parametrize(("precision", "dtype"), [("float32", torch.float32),
                                                  ("bfloat16", torch.bfloat16),
                                                  ("float16", torch.float16)])
def test_autocast_runs_matmuls_in_the_precision(precision: str, dtype: torch.dtype) -> None:
    layer = torch.nn.Linear(4, 3)
    with D.autocast(torch.device("cpu"), precision):
        out = layer(torch.randn(2, 4))
    assert out.dtype == dtype
    assert layer.weight.dtype == torch.float32  # weights stay float32


def test_only_float16_gets_a_loss_scaler() -> None:
    cpu = torch.device("cpu")
    assert D.grad_scaler(cpu, "float32") is None
    assert D.grad_scaler(cpu, "bfloat16") is None
    scaler = D.grad_scaler(cpu, "float16")
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()


def test_unknown_precision_and_device_without_autocast_are_refused() -> None:
    with pytest.raises(ValueError, match=r"precision: expected one of \['float32', 'bfloat16', "
                                         r"'float16'\], got 'int8'"):
        D.autocast_dtype("int8")
    D.check_precision("float32", torch.device("meta"))  # no autocast needed
    with pytest.raises(ValueError, match="torch cannot autocast on 'meta' devices"):
        D.check_precision("bfloat16", torch.device("meta"))
