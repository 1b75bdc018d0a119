"""One error type and one register/available shape across every registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fuselab as fl
from fuselab._registry import Registry, UnknownNameError
from fuselab.models import encoders


def _lookups():
    yield "fusion operator", "lowrnk", "lowrank", lambda: fl.fusion.build("lowrnk", in_dims={"a": 2}, out_dim=2)
    yield "model family", "stagd", "staged", lambda: fl.models.build(
        {"name": "stagd"}, input_shapes={"a": (2,)}, num_outputs=2)
    yield "encoder type", "lstn", "lstm", lambda: encoders.build_encoder({"type": "lstn"}, (4, 3), where="enc")
    yield "dataset", "latice", "lattice", lambda: fl.data.load("latice")


@pytest.mark.parametrize("kind,typo,close,call", list(_lookups()), ids=lambda v: v if isinstance(v, str) else "")
def test_unknown_name_is_one_type_catchable_as_key_and_value_error(kind, typo, close, call):
    with pytest.raises(UnknownNameError) as info:
        call()
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    assert fl.UnknownNameError is UnknownNameError
    assert err.name == typo and close in err.allowed
    text = str(err)
    # KeyError.__str__ would quote the message; ours reads as written.
    assert not text.startswith(("'", '"'))
    assert f"unknown {kind} {typo!r}" in text
    assert f"Did you mean {close!r}?" in text
    assert repr(close) in text.split("allowed:")[1]
    for base in (KeyError, ValueError):
        with pytest.raises(base):
            call()


def test_no_suggestion_when_nothing_is_close():
    with pytest.raises(UnknownNameError) as info:
        fl.fusion.build("zzzzzzzz", in_dims={"a": 2}, out_dim=2)
    assert "Did you mean" not in str(info.value)
    assert str(info.value).endswith("].")


def test_where_prefixes_the_message():
    with pytest.raises(UnknownNameError, match=r"^model\.name: unknown model family 'x'"):
        fl.models.build({"name": "x"}, input_shapes={"a": (2,)}, num_outputs=2)
    with pytest.raises(UnknownNameError, match=r"^enc\.preset: unknown preset 'avmnist_imag'.*Did you mean 'avmnist_image'"):
        encoders.build_encoder({"preset": "avmnist_imag"}, (1, 28, 28), where="enc")


def test_register_as_decorator_and_as_call():
    reg: Registry[int] = Registry("thing")

    @reg.register("one")
    def one() -> int:
        return 1

    def two() -> int:
        return 2

    assert reg.register("two", two) is two
    assert reg.available() == ["one", "two"]
    assert reg.build("one") == 1 and reg.build("two") == 2
    assert reg.register("two", two) is two  # same object again: no-op
    with pytest.raises(ValueError, match="already registered"):
        reg.register("two", one)
    with pytest.raises(TypeError, match="non-empty str"):
        reg.register("")


class _Twice(nn.Module):
    def __init__(self, in_dims: dict[str, int], out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.proj = nn.Linear(sum(in_dims.values()), out_dim)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return 2 * self.proj(torch.cat([x[k] for k in sorted(x)], -1))


def test_every_registry_module_registers_and_lists():
    name = "test_twice_op"
    if name not in fl.fusion.available():
        fl.fusion.register(name, _Twice)
    assert name in fl.fusion.available()
    op = fl.fusion.build(name, in_dims={"a": 2}, out_dim=3)
    assert isinstance(op, _Twice) and op.out_dim == 3

    def family(config, *, input_shapes, num_outputs):
        return nn.Linear(input_shapes["a"][0], num_outputs)

    if "test_linear" not in fl.models.available():
        fl.models.register("test_linear", family)
    model = fl.models.build({"name": "test_linear"}, input_shapes={"a": (5,)}, num_outputs=2)
    assert isinstance(model, nn.Linear) and model.out_features == 2

    assert {"lenet", "lstm", "mlp"} <= set(encoders.available())
    assert {"avmnist", "lattice"} <= set(fl.data.available())
    for module in (fl.fusion, fl.models, encoders, fl.data):
        assert callable(module.register) and callable(module.available)
        assert module.available() == sorted(module.available())


def test_deprecated_register_aliases_warn_and_register():
    with pytest.warns(DeprecationWarning, match="register_encoder is deprecated"):
        deco = encoders.register_encoder("test_enc_alias", {"hidden": [3]})
    plan = encoders.base.ENCODERS.get("mlp")
    assert deco(plan) is plan
    assert "test_enc_alias" in encoders.available()
    assert encoders.resolve_encoder_config({"type": "test_enc_alias"}, "enc")["hidden"] == [3]

    def family(config, *, input_shapes, num_outputs):
        return nn.Identity()

    with pytest.warns(DeprecationWarning, match="register_model is deprecated"):
        fl.models.register_model("test_model_alias", family)
    assert "test_model_alias" in fl.models.available()
