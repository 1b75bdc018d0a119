"""Tutorial 3 (docs/tutorials/custom-operator.md): add a fusion operator, test it, study it.

    python docs/tutorials/scripts/custom_operator.py                 # the study, ~2 min on 2 cores
    python docs/tutorials/scripts/custom_operator.py --budget tiny   # a few seconds
    python -m pytest docs/tutorials/scripts/custom_operator.py       # the operator's tests

The operator is max fusion: every modality is projected to ``out_dim`` and the output keeps, per
feature, the largest projection (``z_j = max_m (W_m x_m + b_m)_j``).
"""

from __future__ import annotations

# --8<-- [start:imports]
import argparse
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import fuselab as fl
from fuselab.fusion import FusionOp, register
from fuselab.report import format_results_table, results_table
from fuselab.study import parse_config, run_study

# --8<-- [end:imports]


# --8<-- [start:operator]
@register("max")
class MaxFusion(FusionOp):
    """Max fusion ``z_j = max_m (W_m x_m + b_m)_j``: the strongest projection per feature.

    Args:
        in_dims: ``{modality: D_m}``.
        out_dim: width of every projection and of the output.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
    """

    def __init__(self, in_dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(in_dims, out_dim)       # validates in_dims and out_dim
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in in_dims.items()})

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)                # names, dtypes, widths, batch sizes
        projected = [self.proj[m](inputs[m]) for m in self.modalities]
        return torch.stack(projected).amax(dim=0)
# --8<-- [end:operator]


# --8<-- [start:tests]
DIMS = {"image": 3, "audio": 2}


def inputs(batch: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, d, dtype=dtype, generator=g) for m, d in DIMS.items()}


def test_built_by_name_and_listed() -> None:
    op = fl.fusion.build("max", in_dims=DIMS, out_dim=4)
    assert isinstance(op, MaxFusion) and "max" in fl.fusion.available()
    assert op(inputs(5)).shape == (5, 4)


def test_is_the_elementwise_max_of_the_projections() -> None:
    op = MaxFusion({"a": 2, "b": 2}, out_dim=2)
    with torch.no_grad():                        # identity projections: z = max(a, b)
        for lin in op.proj.values():
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
    a, b = torch.tensor([[1.0, -3.0]]), torch.tensor([[0.5, 2.0]])
    torch.testing.assert_close(op({"a": a, "b": b}), torch.tensor([[1.0, 2.0]]))


def test_gradcheck_float64() -> None:
    op = MaxFusion(DIMS, out_dim=4).double()
    x = inputs(2, torch.float64)
    leaves = tuple(v.clone().requires_grad_(True) for v in x.values())
    assert torch.autograd.gradcheck(lambda *xs: op(dict(zip(DIMS, xs, strict=True))), leaves)


def test_batch_size_one_matches_batched() -> None:
    op, x = MaxFusion(DIMS, out_dim=4).eval(), inputs(3)
    one = op({m: v[1:2] for m, v in x.items()})
    torch.testing.assert_close(one, op(x)[1:2])


def test_state_dict_round_trip() -> None:
    op = MaxFusion(DIMS, out_dim=4)
    buf = io.BytesIO()
    torch.save(op.state_dict(), buf)
    buf.seek(0)
    fresh = MaxFusion(DIMS, out_dim=4)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(fresh(inputs(4)), op(inputs(4)), rtol=0, atol=0)


def test_bad_input_names_the_modality() -> None:
    op, x = MaxFusion(DIMS, out_dim=4), inputs(2)
    with pytest.raises(ValueError, match=r"modality 'audio'.*expected feature width 2"):
        op({**x, "audio": torch.randn(2, 5)})
    with pytest.raises(ValueError, match="missing modality 'audio'"):
        op({"image": x["image"]})
# --8<-- [end:tests]


# --8<-- [start:study]
def study_config(seeds: list[int], epochs: int, samples: int) -> dict[str, Any]:
    """Max fusion against built-in operators at late fusion on the synthetic lattice task."""
    return {
        "study": {"name": "max-fusion", "seeds": seeds},
        "data": {"name": "lattice", "options": {
            "dim": 16, "embed_dim": 16, "harmonics": 4, "scale": 2.0, "offset": 5.0,
            "sizes": {"train": samples, "val": samples // 8, "test": samples // 4}}},
        "model": {"name": "staged",
                  "encoders": {"x1": {"type": "mlp", "hidden": [64, 32]},
                               "x2": {"type": "mlp", "hidden": [64, 32]}},
                  "fusion": [{"at": "late", "operator": "concat"}],
                  "head": {"hidden": [64]}},
        "train": {"optimizer": "adam", "lr": 0.004, "epochs": epochs, "batch_size": 128},
        "grid": {"fusion": [{"op": ["concat", "sum", "product", "max"]}]},
        "evaluate": {"test": True, "cost": {}},
    }


def run(out: Path, budget: dict[str, Any], workers: int | None = None) -> None:
    cfg = parse_config(study_config(**budget))          # validated like a TOML file
    summary = run_study(cfg, out, workers=workers, progress=False)
    print(f"{summary.done} runs done, {summary.failed} failed")
    print(format_results_table(results_table(out)))
# --8<-- [end:study]


BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"seeds": [0, 1], "epochs": 20, "samples": 8000},
    "tiny": {"seeds": [0], "epochs": 1, "samples": 256},
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    p.add_argument("--out", type=Path, default=Path("runs/max-fusion"))
    p.add_argument("--workers", type=int, default=None, help="0: in-process (default: cores)")
    args = p.parse_args(argv)
    run(args.out, BUDGETS[args.budget], args.workers)


if __name__ == "__main__":
    main()
