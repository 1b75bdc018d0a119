"""TrainConfig validation: every bad value names the key, the expected and the received value."""

from __future__ import annotations

import pytest

from fuselab.train import TrainConfig


def test_defaults_roundtrip_through_plain_dict() -> None:
    cfg = TrainConfig(optimizer="sgd", lr=0.05, train_snr={"audio": 0.5, "image": None})
    plain = cfg.to_dict()
    assert plain["train_snr"] == {"audio": 0.5, "image": None}
    assert TrainConfig.from_dict(plain) == cfg


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("optimizer", "rmsprop", "['adam', 'adamw', 'sgd']"),
        ("lr", 0.0, "> 0"),
        ("lr", float("nan"), "finite"),
        ("momentum", 1.0, "[0, 1)"),
        ("epochs", 0, ">= 1"),
        ("batch_size", 2.5, "int"),
        ("schedule", "linear", "'plateau'"),
        ("patience", 0, ">= 1 or None"),
        ("grad_blend", "on", "'online'"),
        ("grad_blend_holdout", 1.0, "(0, 1)"),
        ("deterministic", "yes", "true or false"),
        ("regression_loss", "huber", "'l1'"),
    ],
)
def test_bad_values_name_key_expected_and_received(key: str, value: object, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        TrainConfig(**{key: value})
    msg = str(err.value)
    assert repr(key) in msg and fragment in msg and repr(value) in msg


def test_train_snr_must_be_positive_and_names_modality() -> None:
    with pytest.raises(ValueError, match=r"train_snr\['audio'\].*> 0.*-1"):
        TrainConfig(train_snr={"audio": -1})
    assert TrainConfig(train_snr={"audio": 2}).train_snr == {"audio": 2.0}


def test_unknown_key_lists_allowed() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'learning_rate'.*'lr'"):
        TrainConfig.from_dict({"learning_rate": 0.1})
