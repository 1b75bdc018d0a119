"""C-LSTM final-layer activations per time step (paper 000, Figure 11).

``model.step_logits(inputs) -> (B, T, classes)`` gives the dense head's output at every step of
the recurrence; the image is seen from the first step and the (front-zero-padded) audio arrives
over time, so the curves show when each modality starts to decide the class. Shown for chosen
samples under several SNR scenarios; the default scenarios are paper 000's: both original, audio
cleaner than image (1.0 / 0.25), image cleaner than audio (0.25 / 1.0), equal (0.5 / 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fuselab.data import MultimodalDataset
from fuselab.evaluate._common import (
    Record,
    check_dataset,
    eval_mode,
    model_device,
    record,
    restrict,
    to_device,
)
from fuselab.evaluate.snr import check_snr_value


def default_scenarios(a: str, b: str) -> list[dict[str, float | None]]:
    """Paper 000 Figure 11's four (``a``, ``b``) SNR scenarios, ``a`` being the audio."""
    pairs = [(None, None), (1.0, 0.25), (0.25, 1.0), (0.5, 0.5)]
    return [{a: x, b: y} for x, y in pairs]


def clstm_activations(
    model: nn.Module,
    ds: MultimodalDataset,
    *,
    samples: Sequence[int] = (0,),
    scenarios: Sequence[Mapping[str, float | None]] | None = None,
    seed: int = 0,
) -> list[Record]:
    """Final-layer activations of ``model.step_logits`` per step, class, scenario and sample.

    Args:
        samples: dataset indices to show.
        scenarios: ``[{modality: linear SNR or None}, ...]``; default: paper 000's four over
            ``("audio", "image")`` (or the model's two modalities).
        seed: seeds the noise of every scenario.

    Returns:
        ``{"evaluation": "inspect_clstm", "metric": "activation", "value", "step", "class",
        "snr_<m>" for every scenario modality, "sample"}`` records; ``step`` is the 0-based step.
    """
    names = check_dataset(model, ds, "clstm_activations")
    step_logits = getattr(model, "step_logits", None)
    if not callable(step_logits):
        raise TypeError(
            f"clstm_activations: model {type(model).__name__} has no step_logits(inputs) method "
            "(the C-LSTM has it)"
        )
    idx = [int(i) for i in samples]
    if not idx or any(i < 0 or i >= len(ds) for i in idx):
        raise ValueError(f"samples: indices must lie in [0, {len(ds)}), got {list(samples)}")
    if scenarios is None:
        pair = ("audio", "image") if {"audio", "image"} <= set(names) else names[:2]
        if len(pair) != 2:
            raise ValueError(f"scenarios: give them explicitly for modalities {list(names)}")
        scenarios = default_scenarios(*pair)
    for k, sc in enumerate(scenarios):
        for m in sc:
            if m not in ds.names:
                raise ValueError(f"scenarios[{k}]: dataset has no modality {m!r}")
            check_snr_value(sc[m], f"scenarios[{k}][{m!r}]")
    sub = ds.subset(idx)
    device = model_device(model)
    out: list[Record] = []
    with eval_mode(model):
        for sc in scenarios:
            gen = torch.Generator().manual_seed(seed)
            snr = {m: sc.get(m) for m in ds.names}
            inputs, _ = next(sub.batches(len(idx), snr=snr, noise_generator=gen))
            logits: Tensor = step_logits(to_device(restrict(inputs, names), device))
            if (
                logits.dim() != 3
                or logits.shape[0] != len(idx)
                or (ds.task == "classification" and logits.shape[2] != ds.num_classes)
            ):
                raise ValueError(
                    f"clstm_activations: step_logits must return (B, T, num_classes) = "
                    f"({len(idx)}, T, {ds.num_classes}), got {tuple(logits.shape)}"
                )
            cond = {f"snr_{m}": v for m, v in sc.items()}
            values = logits.detach().double().cpu()
            for row, sample in enumerate(idx):
                for t in range(values.shape[1]):
                    for c in range(values.shape[2]):
                        out.append(
                            record(
                                "inspect_clstm",
                                "activation",
                                float(values[row, t, c]),
                                step=t,
                                sample=sample,
                                **cond,
                                **{"class": c},
                            )
                        )
    return out
