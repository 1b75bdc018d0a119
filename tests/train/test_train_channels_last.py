"""``TrainConfig.channels_last = "auto"``: on exactly for conv-stage models, and safe for all of
them: every model of ``examples/avmnist.toml`` (early, mid and late fusion, MSAF / MMTM feature
maps, Pro-Fusion) gives the same loss and gradients in channels-last as in NCHW."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fuselab.models as fm
from fuselab.study.config import load_config
from fuselab.study.grid import expand
from fuselab.train import TrainConfig
from fuselab.train.trainer import resolve_channels_last

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHAPES = {"image": (1, 28, 28), "audio": (1, 201, 24)}


def avmnist_models() -> dict[str, dict]:
    specs = expand(load_config(EXAMPLES / "avmnist.toml"))
    # one entry per model (the grid also varies the training noise)
    return {s.variant.split(" · train_snr")[0]: s.config["model"] for s in specs}


@pytest.mark.parametrize(("variant", "config"), sorted(avmnist_models().items()))
def test_channels_last_matches_nchw(variant: str, config: dict) -> None:
    torch.manual_seed(0)
    model = fm.build(config, input_shapes=SHAPES, num_outputs=10).double()
    assert resolve_channels_last("auto", model), variant
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(1)
    x = {m: torch.randn(6, *s, generator=gen, dtype=torch.float64) for m, s in SHAPES.items()}
    x_cl = {m: v.contiguous(memory_format=torch.channels_last) for m, v in x.items()}
    y = torch.arange(6) % 10
    loss = F.cross_entropy(model(x), y)
    loss_cl = F.cross_entropy(model_cl(x_cl), y)
    loss.backward()
    loss_cl.backward()
    torch.testing.assert_close(loss_cl, loss, rtol=1e-10, atol=1e-12)
    for (name, p), p_cl in zip(model.named_parameters(), model_cl.parameters(), strict=True):
        torch.testing.assert_close(p_cl.grad, p.grad, rtol=1e-8, atol=1e-10, msg=name)


def test_auto_is_off_without_conv_stages() -> None:
    mlp = fm.build({"name": "staged", "encoders": {"a": {"type": "mlp", "hidden": [8]},
                                                   "b": {"type": "mlp", "hidden": [8]}},
                    "fusion": [{"at": "late", "operator": "concat"}]},
                   input_shapes={"a": (4,), "b": (6,)}, num_outputs=3)
    assert not resolve_channels_last("auto", mlp)

    class Foreign(nn.Module):  # a Conv2d outside fuselab's conv stages may .view its maps
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

    assert not resolve_channels_last("auto", Foreign())
    assert resolve_channels_last(True, mlp) and not resolve_channels_last(False, Foreign())


def test_channels_last_setting_is_validated() -> None:
    assert TrainConfig().channels_last == "auto"
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match=r"channels_last.*true, false or 'auto'"):
            TrainConfig(channels_last=bad)


def test_evaluations_run_channels_last_and_restore_the_layout() -> None:
    from fuselab.evaluate._common import eval_mode

    torch.manual_seed(0)
    model = fm.build(avmnist_models()["late · concat"], input_shapes=SHAPES, num_outputs=10)
    model.train()
    x = {m: torch.randn(4, *s) for m, s in SHAPES.items()}
    ref = copy.deepcopy(model).eval()
    fm.set_fused(ref, False)
    with eval_mode(model):
        assert all(c.weight.is_contiguous(memory_format=torch.channels_last)
                   for c in model.modules() if isinstance(c, nn.Conv2d))
        out = model(x)
    assert model.training
    assert all(c.weight.is_contiguous() for c in model.modules() if isinstance(c, nn.Conv2d))
    with torch.no_grad():
        torch.testing.assert_close(out, ref(x), rtol=1e-4, atol=1e-5)


def _conv_layouts(model: nn.Module) -> list[tuple[bool, bool]]:
    return [(c.weight.is_contiguous(), c.weight.is_contiguous(memory_format=torch.channels_last))
            for c in model.modules() if isinstance(c, nn.Conv2d)]


@pytest.mark.parametrize("caller_layout", ["nchw", "channels_last"])
def test_fit_gives_the_caller_back_their_layout(caller_layout: str) -> None:
    """``fit`` trains channels-last for speed (``auto``), then restores each conv weight's layout;
    the parameters stay the same objects (an optimizer of the caller keeps working)."""
    from fuselab.data import MultimodalDataset
    from fuselab.train import fit

    torch.manual_seed(0)
    model = fm.build(avmnist_models()["late · concat"], input_shapes=SHAPES, num_outputs=10)
    if caller_layout == "channels_last":
        model.to(memory_format=torch.channels_last)
    before, params = _conv_layouts(model), list(model.parameters())
    gen = torch.Generator().manual_seed(0)
    ds = MultimodalDataset({m: torch.randn(8, *s, generator=gen) for m, s in SHAPES.items()},
                           torch.arange(8) % 10, num_classes=10)
    seen: list[list[tuple[bool, bool]]] = []
    fit(model, ds, None, TrainConfig(epochs=1, batch_size=4, progress=False),
        on_epoch=lambda row: seen.append(_conv_layouts(model)) and None)
    assert all(cl for _, cl in seen[0])  # trained channels-last
    assert _conv_layouts(model) == before
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    with pytest.raises(ValueError, match="model output shape"):  # failed setup: untouched too
        fit(model, MultimodalDataset(ds.modalities, torch.arange(8) % 3, num_classes=3), None,
            TrainConfig(epochs=1, batch_size=4, progress=False))
    assert _conv_layouts(model) == before
