"""The model registry: ``build(config, input_shapes=..., num_outputs=...)``, ``available()``,
``register(name)``.

A model family registers a factory ``factory(config: dict, *, input_shapes, num_outputs) ->
nn.Module``; ``config["name"]`` selects the family (``"staged"``, ``"clstm"``, ``"token_fusion"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from torch import nn

from fuselab._registry import Registry
from fuselab._validate import pos_int

MODELS: Registry[nn.Module] = Registry("model family")
"""Model families by name (``config["name"]``): ``"staged"``, ``"clstm"``, ``"token_fusion"``."""
register = MODELS.register
"""Register a family's ``factory(config, *, input_shapes, num_outputs)``: ``@register("name")``
or ``register("name", factory)``."""


def register_model(name: str, factory: Any = None) -> Any:
    """Deprecated alias of :func:`register` (one release)."""
    warnings.warn("fuselab.models.register_model is deprecated; use fuselab.models.register",
                  DeprecationWarning, stacklevel=2)
    return register(name, factory)


def available() -> list[str]:
    """Names of every registered model family."""
    return MODELS.available()


def build(
    config: Mapping[str, Any],
    *,
    input_shapes: Mapping[str, tuple[int, ...]],
    num_outputs: int,
) -> nn.Module:
    """Build a model from plain config values; errors name the config key and allowed values.

    ``num_outputs``: the output width (classes, regression targets or vocabulary), an int >= 1.
    """
    pos_int(num_outputs, "num_outputs")
    if not isinstance(input_shapes, Mapping):
        raise TypeError(
            f"input_shapes: expected a mapping {{modality: per-sample shape}} (e.g. ds.shapes), "
            f"got {type(input_shapes).__name__}"
        )
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(
            f"model config needs a 'name' key naming the model family; allowed: {MODELS.available()}"
        )
    factory = MODELS.get(config["name"], where="model.name")
    rest = {k: v for k, v in config.items() if k != "name"}
    return factory(rest, input_shapes=dict(input_shapes), num_outputs=num_outputs)
