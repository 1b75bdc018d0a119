"""Synthetic visual question answering: coloured shapes on a canvas, templated questions.

For the token-fusion transformer study (thesis 004 fine-tunes on VQA). Each sample is

    modalities["image"]     (3, H, W) float in [0, 1]: 1..max_shapes shapes on black, one per
                            cell of a 3x3 grid (circle / square / triangle; red/green/blue/yellow)
    modalities["question"]  (L,) int64 token ids, padded with ``pad_id``
    labels                  (L_answer,) int64: the one-word answer's ids then ``eos_id``, padded

with ``task="generation"``, ``num_classes`` = vocabulary size and ``meta`` holding ``vocab``
(id -> word), ``pad_id``, ``bos_id`` (decoder start), ``eos_id``, ``answers``,
``question_types`` and ``needs_image`` (``{question type: bool}``). Question types:

    colour    "what colour is the circle ?"                 needs the image
    count     "how many squares are there ?"  (zero..three) needs the image
    relation  "is the red shape left of the triangle ?"     needs the image
    corners   "how many corners does a square have ?" /
              "what shape has three corners ?"              answerable from the text alone

``source_ids["question"]`` gives each sample's question type and ``source_ids["image"]`` its
scene number, so results can be split by type after ``subset``. ``meta["scenes"]`` lists
``(shape, colour, x, y)`` per object for the dataset as built (not updated by ``subset``).
The tokenizer is word-level, built from the templates (deterministic ids); pass ``tokenizer=``
any object with ``encode(text, add_special_tokens=False)``, ``pad_token_id``, ``eos_token_id`` and ``len()`` (e.g. a
T5 tokenizer from ``transformers``), or a name/folder for ``AutoTokenizer.from_pretrained``,
to use its ids instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fuselab.data.dataset import MultimodalDataset
from fuselab.data.registry import register
from fuselab.data.splits import SPLITS, split_size

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
}
NUMBERS = ("zero", "one", "two", "three", "four")
CORNERS = {"circle": 0, "square": 4, "triangle": 3}
QUESTION_TYPES = ("colour", "count", "relation", "corners")
NEEDS_IMAGE = {"colour": True, "count": True, "relation": True, "corners": False}
DEFAULT_SIZES = {"train": 4000, "val": 500, "test": 500}
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
TEMPLATE_WORDS = "what colour is the how many are there left of shape has corners does a have ? s"


class WordTokenizer:
    """Word-level tokenizer over the template vocabulary: ``encode("is the red ...") -> ids``."""

    def __init__(self) -> None:
        words = set(TEMPLATE_WORDS.split()) | set(SHAPES) | {s + "s" for s in SHAPES}
        words |= set(COLOURS) | set(NUMBERS) | {"yes", "no"}
        self.vocab = [*SPECIALS, *sorted(words)]
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.pad_token_id, self.bos_token_id, self.eos_token_id, self.unk_token_id = 0, 1, 2, 3

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Word ids of ``text`` (no special tokens are ever added)."""
        return [self.ids.get(w, self.unk_token_id) for w in text.split()]

    def __len__(self) -> int:
        return len(self.vocab)


def _scene(rng: np.random.Generator, max_shapes: int) -> list[tuple[str, str, int, int]]:
    n = int(rng.integers(1, max_shapes + 1))
    cells = rng.permutation(9)[:n]
    return [
        (SHAPES[rng.integers(3)], list(COLOURS)[rng.integers(4)], int(c % 3), int(c // 3))
        for c in cells
    ]


def _question(
    rng: np.random.Generator, qtype: str, objs: list[tuple[str, str, int, int]]
) -> tuple[str, str] | None:
    """``(question, answer)`` for the scene, or ``None`` when this type cannot be asked of it."""
    shapes = [o[0] for o in objs]
    colours = [o[1] for o in objs]
    if qtype == "colour":
        unique = [o for o in objs if shapes.count(o[0]) == 1]
        if not unique:
            return None
        o = unique[rng.integers(len(unique))]
        return f"what colour is the {o[0]} ?", o[1]
    if qtype == "count":
        s = SHAPES[rng.integers(3)]
        return f"how many {s}s are there ?", NUMBERS[shapes.count(s)]
    if qtype == "relation":
        pairs = [
            (a, b)
            for a in objs
            for b in objs
            if a is not b and colours.count(a[1]) == 1 and shapes.count(b[0]) == 1 and a[2] != b[2]
        ]
        if not pairs:
            return None
        a, b = pairs[rng.integers(len(pairs))]
        return f"is the {a[1]} shape left of the {b[0]} ?", "yes" if a[2] < b[2] else "no"
    s = SHAPES[rng.integers(3)]
    if rng.integers(2):
        return f"how many corners does a {s} have ?", NUMBERS[CORNERS[s]]
    return f"what shape has {NUMBERS[CORNERS[s]]} corners ?", s


def render(
    scenes: Sequence[Sequence[tuple[str, str, int, int]]], size: int, jitter: Tensor
) -> Tensor:
    """``(N, 3, size, size)`` images; ``jitter`` ``(N, K, 2)`` pixel offsets of each object."""
    n, k = len(scenes), jitter.shape[1]
    cell = size / 3
    r = 0.38 * cell
    kind_np = np.full((n, k), -1, dtype=np.int64)
    col_np = np.zeros((n, k, 3), dtype=np.float32)
    cell_np = np.zeros((n, k, 2), dtype=np.float32)
    palette = {c: np.array(v, dtype=np.float32) for c, v in COLOURS.items()}
    for i, objs in enumerate(scenes):
        for j, (s, c, gx, gy) in enumerate(objs):
            kind_np[i, j] = SHAPES.index(s)
            col_np[i, j] = palette[c]
            cell_np[i, j] = (gx, gy)
    kind, col = torch.from_numpy(kind_np), torch.from_numpy(col_np)
    centre = (torch.from_numpy(cell_np) + 0.5) * cell
    cx, cy = centre[..., 0], centre[..., 1]
    cx, cy = cx + jitter[..., 0], cy + jitter[..., 1]
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    dx = grid[None, None, None, :] - cx[..., None, None]  # (N, K, 1, W)
    dy = grid[None, None, :, None] - cy[..., None, None]  # (N, K, H, 1)
    circle = dx.pow(2) + dy.pow(2) <= r * r
    square = (dx.abs() <= 0.8 * r) & (dy.abs() <= 0.8 * r)
    triangle = (dy >= -r) & (dy <= r) & (dx.abs() <= (dy + r) / 2)
    masks = torch.stack([circle, square, triangle])  # (3, N, K, H, W)
    masks = masks.gather(0, kind.clamp_min(0)[None, :, :, None, None].expand(1, n, k, size, size))[
        0
    ]
    masks &= (kind >= 0)[..., None, None]
    # cells never overlap, so summing the painted objects paints each pixel at most once
    return (masks[:, :, None].float() * col[..., None, None]).sum(1).clamp(0, 1)


def load_hf_tokenizer(name: str) -> Any:
    """``transformers.AutoTokenizer.from_pretrained(name)``; ``ValueError`` naming the option."""
    try:
        from transformers import AutoTokenizer  # optional: only for a named tokenizer

        return AutoTokenizer.from_pretrained(name)
    except (ImportError, OSError, ValueError) as e:
        raise ValueError(
            f"vqa: option 'tokenizer' = {name!r} could not be loaded with "
            f"transformers.AutoTokenizer ({e}); give a saved tokenizer's folder (e.g. of t5-small) "
            "or leave it unset for the word-level tokenizer"
        ) from e


def _pad(seqs: list[list[int]], pad: int) -> Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.int64)
    return out


@register("vqa")
def build_vqa(
    split: str,
    root: Path | None = None,
    *,
    sizes: int | Mapping[str, int] | None = None,
    image_size: int = 32,
    max_shapes: int = 3,
    question_types: Sequence[str] = QUESTION_TYPES,
    tokenizer: Any = None,
    seed: int = 0,
) -> MultimodalDataset:
    """Build one split of the synthetic VQA task (no files; ``root`` is ignored).

    Options: ``sizes``, ``image_size`` (>= 12), ``max_shapes`` (1..4), ``question_types``
    (a subset of ``("colour", "count", "relation", "corners")``, drawn uniformly),
    ``tokenizer`` (default: word-level over the templates; an object, or a name/folder loaded
    with ``transformers.AutoTokenizer``), ``seed``.
    """
    n = split_size(sizes, split, DEFAULT_SIZES, "vqa")
    _check_options(question_types, max_shapes, image_size)
    rng = np.random.default_rng([int(seed), SPLITS.index(split), 41])
    scenes, texts, answers, qtypes = [], [], [], []
    for _ in range(n):
        qtype = question_types[int(rng.integers(len(question_types)))]
        while True:  # redraw scenes the question type cannot be asked of (e.g. no unique shape)
            objs = _scene(rng, max_shapes)
            qa = _question(rng, qtype, objs)
            if qa is not None:
                break
        scenes.append(objs)
        texts.append(qa[0])
        answers.append(qa[1])
        qtypes.append(qtype)
    jitter = (
        torch.from_numpy(rng.uniform(-1, 1, (n, max_shapes, 2)).astype(np.float32))
        * image_size
        / 32
    )
    tok = _tokenizer(tokenizer)
    pad, eos = int(tok.pad_token_id), int(tok.eos_token_id)
    bos = getattr(tok, "bos_token_id", None)
    encoded: dict[str, list[int]] = {}

    def ids(text: str) -> list[int]:
        if text not in encoded:
            # transformers tokenizers would otherwise append their own eos
            encoded[text] = list(tok.encode(text, add_special_tokens=False))
        return encoded[text]

    vocab = tok.vocab if isinstance(tok, WordTokenizer) else None
    return MultimodalDataset(
        modalities={
            "image": render(scenes, image_size, jitter),
            "question": _pad([ids(t) for t in texts], pad),
        },
        labels=_pad([[*ids(a), eos] for a in answers], pad),
        task="generation",
        num_classes=len(tok),
        source_ids={"image": list(range(n)), "question": qtypes},
        name="vqa",
        meta={
            "vocab": vocab,
            "pad_id": pad,
            "eos_id": eos,
            "bos_id": pad if bos is None else int(bos),
            "answers": sorted({a for a in answers}),
            "question_types": list(question_types),
            "needs_image": {q: NEEDS_IMAGE[q] for q in question_types},
            "scenes": scenes,
            "questions": texts,
            "seed": seed,
        },
    )


def _check_options(question_types: Sequence[str], max_shapes: int, image_size: int) -> None:
    bad = [q for q in question_types if q not in QUESTION_TYPES]
    if bad or not question_types:
        raise ValueError(
            f"vqa: option 'question_types' must be a non-empty subset of {QUESTION_TYPES}, got {list(question_types)}"
        )
    if not 1 <= max_shapes <= 4:
        raise ValueError(f"vqa: option 'max_shapes' must be in 1..4, got {max_shapes}")
    if image_size < 12:
        raise ValueError(f"vqa: option 'image_size' must be >= 12, got {image_size}")
    if "relation" in question_types and max_shapes < 2:
        raise ValueError("vqa: question type 'relation' needs option 'max_shapes' >= 2")


def _tokenizer(tokenizer: Any) -> Any:
    if tokenizer is None:
        return WordTokenizer()
    if isinstance(tokenizer, (str, Path)):
        return load_hf_tokenizer(str(tokenizer))
    return tokenizer
