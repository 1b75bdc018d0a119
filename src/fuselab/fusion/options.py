"""Checks of operator settings shared by several operators (errors name the argument)."""

from __future__ import annotations

from collections.abc import Mapping


def require_modalities(where: str, in_dims: Mapping[str, int], at_least: int = 2) -> None:
    """``ValueError`` unless ``in_dims`` names at least ``at_least`` modalities."""
    if len(in_dims) < at_least:
        raise ValueError(
            f"{where}: needs at least {at_least} modalities, got {sorted(in_dims)}"
        )


def role_modality(
    where: str, in_dims: Mapping[str, int], role: str, value: str | None, default: str
) -> str:
    """The modality playing ``role`` (``value``, else ``default``); ``ValueError`` naming
    ``role`` when it is not one of ``in_dims``."""
    name = default if value is None else value
    if name not in in_dims:
        raise ValueError(f"{where}: {role} must be one of {sorted(in_dims)}, got {name!r}")
    return name
