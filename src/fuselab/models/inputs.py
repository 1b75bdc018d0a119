"""Validation of a model's named inputs against the per-sample shapes it was built for."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor


def checked_inputs(
    owner: str, inputs: Mapping[str, Tensor], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, Tensor]:
    """The tensors of ``inputs`` named in ``shapes`` (in that order), each ``(B, *shapes[m])``.

    Extra modalities are ignored (a dataset may carry more than a model uses); a missing one or a
    wrong per-sample shape raises ``ValueError`` naming ``owner``, the modality, the expected and
    the received shape.
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(f"{owner}: expected a dict of named modalities {list(shapes)}, "
                        f"got {type(inputs).__name__}")
    out = {}
    for m, shape in shapes.items():
        if m not in inputs:
            raise ValueError(f"{owner}: missing modality {m!r} (expected {list(shapes)}, "
                             f"got {sorted(inputs)})")
        x = inputs[m]
        if tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(f"{owner}: modality {m!r}: expected shape "
                             f"(B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
        out[m] = x
    return out
