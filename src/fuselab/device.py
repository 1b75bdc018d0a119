"""Where a run computes: the device setting, batch transfers, timing and mixed precision.

* :func:`resolve_device` turns a setting ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a
  ``torch.device`` after checking that the device exists here (``"cuda:3"`` on a machine with two
  GPUs is a :class:`DeviceError` naming the count), so a study refuses it before any run.
* :func:`move` sends a batch ``{name: (B, ...)}`` to a device. A CPU -> CUDA copy is staged in
  page-locked (pinned) memory and issued with ``non_blocking=True``: a DMA transfer that does not
  hold up the Python thread, which goes on to queue the step's kernels. The CUDA caching host
  allocator keeps a pinned block until the copy that reads it has finished, so the staging
  buffer may be dropped right away. Every other pair (CPU -> CPU, CUDA -> CUDA) is a plain
  ``.to``, a no-op when the tensor is already there.
* :func:`synchronize` waits for the work queued on a device: CUDA kernels run asynchronously,
  so a wall-clock timing must synchronise before it reads the clock.
* :func:`autocast` and :func:`grad_scaler` implement ``precision``: ``"bfloat16"`` and
  ``"float16"`` autocast the forward pass (weights and optimizer state stay float32);
  ``"float16"`` also scales the loss (``torch.amp.GradScaler``), because float16 gradients
  underflow without it (bfloat16 has float32's exponent range and needs no scaling).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping

import torch
from torch import Tensor

#: The forms of a device setting (``execution.device``, ``fuselab.train.fit``'s model device).
DEVICE_SETTINGS = ("auto", "cpu", "cuda", "cuda:N")
#: ``TrainConfig.precision`` values: the dtype the forward pass is autocast to.
PRECISIONS = ("float32", "bfloat16", "float16")
_AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}
_CUDA_INDEX = re.compile(r"cuda:(\d+)")


class DeviceError(ValueError):
    """A device setting that is malformed or names a device this machine does not have."""


def check_device_setting(setting: object) -> str:
    """``setting`` if it has one of the forms in :data:`DEVICE_SETTINGS` (syntax only)."""
    if isinstance(setting, str) and (
        setting in ("auto", "cpu", "cuda") or _CUDA_INDEX.fullmatch(setting)
    ):
        return setting
    raise DeviceError(f"expected one of {list(DEVICE_SETTINGS)} (N = a CUDA device index), "
                      f"got {setting!r}")


def _no_cuda_reason() -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    return "no CUDA device is visible (driver missing, or CUDA_VISIBLE_DEVICES hides them)"


def resolve_device(setting: str | torch.device) -> torch.device:
    """The ``torch.device`` of a setting, checked to exist on this machine.

    ``"auto"``: CUDA when a device is available, else CPU. ``"cuda"``: the current CUDA device.
    ``"cuda:N"``: device ``N``, which must be below ``torch.cuda.device_count()``.

    Raises:
        DeviceError: a malformed setting, CUDA asked without CUDA, or an index out of range.
    """
    text = check_device_setting(str(setting) if isinstance(setting, torch.device) else setting)
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"{text!r} asked but {_no_cuda_reason()}; use 'cpu', or 'auto' (CUDA "
                          "when available)")
    match = _CUDA_INDEX.fullmatch(text)
    if match is not None:
        count = torch.cuda.device_count()
        if int(match.group(1)) >= count:
            valid = "cuda:0" if count == 1 else f"cuda:0 .. cuda:{count - 1}"
            raise DeviceError(f"{text!r} asked but this machine has {count} CUDA "
                              f"device{'s' if count != 1 else ''} ({valid})")
    return torch.device(text)


def pins_memory(source: torch.device, target: torch.device) -> bool:
    """Whether a copy from ``source`` to ``target`` goes through pinned memory, non-blocking:
    exactly the host -> CUDA copies (pinning is a CUDA host-allocator feature; a copy that stays
    on one device has nothing to stage)."""
    return source.type == "cpu" and target.type == "cuda"


def move_tensor(x: Tensor, device: torch.device) -> Tensor:
    """``x`` on ``device``: pinned and non-blocking for host -> CUDA (:func:`pins_memory`)."""
    if pins_memory(x.device, device):
        staged = x if x.is_pinned() else x.pin_memory()
        return staged.to(device, non_blocking=True)
    return x.to(device)


def move(tensors: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Every tensor of a batch ``{name: (B, ...)}`` on ``device`` (see :func:`move_tensor`)."""
    return {name: move_tensor(x, device) for name, x in tensors.items()}


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (CUDA); CPU work is synchronous."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (``None`` for ``"float32"``: no autocast)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    return _AUTOCAST.get(precision)


def check_precision(precision: str, device: torch.device) -> None:
    """``ValueError`` when ``device`` cannot autocast to ``precision``."""
    dtype = autocast_dtype(precision)
    if dtype is not None and not torch.amp.is_autocast_available(device.type):
        raise ValueError(f"precision {precision!r}: torch cannot autocast on {device.type!r} "
                         "devices; use 'float32'")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """Autocast of the forward pass on ``device`` to ``precision`` (nothing for float32)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for float16 training on ``device``; ``None`` for float32 and bfloat16."""
    if autocast_dtype(precision) is not torch.float16:
        return None
    return torch.amp.GradScaler(device.type)
