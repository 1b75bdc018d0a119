"""The fusion-operator registry: ``build(name, **kwargs)`` and ``available()``."""

from __future__ import annotations

from typing import Any

from torch import nn

from fuselab._registry import Registry

OPERATORS: Registry[nn.Module] = Registry("fusion operator")
"""Fusion operators by name: ``OPERATORS.build(name, **kwargs)``, ``OPERATORS.available()``."""
register = OPERATORS.register
"""Decorator registering a fusion operator class under a name: ``@register("max")``."""


def build(name: str, /, **kwargs: Any) -> nn.Module:
    """Build the fusion operator registered as ``name``.

    >>> op = build("concat", in_dims={"image": 64, "audio": 32}, out_dim=128)
    >>> op.out_dim
    128
    """
    return OPERATORS.build(name, **kwargs)


def available() -> list[str]:
    """Names of every registered fusion operator."""
    return OPERATORS.available()
