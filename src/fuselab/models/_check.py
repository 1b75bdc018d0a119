"""Config value checks whose errors name the config key, the expected and the received value."""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from typing import Any


def pos_int(value: Any, key: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{key}: expected an int >= {minimum}, got {value!r}")
    return value


def int_list(value: Any, key: str, minimum: int = 1, allow_empty: bool = False) -> list[int]:
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise ValueError(f"{key}: expected a {'' if allow_empty else 'non-empty '}list of ints "
                         f">= {minimum}, got {value!r}")
    return [pos_int(v, f"{key}[{i}]", minimum) for i, v in enumerate(value)]


def fraction(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{key}: expected a number in [0, 1), got {value!r}")
    return float(value)


def flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    return value


def choice(value: Any, key: str, allowed: Collection[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{key}: expected one of {sorted(allowed)}, got {value!r}")
    return str(value)


def known_keys(cfg: Mapping[str, Any], allowed: Collection[str], where: str) -> None:
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed: {sorted(allowed)}")


def rename_deprecated(
    cfg: Mapping[str, Any], aliases: Mapping[str, str], where: str
) -> dict[str, Any]:
    """``cfg`` with deprecated key spellings (``aliases``: old -> new) renamed to the current ones.

    Each old spelling found warns (``DeprecationWarning`` naming ``where.old`` and the new key);
    both spellings at once is a ``ValueError``, since one of the two values would be lost.
    """
    out = dict(cfg)
    for old, new in aliases.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(
                f"{where}: both {old!r} (deprecated) and {new!r} are given; keep only {new!r}"
            )
        warnings.warn(
            f"{where}.{old}: deprecated spelling, use {new!r} (the old name will be removed)",
            DeprecationWarning,
            stacklevel=3,
        )
        out[new] = out.pop(old)
    return out
