"""Staged encoders: a modality encoder as an ordered list of named stages.

An encoder type (``lenet``, ``conv1d``, ``lstm``, ``gru``, ``mlp``, ``transformer``) is registered in
:data:`ENCODERS` as a function ``plan(cfg, where) -> list[StageSpec]``; a :class:`StageSpec` builds
its stage from the per-sample input :class:`Shape` it will receive. That late binding is what lets a
fusion plan rebuild "stages k+1.. of the audio encoder" on a fused input of another width, and lets
Pro-Fusion widen the stage after its injection point.

    enc = build_encoder({"preset": "avmnist_image"}, (1, 28, 28), where="model.encoders.image")
    enc.stage_names              # ("conv1", "conv2", "conv3", "conv4")
    enc.shapes[2]                # Shape("map", (12, 7, 7)): after 2 stages
    enc(x)                       # (B, 48): all stages + readout
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from fuselab._registry import Registry, UnknownNameError
from fuselab._validate import rename_deprecated
from fuselab.models.shapes import Readout, Shape, default_readout, raw_shape


class Stage(nn.Module):
    """One encoder stage; subclasses set ``in_shape`` and ``out_shape`` (per-sample shapes)."""

    in_shape: Shape
    out_shape: Shape


@dataclass(frozen=True)
class StageSpec:
    """A named stage and how to build it for a given input shape."""

    name: str
    build: Callable[[Shape], Stage]


ENCODERS: Registry[list[StageSpec]] = Registry("encoder type")
"""Encoder types: ``plan(cfg: dict, where: str) -> list[StageSpec]``, with ``cfg`` already merged
with its preset and the type's defaults (register with :func:`register`)."""

#: Allowed config keys and defaults per encoder type (besides ``type``/``preset``/``readout``).
DEFAULTS: dict[str, dict[str, Any]] = {}

#: Deprecated key spellings per encoder type: old -> current (renamed with a DeprecationWarning).
ALIASES: dict[str, dict[str, str]] = {}

PRESETS: dict[str, dict[str, Any]] = {
    # Paper 001 appendix: LeNet-style, filters [5,3,3,3] (image) / [5,3,3,3,3,3] (audio), max-pool
    # 2, width doubled each layer; base width 6 as in the MultiBench AV-MNIST LeNets.
    "avmnist_image": {"type": "lenet", "kernels": [5, 3, 3, 3], "channels": 6, "pool": 2},
    "avmnist_audio": {"type": "lenet", "kernels": [5, 3, 3, 3, 3, 3], "channels": 6, "pool": 2},
    "lattice_mlp": {"type": "mlp", "hidden": [64, 64]},
}
"""Named encoder configs (``{"preset": "avmnist_image"}``), merged under the given keys."""


#: Encoder types reading a raw rank-2 input ``(T, D)`` as a sequence rather than a map ``(C, L)``.
SEQUENCE_INPUTS: set[str] = set()


def register(
    name: str,
    plan: Callable[..., list[StageSpec]] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    sequence_inputs: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> Any:
    """Register an encoder type's ``plan(cfg, where) -> list[StageSpec]`` with its allowed keys
    and defaults: ``@register("name", defaults={...})`` or ``register("name", plan, defaults=...)``.

    ``defaults``: allowed config keys (besides ``type``/``preset``/``readout``) and their defaults.
    ``sequence_inputs``: a raw ``(T, D)`` input is a sequence (recurrent / attention encoders).
    ``aliases``: deprecated key spellings still accepted, old -> current.
    """
    DEFAULTS[name] = dict(defaults or {})
    ALIASES[name] = dict(aliases or {})
    if sequence_inputs:
        SEQUENCE_INPUTS.add(name)
    return ENCODERS.register(name, plan) if plan is not None else ENCODERS.register(name)


def register_encoder(
    name: str,
    defaults: Mapping[str, Any],
    sequence_inputs: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., list[StageSpec]]], Callable[..., list[StageSpec]]]:
    """Deprecated alias (one release) of ``register(name, defaults=..., ...)``."""
    warnings.warn("fuselab.models.encoders.register_encoder is deprecated; use "
                  "fuselab.models.encoders.register(name, defaults=...)", DeprecationWarning,
                  stacklevel=2)
    deco: Callable[[Callable[..., list[StageSpec]]], Callable[..., list[StageSpec]]] = register(
        name, defaults=defaults, sequence_inputs=sequence_inputs, aliases=aliases)
    return deco


def available() -> list[str]:
    """Names of every registered encoder type."""
    return ENCODERS.available()


def resolve_encoder_config(cfg: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Merge preset, type defaults and ``cfg``; reject unknown presets, types and keys."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{where}: expected a table with 'type' or 'preset', got {type(cfg).__name__}")
    merged: dict[str, Any] = {}
    if "preset" in cfg:
        preset = cfg["preset"]
        if preset not in PRESETS:
            raise UnknownNameError("preset", preset, PRESETS, f"{where}.preset")
        merged.update(PRESETS[preset])
    merged.update({k: v for k, v in cfg.items() if k != "preset"})
    kind = merged.get("type")
    if kind is None:
        raise ValueError(f"{where}: needs 'type' (allowed: {ENCODERS.available()}) or 'preset' "
                         f"(allowed: {sorted(PRESETS)})")
    ENCODERS.get(kind, where=f"{where}.type")
    merged = rename_deprecated(merged, ALIASES[kind], where)
    allowed = {"type", "readout", *DEFAULTS[kind]}
    unknown = sorted(set(merged) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} for encoder type {kind!r}; "
                         f"allowed: {sorted(allowed | {'preset'})}")
    return {**DEFAULTS[kind], **merged}


class StagedEncoder(nn.Module):
    """A modality encoder: named stages run in order, then a readout to a vector.

    Args:
        specs: the stages (only those from ``start`` on are built).
        in_shape: per-sample shape entering stage ``start``.
        readout: readout mode (``mean``/``max``/``flatten`` for maps, ``last``/``mean``/``first``
            for sequences); ``""`` picks the default for the final kind.
        start: index of the first stage built (a fusion trunk continues from a later stage).
        stop: build stages ``start .. stop-1`` only (a branch that merges after ``stop`` stages);
            the readout then uses the default for the kind at ``stop``.
        widen: ``(i, k)``: stage ``i`` receives ``k`` extra input channels (Pro-Fusion ``concat``).

    Shapes:
        ``(B, *in_shape) -> (B, feature_dim)``; ``run(x, a, b)`` maps the output of stage ``a`` to
        that of stage ``b`` (stage counts, ``shapes[a] -> shapes[b]``).
    """

    def __init__(
        self,
        specs: list[StageSpec],
        in_shape: Shape,
        readout: str = "",
        start: int = 0,
        widen: tuple[int, int] | None = None,
        stop: int | None = None,
    ) -> None:
        super().__init__()
        if stop is not None and stop < len(specs):
            specs, readout = specs[:stop], ""
        self.all_stage_names = tuple(s.name for s in specs)
        self.start = start
        self.stages = nn.ModuleDict()
        shapes = {start: in_shape}
        shape = in_shape
        for i in range(start, len(specs)):
            if widen is not None and widen[0] == i:
                shape = shape.with_channels(shape.channels + widen[1])
            stage = specs[i].build(shape)
            self.stages[specs[i].name] = stage
            shape = stage.out_shape
            shapes[i + 1] = shape
        self.shapes: dict[int, Shape] = shapes
        self.readout = Readout(shape, readout or default_readout(shape.kind))
        self.feature_dim = self.readout.out_dim

    @property
    def stage_names(self) -> tuple[str, ...]:
        return self.all_stage_names

    @property
    def depth(self) -> int:
        return len(self.all_stage_names)

    def run(self, x: Tensor, a: int, b: int) -> Tensor:
        """Run stages ``a .. b-1`` (input: output of ``a`` stages; output: of ``b`` stages)."""
        for i in range(a, b):
            x = self.stages[self.all_stage_names[i]](x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.run(x, self.start, self.depth))


def build_encoder(
    cfg: Mapping[str, Any],
    input_dims: tuple[int, ...] | None,
    *,
    where: str,
    start: int = 0,
    in_shape: Shape | None = None,
    widen: tuple[int, int] | None = None,
    stop: int | None = None,
) -> StagedEncoder:
    """Build an encoder from its config table for raw per-sample ``input_dims``.

    With ``start``/``in_shape`` only stages ``start..`` are built, for input ``in_shape``; with
    ``stop`` only stages before ``stop``.
    """
    resolved = resolve_encoder_config(cfg, where)
    specs = ENCODERS.get(resolved["type"])(resolved, where)
    if in_shape is None:
        if input_dims is None:
            raise ValueError(f"{where}: needs the input shape")
        in_shape = raw_shape(tuple(input_dims), resolved["type"] in SEQUENCE_INPUTS)
    try:
        return StagedEncoder(
            specs, in_shape, resolved.get("readout", ""), start=start, widen=widen, stop=stop
        )
    except ValueError as err:
        msg = str(err)
        raise ValueError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def encoder_stage_names(cfg: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """Stage names of an encoder config without building it."""
    resolved = resolve_encoder_config(cfg, where)
    return tuple(s.name for s in ENCODERS.get(resolved["type"])(resolved, where))
