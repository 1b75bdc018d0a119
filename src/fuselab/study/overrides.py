"""Config overrides: dotted paths set to TOML values before a study file is validated.

    load_config("cpu.toml", overrides={"train.epochs": 1, "study.seeds": [0, 1]})
    fuselab study cpu.toml --set train.epochs=1 --set 'data.options.sizes={train=64}'
    fuselab study cpu.toml --overrides smoke.toml      # a flat table: "train.epochs" = 1

A path is ``table.key.key`` with optional list indices (``grid.fusion[1].op``). Its first part
must be a top-level table of the study schema; missing tables on the way are created (so
``execution.workers`` works without an ``[execution]`` table), but a path never walks through a
value that is not a table or past the end of a list. A value replaces what was there (a table
is not merged). Everything else (unknown keys, wrong types) is then caught by the ordinary
validation, with the same error paths as for a value written in the file.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fuselab import _validate as c
from fuselab.study.configfile import read_text
from fuselab.study.errors import ConfigError

_PART = re.compile(r"^([A-Za-z0-9_-]+)((?:\[-?\d+\])*)$")
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:+-]*$")  # also device names: cuda:1


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"train.epochs=1"`` -> ``("train.epochs", 1)``; the value is read as a TOML value.

    A bare word that is not valid TOML (``data.name=lattice``) is taken as a string.
    """
    path, sep, value = text.partition("=")
    path, value = path.strip(), value.strip()
    if not sep or not path or not value:
        raise ConfigError("--set", f"expected PATH=VALUE (e.g. train.epochs=1), got {text!r}")
    try:
        return path, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError as e:
        if _BARE.match(value) and value not in ("true", "false", "inf", "nan"):
            return path, value
        raise ConfigError(path, f"--set value {value!r} is not a TOML value ({e}); quote "
                                "strings, e.g. 'data.name=\"lattice\"'") from None


def load_overrides(path: str | Path) -> dict[str, Any]:
    """A flat TOML table of dotted-path overrides (a reproduction's ``smoke.toml``)."""
    p = Path(path)
    text = read_text(p, "overrides file", formats=(p.suffix.lower(),))  # size, UTF-8
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"{p}: cannot parse: {e}") from None
    except RecursionError:
        raise ConfigError("", f"{p}: nested too deeply to read") from None
    for key, value in table.items():
        if "." not in key and "[" not in key and isinstance(value, dict):
            raise ConfigError(key, f"{p}: write overrides as quoted dotted keys "
                                   f'("{key}.KEY" = value), not as a [{key}] table')
    return table


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any], *,
                    tables: tuple[str, ...], origin: str = "override") -> dict[str, Any]:
    """A deep copy of ``raw`` with every ``path: value`` of ``overrides`` set, in order.

    ``tables`` are the allowed top-level tables; ``origin`` names where the overrides came from
    in error messages (``--set``, ``smoke.toml``).
    """
    out = copy.deepcopy(dict(raw))
    for path, value in overrides.items():
        _set(out, str(path), copy.deepcopy(value), tables, origin)
    return out


def _parts(path: str, origin: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.split("."):
        m = _PART.match(part)
        if m is None:
            raise ConfigError(path, f"bad path from {origin}: expected dotted keys with optional "
                                    "[index], e.g. grid.fusion[1].op")
        out.append(m.group(1))
        out += [int(i) for i in re.findall(r"-?\d+", m.group(2))]
    return out


def _set(root: dict[str, Any], path: str, value: Any, tables: tuple[str, ...],
         origin: str) -> None:
    parts = _parts(path, origin)
    if parts[0] not in tables:
        close = difflib.get_close_matches(str(parts[0]), tables, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(path, f"no top-level table {parts[0]!r} (override from {origin}); "
                                f"tables: {list(tables)}{hint}")
    if len(parts) < 2:
        raise ConfigError(path, f"override from {origin} would replace the whole [{parts[0]}] "
                                "table; set its keys instead")
    node: Any = root
    walked = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ConfigError(path, f"{walked} is {c.type_name(node)}, not a list "
                                        f"(override from {origin})")
            if not -len(node) <= part < len(node):
                raise ConfigError(path, f"{walked} has {len(node)} entries, no index {part} "
                                        f"(override from {origin})")
            walked += f"[{part}]"
        else:
            if not isinstance(node, dict):
                raise ConfigError(path, f"{walked} is {c.type_name(node)} {node!r}, not a table "
                                        f"(override from {origin})")
            walked = f"{walked}.{part}" if walked else part
            if not last and part not in node:
                node[part] = [] if isinstance(parts[i + 1], int) else {}
        if last:
            node[part] = value
        else:
            node = node[part]


def dump_overrides(overrides: Mapping[str, Any]) -> str:
    """``overrides`` as a flat TOML table that :func:`load_overrides` reads back unchanged."""
    lines = [f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in overrides.items()]
    return "\n".join(lines) + ("\n" if lines else "")


def toml_key(key: str) -> str:
    """A TOML key: bare when it may be (``lr``, ``x1``), else a quoted string."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def toml_value(v: Any) -> str:
    """``v`` (a plain JSON-like value) as one line of TOML: tables become inline tables."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(x)}"
                                for k, x in v.items()) + " }"
    raise TypeError(f"override value {v!r} ({type(v).__name__}) has no TOML form")
