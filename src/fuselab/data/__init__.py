"""Multimodal data: AV-MNIST, synthetic tasks, MOSI-format and user tensors, noise, feature cache.

import fuselab as fl
train = fl.data.load("avmnist", root="../shared/data", split="train")
train.modalities["image"].shape, train.labels.shape

Registered datasets: ``"avmnist"``, ``"lattice"``, ``"latent_z"``, ``"vqa"``, ``"mosi"``,
``"tensors"`` (see docs/data.md for every option).
"""

from fuselab.data.avmnist import build_avmnist
from fuselab.data.avmnist_noise import AVMNISTNoise
from fuselab.data.dataset import MultimodalDataset, check_has_modalities
from fuselab.data.feature_cache import CachedEncoder, FeatureCache, encoder_key
from fuselab.data.latent_z import build_latent_z
from fuselab.data.lattice import build_lattice
from fuselab.data.mosi import build_mosi
from fuselab.data.noise import add_white_noise, power_ratio, snr_from_db
from fuselab.data.precompute import precompute_transform
from fuselab.data.registry import (
    DATASETS,
    SPLITS,
    available,
    identity,
    load,
    load_splits,
    register,
    register_identity,
)
from fuselab.data.tensors import build_tensors
from fuselab.data.vqa import WordTokenizer, build_vqa

__all__ = [
    "DATASETS",
    "SPLITS",
    "AVMNISTNoise",
    "CachedEncoder",
    "FeatureCache",
    "MultimodalDataset",
    "WordTokenizer",
    "add_white_noise",
    "available",
    "build_avmnist",
    "build_latent_z",
    "build_lattice",
    "build_mosi",
    "build_tensors",
    "build_vqa",
    "check_has_modalities",
    "encoder_key",
    "identity",
    "load",
    "load_splits",
    "power_ratio",
    "precompute_transform",
    "register",
    "register_identity",
    "snr_from_db",
]
