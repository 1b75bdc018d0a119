"""Padding masks of the sequence operators (``cross_attention``, ``nlgate``, ``mult``).

Masks are passed as a second argument ``op(inputs, masks)``: ``{m: (B, T_m)}`` boolean tensors,
``True`` marking padding (the convention of ``torch.nn.MultiheadAttention``'s
``key_padding_mask`` and of ``fuselab.models.transformer``). Modalities without an entry have no
padding. Padded steps are never attended to; a sample whose source has no valid step at all gets
no contribution from it (instead of the NaN of a softmax over nothing).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

Masks = Mapping[str, Tensor]


def check_masks(masks: Masks | None, inputs: Mapping[str, Tensor], where: str) -> None:
    """``TypeError``/``ValueError`` naming the modality unless every mask fits its sequence."""
    if masks is None:
        return
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"{where}: masks must be a dict {{modality: (B, T) bool tensor}}, "
            f"got {type(masks).__name__}"
        )
    for name, mask in masks.items():
        if name not in inputs:
            raise ValueError(
                f"{where}: mask for unknown modality {name!r} (modalities {sorted(inputs)})"
            )
        x = inputs[name]
        if x.dim() != 3:
            raise ValueError(
                f"{where}: modality {name!r}: a padding mask needs a sequence (B, T, D), "
                f"got input shape {tuple(x.shape)}"
            )
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(
                f"{where}: modality {name!r}: padding mask must be a bool tensor "
                f"(True = padding), got {got}"
            )
        if tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"{where}: modality {name!r}: padding mask must have shape (B, T) = "
                f"{tuple(x.shape[:2])}, got {tuple(mask.shape)}"
            )


def padding_of(masks: Masks | None, name: str, x: Tensor) -> Tensor:
    """The padding mask ``(B, T)`` of sequence ``x`` (all ``False`` when none was given)."""
    if masks is not None and name in masks:
        return masks[name]
    return torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)


def safe_key_padding(pad: Tensor) -> tuple[Tensor, Tensor]:
    """``(mask, has_keys)`` for attention over keys with padding ``pad`` ``(B, S)``.

    A row with every key padded would give a softmax over nothing (NaN); such rows attend to all
    their (padded) keys instead, and ``has_keys`` ``(B,)`` (bool) lets the caller drop that
    attention output.
    """
    empty = pad.all(dim=-1, keepdim=True)
    return pad & ~empty, (~empty).squeeze(-1)


def last_valid(h: Tensor, pad: Tensor) -> Tensor:
    """``h[b, t_b]`` with ``t_b`` the last step that is not padding (step 0 if all are).

    Shapes: ``h (B, T, D)``, ``pad (B, T)`` -> ``(B, D)``.
    """
    steps = torch.arange(1, h.shape[1] + 1, device=h.device)
    idx = (steps * (~pad)).argmax(dim=1)
    return h[torch.arange(h.shape[0], device=h.device), idx]


def masked_mean(h: Tensor, pad: Tensor) -> Tensor:
    """Mean of ``h (B, T, D)`` over the steps that are not padding -> ``(B, D)`` (0 if none)."""
    keep = (~pad).unsqueeze(-1).to(h.dtype)
    return (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
