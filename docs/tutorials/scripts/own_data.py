"""Tutorial 2 (docs/tutorials/own-data.md): your own tensors and your own encoder in a study.

    python docs/tutorials/scripts/own_data.py                  # ~2 min on 2 cores
    python docs/tutorials/scripts/own_data.py --budget tiny    # a few seconds (the docs test)

The data stand in for yours: an "eeg" signal (N, 4, 128) whose frequency carries one bit of the
label and a "video" feature vector (N, 16) that carries the other, so neither modality alone can
beat 50 % and a fusion model can reach 100 %.
"""

from __future__ import annotations

# --8<-- [start:imports]
import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fuselab.models.encoders import Stage, StageSpec, register
from fuselab.models.shapes import Shape
from fuselab.report import format_results_table, results_table
from fuselab.study import parse_config, run_study

# --8<-- [end:imports]

# --8<-- [start:encoder]

class Spectrum(Stage):
    """``(B, C, L) -> (B, C, L // 2 + 1)``: log magnitude of each channel's spectrum."""

    def __init__(self, in_shape: Shape) -> None:
        super().__init__()
        if in_shape.kind != "map" or len(in_shape.dims) != 2:
            raise ValueError(f"spectrum expects a (C, L) signal, got {in_shape}")
        channels, length = in_shape.dims
        self.in_shape = in_shape
        self.out_shape = Shape("map", (channels, length // 2 + 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.log1p(torch.fft.rfft(x, dim=-1).abs())


class Dense(Stage):
    """``(B, *dims) -> (B, hidden)``: flatten, linear, ReLU."""

    def __init__(self, in_shape: Shape, hidden: int) -> None:
        super().__init__()
        self.in_shape = in_shape
        self.out_shape = Shape("vec", (hidden,))
        self.fc = nn.Linear(in_shape.numel, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.fc(x.flatten(1)))


@register("spectrum", defaults={"hidden": 32})
def spectrum(cfg: dict[str, Any], where: str) -> list[StageSpec]:
    """Encoder type ``spectrum``: stages ``fft`` (no weights) then ``fc``."""
    hidden = cfg["hidden"]
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
        raise ValueError(f"{where}.hidden: expected a positive int, got {hidden!r}")
    return [StageSpec("fft", Spectrum), StageSpec("fc", lambda shape: Dense(shape, hidden))]
# --8<-- [end:encoder]


# --8<-- [start:data]
def make_data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays shaped like yours: one entry per modality plus ``labels`` (N,)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)       # the two bits of the label
    t = np.arange(128) / 128
    freq = np.where(a == 1, 12.0, 5.0)[:, None, None]           # bit a: the eeg's frequency
    phase = rng.uniform(0, 2 * np.pi, (n, 4, 1))
    eeg = np.sin(2 * np.pi * freq * t + phase) + rng.normal(0, 1.0, (n, 4, 128))
    video = rng.normal(0, 1.0, (n, 16))
    video[:, :4] += np.where(b == 1, 1.0, -1.0)[:, None]        # bit b: the video's offset
    return {"eeg": eeg.astype(np.float32), "video": video.astype(np.float32),
            "labels": (2 * a + b).astype(np.int64)}
# --8<-- [end:data]


# --8<-- [start:config]
def study_config(data_dir: Path, seeds: list[int], epochs: int) -> dict[str, Any]:
    """The study as a Python dict: the same keys as a TOML file (docs/study.md)."""
    return {
        "study": {"name": "own-data", "seeds": seeds},
        "data": {"name": "tensors", "root": str(data_dir),
                 "options": {"path": "my_data.npz", "task": "classification"}},
        "model": {
            "name": "staged",
            "encoders": {"eeg": {"type": "spectrum", "hidden": 32},   # the encoder registered above
                         "video": {"type": "mlp", "hidden": [32]}},
            "fusion": [{"at": "late", "operator": "concat"}],
            "head": {"hidden": [32]},
        },
        "train": {"epochs": epochs, "batch_size": 64, "lr": 0.003},
        "grid": {"fusion": [{"op": ["concat", "lowrank", "gated"]}]},
        "evaluate": {"test": True, "missing_modality": {"modes": ["zero"]}},
    }
# --8<-- [end:config]


# --8<-- [start:run]
def run(out: Path, samples: int, workers: int | None = None, **budget: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "my_data.npz", **make_data(samples))       # or your own .npz / .safetensors
    cfg = parse_config(study_config(out, **budget))            # validated like a TOML file
    summary = run_study(cfg, out / "study", workers=workers, progress=False)
    print(f"{summary.done} runs done, {summary.failed} failed")
    print(format_results_table(results_table(out / "study")))
# --8<-- [end:run]


BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"samples": 4000, "seeds": [0, 1], "epochs": 15},
    "tiny": {"samples": 200, "seeds": [0], "epochs": 1},
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    p.add_argument("--out", type=Path, default=Path("runs/own-data"))
    p.add_argument("--workers", type=int, default=None, help="0: in-process (default: cores)")
    args = p.parse_args(argv)
    run(args.out, workers=args.workers, **BUDGETS[args.budget])


if __name__ == "__main__":
    main()
