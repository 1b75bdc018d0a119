"""``TrainConfig``: every knob of :func:`fuselab.train.fit`, validated on construction.

The config holds plain values only (str/int/float/bool/None and a ``{modality: SNR}`` dict) so it
round-trips through TOML, JSON and a ``weights_only`` checkpoint::

    cfg = TrainConfig(optimizer="adamw", lr=1e-3, epochs=20, patience=5, train_snr={"audio": 0.5})
    TrainConfig.from_dict(cfg.to_dict()) == cfg
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from fuselab.device import PRECISIONS

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step", "plateau")
GRAD_BLEND_MODES = ("off", "offline", "online")
GRAD_BLEND_ESTIMATES = ("joint", "separate")
VAL_SNR_MODES = ("train", "clean")
REGRESSION_LOSSES = ("mse", "l1")
#: Config keys that change how a run executes but not what it learns; a checkpoint written under
#: different values of these is still "the same config" (see ``load_checkpoint``).
#: Bounds that turn a typo (``epochs = 10000000000``) into an error instead of a run that never
#: ends; a seed must fit torch's 64-bit generator state.
MAX_EPOCHS = 100_000
MAX_THREADS = 1024
MAX_SEED = 2**63 - 1
RUNTIME_KEYS = (
    "progress", "threads", "compile", "eval_batch_size", "precompute_transforms", "channels_last",
    "retain_memory", "feature_cache",  # the old name of precompute_transforms, in old checkpoints
)
#: Deprecated key spellings (one release): old -> current; accepted with a DeprecationWarning.
ALIASES = {"feature_cache": "precompute_transforms"}


def _bad(key: str, expected: str, got: object) -> ValueError:
    return ValueError(f"train config {key!r}: expected {expected}, got {got!r}")


def _check_int(key: str, value: object, minimum: int, allow_none: bool = False,
               maximum: int | None = None) -> None:
    if value is None and allow_none:
        return
    if (not isinstance(value, int) or isinstance(value, bool) or value < minimum
            or (maximum is not None and value > maximum)):
        want = f"an int >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        raise _bad(key, want + (" or None" if allow_none else ""), value)


def _check_float(key: str, value: object, minimum: float, strict: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(v) and (v > minimum if strict else v >= minimum)
    if not ok:
        raise _bad(key, f"a finite number {'>' if strict else '>='} {minimum}", value)


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _bad(key, f"one of {list(choices)}", value)


@dataclass
class TrainConfig:
    """Hyper-parameters and run options of one training run.

    Attributes:
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        lr, weight_decay, momentum: optimizer settings (``momentum`` is used by SGD only).
        epochs: maximum number of passes over the training set.
        max_steps: stop after this many optimizer steps in total (``None``: no limit).
        batch_size, eval_batch_size: training / evaluation batch sizes.
        schedule: learning-rate schedule: ``"none"``, ``"cosine"`` (per step, to 0 at the last
            step), ``"step"`` (x ``gamma`` every ``step_size`` epochs), ``"plateau"`` (x ``gamma``
            after ``plateau_patience`` epochs without improvement of ``metric``).
        patience: early stopping after this many epochs without improvement of ``metric``
            (``None``: off). The best epoch's weights are restored at the end either way.
        metric: validation metric to monitor (``"auto"``: accuracy / mse / exact_match by task,
            or any metric name the task reports, or ``"loss"``).
        seed: seeds weight updates, shuffling and noise; same seed + config => same metrics.
        deterministic: turn on ``torch.use_deterministic_algorithms`` during the run.
        threads: ``torch.set_num_threads`` for the run (``None``: leave as is).
        compile: wrap the model in ``torch.compile`` for training and evaluation.
        channels_last: keep 4-D inputs and conv weights in channels-last memory format:
            ``true``, ``false`` or ``"auto"`` (on when every 2-D convolution of the model is a
            fuselab conv stage, whose fused kernels run fastest channels-last; off for other
            models, which may ``.view`` 4-D activations).
        retain_memory: keep freed tensor memory in the process heap instead of returning it to
            the system after every step (glibc ``mallopt``; process-wide and permanent, see
            :mod:`fuselab.train.memory`): large activations stop page-faulting each step.
            ``"auto"``: on in processes fuselab owns (the ``fuselab`` command, study workers),
            off in yours; ``true`` opts in anywhere (logged once); ``false``: never.
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"``: autocast of the forward pass
            on the model's device (weights, optimizer state and the loss stay float32).
            bfloat16 speeds up convolutions and matmuls on GPUs and on CPUs with
            AVX512-BF16/AMX; float16 is for GPUs (torch also runs it on CPUs, slowly) and
            scales the loss with ``torch.amp.GradScaler`` against gradient underflow.
        precompute_transforms: run a dataset's per-batch ``transform`` (e.g. spectrograms) once
            for every split used without noise, instead of every epoch (same batches; see
            :func:`fuselab.data.precompute_transform`). ``feature_cache`` is its deprecated
            name (``fuselab.data.FeatureCache`` is another thing: encoder outputs on disk).
        train_snr: ``{modality: linear SNR}`` of white noise added to training batches (paper 000);
            empty = clean training.
        val_snr: ``"train"`` validates (and early-stops) at the training SNR, with the same
            seeded noise every epoch, so model selection sees the distribution that training
            optimises; ``"clean"`` validates on clean inputs.
        grad_blend: gradient blending: ``"off"``, ``"offline"`` (weights estimated once from a
            ``grad_blend_every``-epoch trial run, then training restarts with them) or
            ``"online"`` (re-estimated every ``grad_blend_every`` epochs).
        grad_blend_every: epochs per gradient-blending estimation window.
        grad_blend_estimate: where the overfitting-to-generalization ratios are measured:
            ``"joint"`` (the unimodal heads trained inside the blended model) or ``"separate"``
            (Wang et al. / MultiBench: a copy of the model per head, each trained on that head's
            loss alone for ``grad_blend_every`` epochs from the current weights).
        grad_blend_holdout: fraction of the training set held out to measure generalization.
        regression_loss: ``"mse"`` or ``"l1"`` for regression tasks.
        mosi_metrics: add Acc-2/Acc-7/F1 for regression (``None``: when labels lie in [-3, 3]).
        progress: show a progress bar; ``fit(progress=...)`` overrides it for one call.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 64
    eval_batch_size: int = 512
    schedule: str = "none"
    step_size: int = 10
    gamma: float = 0.1
    plateau_patience: int = 2
    patience: int | None = None
    metric: str = "auto"
    seed: int = 0
    deterministic: bool = True
    threads: int | None = None
    compile: bool = False
    channels_last: bool | str = "auto"
    retain_memory: bool | str = "auto"
    precision: str = "float32"
    precompute_transforms: bool = True
    train_snr: dict[str, float | None] = field(default_factory=dict)
    val_snr: str = "train"
    grad_blend: str = "off"
    grad_blend_every: int = 1
    grad_blend_estimate: str = "joint"
    grad_blend_holdout: float = 0.1
    regression_loss: str = "mse"
    mosi_metrics: bool | None = None
    progress: bool = True
    feature_cache: InitVar[bool | None] = None  # deprecated name of precompute_transforms

    def __post_init__(self, feature_cache: bool | None) -> None:
        if feature_cache is not None:
            warnings.warn("train config 'feature_cache' is deprecated, use 'precompute_transforms'"
                          " (the old name will be removed)", DeprecationWarning, stacklevel=3)
            self.precompute_transforms = feature_cache
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_float("lr", self.lr, 0.0, strict=True)
        _check_float("weight_decay", self.weight_decay, 0.0, strict=False)
        _check_float("momentum", self.momentum, 0.0, strict=False)
        if float(self.momentum) >= 1.0:
            raise _bad("momentum", "a number in [0, 1)", self.momentum)
        _check_int("epochs", self.epochs, 1, maximum=MAX_EPOCHS)
        _check_int("max_steps", self.max_steps, 1, allow_none=True)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("eval_batch_size", self.eval_batch_size, 1)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_int("step_size", self.step_size, 1)
        _check_float("gamma", self.gamma, 0.0, strict=True)
        _check_int("plateau_patience", self.plateau_patience, 0)
        _check_int("patience", self.patience, 1, allow_none=True)
        if not isinstance(self.metric, str) or not self.metric:
            raise _bad("metric", "a metric name such as 'auto', 'accuracy', 'mse', 'loss'", self.metric)
        _check_int("seed", self.seed, 0, maximum=MAX_SEED)
        _check_int("threads", self.threads, 1, allow_none=True, maximum=MAX_THREADS)
        _check_choice("precision", self.precision, PRECISIONS)
        if not (isinstance(self.channels_last, bool) or self.channels_last == "auto"):
            raise _bad("channels_last", "true, false or 'auto'", self.channels_last)
        if not (isinstance(self.retain_memory, bool) or self.retain_memory == "auto"):
            raise _bad("retain_memory", "true, false or 'auto'", self.retain_memory)
        for key in ("deterministic", "compile", "precompute_transforms", "progress"):
            if not isinstance(getattr(self, key), bool):
                raise _bad(key, "true or false", getattr(self, key))
        if self.mosi_metrics is not None and not isinstance(self.mosi_metrics, bool):
            raise _bad("mosi_metrics", "true, false or None (auto)", self.mosi_metrics)
        if not isinstance(self.train_snr, Mapping):
            raise _bad("train_snr", "a {modality: linear SNR} mapping", self.train_snr)
        snr: dict[str, float | None] = {}
        for m, v in self.train_snr.items():
            if not isinstance(m, str):
                raise _bad("train_snr", "modality names as keys", m)
            if v is not None:
                _check_float(f"train_snr[{m!r}]", v, 0.0, strict=True)
                v = float(v)
            snr[m] = v
        self.train_snr = snr
        _check_choice("val_snr", self.val_snr, VAL_SNR_MODES)
        _check_choice("grad_blend", self.grad_blend, GRAD_BLEND_MODES)
        _check_int("grad_blend_every", self.grad_blend_every, 1)
        _check_choice("grad_blend_estimate", self.grad_blend_estimate, GRAD_BLEND_ESTIMATES)
        _check_float("grad_blend_holdout", self.grad_blend_holdout, 0.0, strict=True)
        if float(self.grad_blend_holdout) >= 1.0:
            raise _bad("grad_blend_holdout", "a fraction in (0, 1)", self.grad_blend_holdout)
        _check_choice("regression_loss", self.regression_loss, REGRESSION_LOSSES)

    def to_dict(self) -> dict[str, Any]:
        """Plain-value dict (JSON/TOML/checkpoint safe)."""
        out = dataclasses.asdict(self)
        out["train_snr"] = dict(self.train_snr)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` listing the allowed ones."""
        if not isinstance(values, Mapping):
            raise TypeError(f"train config: expected a mapping, got {type(values).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in allowed and key not in ALIASES:
                raise ValueError(f"train config: unknown key {key!r}; allowed: {sorted(allowed)}")
        for old, new in ALIASES.items():
            if old in values and new in values:
                raise ValueError(f"train config: both {old!r} (deprecated) and {new!r} are given; "
                                 f"keep only {new!r}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

