"""One set of validators for plain config values (study, model and operator configs alike).

Every function takes ``(value, path, ...)``: the value to check first, then its path in the
config (``grid.fusion[2].op``, ``model.encoders.audio.hidden``), then what it is checked against.
A failure raises :class:`ConfigError` (a ``ValueError``) whose message starts with the path and
says what was expected and what arrived. This module replaces ``fuselab.study._check``,
``fuselab.models._check`` and the generic half of ``fuselab.models.transformer._checks``
(which took ``(path, value)``); it imports nothing of fuselab, so every layer may use it.
"""

from __future__ import annotations

import difflib
import math
import re
import warnings
from collections.abc import Collection, Iterable, Mapping
from typing import Any


class ConfigError(ValueError):
    """A config is invalid; ``path`` is the location in the file (e.g. ``grid.fusion[2].op``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # A worker process sends its errors pickled; the default rebuilds from the message alone.
        return (type(self), (self.path, self.reason))


#: Integers a config may hold: what SQLite, JSON consumers and torch can represent (int64).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: A study name: a folder name under ``runs/``, never a path (no ``/``, ``..``, leading dot).
NAME_RE = re.compile(r"\w[\w .,+=@()-]{0,99}")
NAME_RULE = ("letters, digits, spaces and '_ - . , + = @ ( )', starting with a letter, digit or "
             "'_', at most 100 characters")


def type_name(value: object) -> str:
    """The TOML/YAML-ish name of ``value``'s type, for messages."""
    names = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "table"}
    for t, n in names.items():
        if type(value) is t:
            return n
    return type(value).__name__


def table(value: object, path: str) -> dict[str, Any]:
    """``value`` as a dict with string keys, else ``ConfigError``."""
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected a table, got {type_name(value)} {value!r}")
    for k in value:
        if not isinstance(k, str):
            raise ConfigError(path, f"keys must be strings, got {k!r}")
    return dict(value)


def known_keys(obj: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    """``ConfigError`` naming the first unknown key, the allowed keys and a close match."""
    allowed = list(allowed)
    for key in obj:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"{path}.{key}" if path else key
            raise ConfigError(where, f"unknown key; allowed: {sorted(allowed)}{hint}")


def string(value: object, path: str, choices: Iterable[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"expected a non-empty string, got {type_name(value)} {value!r}")
    if choices is not None:
        opts = list(choices)
        if value not in opts:
            raise ConfigError(path, f"got {value!r}; allowed: {opts}")
    return value


def boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {type_name(value)} {value!r}")
    return value


def name(value: object, path: str) -> str:
    """A name used as a folder name: ``NAME_RE``, never a path such as ``../x`` or ``/abs``."""
    text = string(value, path)
    if not NAME_RE.fullmatch(text) or text != text.strip():
        raise ConfigError(path, f"expected a name ({NAME_RULE}), got {text!r}; it names the "
                                "study and its default folder runs/<name> (use --out for a path)")
    return text


def integer(value: object, path: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(path, f"expected an integer, got {type_name(value)} {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(path, f"expected an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(path, f"expected an integer <= {maximum}, got {value}")
    return value


def number(value: object, path: str, minimum: float | None = None) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(path, f"expected a number, got {type_name(value)} {value!r}")
    if not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(path, f"expected a number >= {minimum}, got {value}")
    return float(value)


def items(value: object, path: str, allow_empty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list, got {type_name(value)} {value!r}")
    if not value and not allow_empty:
        raise ConfigError(path, "expected a non-empty list")
    return list(value)


def plain(value: object, path: str) -> Any:
    """Check that ``value`` holds only JSON-able scalars, lists and tables (for hashing).

    Numbers must be finite (JSON, and so a run id, has no NaN or infinity; ``"clean"`` stands
    for "no noise" where an SNR is expected) and integers must fit 64 bits (SQLite, torch).
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {value} (nan and inf are not "
                                "allowed in a study config)")
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        raise ConfigError(path, f"integer {value} does not fit 64 bits")
    if isinstance(value, str) and "\x00" in value:
        raise ConfigError(path, f"strings must not contain NUL characters, got {value!r}")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: plain(v, f"{path}.{k}" if path else k) for k, v in table(value, path).items()}
    raise ConfigError(path, f"unsupported value type {type_name(value)} {value!r}")


#: One part of a dotted config path: a key, optionally indexing a list (``fusion[-1]``).
PATH_PART = re.compile(r"([A-Za-z_][\w-]*)(?:\[(-?\d+)\])?")


def dotted_path(text: str, where: str) -> list[tuple[str, int | None]]:
    """``"model.fusion[-1].at"`` -> ``[("model", None), ("fusion", -1), ("at", None)]``."""
    parts: list[tuple[str, int | None]] = []
    for part in text.split("."):
        m = PATH_PART.fullmatch(part)
        if m is None:
            raise ConfigError(where, f"bad path {text!r}: {part!r} is not a key or key[index]")
        parts.append((m.group(1), None if m.group(2) is None else int(m.group(2))))
    return parts


def set_path(config: dict[str, Any], dotted: str, value: Any, where: str | None = None) -> None:
    """Set ``config[a][b][c] = value`` for ``dotted = "a.b.c"``, creating tables on the way.

    A part may index a list, ``"model.fusion[-1].at"``: the list must exist (an empty one gets a
    first table) so that the shorthand edits the plan the user wrote rather than inventing one.
    A scalar in the way is an error (``where``, default ``dotted``), never silently replaced.
    """
    where = where or dotted
    node: Any = config
    parts = dotted_path(dotted, where)
    for i, (key, idx) in enumerate(parts):
        last = i == len(parts) - 1
        here = ".".join(dotted.split(".")[: i + 1])
        if idx is None:
            if last:
                node[key] = value
                continue
            if node.get(key) is None:
                node[key] = {}
            elif not isinstance(node[key], dict):
                raise ConfigError(where, f"cannot set {dotted!r}: {here} is "
                                         f"{type_name(node[key])} {node[key]!r}, not a table")
            node = node[key]
            continue
        seq = node.setdefault(key, [])
        if not isinstance(seq, list):
            raise ConfigError(where, f"{key!r} must be a list to index it, got {type_name(seq)}")
        if not seq:
            seq.append({})
        if not -len(seq) <= idx < len(seq):
            raise ConfigError(where, f"cannot set {dotted!r}: index {idx} is outside "
                                     f"{key!r}, which has {len(seq)} entries")
        if last:
            seq[idx] = value
        else:
            if not isinstance(seq[idx], dict):
                raise ConfigError(where, f"{key}[{idx}] must be a table, got {seq[idx]!r}")
            node = seq[idx]


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``, recursing into tables present in both."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# --- model-config checks (were fuselab.models._check) ---------------------------------------


def pos_int(value: Any, path: str, minimum: int = 1) -> int:
    """An int >= ``minimum`` (bools are not ints here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(path, f"expected an int >= {minimum}, got {value!r}")
    return value


def int_list(value: Any, path: str, minimum: int = 1, allow_empty: bool = False) -> list[int]:
    """A (non-empty unless ``allow_empty``) list of ints >= ``minimum``."""
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise ConfigError(path, f"expected a {'' if allow_empty else 'non-empty '}list of ints "
                                f">= {minimum}, got {value!r}")
    return [pos_int(v, f"{path}[{i}]", minimum) for i, v in enumerate(value)]


def fraction(value: Any, path: str) -> float:
    """A number in [0, 1) (dropout rates)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(path, f"expected a number in [0, 1), got {value!r}")
    return float(value)


def flag(value: Any, path: str) -> bool:
    """``true`` or ``false`` (same rule as :func:`boolean`, in the model configs' wording)."""
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {value!r}")
    return value


def choice(value: Any, path: str, allowed: Collection[str]) -> str:
    """One of ``allowed``."""
    if value not in allowed:
        raise ConfigError(path, f"expected one of {sorted(allowed)}, got {value!r}")
    return str(value)


def rename_deprecated(
    cfg: Mapping[str, Any], aliases: Mapping[str, str], path: str
) -> dict[str, Any]:
    """``cfg`` with deprecated key spellings (``aliases``: old -> new) renamed to the current ones.

    Each old spelling found warns (``DeprecationWarning`` naming ``path.old`` and the new key);
    both spellings at once is a ``ConfigError``, since one of the two values would be lost.
    """
    out = dict(cfg)
    for old, new in aliases.items():
        if old not in out:
            continue
        if new in out:
            raise ConfigError(path, f"both {old!r} (deprecated) and {new!r} are given; keep only "
                                    f"{new!r}")
        warnings.warn(
            f"{path}.{old}: deprecated spelling, use {new!r} (the old name will be removed)",
            DeprecationWarning,
            stacklevel=3,
        )
        out[new] = out.pop(old)
    return out


def modality_name(value: Any, path: str, input_shapes: Mapping[str, Any]) -> str:
    """A modality named in ``input_shapes``."""
    if value not in input_shapes:
        raise ConfigError(path, f"unknown modality {value!r}; allowed (from input_shapes): "
                                f"{sorted(input_shapes)}")
    return str(value)


def int_pair(value: Any, path: str) -> tuple[int, int]:
    """An int ``n`` (meaning ``(n, n)``) or a ``[height, width]`` pair of positive ints."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return pos_int(value[0], path), pos_int(value[1], path)
    if isinstance(value, int) and not isinstance(value, bool):
        p = pos_int(value, path)
        return p, p
    # a wrong kind of value is a TypeError, as for the other token-fusion keys
    raise TypeError(f"{path}: expected an int or a [height, width] pair, got {value!r}")
