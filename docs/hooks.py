"""MkDocs hooks: pages made from files outside ``docs/`` at build time, so they never drift.

* ``<!-- generated: readme -->`` (``docs/index.md``) -> the README, its links rewritten for the site;
* ``<!-- generated: cli-help -->`` (``docs/reference/cli.md``) -> ``fuselab <command> --help``;
* ``<!-- generated: reproductions -->`` (``docs/reproductions/index.md``) -> one row per
  ``reproductions/<NNN>-<slug>/`` folder; each folder's ``RESULTS.md`` (and the files beside it:
  claim figures, configs) becomes ``reproductions/<folder>/RESULTS.md`` on the site and in the nav.

A relative link to a repository file that is not on the site becomes its path as inline code
(``benchmarks/README.md``), so strict mode never fails on a link that works on GitHub.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")
LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)", re.M)
FOLDER = re.compile(r"^\d{3}-[a-z0-9-]+$")
REPRODUCTIONS_NAV = "Reproductions"


def repo_root(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def reproduction_folders(root: Path) -> list[Path]:
    """``reproductions/<NNN>-<slug>/`` folders, sorted; none when the folder does not exist."""
    base = root / "reproductions"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and FOLDER.match(p.name))


def site_path(repo_path: str) -> str | None:
    """Where a repository file lives on the site (``docs/x.md`` -> ``x.md``), or None."""
    if repo_path == "README.md":
        return "index.md"
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/"):]
    parts = repo_path.split("/")
    if len(parts) == 3 and parts[0] == "reproductions" and FOLDER.match(parts[1]):
        return repo_path
    return None


def rewrite_links(markdown: str, repo_path: str, page_site_path: str, on_site: set[str]) -> str:
    """Point relative links of ``repo_path``'s text at site pages; others become inline code.

    Fenced code blocks are left untouched (``x[0](y)`` in Python is not a link).
    """
    page_dir = posixpath.dirname(page_site_path)

    def fix(m: re.Match[str]) -> str:
        bang, text, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), path))
        dest = site_path(resolved)
        if dest is not None and dest in on_site:
            rel = posixpath.relpath(dest, page_dir or ".")
            return f"{bang}[{text}]({rel}{'#' + anchor if anchor else ''})"
        return f"`{resolved}`" if text.strip("`") == resolved else f"{text} (`{resolved}`)"

    chunks = FENCE.split(markdown)
    out, inside = [], False
    for chunk in chunks:
        if chunk in ("```", "~~~"):
            inside = not inside
            out.append(chunk)
        else:
            out.append(chunk if inside else LINK.sub(fix, chunk))
    return "".join(out)


def readme(root: Path, page_site_path: str, on_site: set[str]) -> str:
    text = (root / "README.md").read_text(encoding="utf-8")
    return rewrite_links(text, "README.md", page_site_path, on_site)


def cli_help(root: Path) -> str:
    """``fuselab --help`` and each command's help, from the parser the command uses."""
    sys.path.insert(0, str(root / "src"))
    try:
        from fuselab.cli import DEPRECATED_COMMANDS, build_parser
    finally:
        sys.path.pop(0)
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    blocks = [("fuselab", parser)] + [(f"fuselab {n}", p) for n, p in sub.choices.items()
                                      if n not in DEPRECATED_COMMANDS]
    out = []
    for title, p in blocks:
        p.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=96)
        out.append(f"## `{title}`\n\n```text\n{p.format_help().rstrip()}\n```\n")
    return "\n".join(out)


def study_description(folder: Path) -> str:
    """``study.description`` of the folder's ``cpu.toml`` (else ``full.toml``), or ``""``."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the listing still builds, without descriptions
        return ""
    for name in ("cpu.toml", "full.toml"):
        path = folder / name
        if path.is_file():
            study = tomllib.loads(path.read_text(encoding="utf-8")).get("study", {})
            return str(study.get("description", ""))
    return ""


def reproductions_table(root: Path) -> str:
    folders = reproduction_folders(root)
    if not folders:
        return "No reproduction folder exists yet.\n"
    rows = ["| folder | study | configs | results |", "| --- | --- | --- | --- |"]
    for f in folders:
        configs = ", ".join(f"`{p.name}`" for p in sorted(f.glob("*.toml"))) or "—"
        results = (f"[RESULTS.md]({f.name}/RESULTS.md)" if (f / "RESULTS.md").is_file()
                   else "not run yet")
        desc = study_description(f).replace("|", "\\|") or "—"
        rows.append(f"| `reproductions/{f.name}` | {desc} | {configs} | {results} |")
    return "\n".join(rows) + "\n"


def on_config(config: Any) -> Any:
    """Add each reproduction's RESULTS.md (and its other pages, e.g. PROTOCOL.md, which
    :func:`on_files` serves too) to the nav's Reproductions section."""
    pages: list[dict[str, Any]] = []
    for f in reproduction_folders(repo_root(config)):
        if not (f / "RESULTS.md").is_file():
            continue
        others = sorted(p.name for p in f.glob("*.md") if p.name != "RESULTS.md")
        if not others:
            pages.append({f.name: f"reproductions/{f.name}/RESULTS.md"})
            continue
        pages.append({f.name: [f"reproductions/{f.name}/{n}" for n in ["RESULTS.md", *others]]})
    for item in config["nav"] or []:
        if isinstance(item, dict) and REPRODUCTIONS_NAV in item:
            section = item[REPRODUCTIONS_NAV]
            item[REPRODUCTIONS_NAV] = [*(section if isinstance(section, list) else [section]),
                                       *pages]
    return config


def on_files(files: Files, config: Any) -> Files:
    """Serve every file of a reproduction folder that has a RESULTS.md (its page and figures)."""
    for folder in reproduction_folders(repo_root(config)):
        if not (folder / "RESULTS.md").is_file():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file():
                uri = f"reproductions/{folder.name}/{path.name}"
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    root = repo_root(config)
    uri = page.file.src_uri
    on_site = {f.src_uri for f in files}
    if uri.startswith("reproductions/") and uri.endswith("/RESULTS.md"):
        markdown = rewrite_links(markdown, uri, uri, on_site)
    makers = {
        "readme": lambda: readme(root, uri, on_site),
        "cli-help": lambda: cli_help(root),
        "reproductions": lambda: reproductions_table(root),
    }

    def expand(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in makers:
            raise ValueError(f"{uri}: unknown generated block {name!r}; known: {sorted(makers)}")
        return makers[name]()

    return MARKER.sub(expand, markdown)
