"""``fuselab.tasks``: the one definition of metric direction, default metric, loss and macro-F1,
and that training, the evaluations and the report all follow it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fuselab import tasks
from fuselab.data import MultimodalDataset
from fuselab.evaluate import _common as evc
from fuselab.train import metrics as M
from fuselab.train.scoring import score_split

# scikit-learn's documented example: f1_score(y_true, y_pred, average=None) == [0.8, 0, 0]
SK_TRUE = [0, 1, 2, 0, 1, 2]
SK_PRED = [0, 2, 1, 0, 0, 1]


def _onehot(pred: list[int], classes: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(pred), classes).float()


def test_macro_f1_matches_the_scikit_learn_example() -> None:
    conf = tasks.confusion_matrix(torch.tensor(SK_PRED), torch.tensor(SK_TRUE), 3)
    f1, present = tasks.f1_per_class(conf)
    assert f1.tolist() == pytest.approx([0.8, 0.0, 0.0])
    assert present.all()
    assert tasks.macro_f1_from_confusion(conf) == pytest.approx(0.8 / 3)


def test_predicted_class_absent_from_labels_counts_everywhere() -> None:
    """Class 3 is predicted but never a label: scikit-learn averages over {0, 1, 3} -> F1 of
    class 3 is 0 and enters the mean. Training and evaluation give the same number."""
    labels = torch.tensor([0, 0, 1, 1])
    pred = [0, 3, 1, 1]
    # class 0: 2TP / (support + predicted) = 2 / 3; class 1: 4 / 4; class 3: 0 / 1
    want = (2 / 3 + 1.0 + 0.0) / 3
    assert M.macro_f1(torch.tensor(pred), labels) == pytest.approx(want)
    acc = evc.MetricAccumulator("macro_f1", 4)
    acc.update(_onehot(pred, 4), labels)
    assert acc.compute() == pytest.approx(want)

    class Fixed(nn.Module):
        def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
            return _onehot(pred, 4)[: x["a"].shape[0]] + 0 * x["a"]

    ds = MultimodalDataset({"a": torch.zeros(4, 4)}, labels, task="classification", num_classes=4)
    assert score_split(Fixed(), ds)["macro_f1"] == pytest.approx(want)


def test_macro_f1_is_nan_without_samples() -> None:
    assert torch.isnan(torch.tensor(tasks.macro_f1_from_confusion(torch.zeros(3, 3))))


@pytest.mark.parametrize(
    ("metric", "higher"),
    [("accuracy", True), ("macro_f1", True), ("exact_match", True), ("pearson_r", True),
     ("acc2", True), ("f1", True), ("throughput", True), ("train_samples_per_s", True),
     ("loss", False), ("mse", False), ("mae", False), ("val_loss", False), ("test_mse", False),
     ("latency_ms_b1", False), ("params", False), ("flops_per_sample", False),
     ("peak_memory_mb", False), ("duration_s", False)],
)
def test_metric_direction(metric: str, higher: bool) -> None:
    assert tasks.higher_is_better(metric) is higher
    assert tasks.lower_is_better(metric) is not higher


def test_every_layer_uses_the_one_direction() -> None:
    from fuselab.report import fig_design, tables
    from fuselab.train import loop

    assert tables.lower_is_better is tasks.lower_is_better
    assert fig_design.lower_is_better is tasks.lower_is_better
    assert loop.higher_is_better is tasks.higher_is_better
    for metric in evc.METRICS:
        assert evc.higher_is_better(metric) is tasks.higher_is_better(metric)
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        evc.higher_is_better("bleu")


def test_default_metric_and_task_metrics_agree() -> None:
    for task, metric in tasks.DEFAULT_METRIC.items():
        assert metric in tasks.TASK_METRICS[task]
        assert evc.METRICS[metric] == task


def test_task_losses() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(5, 3, generator=g), torch.tensor([0, 2, 1, 1, 0])
    assert torch.equal(tasks.task_loss("classification")(logits, y), F.cross_entropy(logits, y))
    seq, ids = torch.randn(2, 4, 6, generator=g), torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0]])
    want = F.cross_entropy(seq.flatten(0, 1), ids.flatten(), ignore_index=0)
    assert torch.equal(tasks.task_loss("generation", pad_id=0)(seq, ids), want)
    p, t = torch.randn(5, 1, generator=g), torch.randn(5, generator=g)
    assert torch.equal(tasks.task_loss("regression")(p, t), F.mse_loss(p[:, 0], t))
    assert torch.equal(tasks.task_loss("regression", "l1")(p, t), F.l1_loss(p[:, 0], t))
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        tasks.task_loss("ranking")
    with pytest.raises(ValueError, match="regression_loss must be 'mse' or 'l1', got 'huber'"):
        tasks.task_loss("regression", "huber")


def test_rules_load_without_torch() -> None:
    """The report reads the rules without importing torch (``fuselab show`` stays fast)."""
    code = ("import sys, fuselab.tasks, fuselab.report; "
            "print(fuselab.tasks.higher_is_better('val_accuracy'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
