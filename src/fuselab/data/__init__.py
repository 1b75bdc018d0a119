"""Multimodal data: AV-MNIST, synthetic tasks, MOSI-format and user tensors, noise, feature cache.

import fuselab as fl
train = fl.data.load("avmnist", root="../shared/data", split="train")
train.modalities["image"].shape, train.labels.shape
"""

from fuselab.data.dataset import MultimodalDataset, check_has_modalities
from fuselab.data.registry import DATASETS, SPLITS, available, load, load_splits, register

__all__ = [
    "DATASETS",
    "SPLITS",
    "MultimodalDataset",
    "available",
    "check_has_modalities",
    "load",
    "load_splits",
    "register",
]
