"""Forward call, output checks and whole-split scoring (:func:`score_split`) used by ``fit`` and
by a study's ``test`` evaluation (the task rules: losses, metrics, directions, live in
:mod:`fuselab.tasks`). Was ``fuselab.train.evaluation``: "evaluate" names the
:mod:`fuselab.evaluate` suite only.

Task conventions (docs/architecture.md): classification/regression call ``model(inputs)`` ->
``(B, num_outputs)``; generation calls ``model(inputs, labels)`` -> ``(B, L, V)`` teacher-forced
logits (position ``t`` predicts ``labels[:, t]``) and ``model.generate(inputs, max_len)`` ->
``(B, L')`` token ids.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fuselab.data import MultimodalDataset
from fuselab.tasks import LossFn, task_loss
from fuselab.train import metrics as M


def forward(model: nn.Module, inputs: dict[str, Tensor], labels: Tensor | None, task: str) -> Tensor:
    """``model(inputs, labels)`` for generation (teacher forcing), ``model(inputs)`` otherwise."""
    if task == "generation":
        if labels is None:
            raise ValueError("generation models need the labels for teacher forcing")
        return model(inputs, labels)
    return model(inputs)


def check_output(outputs: Tensor, labels: Tensor, data: MultimodalDataset) -> None:
    """``ValueError`` when the model output does not fit the label space of ``data``."""
    b = labels.shape[0]
    got = tuple(outputs.shape)
    if data.task == "classification":
        want = (b, data.num_classes)
        if got != want:
            raise ValueError(
                f"model output shape {got} does not match the label space of {data.name!r}: "
                f"expected (batch, num_classes) = {want}"
            )
    elif data.task == "regression":
        per = labels[0].numel() if b else 1
        if outputs.dim() == 0 or got[0] != b or outputs.numel() != labels.numel():
            raise ValueError(
                f"model output shape {got} does not match regression labels of {data.name!r} "
                f"with shape {tuple(labels.shape)}: expected ({b}, {per})"
            )
    else:
        vocab = data.num_classes
        if outputs.dim() != 3 or got[:2] != tuple(labels.shape[:2]) or (vocab and got[2] != vocab):
            raise ValueError(
                f"model output shape {got} does not match generation labels of {data.name!r}: "
                f"expected (batch, answer_len, vocab) = ({b}, {labels.shape[1]}, {vocab})"
            )


def model_inputs(
    inputs: dict[str, Tensor], needed: Sequence[str] | None, channels_last: bool = False
) -> dict[str, Tensor]:
    """Keep the modalities the model needs; optionally make 4-D tensors channels-last."""
    out = inputs if needed is None else {m: inputs[m] for m in needed}
    if channels_last:
        out = {
            m: x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
            for m, x in out.items()
        }
    return out


def needed_modalities(model: nn.Module, data: MultimodalDataset, who: str = "fit") -> tuple[str, ...] | None:
    """``model.modalities`` after checking ``data`` has each of them (``None``: not declared)."""
    mods = getattr(model, "modalities", None)
    if mods is None:
        return None
    for m in mods:
        if m not in data.names:
            raise ValueError(
                f"{who}: {type(model).__name__} needs modality {m!r}, but dataset {data.name!r} "
                f"has only {list(data.names)}"
            )
    return tuple(mods)


@torch.no_grad()
def score_split(
    model: nn.Module,
    data: MultimodalDataset,
    *,
    batch_size: int = 512,
    loss_fn: LossFn | None = None,
    mosi: bool | None = None,
    fwd: Callable[[dict[str, Tensor], Tensor], Tensor] | None = None,
    channels_last: bool = False,
    snr: Mapping[str, float | None] | None = None,
    seed: int = 0,
    noise_seed: int | None = None,
) -> dict[str, float]:
    """``loss`` plus the task metrics of ``model`` on all of ``data`` (eval mode).

    Batches are moved to the model's device (:meth:`MultimodalDataset.batches` with ``device``).
    Inputs are clean unless ``snr`` (``{modality: linear SNR}``) is given; the noise is then
    drawn on the model's device from a generator seeded with ``seed``, so repeated calls see
    identical noise (``noise_seed`` is its deprecated name).

    Classification: ``accuracy``, ``macro_f1``; regression: ``mse``, ``mae``, ``pearson_r`` (+
    ``acc2``, ``acc7``, ``f1`` for MOSI-style labels); generation: ``exact_match`` of
    ``model.generate`` against the labels, cut at ``meta["eos_id"]`` without ``meta["pad_id"]``.
    """
    if noise_seed is not None:
        warnings.warn("score_split(noise_seed=...) is deprecated; pass seed=", DeprecationWarning,
                      stacklevel=2)
        seed = noise_seed
    task = data.task
    meta = data.meta or {}
    loss_fn = loss_fn or task_loss(task, pad_id=meta.get("pad_id"))
    call = fwd or (lambda x, y: forward(model, x, y, task))
    needed = needed_modalities(model, data, "score_split")
    was = model.training
    model.eval()
    outs, labels, gens = [], [], []
    total, count = 0.0, 0
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        gen = torch.Generator(device=device).manual_seed(seed) if snr else None
        for x, y in data.batches(batch_size, snr=snr or None, noise_generator=gen, device=device):
            x = model_inputs(x, needed, channels_last)
            out = call(x, y)
            if count == 0:
                check_output(out, y, data)
            total += float(loss_fn(out, y)) * y.shape[0]
            count += int(y.shape[0])
            labels.append(y)
            if task == "generation":
                gens.append(model.generate(x, int(y.shape[1])))  # type: ignore[operator]
            else:
                outs.append(out.float())
    finally:
        model.train(was)
    if count == 0:
        raise ValueError(f"score_split: dataset {data.name!r} is empty")
    y_all = torch.cat(labels)
    result = {"loss": total / count}
    if task == "classification":
        result.update(M.classification_metrics(torch.cat(outs), y_all))
    elif task == "regression":
        result.update(M.regression_metrics(torch.cat(outs), y_all.float(), mosi=mosi))
    else:
        result["exact_match"] = M.exact_match(
            _pad_cat(gens, meta.get("pad_id")), y_all, eos_id=meta.get("eos_id"), pad_id=meta.get("pad_id")
        )
    return result


def _pad_cat(seqs: list[Tensor], pad_id: int | None) -> Tensor:
    # generate() may stop at different lengths per batch; exact_match ignores pad and -1.
    width = max(s.shape[1] for s in seqs)
    value = -1 if pad_id is None else int(pad_id)
    return torch.cat([F.pad(s, (0, width - s.shape[1]), value=value) for s in seqs])


def evaluate_split(model: nn.Module, data: MultimodalDataset, **kwargs: Any) -> dict[str, float]:
    """Deprecated alias (one release) of :func:`score_split`."""
    warnings.warn("fuselab.train.evaluate_split is deprecated; use fuselab.train.score_split",
                  DeprecationWarning, stacklevel=2)
    return score_split(model, data, **kwargs)
