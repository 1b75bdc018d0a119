"""Small validators for plain config values; every failure names the path in the file."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fuselab.study.errors import ConfigError

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
