"""Small validators for plain config values; every failure names the path in the file."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from fuselab.study.errors import ConfigError


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


def integer(value: object, path: str, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(path, f"expected an integer, got {type_name(value)} {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(path, f"expected an integer >= {minimum}, got {value}")
    return value


def number(value: object, path: str, minimum: float | None = None) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(path, f"expected a number, got {type_name(value)} {value!r}")
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
    """Check that ``value`` holds only JSON-able scalars, lists and tables (for hashing)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: plain(v, f"{path}.{k}") for k, v in table(value, path).items()}
    raise ConfigError(path, f"unsupported value type {type_name(value)} {value!r}")


def set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``config[a][b][c] = value`` for ``dotted = "a.b.c"``, creating tables on the way.

    A part may index a list, ``"model.fusion[-1].at"``: the list must exist (an empty one gets a
    first table) so that the shorthand edits the plan the user wrote rather than inventing one.
    """
    node: Any = config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key, _, idx = part.partition("[")
        if not idx:
            if last:
                node[key] = value
            else:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                node = node[key]
            continue
        seq = node.setdefault(key, [])
        if not isinstance(seq, list):
            raise ConfigError(dotted, f"{key!r} must be a list to index it, got {type_name(seq)}")
        if not seq:
            seq.append({})
        pos = int(idx.rstrip("]"))
        if last:
            seq[pos] = value
        else:
            if not isinstance(seq[pos], dict):
                raise ConfigError(dotted, f"{key}[{pos}] must be a table, got {seq[pos]!r}")
            node = seq[pos]


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``, recursing into tables present in both."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out
