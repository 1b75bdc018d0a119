"""Properties every operator must have: gradcheck, batch size 1, state_dict round trip, compile."""

from __future__ import annotations

import io

import pytest
import torch
from fusion_cases import CASES, Case
from torch import Tensor

import fuselab as fl


def _flat(out: Tensor | dict[str, Tensor]) -> Tensor:
    if isinstance(out, dict):
        return torch.cat([v.flatten() for v in out.values()])
    return out


def _build(case: Case, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    op = fl.fusion.build(case.name, **case.kwargs).to(dtype)
    if case.eval_mode:
        op.eval()
    return op


def test_every_registered_operator_has_a_case() -> None:
    assert {c.name for c in CASES} == set(fl.fusion.available())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_gradcheck_float64(case: Case, gen: torch.Generator) -> None:
    op = _build(case, torch.float64)
    inputs = case.make(2, torch.float64, gen)
    names = list(inputs)
    leaves = tuple(inputs[m].clone().requires_grad_(True) for m in names)

    def f(*xs: Tensor) -> Tensor:
        return _flat(op(dict(zip(names, xs, strict=True))))

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_batch_size_one_matches_batched(case: Case, gen: torch.Generator) -> None:
    op = _build(case, torch.float64).eval()
    inputs = case.make(3, torch.float64, gen)
    full = op(inputs)
    one = op({m: x[1:2] for m, x in inputs.items()})
    if isinstance(full, dict):
        for m in full:
            torch.testing.assert_close(one[m], full[m][1:2])
    else:
        torch.testing.assert_close(one, full[1:2])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_state_dict_round_trip(case: Case, gen: torch.Generator) -> None:
    op = _build(case)
    for p in op.parameters():  # move away from the init so a silent re-init would be caught
        torch.nn.init.normal_(p, generator=gen)
    buf = io.BytesIO()
    torch.save(op.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)
    fresh = fl.fusion.build(case.name, **case.kwargs)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    op.eval()
    fresh.eval()
    inputs = case.make(4, torch.float32, gen)
    torch.testing.assert_close(_flat(fresh(inputs)), _flat(op(inputs)), rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_compiles_fullgraph(case: Case, gen: torch.Generator) -> None:
    torch._dynamo.reset()
    op = _build(case).eval()
    inputs = case.make(4, torch.float32, gen)
    compiled = torch.compile(op, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(_flat(compiled(inputs)), _flat(op(inputs)))
