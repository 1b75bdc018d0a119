"""Multimodal data: AV-MNIST, synthetic tasks, MOSI-format and user tensors, noise, feature cache.

import fuselab as fl
train = fl.data.load("avmnist", root="../shared/data", split="train")
train.modalities["image"].shape, train.labels.shape
"""

from fuselab.data import avmnist as _avmnist
from fuselab.data import latent_z as _latent_z
from fuselab.data import lattice as _lattice
from fuselab.data.dataset import MultimodalDataset, check_has_modalities
from fuselab.data.noise import add_white_noise, snr_from_db
from fuselab.data.registry import DATASETS, SPLITS, available, load, load_splits, register

del _avmnist, _lattice, _latent_z  # imported for their @register side effect

__all__ = [
    "DATASETS",
    "SPLITS",
    "MultimodalDataset",
    "add_white_noise",
    "available",
    "check_has_modalities",
    "load",
    "load_splits",
    "register",
    "snr_from_db",
]
