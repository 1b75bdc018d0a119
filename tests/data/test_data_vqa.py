"""Synthetic VQA: answers agree with the rendered scene, text-only questions need no image."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

import fuselab.data as fd
from fuselab.data.vqa import COLOURS, NUMBERS, SHAPES


@pytest.fixture(scope="module")
def ds():
    return fd.load("vqa", split="train", sizes=600, seed=1)


def _words(ds, row):
    vocab = ds.meta["vocab"]
    return [vocab[i] for i in row.tolist() if i != ds.meta["pad_id"]]


def test_layout_and_tokens(ds):
    assert ds.task == "generation" and ds.shapes["image"] == (3, 32, 32)
    assert ds.modalities["question"].dtype == torch.int64 and ds.labels.shape == (600, 2)
    assert torch.all(ds.labels[:, 1] == ds.meta["eos_id"])
    assert (
        ds.num_classes == len(ds.meta["vocab"]) and ds.meta["vocab"][ds.meta["pad_id"]] == "<pad>"
    )
    for i in range(20):
        assert " ".join(_words(ds, ds.modalities["question"][i])) == ds.meta["questions"][i]
    assert ds.meta["needs_image"] == {
        "colour": True,
        "count": True,
        "relation": True,
        "corners": False,
    }


def test_answers_agree_with_the_pixels(ds):
    img = ds.modalities["image"]
    cell = 32 / 3
    for i, objs in enumerate(ds.meta["scenes"]):
        for shape, colour, gx, gy in objs:  # the object's colour is painted at its cell centre
            px = img[i, :, int((gy + 0.5) * cell), int((gx + 0.5) * cell)]
            assert torch.equal(px, torch.tensor(COLOURS[colour])), (i, shape, colour)
        lit = (img[i].sum(0) > 0).float().mean()
        assert 0 < lit < 0.5
        q, a = ds.meta["questions"][i].split(), ds.meta["vocab"][int(ds.labels[i, 0])]
        qtype = ds.source_ids["question"][i]
        if qtype == "count":
            assert NUMBERS.index(a) == sum(o[0] + "s" == q[2] for o in objs)
        elif qtype == "colour":
            (match,) = [o for o in objs if o[0] == q[4]]
            assert a == match[1]
        elif qtype == "relation":
            (left,) = [o for o in objs if o[1] == q[2]]
            (right,) = [o for o in objs if o[0] == q[7]]
            assert a == ("yes" if left[2] < right[2] else "no")


def test_only_image_questions_have_text_ambiguous_answers(ds):
    answers = defaultdict(set)
    for i, text in enumerate(ds.meta["questions"]):
        answers[(ds.source_ids["question"][i], text)].add(int(ds.labels[i, 0]))
    by_type = defaultdict(list)
    for (qtype, _), seen in answers.items():
        by_type[qtype].append(len(seen))
    assert max(by_type["corners"]) == 1  # fully determined by the text
    for qtype in ("colour", "count", "relation"):
        assert max(by_type[qtype]) > 1  # the same question has several answers: needs the image


def test_deterministic_and_options():
    a = fd.load("vqa", split="val", sizes=50, seed=3)
    b = fd.load("vqa", split="val", sizes=50, seed=3)
    assert torch.equal(a.modalities["image"], b.modalities["image"]) and torch.equal(
        a.labels, b.labels
    )
    c = fd.load("vqa", split="val", sizes=30, question_types=["corners"], image_size=48)
    assert set(c.source_ids["question"]) == {"corners"} and c.shapes["image"] == (3, 48, 48)
    with pytest.raises(ValueError, match="question_types"):
        fd.load("vqa", question_types=["why"])
    with pytest.raises(ValueError, match="max_shapes"):
        fd.load("vqa", max_shapes=9)


def test_external_tokenizer_is_used():
    class CharTok:  # the subset of the transformers tokenizer interface the builder uses
        pad_token_id, eos_token_id = 0, 1

        def encode(self, text, add_special_tokens=True):
            assert add_special_tokens is False
            return [2 + ord(ch) % 50 for ch in text]

        def __len__(self):
            return 52

    ds = fd.load("vqa", split="test", sizes=20, tokenizer=CharTok())
    assert ds.num_classes == 52 and ds.meta["bos_id"] == 0 and ds.meta["vocab"] is None
    first = ds.meta["questions"][0]
    assert ds.modalities["question"][0, : len(first)].tolist() == [2 + ord(ch) % 50 for ch in first]


def test_shape_words_are_in_the_vocabulary():
    vocab = fd.WordTokenizer().vocab
    assert all(w in vocab for w in [*SHAPES, *COLOURS, *NUMBERS, "yes", "no", "?"])


def test_named_tokenizer_goes_through_autotokenizer(monkeypatch):
    import sys
    import types

    loaded = []

    class Tok:
        pad_token_id, eos_token_id = 0, 1

        def encode(self, text, add_special_tokens=True):
            return [2 + len(w) for w in text.split()]

        def __len__(self):
            return 40

    def from_pretrained(name):
        if name == "missing":
            raise OSError("not a folder with a tokenizer")
        loaded.append(name)
        return Tok()

    fake = types.ModuleType("transformers")
    fake.AutoTokenizer = types.SimpleNamespace(from_pretrained=from_pretrained)
    monkeypatch.setitem(sys.modules, "transformers", fake)
    ds = fd.load("vqa", split="val", sizes=10, tokenizer="models/t5-small")
    assert loaded == ["models/t5-small"] and ds.num_classes == 40
    with pytest.raises(ValueError, match="option 'tokenizer' = 'missing'"):
        fd.load("vqa", split="val", sizes=10, tokenizer="missing")
