"""Reading a study file safely: bounded size, UTF-8, TOML or YAML, bounded YAML aliases.

A study config is a small hand-written file, so anything that is not one is refused with a
``ConfigError`` before it can cost memory or time: files over ``MAX_BYTES``, text that is not
UTF-8, YAML that refers to itself or whose aliases expand past ``MAX_VALUES`` values (an alias
"bomb" of a few hundred bytes expands to billions), nesting deeper than ``MAX_DEPTH``, and YAML
mappings that repeat a key (YAML would silently keep the last one; TOML already refuses).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from fuselab.study.errors import ConfigError

MAX_BYTES = 1 << 20
MAX_VALUES = 200_000
MAX_DEPTH = 64
FORMATS = (".toml", ".yaml", ".yml")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"found key {key_node.value!r} twice", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def read_config_file(path: str | Path) -> Any:
    """The parsed content of a ``.toml`` / ``.yaml`` / ``.yml`` study file (not yet validated)."""
    p = Path(path)
    text = read_text(p)
    try:
        if p.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain values only
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError("", f"{p}: cannot parse: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ConfigError("", f"{p}: nested too deeply to read") from None


def read_text(p: Path, what: str = "study config", formats: tuple[str, ...] = FORMATS) -> str:
    """The text of a config file: it exists, is a regular file named ``*<one of formats>`` and
    holds at most ``MAX_BYTES`` of UTF-8 (``FileNotFoundError`` / ``ConfigError`` otherwise)."""
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {str(p)!r}")
    if not p.is_file():
        raise ConfigError("", f"{p}: is a folder (or not a regular file); {what} expected")
    if p.suffix.lower() not in formats:
        raise ConfigError("", f"{p}: unknown config format {p.suffix!r}; use "
                              f"{', '.join(formats)}")
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise ConfigError("", f"{p}: {size:,} bytes; a config file is at most {MAX_BYTES:,}")
    data = p.read_bytes()[: MAX_BYTES + 1]
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError("", f"{p}: not UTF-8 text (byte {data[e.start:e.start + 1]!r} on line "
                              f"{line}); save the file as UTF-8") from None


def check_shape(raw: Any) -> None:
    """``ConfigError`` for a value that refers to itself, is nested deeper than ``MAX_DEPTH`` or
    counts more than ``MAX_VALUES`` values once YAML aliases are expanded (shared values are
    measured once, so this costs time in the size of the file, not of the expansion)."""
    sizes: dict[int, int] = {}
    _measure(raw, "", 0, set(), sizes)


def _measure(value: Any, path: str, depth: int, open_: set[int], sizes: dict[int, int]) -> int:
    if not isinstance(value, (list, dict)):
        return 1
    key = id(value)
    if key in open_:
        raise ConfigError(path, "refers to itself (a recursive YAML alias)")
    if key in sizes:
        return sizes[key]
    if depth >= MAX_DEPTH:
        raise ConfigError(path, f"nested more than {MAX_DEPTH} levels deep")
    open_.add(key)
    children = (value.items() if isinstance(value, dict)
                else ((f"[{i}]", v) for i, v in enumerate(value)))
    total = 1
    for name, child in children:
        where = (f"{path}{name}" if isinstance(value, list)
                 else (f"{path}.{name}" if path else str(name)))
        total += _measure(child, where, depth + 1, open_, sizes)
        if total > MAX_VALUES:
            raise ConfigError(path, f"holds more than {MAX_VALUES:,} values once YAML aliases are "
                                    "expanded; a study config is small")
    open_.discard(key)
    sizes[key] = total
    return total
