"""Bad input: one case each, with messages naming the modality, the expectation and the input."""

from __future__ import annotations

import pytest
import torch
from fusion_cases import CASES, Case

import fuselab as fl


@pytest.fixture
def vec_op() -> torch.nn.Module:
    return fl.fusion.build("lowrank", in_dims={"image": 4, "audio": 3}, out_dim=5, rank=2)


@pytest.fixture
def map_op() -> torch.nn.Module:
    return fl.fusion.build(
        "msaf", in_channels={"video": 4, "audio": 3}, block_channel=2, reduction=1
    )


def test_missing_modality(vec_op: torch.nn.Module) -> None:
    with pytest.raises(
        ValueError,
        match=r"missing modality 'audio' \(expected modalities \['audio', 'image'\], got \['image'\]\)",
    ):
        vec_op({"image": torch.randn(2, 4)})


def test_unexpected_modality(vec_op: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match=r"unexpected modality 'text'"):
        vec_op({"image": torch.randn(2, 4), "audio": torch.randn(2, 3), "text": torch.randn(2, 1)})


def test_wrong_width(vec_op: torch.nn.Module) -> None:
    with pytest.raises(
        ValueError, match=r"modality 'audio': expected feature width 3, got shape \(2, 7\)"
    ):
        vec_op({"image": torch.randn(2, 4), "audio": torch.randn(2, 7)})


def test_mismatched_batch(vec_op: torch.nn.Module) -> None:
    with pytest.raises(
        ValueError,
        match=r"batch size mismatch: modality 'image' has 2 samples, modality 'audio' has 3",
    ):
        vec_op({"image": torch.randn(2, 4), "audio": torch.randn(3, 3)})


def test_wrong_rank(vec_op: torch.nn.Module) -> None:
    with pytest.raises(
        ValueError,
        match=r"modality 'image': expected shape \(B, 4\) or \(B, T, 4\), got \(2, 1, 1, 4\)",
    ):
        vec_op({"image": torch.randn(2, 1, 1, 4), "audio": torch.randn(2, 3)})


def test_non_floating_dtype(vec_op: torch.nn.Module) -> None:
    with pytest.raises(
        TypeError,
        match=r"modality 'audio': expected a floating-point tensor, got dtype torch.int64",
    ):
        vec_op({"image": torch.randn(2, 4), "audio": torch.ones(2, 3, dtype=torch.long)})


def test_feature_map_wrong_channels(map_op: torch.nn.Module) -> None:
    with pytest.raises(
        ValueError, match=r"modality 'audio': expected 3 channels at dim 1, got shape \(2, 5, 8\)"
    ):
        map_op({"video": torch.randn(2, 4, 3, 3), "audio": torch.randn(2, 5, 8)})


def test_feature_map_wrong_rank(map_op: torch.nn.Module) -> None:
    with pytest.raises(
        ValueError,
        match=r"modality 'video': expected shape \(B, 4, \*spatial\) with at least 3 dims, got \(2, 4\)",
    ):
        map_op({"video": torch.randn(2, 4), "audio": torch.randn(2, 3, 8)})


def test_sequence_layout_wants_channels_last() -> None:
    op = fl.fusion.build(
        "msaf", in_channels={"a": 4, "b": 3}, block_channel=2, reduction=1, layout="sequence"
    )
    with pytest.raises(
        ValueError, match=r"modality 'b': expected 3 channels at dim 2, got shape \(2, 3, 8\)"
    ):
        op({"a": torch.randn(2, 8, 4), "b": torch.randn(2, 3, 8)})
    with pytest.raises(
        ValueError,
        match=r"modality 'a': expected a sequence of shape \(B, T, 4\), got \(2, 8, 4, 1\)",
    ):
        op({"a": torch.randn(2, 8, 4, 1), "b": torch.randn(2, 8, 3)})


def test_sequence_length_mismatch_and_mixed_ranks(vec_op: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="sequence length mismatch"):
        vec_op({"image": torch.randn(2, 5, 4), "audio": torch.randn(2, 6, 3)})
    with pytest.raises(ValueError, match="mix of vector and sequence inputs"):
        vec_op({"image": torch.randn(2, 5, 4), "audio": torch.randn(2, 3)})


def test_not_a_dict(vec_op: torch.nn.Module) -> None:
    with pytest.raises(TypeError, match="expected a dict of named modalities"):
        vec_op([torch.randn(2, 4), torch.randn(2, 3)])


def test_unknown_operator_name() -> None:
    with pytest.raises(KeyError, match="Did you mean 'lowrank'"):
        fl.fusion.build("lowrnak", in_dims={"a": 1}, out_dim=1)


def test_nlgate_mask_of_wrong_shape_names_the_modality() -> None:
    op = fl.fusion.build("nlgate", in_dims={"a": 3, "b": 2}, out_dim=4)
    xs = {"a": torch.randn(2, 5, 3), "b": torch.randn(2, 4, 2)}
    with pytest.raises(
        ValueError, match=r"modality 'b': padding mask must have shape \(B, T\) = \(2, 4\), got \(2, 5\)"
    ):
        op(xs, {"b": torch.zeros(2, 5, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"mask for unknown modality 'c'"):
        op(xs, {"c": torch.zeros(2, 4, dtype=torch.bool)})


def test_mult_mask_must_be_bool_and_settings_checked() -> None:
    op = fl.fusion.build("mult", in_dims={"a": 3, "b": 2}, out_dim=2, width=4, num_heads=2,
                         num_layers=1)
    xs = {"a": torch.randn(2, 5, 3), "b": torch.randn(2, 4, 2)}
    with pytest.raises(TypeError, match=r"modality 'a': padding mask must be a bool tensor"):
        op(xs, {"a": torch.zeros(2, 5)})
    with pytest.raises(ValueError, match=r"modality 'a': a padding mask needs a sequence"):
        op({"a": torch.randn(2, 3), "b": torch.randn(2, 2)}, {"a": torch.zeros(2, 1).bool()})
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        fl.fusion.build("mult", in_dims={"a": 3, "b": 2}, out_dim=2, kernel_size=2)
    with pytest.raises(ValueError, match=r"num_heads must be a positive divisor of width=30"):
        fl.fusion.build("mult", in_dims={"a": 3, "b": 2}, out_dim=2, num_heads=4)


def test_multiplicative_and_deepset_name_the_modality() -> None:
    mi = fl.fusion.build("multiplicative", in_dims={"c": 3, "x": 4}, out_dim=4, form="vector")
    with pytest.raises(
        ValueError, match=r"modality 'x': expected feature width 4, got shape \(2, 5\)"
    ):
        mi({"c": torch.randn(2, 3), "x": torch.randn(2, 5)})
    ds = fl.fusion.build("deepset", in_dims={"a": 3, "b": 2, "c": 4}, out_dim=2)
    with pytest.raises(ValueError, match=r"missing modality 'c'"):
        ds({"a": torch.randn(2, 3), "b": torch.randn(2, 2)})


# Every registered operator (fusion_cases.CASES), so operators added later are covered too.


def _case_op(case: Case) -> torch.nn.Module:
    torch.manual_seed(0)
    op = fl.fusion.build(case.name, **case.kwargs)
    return op.eval() if case.eval_mode else op


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_wrong_dtype_names_the_modality(case: Case, gen: torch.Generator) -> None:
    op = _case_op(case)
    inputs = case.make(2, torch.float32, gen)
    last = list(inputs)[-1]
    if any(p.is_floating_point() for p in [*op.parameters(), *op.buffers()]):
        bad = {**inputs, last: inputs[last].double()}  # float64 into a float32 operator
        with pytest.raises(TypeError, match=rf"modality '{last}': expected dtype torch.float32 "
                                            r"\(the operator's parameters\), got torch.float64"):
            op(bad)
    mixed = {m: x.double() if m == last else x for m, x in inputs.items()}
    with pytest.raises(TypeError, match=rf"modality '{last}'.*torch.float64"):
        op(mixed)
    with pytest.raises(TypeError, match="expected a dict of named modalities"):
        op(list(inputs.values()))
    with pytest.raises(TypeError, match=rf"modality '{last}': expected a torch.Tensor, got list"):
        op({**inputs, last: inputs[last].tolist()})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_autocast_inputs_are_accepted(case: Case, gen: torch.Generator) -> None:
    """Under CPU autocast encoders hand bfloat16 features to float32 operators: not an error."""
    op = _case_op(case)
    inputs = {m: x.to(torch.bfloat16) for m, x in case.make(2, torch.float32, gen).items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = op(inputs)
    for t in out.values() if isinstance(out, dict) else [out]:
        assert torch.isfinite(t.float()).all()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_empty_batch_gives_an_empty_output(case: Case, gen: torch.Generator) -> None:
    op = _case_op(case).eval()
    full = op(case.make(2, torch.float32, gen))
    out = op(case.make(0, torch.float32, gen))
    if isinstance(full, dict):
        assert {m: t.shape for m, t in out.items()} == {
            m: (0, *t.shape[1:]) for m, t in full.items()
        }
        assert all(t.dtype == torch.float32 for t in out.values())
    else:
        assert out.shape == (0, *full.shape[1:]) and out.dtype == torch.float32


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_empty_map_or_sequence_is_refused(case: Case, gen: torch.Generator) -> None:
    """A zero-size spatial/time dim would average to NaN (MSAF, MMTM) or attend over nothing:
    every operator refuses it, naming the modality."""
    op = _case_op(case)
    inputs = case.make(2, torch.float32, gen)
    last = list(inputs)[-1]
    x = inputs[last]
    if x.dim() == 2:  # vector inputs: make them sequences of length 0
        if not getattr(op, "accepts_sequences", False):
            pytest.skip(f"{case.id} takes vectors only")
        bad = {m: t.unsqueeze(1)[:, :0 if m == last else 1] for m, t in inputs.items()}
    else:
        maps = isinstance(op, fl.fusion.FeatureMapOp) and case.kwargs.get("layout") != "sequence"
        dim = 2 if maps else 1  # (B, C, *spatial) maps, else (B, T, D) sequences
        bad = {**inputs, last: x.narrow(dim, 0, 0)}
    with pytest.raises(ValueError, match=rf"modality '{last}': empty (map|sequence)"):
        op(bad)


def test_msaf_and_mmtm_refuse_an_empty_spatial_dim() -> None:
    """Regression: a (2, C, 0, W) map made the *other* modality's output all NaN."""
    for name in ("msaf", "mmtm"):
        op = fl.fusion.build(name, in_channels={"a": 8, "b": 8}).eval()
        with pytest.raises(ValueError, match=r"modality 'a': empty map .* got shape \(2, 8, 0, 5\)"):
            op({"a": torch.randn(2, 8, 0, 5), "b": torch.randn(2, 8, 3)})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_valid_call_lets_no_later_bad_input_through(case: Case, gen: torch.Generator) -> None:
    """Vector operators remember the signature of the last inputs that passed their checks:
    every change that the checks look at (names, batch, dtype, the parameters' dtype after
    ``.double()`` or an assigning ``load_state_dict``) must be checked again."""
    op = _case_op(case)
    good = case.make(2, torch.float32, gen)
    op(good)
    last = list(good)[-1]
    with pytest.raises(ValueError, match=rf"missing modality '{last}'"):
        op({m: x for m, x in good.items() if m != last})
    with pytest.raises(ValueError, match=rf"batch size mismatch.*modality '{last}' has 3"):
        op({**good, last: case.make(3, torch.float32, gen)[last]})
    with pytest.raises(TypeError, match=rf"modality '{last}'.*torch.float64"):
        op({**good, last: good[last].double()})
    op(good)
    if not any(p.is_floating_point() for p in op.parameters()):
        return
    op.double()
    with pytest.raises(TypeError, match=r"expected dtype torch.float64 \(the operator's param"):
        op(good)
    op.float()
    op(good)
    op.load_state_dict({k: v.double() for k, v in op.state_dict().items()}, assign=True)
    with pytest.raises(TypeError, match=r"expected dtype torch.float64 \(the operator's param"):
        op(good)


def test_the_remembered_check_knows_autocast(vec_op: torch.nn.Module) -> None:
    """Inputs that passed only because autocast was on are checked again once it is off."""
    low = {"image": torch.randn(2, 4).bfloat16(), "audio": torch.randn(2, 3).bfloat16()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        vec_op(low)
    with pytest.raises(TypeError, match=r"'image': expected dtype torch.float32 .* got torch.bf"):
        vec_op(low)


def test_input_checks_switch_off_and_back() -> None:
    """Off, a swapped pair of widths with the right total goes through `concat` unnoticed (which
    is what the checks are for); the context manager restores the previous setting."""
    op = fl.fusion.build("concat", in_dims={"image": 4, "audio": 3})
    msaf = fl.fusion.build("msaf", in_channels={"video": 4, "audio": 3}, block_channel=2, reduction=1)
    swapped = {"image": torch.randn(2, 3), "audio": torch.randn(2, 4)}
    bad_map = {"video": torch.randn(2, 5, 3), "audio": torch.randn(2, 3, 3)}
    try:
        with fl.fusion.set_input_checks(False):
            assert not fl.fusion.input_checks_enabled()
            assert op(swapped).shape == (2, 7)
            msaf.check_inputs(bad_map)
        assert fl.fusion.input_checks_enabled()
        with pytest.raises(ValueError, match=r"'image': expected feature width 4, got shape \(2, 3"):
            op(swapped)
        with pytest.raises(ValueError, match=r"'video': expected 4 channels at dim 1"):
            msaf.check_inputs(bad_map)
        fl.fusion.set_input_checks(False)
        assert op(swapped).shape == (2, 7)
        with pytest.raises(TypeError, match="expected True or False, got 0"):
            fl.fusion.set_input_checks(0)  # type: ignore[arg-type]
    finally:
        fl.fusion.set_input_checks(True)
    with pytest.raises(ValueError, match="expected feature width 4"):
        op(swapped)
