"""The example configs that ship inside the package, found by bare name.

The files are the repository's ``examples/*.toml`` (installed as ``fuselab/examples/``), so an
installed wheel runs them without the repository::

    fuselab examples                      # name, kind and description of each
    fuselab study quickstart              # = fuselab study <package>/examples/quickstart.toml

    from fuselab.study.examples import bundled, resolve
    [e.name for e in bundled()]           # ['avmnist', 'avmnist_search_budget', 'clstm', ...]
    resolve("quickstart", "study")        # Path of the bundled quickstart.toml

A name that is an existing file always means that file; only a bare name (no folder, no
``.toml``/``.yaml`` suffix) that is not one is looked up here (a folder named ``quickstart``
in the working directory does not hide the example).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from fuselab.study.configfile import FORMATS

__all__ = ["FOLDER", "KINDS", "Example", "bundled", "is_bare", "resolve"]

FOLDER = Path(__file__).resolve().parents[1] / "examples"
"""Where the bundled examples live (in a checkout, a link to the repository's ``examples/``)."""
KINDS = ("study", "search", "overrides")
"""The kinds of file, by the command that takes them."""
_USE = {"study": "fuselab study {}", "search": "fuselab search {}",
        "overrides": "fuselab study CONFIG --overrides {}"}


@dataclass(frozen=True)
class Example:
    """One bundled file: its bare ``name``, ``path``, ``kind`` (one of ``KINDS``: a study
    config has a ``[study]`` table, a search config also ``[search]``, anything else is a flat
    overrides table) and a one-line ``description`` (``[study] description``, or for an
    overrides file its first comment line)."""

    name: str
    path: Path
    kind: str
    description: str

    @property
    def command(self) -> str:
        """The command line that runs it."""
        return _USE[self.kind].format(self.name)


def _describe(path: Path) -> Example:
    text = path.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    study = raw.get("study")
    if isinstance(study, dict):
        kind = "search" if "search" in raw else "study"
        description = str(study.get("description", ""))
    else:
        kind = "overrides"
        first = next((line for line in text.splitlines() if line.startswith("#")), "#")
        description = first.lstrip("#").strip()
    return Example(path.stem, path, kind, description)


def bundled() -> list[Example]:
    """The bundled examples, sorted by name."""
    return [_describe(p) for p in sorted(FOLDER.glob("*.toml"))]


def is_bare(text: str) -> bool:
    """Whether ``text`` is a bare example name rather than a path: no folder part, no config
    suffix."""
    seps = [s for s in (os.sep, os.altsep, "/") if s]
    return bool(text) and not any(s in text for s in seps) \
        and Path(text).suffix.lower() not in FORMATS


def resolve(text: str, kind: str = "study") -> Path:
    """The file a command-line config argument means: ``text`` itself when it is a file or not a
    bare name, else the bundled example of that name and ``kind``.

    ``FileNotFoundError`` for a bare name with no such example (it lists those of ``kind``, with
    a "did you mean"), or for a missing path whose stem is a bundled example's name (it names
    the bare-name command that runs it)."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(text)
    if path.is_file() or (path.exists() and not is_bare(text)):
        return path
    examples = {e.name: e for e in bundled()}
    what = "overrides file" if kind == "overrides" else f"{kind} config"
    if not is_bare(text):
        known = examples.get(path.stem)
        if known is not None and path.suffix.lower() == ".toml":
            raise FileNotFoundError(f"{what} not found: {text!r}; the bundled example of "
                                    f"that name runs as `{known.command}`")
        return path  # the reader reports the missing file
    example = examples.get(text)
    if example is not None and example.kind == kind:
        return example.path
    names = sorted(n for n, e in examples.items() if e.kind == kind)
    if example is not None:
        raise FileNotFoundError(f"{text!r} is a bundled {example.kind} file, not a {what}: "
                                f"run it as `{example.command}`")
    if path.exists():
        return path  # a folder of that name and no example: the reader says it is a folder
    close = difflib.get_close_matches(text, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise FileNotFoundError(
        f"no file {text!r} and no bundled {kind} example of that name{hint} (bundled: "
        f"{', '.join(names) or 'none'}; `fuselab examples` describes them)")
