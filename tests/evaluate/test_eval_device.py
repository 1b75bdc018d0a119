"""Every evaluation hands its model batches on the model's device, via ``fuselab.device``.

On a GPU an evaluation that forgot the move would feed CPU tensors to a CUDA model; on the CPU
both are the same device, so the move is made visible instead (``device_marks``): moved tensors
carry a mark, and the guarded models refuse unmarked inputs. One case per evaluation of the
study's ``[evaluate]`` table that runs a model (the list is checked against it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from test_eval_generation import LookupVQA, vqa_like

import fuselab.evaluate as ev
import fuselab.models as fm
from device_marks import guard, mark_moves
from fuselab.data import MultimodalDataset
from fuselab.study.evaluate_table import EVALUATIONS
from fuselab.train import score_split

ENC = {m: {"type": "lenet", "kernels": [3, 3], "channels": 2} for m in ("image", "audio")}
MSAF = [{"at": {"image": "conv1", "audio": "conv1"}, "operator": "msaf",
         "options": {"reduction": 1}}, {"at": "late", "operator": "concat"}]


def _data(n: int = 12, seed: int = 0) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    return MultimodalDataset(
        {"image": torch.rand(n, 1, 8, 8, generator=g), "audio": torch.randn(n, 1, 8, 6, generator=g)},
        torch.arange(n) % 3, num_classes=3)


def _staged(**config: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    base = {"name": "staged", "encoders": ENC, "head": {"hidden": [4]},
            "fusion": [{"at": "late", "operator": "concat"}]}
    return fm.build({**base, **config}, input_shapes=_data().shapes, num_outputs=3)


def _clstm() -> torch.nn.Module:
    torch.manual_seed(0)
    return fm.build({"name": "clstm", "fusion_layer": "initial", "units": 2, "hidden": 4},
                    input_shapes=_data().shapes, num_outputs=3)


SNRS = [None, 1.0]
#: study evaluation name -> (model builder, call)
CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
    "test": (_staged, lambda m: score_split(m, _data(), batch_size=5, snr={"audio": 1.0})),
    "snr_grid": (_staged, lambda m: ev.snr_grid(m, _data(), SNRS, batch_size=5)),
    "snr_curve": (lambda: _staged(fusion=MSAF),  # not factorisable: the direct path
                  lambda m: ev.snr_curves(m, _data(), SNRS, batch_size=5)),
    "missing_modality": (_staged, lambda m: ev.missing_modalities(
        m, _data(), train=_data(seed=1), batch_size=5)),
    "emap": (_staged, lambda m: ev.emap(m, _data(), reference=4, bootstrap=10, batch_size=5)),
    "cost": (_staged, lambda m: ev.cost(m, _data(), throughput_batch=4, train_batch=4,
                                        repeats=1, warmup=0)),
    "test_by_type": (LookupVQA, lambda m: ev.test_by_type(m, vqa_like(), drop=["image"])),
    "inspect_msaf": (lambda: _staged(fusion=MSAF), lambda m: ev.msaf_attention(m, _data())),
    "inspect_clstm": (_clstm, lambda m: ev.clstm_activations(m, _data())),
    "inspect_probe": (lambda: _staged(progressive={"steps": 2, "context_dim": 4}),
                      lambda m: ev.linear_probes(m, _data(seed=1), train=_data(), batch_size=5)),
}


def test_every_model_evaluation_has_a_case() -> None:
    runs_a_model = {name for name, (_, args) in EVALUATIONS.items() if "model" in args}
    assert runs_a_model == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_evaluation_moves_batches_to_the_model_device(name: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    build, call = CASES[name]
    model = guard(build())
    mark_moves(monkeypatch)
    records = call(model)
    assert records  # the evaluation ran its model on the moved batches and produced results


def test_the_guard_refuses_batches_that_were_not_moved() -> None:
    model = guard(_staged())
    x, _ = next(_data().batches(4))
    with pytest.raises(AssertionError, match=r"did not go through fuselab.device: "
                                             r"\[\"input\[0\]\['image'\]\""):
        model(x)
    with pytest.raises(AssertionError, match="unimodal_features got tensors"):
        model.unimodal_features(x)  # type: ignore[operator]
