"""AV-MNIST splits and pairing: 8:1:1 cuts of recordings (optionally by speaker), the classic
(Vielzeuf / MultiBench) split, and label pairs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fuselab.data.splits import SPLITS, partition, split_generator


def sorted_rows(rows: Tensor, n: int) -> Tensor:
    """``rows`` (distinct, in ``range(n)``) in increasing order, in O(n) (a mask, not a sort)."""
    mask = torch.zeros(n, dtype=torch.bool)
    mask[rows] = True
    return torch.nonzero(mask)[:, 0]


def split_recordings(
    speakers: Sequence[str], seed: int, holdout: Sequence[str]
) -> dict[str, Tensor]:
    """Recording rows per split: 8:1:1 of the kept speakers, held-out speakers to val/test only."""
    known = sorted(set(speakers))
    bad = [s for s in holdout if s not in known]
    if bad:
        raise ValueError(
            f"avmnist: option 'holdout_speakers' names unknown speaker(s) {bad}; known: {known}"
        )
    held = torch.tensor([s in holdout for s in speakers], dtype=torch.bool)
    kept_rows = torch.nonzero(~held)[:, 0]
    parts = {
        k: kept_rows[v]
        for k, v in partition(len(kept_rows), split_generator(seed, "all", 2)).items()
    }
    if holdout:
        held_rows = torch.nonzero(held)[:, 0]
        cut = partition(len(held_rows), split_generator(seed, "all", 3), (0.0, 0.5, 0.5))
        for s in ("val", "test"):
            parts[s] = torch.cat([parts[s], held_rows[cut[s]]])
    return {s: sorted_rows(parts[s], len(speakers)) for s in SPLITS}


#: Classic split of the 70,000 MNIST rows (train file, then t10k): MultiBench's ``get_dataloader``
#: keeps the first 55,000 training pairs for training and the last 5,000 for validation; the
#: test pairs are built from t10k.
CLASSIC_IMAGE_ROWS = {"train": (0, 55_000), "val": (55_000, 60_000), "test": (60_000, 70_000)}
#: FSDD recordings with take index >= this go to test (Cassell's AV-MNIST generator: takes 40-49).
CLASSIC_TEST_TAKE = 40


def classic_image_rows(n_images: int) -> dict[str, Tensor]:
    """MNIST rows per split under the classic split (55k / 5k / 10k, in file order)."""
    if n_images != 70_000:
        raise ValueError(
            f"avmnist: split_scheme 'classic' needs the 70,000 MNIST images (60k train + 10k t10k), "
            f"got {n_images}"
        )
    return {s: torch.arange(a, b) for s, (a, b) in CLASSIC_IMAGE_ROWS.items()}


def classic_recordings(names: Sequence[str]) -> dict[str, Tensor]:
    """Recording rows per split under the classic split: takes 0-39 of every speaker and digit for
    train and val (they share them, as MultiBench's val is the tail of its training pairs),
    takes 40-49 for test."""
    takes = []
    for name in names:
        stem = name.rsplit(".", 1)[0]
        take = stem.rsplit("_", 1)[-1]
        if not take.isdigit():
            raise ValueError(f"avmnist: FSDD file {name!r}: expected '<digit>_<speaker>_<index>.wav'")
        takes.append(int(take))
    test = torch.tensor(takes, dtype=torch.int64) >= CLASSIC_TEST_TAKE
    train = torch.nonzero(~test)[:, 0]
    return {"train": train, "val": train, "test": torch.nonzero(test)[:, 0]}


def pair_rows(
    image_labels: Tensor, wave_labels: Tensor, n: int, g: torch.Generator, split: str
) -> tuple[Tensor, Tensor]:
    """``n`` pairs ``(image row, recording row)`` of equal label (rows local to the split)."""
    m = len(image_labels)
    reps = -(-n // m)
    img = torch.cat([torch.randperm(m, generator=g) for _ in range(reps)])[:n]
    y = image_labels[img]
    order = torch.argsort(wave_labels, stable=True)
    counts = torch.bincount(wave_labels, minlength=10)
    needed = torch.bincount(y, minlength=10) > 0  # bincount, not unique: O(n), no sort
    empty = torch.nonzero(needed & (counts == 0))[:, 0].tolist()
    if empty:
        raise ValueError(
            f"avmnist: split {split!r} has no recording of digit {empty[0]} (empty class); "
            "hold out fewer speakers or add recordings"
        )
    start = torch.cumsum(counts, 0) - counts
    pick = (torch.rand(n, generator=g, dtype=torch.float64) * counts[y]).long()
    return img, order[start[y] + pick]
