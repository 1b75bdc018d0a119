"""Input checks of the operators: the helpers that raise the errors, and the switch.

The helpers raise ``TypeError``/``ValueError`` naming the modality, what was expected and what
arrived; :class:`~fuselab.fusion.base.FusionOp` and :class:`~fuselab.fusion.base.FeatureMapOp`
run them on every call. Calls whose inputs match the last ones that passed cost ~5 us; on
calls of ~0.2 ms (an operator at (64, 32) on a CPU) or in a GPU model whose step is bound by
Python overhead, that is a few percent. As with ``torch.distributions``' ``validate_args``, the
checks can be switched off; then a wrong input fails inside torch, or is broadcast silently.

    fl.fusion.set_input_checks(False)          # from here on, in this process
    with fl.fusion.set_input_checks(False):    # only inside the block
        ...
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import TracebackType

import torch
from torch import Tensor, nn

_enabled = True


def input_checks_enabled() -> bool:
    """Whether the operators check their inputs (the default: ``True``)."""
    return _enabled


class set_input_checks:  # lower case: called like a function, as torch.set_grad_enabled
    """Switch the operators' input checks on or off; as a context manager, restore on exit.

    Like ``torch.set_grad_enabled``: calling it sets the switch for the process (all threads);
    ``with set_input_checks(False):`` restores the previous setting when the block ends.
    """

    def __init__(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"set_input_checks: expected True or False, got {enabled!r}")
        global _enabled
        self.previous = _enabled
        _enabled = enabled

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _enabled
        _enabled = self.previous


def _names(xs: Mapping[str, object]) -> list[str]:
    return sorted(xs)


def check_modality_names(
    inputs: Mapping[str, Tensor], expected: Mapping[str, object], where: str
) -> None:
    """Raise ``ValueError`` when ``inputs`` lacks a declared modality or has an unexpected one."""
    if not isinstance(inputs, Mapping):
        raise TypeError(
            f"{where}: expected a dict of named modalities {_names(expected)}, "
            f"got {type(inputs).__name__}"
        )
    missing = [m for m in expected if m not in inputs]
    extra = [m for m in inputs if m not in expected]
    if missing:
        raise ValueError(
            f"{where}: missing modality {missing[0]!r} (expected modalities {_names(expected)}, "
            f"got {_names(inputs)})"
        )
    if extra:
        raise ValueError(
            f"{where}: unexpected modality {extra[0]!r} (expected modalities {_names(expected)}, "
            f"got {_names(inputs)})"
        )


def check_floating(name: str, x: Tensor, where: str) -> None:
    """Raise ``TypeError`` unless ``x`` is a floating-point tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{where}: modality {name!r}: expected a torch.Tensor, got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{where}: modality {name!r}: expected a floating-point tensor, got dtype {x.dtype}"
        )


def _reference(module: nn.Module) -> Tensor | None:
    """The first floating parameter or buffer: its dtype and device are what inputs must have."""
    # Lazily, stopping at the first hit: listing every tensor first cost 1.6 ms a call for
    # `mult` (256 parameters) and 20 us for `concat`, against 17 and 8 us this way.
    for t in itertools.chain(module.parameters(), module.buffers()):
        if t.is_floating_point():
            return t
    return None


def check_dtype_and_device(
    module: nn.Module, inputs: Mapping[str, Tensor], where: str
) -> str | None:
    """``TypeError`` naming the modality when the floating tensors ``inputs`` differ in dtype from
    each other or from ``module``'s parameters, or live on another device than the parameters.

    Under ``torch.autocast`` dtypes may legitimately differ (autocast casts per op), so only the
    device is checked there. Returns the device type (``"cpu"``, ``"cuda"``) whose autocast let a
    dtype difference through, or ``None`` when the inputs passed without it.
    """
    ref = _reference(module)
    first_name, first = next(iter(inputs.items()))
    relied_on = None
    for name, x in inputs.items():
        if ref is not None and x.device != ref.device:
            raise TypeError(
                f"{where}: modality {name!r} is on device {x.device}, the operator's parameters "
                f"on {ref.device}; move the inputs or the operator (.to(device))"
            )
        differs = (ref is not None and x.dtype != ref.dtype) or x.dtype != first.dtype
        kind = x.device.type
        if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
            relied_on = kind if differs else relied_on
            continue
        if ref is not None and x.dtype != ref.dtype:
            raise TypeError(
                f"{where}: modality {name!r}: expected dtype {ref.dtype} (the operator's "
                f"parameters), got {x.dtype}; convert the input or the operator (.to(dtype))"
            )
        if x.dtype != first.dtype:
            raise TypeError(
                f"{where}: modality {name!r} has dtype {x.dtype}, modality {first_name!r} has "
                f"{first.dtype}; give every modality the same dtype"
            )
    return relied_on


def check_not_empty(name: str, x: Tensor, dims: range, what: str, where: str) -> None:
    """``ValueError`` naming the modality when one of ``x``'s ``dims`` has size 0."""
    for d in dims:
        if x.shape[d] == 0:
            raise ValueError(
                f"{where}: modality {name!r}: empty {what} (size 0 at dim {d}), got shape "
                f"{tuple(x.shape)}"
            )


def check_batch_sizes(inputs: Mapping[str, Tensor], where: str) -> int:
    """Return the common batch size; ``ValueError`` naming both modalities when they differ."""
    first_name, first = next(iter(inputs.items()))
    for name, x in inputs.items():
        if x.shape[0] != first.shape[0]:
            raise ValueError(
                f"{where}: batch size mismatch: modality {first_name!r} has {first.shape[0]} "
                f"samples, modality {name!r} has {x.shape[0]}"
            )
    return int(first.shape[0])
