"""Shared parts of the paper-000 C-LSTM variants: config, input checks, audio frames, dense head."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fuselab._validate import choice, int_list, pos_int
from fuselab.models.inputs import checked_inputs

FUSION_LAYERS = ("initial", "second", "fc", "visual-only", "audio-only")
CLSTM_KEYS = ("fusion_layer", "units", "kernel", "hidden", "time_pool", "steps", "grid",
              "stream_pools", "progressive")
IMAGE, AUDIO = "image", "audio"

Inject = Mapping[str, tuple[int, Callable[[Tensor], Tensor]]]


def pool2(x: Tensor) -> Tensor:
    """2x2 max pool, ceil mode (odd grids keep their border row / column)."""
    return F.max_pool2d(x, 2, ceil_mode=True)


def pooled(n: int) -> int:
    return math.ceil(n / 2)


class CLSTMBase(nn.Module):
    """Config, input validation, audio frames and the dense head shared by every variant.

    Inputs: ``image (B, C_v, H, W)``, ``audio (B, C_a, F, T)`` spectrogram; the time steps are the
    ``T`` frames (averaged in groups of ``time_pool``), each frame a ``C_a * F`` vector.
    ``stream_pools``: a 2x2 max pool after each convolution of the ``second`` / ``fc`` image
    streams (fuselab's choice; ``False`` = paper 000 A.2's sizes, which list no pool there).
    """

    uses: tuple[str, ...] = (IMAGE, AUDIO)

    def __init__(
        self,
        fusion_layer: str,
        *,
        input_shapes: Mapping[str, tuple[int, ...]],
        num_outputs: int,
        units: int = 64,
        kernel: int = 3,
        hidden: int = 128,
        time_pool: int = 1,
        steps: int = 0,
        grid: list[int] | None = None,
        stream_pools: bool = True,
        widen: Mapping[str, tuple[int, int]] | None = None,
        where: str = "model",
    ) -> None:
        super().__init__()
        self._args: dict[str, Any] = dict(fusion_layer=fusion_layer, input_shapes=input_shapes,
                          num_outputs=num_outputs, units=units, kernel=kernel, hidden=hidden,
                          time_pool=time_pool, steps=steps, grid=grid,
                          stream_pools=stream_pools, where=where)
        self.fusion_layer = choice(fusion_layer, f"{where}.fusion_layer", FUSION_LAYERS)
        self.units = pos_int(units, f"{where}.units")
        self.kernel = pos_int(kernel, f"{where}.kernel")
        self.hidden = pos_int(hidden, f"{where}.hidden")
        self.time_pool = pos_int(time_pool, f"{where}.time_pool")
        if not isinstance(stream_pools, bool):
            raise ValueError(f"{where}.stream_pools: expected true or false, got {stream_pools!r}")
        self.stream_pools = stream_pools
        self.num_outputs = num_outputs
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        for m in self.uses:
            if m not in input_shapes:
                raise ValueError(f"{where}.fusion_layer: {fusion_layer!r} needs input {m!r} "
                                 f"(C, H, W) / (C, F, T); available: {sorted(input_shapes)}")
            shape = tuple(int(d) for d in input_shapes[m])
            if len(shape) != 3:
                want = "(C, H, W) image" if m == IMAGE else "(C, F, T) spectrogram"
                raise ValueError(f"{where}: input {m!r} must be a {want}, got shape {shape}")
            self.input_shapes[m] = shape
        extra = {m: k for m, (_, k) in (widen or {}).items()}
        # unimodal variants still take their grid / step count from the unused input when present
        if grid:
            g = int_list(grid, f"{where}.grid")
            if len(g) != 2:
                raise ValueError(f"{where}.grid: expected [H, W], got {grid!r}")
            self.grid = (g[0], g[1])
        elif IMAGE in input_shapes and len(input_shapes[IMAGE]) == 3:
            self.grid = (int(input_shapes[IMAGE][1]), int(input_shapes[IMAGE][2]))
        else:
            raise ValueError(f"{where}.grid: {fusion_layer!r} without an 'image' input needs the "
                             "C-LSTM grid size [H, W]")
        self.image_channels = self.input_shapes[IMAGE][0] + extra.get(IMAGE, 0) if IMAGE in self.uses else 0
        if AUDIO in self.uses:
            c, f, _ = self.input_shapes[AUDIO]
            self.frame_dim = (c + extra.get(AUDIO, 0)) * f
        else:
            self.frame_dim = 0
        if AUDIO in self.uses:
            self.num_steps = math.ceil(self.input_shapes[AUDIO][2] / self.time_pool)
        elif steps:
            self.num_steps = pos_int(steps, f"{where}.steps")
        elif AUDIO in input_shapes and len(input_shapes[AUDIO]) == 3:
            self.num_steps = math.ceil(int(input_shapes[AUDIO][2]) / self.time_pool)
        else:
            raise ValueError(f"{where}.steps: {fusion_layer!r} without an 'audio' input needs the "
                             "number of time steps (an int >= 1)")
        self.grid2 = (pooled(self.grid[0]), pooled(self.grid[1]))
        self.grid4 = (pooled(self.grid2[0]), pooled(self.grid2[1]))

    def make_head(self, in_dim: int) -> None:
        """Dense ``hidden`` (ReLU) -> dense ``num_outputs`` (paper 000 appendix A.2)."""
        self.fc1 = nn.Linear(in_dim, self.hidden)
        self.fc2 = nn.Linear(self.hidden, self.num_outputs)

    def dense(self, z: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(z)))

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.uses

    def prepare(self, inputs: Mapping[str, Tensor], inject: Inject | None = None
                ) -> dict[str, Tensor]:
        """Validate ``inputs`` (extra modalities are ignored) and apply Pro-Fusion injections."""
        shapes = {m: self.input_shapes[m] for m in self.uses}
        out = checked_inputs(type(self).__name__, inputs, shapes)
        for m, (_, project) in (inject or {}).items():
            if m in out:
                out[m] = project(out[m])
        return out

    def frames(self, audio: Tensor) -> Tensor:
        """``(B, C, F, T) -> (B, T', C*F)``: one vector per (pooled) time step."""
        a = audio.flatten(1, 2)  # (B, C*F, T)
        if self.time_pool > 1:
            a = F.avg_pool1d(a, self.time_pool, ceil_mode=True)
        return a.transpose(1, 2)

    def fusion_modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def fusion_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the first module that sees both modalities (none for unimodal variants)."""
        for mod in self.fusion_modules():
            yield from mod.parameters()

    def parameter_counts(self) -> dict[str, int]:
        return {"total": sum(p.numel() for p in self.parameters()),
                "fusion": sum(p.numel() for p in self.fusion_parameters()),
                "head": sum(p.numel() for p in [*self.fc1.parameters(), *self.fc2.parameters()])}

    def step_logits(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """``(B, T', num_outputs)``: the dense head on the final layer at every step (paper 000
        Figure 11); the last step equals ``forward``."""
        return self.run(inputs, every_step=True)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.run(inputs, every_step=False)

    def run(self, inputs: Mapping[str, Tensor], every_step: bool) -> Tensor:
        raise NotImplementedError

    def readout(self, states: list[Tensor], every_step: bool) -> Tensor:
        """Pool + dense head on the final layer's states ``[(B, u, h, w)] * T''``: one batched
        call for all steps -> ``(B, T', K)``, or the last state only -> ``(B, K)``."""
        if not every_step:
            return self.dense(pool2(states[-1]).flatten(1))
        batch = states[-1].shape[0]
        logits = self.dense(pool2(torch.cat(states, dim=0)).flatten(1))  # (T'*B, K)
        return logits.view(len(states), batch, -1).transpose(0, 1)


