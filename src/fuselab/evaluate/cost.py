"""Cost of a model: parameters, FLOPs, latency, throughput, training speed, peak memory.

All measurements use clean model-ready inputs ``{m: (B, *shape_m)}`` taken from a dataset (rows are
repeated when it holds fewer than the batch size) on the model's own device:

* ``params``: all parameters; ``fusion_params``: ``model.fusion_parameters()`` (when the model has
  it; fuselab models do).
* ``flops_per_sample``: ``torch.utils.flop_counter.FlopCounterMode`` over one eval-mode forward
  pass, divided by the batch size (a multiply-add counts as 2 FLOPs; elementwise ops count 0),
  with PyTorch's fused transformer fast path off while counting (the counter cannot see inside it)
  and CPU scaled dot-product attention counted with torch's own SDPA formula.
* ``latency_ms_b1`` / ``throughput``: medians over repeated eval-mode forward passes at batch
  1 (milliseconds) and at ``throughput_batch`` (samples/s; the record's ``batch_size`` field says
  which, default 256), after warm-up. (Older versions named it ``throughput_b256`` whatever the
  batch; stores they wrote are read under the new name.) On CUDA every timed call is
  bracketed by ``torch.cuda.synchronize`` (:func:`fuselab.device.synchronize`): kernels run
  asynchronously, so the clock would otherwise read the launch time, not the compute time.
* ``train_samples_per_s``: forward + backward + SGD step on a *copy* of the model (the model is
  not changed) at ``train_batch`` (the record's ``batch_size``), median after warm-up.
* Generation models (``task = "generation"``): every forward pass above is the teacher-forced
  ``model(inputs, labels) -> (B, L, V)`` (encoder + one decoder pass over the ``L`` answer
  positions; what training runs), the training loss is the token cross-entropy with ``pad_id``
  ignored, and ``latency_ms_generate_b1`` adds the median wall time of greedy
  ``model.generate(inputs, L)`` at batch 1 (``L`` sequential decoder passes).
* ``peak_memory_mb``: peak tensor memory allocated during one training step above what was
  allocated before it (MiB). CUDA: the caching allocator's counters,
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensor memory; the
  allocator's reserved-but-free cache is not counted). CPU: torch's profiler
  memory events (allocations minus frees, accumulated in time order); ``tracemalloc`` cannot see
  torch's allocator and ``ru_maxrss`` is a never-reset process high-water mark, so neither can
  attribute memory to one step.
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from fuselab import device as D
from fuselab.data import MultimodalDataset
from fuselab.evaluate._common import (
    Record,
    check_dataset,
    check_output,
    eval_mode,
    model_device,
    record,
    resolve_metric,
    restrict,
    to_device,
)
from fuselab.tasks import task_loss

MiB = 2**20


def _batch(
    ds: MultimodalDataset, names: tuple[str, ...], n: int, device: torch.device
) -> tuple[dict[str, Tensor], Tensor]:
    """``n`` clean model-ready samples (the first rows of ``ds``, repeated if it is smaller)."""
    x, y = next(ds.batches(min(n, len(ds))))
    reps = -(-n // y.shape[0])
    x = {m: x[m].repeat(reps, *([1] * (x[m].dim() - 1)))[:n] for m in names}
    y = y.repeat(reps, *([1] * (y.dim() - 1)))[:n]
    return to_device(x, device), D.move_tensor(y, device)


def _median_seconds(
    fn: Callable[[], object], repeats: int, warmup: int, device: torch.device
) -> float:
    for _ in range(warmup):
        fn()
    D.synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        D.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def count_params(model: nn.Module) -> tuple[int, int | None]:
    """``(all parameters, fusion parameters or None)``; shared tensors are counted once."""
    total = sum(p.numel() for p in model.parameters())
    fusion = getattr(model, "fusion_parameters", None)
    if fusion is None:
        return total, None
    unique = {id(p): p for p in fusion()}
    return total, sum(p.numel() for p in unique.values())


def flops_per_sample(
    model: nn.Module, inputs: dict[str, Tensor], labels: Tensor | None = None
) -> float:
    """FLOPs of one eval-mode forward pass over ``inputs`` divided by its batch size.

    ``labels`` ``(B, L)``: a generation model's teacher-forced pass ``model(inputs, labels)``.
    """
    n = next(iter(inputs.values())).shape[0]
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOPS)
    was = model.training
    model.eval()
    # Grad mode stays on: the counter's module tracker hooks autograd and fails on inputs derived
    # from parameters under no_grad / inference_mode (e.g. learned attention-pool queries).
    try:
        with torch.enable_grad(), _mha_fastpath_off(), counter:
            _forward(model, inputs, labels)
    finally:
        model.train(was)
    return counter.get_total_flops() / n


def _cpu_sdpa_flops(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return int(sdpa_flop_count(query, key, value))


# FlopCounterMode has formulas for the CUDA attention kernels only; on CPU scaled dot-product
# attention lowers to this op, whose q k^T and weights @ v matmuls would otherwise count 0.
_EXTRA_FLOPS: dict[Any, Any] = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _EXTRA_FLOPS[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flops


@contextlib.contextmanager
def _mha_fastpath_off() -> Iterator[None]:
    """Count transformer layers: in eval mode ``nn.TransformerEncoderLayer`` / ``MultiheadAttention``
    take a fused fast path (``aten._transformer_encoder_layer_fwd``) that ``FlopCounterMode`` does
    not see, so their matmuls would count 0; the math path does the same arithmetic."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None:
        yield
        return
    was = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(was)


def _forward(model: nn.Module, x: dict[str, Tensor], y: Tensor | None) -> Tensor:
    """``model(x)``, or the teacher-forced ``model(x, y)`` when ``y`` is given (generation)."""
    return model(x) if y is None else model(x, y)


def _train_step(
    model: nn.Module,
    x: dict[str, Tensor],
    y: Tensor,
    opt: torch.optim.Optimizer,
    loss: Callable,
    teacher: bool,
) -> None:
    opt.zero_grad(set_to_none=False)
    loss(_forward(model, x, y if teacher else None), y).backward()
    opt.step()


def _check_logits(out: Tensor, y: Tensor, ds: MultimodalDataset) -> None:
    want = (*y.shape, ds.num_classes)
    if not isinstance(out, Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"cost: teacher-forced output {got} of the generation model does not match "
            f"{ds.name!r}: expected (B, L, vocabulary) = {want}"
        )


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 (kineto prints a USDT line per profiler start/stop from C++)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_step_memory(step: Callable[[], None], device: torch.device) -> float:
    """Peak bytes allocated by ``step`` above the allocation before it (see module docstring)."""
    if device.type == "cuda":
        D.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        D.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _native_stderr_silenced():
        prof.start()
    try:
        step()
    finally:
        with _native_stderr_silenced():
            prof.stop()
    events = sorted(
        ((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events()),
        key=lambda t: t[0],
    )
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return float(peak)


#: Bounds on the options: a typo (an extra zero or three) is an error, not a run that never ends.
MAX_BATCH = 65_536
MAX_REPEATS = 10_000


def cost(
    model: nn.Module,
    ds: MultimodalDataset,
    *,
    flops_batch: int = 2,
    throughput_batch: int = 256,
    train_batch: int = 64,
    repeats: int = 10,
    warmup: int = 2,
) -> list[Record]:
    """Cost records of ``model`` on inputs drawn from ``ds``.

    Returns ``{"evaluation": "cost", "metric": m, "value": v}`` for ``m`` in ``params``,
    ``fusion_params`` (if the model has ``fusion_parameters()``), ``flops_per_sample``,
    ``latency_ms_b1``, ``throughput`` (with ``batch_size`` = ``throughput_batch``),
    ``train_samples_per_s`` (with ``batch_size`` = ``train_batch``), ``peak_memory_mb`` (the last two only with trainable parameters);
    generation models time the teacher-forced forward and add ``latency_ms_generate_b1``.
    """
    _check_options(flops_batch=flops_batch, throughput_batch=throughput_batch,
                   train_batch=train_batch, repeats=repeats, warmup=warmup)
    resolve_metric(ds, None)
    names = check_dataset(model, ds, "cost")
    device = model_device(model)
    x, y = _batch(ds, names, max(throughput_batch, train_batch, flops_batch), device)

    def head(n: int) -> dict[str, Tensor]:
        return {m: v[:n] for m, v in restrict(x, names).items()}

    teacher = ds.task == "generation"

    def labels(n: int) -> Tensor | None:
        return y[:n] if teacher else None

    with eval_mode(model):
        if teacher:
            _check_logits(_forward(model, head(2), y[:2]), y[:2], ds)
        else:
            check_output(model(head(2)), y[:2].cpu(), ds, "cost")
    params, fusion = count_params(model)
    out = [record("cost", "params", params)]
    if fusion is not None:
        out.append(record("cost", "fusion_params", fusion))
    flops = flops_per_sample(model, head(flops_batch), labels(flops_batch))
    out.append(record("cost", "flops_per_sample", flops))

    with eval_mode(model):
        x1, xb, y1, yb = head(1), head(throughput_batch), labels(1), labels(throughput_batch)
        t1 = _median_seconds(lambda: _forward(model, x1, y1), repeats, warmup, device)
        tb = _median_seconds(
            lambda: _forward(model, xb, yb), max(3, repeats // 2), warmup, device
        )
        if teacher:
            gen = getattr(model, "generate", None)
            if not callable(gen):
                raise ValueError(f"cost: generation model {type(model).__name__} has no generate()")
            length = int(y.shape[1])
            tg = _median_seconds(lambda: gen(x1, length), repeats, warmup, device)
    out.append(record("cost", "latency_ms_b1", 1000.0 * t1))
    out.append(record("cost", "throughput", throughput_batch / tb, batch_size=throughput_batch))
    if teacher:
        out.append(record("cost", "latency_ms_generate_b1", 1000.0 * tg))

    return out + _training_cost(model, ds, head(train_batch), y[:train_batch], repeats, warmup)


#: option -> (lowest, highest) value ``cost`` accepts.
_BOUNDS = {"flops_batch": (1, MAX_BATCH), "throughput_batch": (1, MAX_BATCH),
           "train_batch": (1, MAX_BATCH), "repeats": (1, MAX_REPEATS), "warmup": (0, MAX_REPEATS)}


def _check_options(**options: int) -> None:
    for key, v in options.items():
        low, high = _BOUNDS[key]
        if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
            kind = "a positive int" if low == 1 else f"an int >= {low}"
            raise ValueError(f"cost: {key} must be {kind} <= {high}, got {v!r}")


def _training_cost(model: nn.Module, ds: MultimodalDataset, x: dict[str, Tensor], y: Tensor,
                   repeats: int, warmup: int) -> list[Record]:
    """Training samples/s and peak step memory of one optimiser step on a copy of ``model``
    (the caller's model and its gradients stay untouched); none for a frozen model."""
    clone = copy.deepcopy(model).train()
    trainable = [p for p in clone.parameters() if p.requires_grad]
    if not trainable:  # a frozen model has no training cost to measure
        return []
    opt = torch.optim.SGD(trainable, lr=1e-4)
    loss = task_loss(ds.task, pad_id=(ds.meta or {}).get("pad_id"))
    teacher = ds.task == "generation"
    device = model_device(model)

    def step() -> None:
        _train_step(clone, x, y, opt, loss, teacher)

    tt = _median_seconds(step, repeats, warmup, device)
    n = len(y)
    return [record("cost", "train_samples_per_s", n / tt, batch_size=n),
            record("cost", "peak_memory_mb", peak_step_memory(step, device) / MiB)]
