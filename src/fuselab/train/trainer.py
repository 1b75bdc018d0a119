"""The step machinery of one ``fit`` call: model/optimizer setup, one training epoch, gradient
blending measurements. Batches are ``{modality: (B, *shape_m)}`` dicts from
:meth:`MultimodalDataset.batches`: one index-select per modality, moved to the model's device
(pinned and non-blocking from CPU to CUDA), batched noise (``TrainConfig.train_snr``) and the
dataset's transform on that device, one forward/backward (autocast per ``precision``, the loss
scaled for float16) and a fused optimizer update per step.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from fuselab import device as D
from fuselab.data import MultimodalDataset, precompute_transform
from fuselab.models import memory_formats, prefers_channels_last, restore_memory_formats
from fuselab.tasks import task_loss
from fuselab.train import blending as B
from fuselab.train.config import TrainConfig
from fuselab.train.errors import NonFiniteLossError
from fuselab.train.memory import retain_freed_memory, wants_retained_heap
from fuselab.train.optim import make_optimizer
from fuselab.train.progress import Progress
from fuselab.train.scoring import (
    check_output,
    forward,
    model_inputs,
    needed_modalities,
)


def resolve_channels_last(setting: bool | str, model: nn.Module) -> bool:
    """``TrainConfig.channels_last``: ``"auto"`` is on when the model has 2-D convolutions and all
    of them sit in fuselab conv stages (channels-last safe, and fastest with the fused kernels)."""
    return prefers_channels_last(model) if setting == "auto" else bool(setting)


class Trainer:
    """State of one ``fit`` call (model, optimizer, generators, counters); see :func:`fit`."""

    def __init__(
        self, model: nn.Module, train: MultimodalDataset, val: MultimodalDataset | None,
        config: TrainConfig, show: bool,
    ) -> None:
        self.model, self.config = model, config
        self.task = train.task
        self.needed = needed_modalities(model, train)
        if val is not None:
            needed_modalities(model, val)
        if config.precompute_transforms:
            train = precompute_transform(train, config.train_snr)
            val_snr = config.train_snr if config.val_snr == "train" else None
            val = precompute_transform(val, val_snr) if val is not None else None
        self.val = val
        self.loss_fn = task_loss(self.task, config.regression_loss, (train.meta or {}).get("pad_id"))
        if wants_retained_heap(config.retain_memory):
            retain_freed_memory()
        self.channels_last = resolve_channels_last(config.channels_last, model)
        self.net: nn.Module = torch.compile(model) if config.compile else model  # type: ignore[assignment]
        first = next(iter(model.parameters()), None)
        self.device = first.device if first is not None else torch.device("cpu")
        D.check_precision(config.precision, self.device)
        self.mixed = config.precision != "float32"
        self.scaler = D.grad_scaler(self.device, config.precision)
        num_outputs = self._probe(train)
        self.blender: B.GradientBlender | None = None
        self.train = train
        params = list(model.parameters())
        if config.grad_blend != "off":
            dims = B.check_blendable(model)
            self.blender = B.GradientBlender(dims, num_outputs)
            if self.channels_last:
                self.blender.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.train, self.holdout, self.probe = B.split_holdout(
                train, config.grad_blend_holdout, config.seed + 2
            )
            params += list(self.blender.parameters())
            self.blender.shared_forward = self._fuse_predict_matches(train)
        self.optimizer = make_optimizer(params, config)
        n, bs = len(self.train), config.batch_size
        # A final batch of one sample breaks BatchNorm in train mode; drop it instead.
        self.drop_last = n > bs and n % bs == 1
        self.steps_per_epoch = n // bs if self.drop_last else math.ceil(n / bs)
        total = config.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.shuffle_gen = torch.Generator().manual_seed(config.seed)
        # Noise is drawn on the model's device, where batches are prepared (fast on a GPU; so a
        # noisy run's noise differs between CPU and CUDA, as their generators differ).
        self.noise_gen = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.only: tuple[str, ...] | None = None  # heads whose loss is trained (None: blended)
        trial = self._trial_steps()
        self.bar = Progress(self.total_steps + trial, show)
        self.step = 0
        self.last_finite: float | None = None
        self.busy_s = 0.0
        self.samples = 0
        #: The caller's layout of each 4-D tensor, given back by :meth:`restore_layout`; the
        #: switch comes last, so a failed setup leaves the model untouched.
        self.formats = memory_formats(model)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def restore_layout(self) -> None:
        """Give the model the memory layout it had before ``fit`` (channels-last is ``fit``'s
        choice for speed, not the caller's)."""
        restore_memory_formats(self.model, self.formats)

    def _trial_steps(self) -> int:
        """Optimizer steps spent estimating blend weights outside the run itself (progress bar)."""
        c = self.config
        if self.blender is None or (c.grad_blend == "online" and c.grad_blend_estimate == "joint"):
            return 0
        window = c.grad_blend_every * self.steps_per_epoch
        if c.grad_blend_estimate == "joint":
            return window
        windows = 1 if c.grad_blend == "offline" else -(-c.epochs // c.grad_blend_every)
        return windows * len(self.blender.weights) * window

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Autocast on the model's device to ``precision`` (nothing for float32)."""
        return D.autocast(self.device, self.config.precision)

    def _fwd(self, x: dict[str, Tensor], y: Tensor | None = None) -> Tensor:
        with self.autocast():
            out = forward(self.net, x, y, self.task)
        return out.float() if self.mixed else out

    def _batches(self, data: MultimodalDataset, batch_size: int,
                 **kwargs: Any) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
        """Model-ready batches of ``data`` on the model's device."""
        for x, y in data.batches(batch_size, device=self.device, **kwargs):
            yield model_inputs(x, self.needed, self.channels_last), y

    def _update(self, loss: Tensor) -> None:
        """Backward and optimizer step; float16 scales the loss and skips steps whose gradients
        overflowed (the scaler then lowers its scale)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _fuse_predict_matches(self, train: MultimodalDataset) -> bool:
        """Whether ``predict(fuse(unimodal_features(x)))`` reproduces ``model(x)``: then blending
        computes the encoders once per step instead of twice."""
        m = self.model
        if not (callable(getattr(m, "fuse", None)) and callable(getattr(m, "predict", None))):
            return False
        x, y = next(self._batches(train, min(len(train), 8)))
        was = m.training
        m.eval()
        try:
            with torch.no_grad():
                full = forward(m, x, y, self.task)
                split = m.predict(m.fuse(m.unimodal_features(x)))  # type: ignore[operator]
            return bool(split.shape == full.shape and torch.allclose(split, full, rtol=1e-5, atol=1e-6))
        except Exception:
            # Any model whose pieces do not compose this way keeps the two-pass path.
            return False
        finally:
            m.train(was)

    def _probe(self, train: MultimodalDataset) -> int:
        """Check the output shape on one clean batch; returns the output width."""
        x, y = next(self._batches(train, min(len(train), 8)))
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            out = forward(self.model, x, y, self.task)
        self.model.train(was)
        check_output(out, y, train)
        return int(out.shape[-1]) if out.dim() > 1 else 1

    def _loss(self, x: dict[str, Tensor], y: Tensor) -> Tensor:
        if self.blender is None:
            return self.loss_fn(self._fwd(x, y), y)
        with self.autocast():
            losses = self.blender.losses(
                self.model, lambda i: self._fwd(i, y), x, y, self.loss_fn, self.only
            )
        return self.blender.blend({k: v.float() for k, v in losses.items()})

    def train_epoch(self, epoch: int, sched_per_step: Any) -> tuple[float, int, int]:
        """One pass (or until ``max_steps``); returns (mean loss, samples, steps)."""
        self.model.train()
        if self.blender is not None:
            self.blender.train()
        total, seen, steps = 0.0, 0, 0
        snr = self.config.train_snr or None
        start = time.perf_counter()
        batches = self._batches(
            self.train, self.config.batch_size, shuffle=True, generator=self.shuffle_gen,
            drop_last=self.drop_last, snr=snr, noise_generator=self.noise_gen,
        )
        for x, y in batches:
            if self.config.max_steps is not None and self.step >= self.config.max_steps:
                break
            loss = self._loss(x, y)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(self.step + 1, epoch, value, self.last_finite)
            self._update(loss)
            if sched_per_step is not None:
                sched_per_step.step()
            self.last_finite = value
            self.step += 1
            steps += 1
            n = int(y.shape[0])
            total += value * n
            seen += n
            elapsed = time.perf_counter() - start
            self.bar.step(value, seen / max(elapsed, 1e-9), epoch)
        self.busy_s += time.perf_counter() - start
        self.samples += seen
        return (total / seen if seen else math.nan), seen, steps

    def measure(self) -> dict[str, tuple[float, float]]:
        """``{head: (train-probe loss, holdout loss)}`` under the training SNR, fixed noise."""
        assert self.blender is not None
        snr = self.config.train_snr or None
        out: list[dict[str, float]] = []
        for ds in (self.probe, self.holdout):
            gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 3)
            batches = self._batches(ds, self.config.eval_batch_size, snr=snr, noise_generator=gen)
            with self.autocast():
                out.append(
                    self.blender.measure(self.model, self._fwd, batches, self.loss_fn, self.only)
                )
        return {k: (out[0][k], out[1][k]) for k in out[0]}

    def offline_weights(self, sched: Any) -> None:
        """Trial run of ``grad_blend_every`` epochs from the initial state to estimate the
        weights, then rewind weights and optimizer so the real run starts from scratch."""
        assert self.blender is not None
        if self.config.grad_blend_estimate == "separate":
            self.set_weights(self.separate_weights())  # copies: nothing to rewind
            return
        state = copy.deepcopy((self.model.state_dict(), self.blender.state_dict(), self.optimizer.state_dict()))
        before = self.measure()
        for e in range(self.config.grad_blend_every):
            self.train_epoch(-(e + 1), None)
        self.set_weights(B.blend_weights(before, self.measure()))
        self.model.load_state_dict(state[0])
        self.blender.load_state_dict(state[1])
        self.optimizer.load_state_dict(state[2])
        self.scaler = D.grad_scaler(self.device, self.config.precision)  # the initial scale
        self.step, self.last_finite = 0, None

    def set_weights(self, new: dict[str, float] | None) -> None:
        """Use ``new`` blend weights; ``None`` (no head generalized) keeps the current ones."""
        if new is not None and self.blender is not None:
            self.blender.weights = new

    def separate_weights(self) -> dict[str, float] | None:
        """Blend weights of Wang et al.'s protocol (MultiBench ``gb_estimate``): for every head
        ``k`` a copy of model and heads, from the current weights, with a fresh optimizer at the
        configured ``lr`` (no schedule), trains ``grad_blend_every`` epochs on ``L_k`` alone;
        ``k``'s train-probe and hold-out losses before and after give its ratio. For a late-style
        model, training on ``L_m`` moves only modality ``m``'s encoder and head: the copy *is*
        the separately trained unimodal network. The run's own weights and draws are untouched."""
        assert self.blender is not None
        before: dict[str, tuple[float, float]] = {}
        after: dict[str, tuple[float, float]] = {}
        for k in self.blender.weights:
            sub = self._copy_for(k)
            before[k] = sub.measure()[k]
            for e in range(self.config.grad_blend_every):
                sub.train_epoch(-(e + 1), None)
            after[k] = sub.measure()[k]
        return B.blend_weights(before, after)

    def _copy_for(self, head: str) -> Trainer:
        assert self.blender is not None
        sub = copy.copy(self)
        sub.model = sub.net = copy.deepcopy(self.model)
        sub.blender = copy.deepcopy(self.blender)
        sub.blender.weights = {k: float(k == head) for k in self.blender.weights}
        sub.only = (head,)
        sub.optimizer = make_optimizer([*sub.model.parameters(), *sub.blender.parameters()],
                                       self.config)
        # every copy sees the same batches and noise, and none of the run's own draws
        sub.shuffle_gen = torch.Generator().manual_seed(self.config.seed + 4)
        sub.noise_gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 5)
        sub.step, sub.last_finite, sub.busy_s, sub.samples = 0, None, 0.0, 0
        return sub
