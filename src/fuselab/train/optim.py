"""Optimizer and learning-rate schedule from a :class:`TrainConfig`."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from fuselab.train.config import TrainConfig

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def make_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD (with momentum) using the fused single-kernel update on CPU."""
    plist = [p for p in params if p.requires_grad]
    if not plist:
        raise ValueError("fit: the model has no trainable parameters")
    # fused=True updates every parameter in one kernel instead of a Python loop over tensors.
    if config.optimizer == "adam":
        return torch.optim.Adam(plist, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(plist, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.SGD(
        plist, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=True
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int, maximize: bool
) -> Scheduler | None:
    """The schedule named by ``config.schedule``; cosine is stepped per optimizer step, ``step``
    and ``plateau`` once per epoch (plateau with the monitored validation metric)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max" if maximize else "min",
            factor=config.gamma,
            patience=config.plateau_patience,
        )
    return None
