"""Every relative link in the repository's Markdown resolves on a fresh clone.

Walks every Markdown file of the repository (README.md, docs/, benchmarks/, instances/,
paper_reproductions/, ...) and the Markdown cells of the notebooks. For each link or image that is
not external (``http(s):``, ``mailto:``; those are not fetched):

* the target path must be a file or folder of the repository (a file git tracks, or one that is
  about to be: untracked but not ignored), inside the repository;
* a ``#anchor`` (in the same file, or after a path to a ``.md`` file or a notebook) must be the slug
  of a heading of the target, by GitHub's rules: the heading's text as rendered, lower-cased,
  without punctuation other than ``-`` and ``_``, spaces turned into ``-``; a repeated heading gets
  ``-1``, ``-2``, ... in order.

Code blocks and code spans are not read (a ``# comment`` in a shell block is not a heading, an
example link inside backticks is not a link).
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
# [text](target "title") and ![alt](target); text may hold one level of brackets
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
_HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.I)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def repository_files() -> set[str]:
    """Tracked files plus untracked files that are not ignored (what a commit of the tree holds)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return {p for p in out.decode("utf-8").split("\0") if p and (ROOT / p).exists()}


@cache
def _files() -> frozenset[str]:
    return frozenset(repository_files())


@cache
def _folders() -> frozenset[str]:
    out = {"."}
    for f in _files():
        out.update(str(p) for p in PurePosixPath(f).parents if str(p) != ".")
    return frozenset(out)


def strip_code_blocks(text: str) -> str:
    """The text with fenced code blocks blanked (line numbers kept)."""
    lines = text.split("\n")
    fence = ""
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if fence:
            if (
                m
                and m.group(1)[0] == fence[0]
                and len(m.group(1)) >= len(fence)
                and not line.strip()[len(m.group(1)) :]
            ):
                fence = ""
            lines[i] = ""
        elif m:
            fence = m.group(1)
            lines[i] = ""
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading (before de-duplication)."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor the headings of ``markdown`` define, with GitHub's ``-1``, ``-2`` suffixes."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in strip_code_blocks(markdown).split("\n"):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(markdown: str) -> list[str]:
    """Link targets of ``markdown`` outside code blocks and code spans."""
    text = strip_code_blocks(markdown)
    text = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)
    found = [m.group(1) for m in _INLINE.finditer(text)]
    found += _REFERENCE_DEF.findall(text)
    found += _HTML_LINK.findall(text)
    return found


def notebook_markdown(path: Path) -> str:
    """The Markdown cells of a notebook, joined."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"]
    return "\n\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells)


def document(name: str) -> str:
    """The Markdown of a repository file (a notebook's Markdown cells)."""
    path = ROOT / name
    return notebook_markdown(path) if name.endswith(".ipynb") else path.read_text(encoding="utf-8")


def documents() -> list[str]:
    """Every Markdown file and notebook of the repository."""
    return sorted(f for f in _files() if f.endswith((".md", ".ipynb")))


def check_link(source: str, target: str) -> str | None:
    """Why ``target``, a link in repository file ``source``, does not resolve (None when it does)."""
    if not target or _EXTERNAL.match(target):
        return None
    path_part, _, anchor = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    anchor = unquote(anchor)
    if path_part:
        if path_part.startswith("/"):
            joined = PurePosixPath(path_part.lstrip("/"))
        else:
            joined = PurePosixPath(source).parent / path_part
        parts: list[str] = []
        for part in joined.parts:
            if part == "..":
                if not parts:
                    return f"{target}: leads outside the repository"
                parts.pop()
            elif part != ".":
                parts.append(part)
        resolved = "/".join(parts) or "."
        if resolved not in _files() and resolved not in _folders():
            return f"{target}: no such file or folder in the repository ({resolved})"
    else:
        resolved = source
    if anchor and resolved.endswith((".md", ".ipynb")) and anchor not in anchors(document(resolved)):
        return f"{target}: no heading of {resolved} has the anchor #{anchor}"
    return None


# -- the rules themselves ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("5.6 Energy", "56-energy"),
        ("2.5 Layer metadata (`attrs`)", "25-layer-metadata-attrs"),
        (
            "Colocation and the weights-only memory model (extensions of format version 1)",
            "colocation-and-the-weights-only-memory-model-extensions-of-format-version-1",
        ),
        ("Set-up: two commands", "set-up-two-commands"),
        ("How to add a solver", "how-to-add-a-solver"),
        ("`memory_bandwidth` and [links](x.md)", "memory_bandwidth-and-links"),
        ("Batches, comparisons, plots, notebooks", "batches-comparisons-plots-notebooks"),
    ],
)
def test_slug_follows_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_duplicate_headings_are_numbered_and_code_is_skipped() -> None:
    md = "# A\n\n## A\n\n```bash\n# not a heading\n```\n\n### A!\n"
    assert anchors(md) == {"a", "a-1", "a-2"}
    assert links("see [x](y.md) and `[z](w.md)`\n\n```\n[q](r.md)\n```\n[ref]: s.md\n") == ["y.md", "s.md"]


def test_broken_links_are_found() -> None:
    assert check_link("docs/milp.md", "instance-format.md#54-latency-parallel") is None
    assert check_link("README.md", "docs/instance-format.md") is None
    assert check_link("README.md", "https://example.org/x") is None
    assert check_link("README.md", "docs/no-such-file.md") is not None
    assert check_link("docs/milp.md", "instance-format.md#no-such-anchor") is not None
    assert check_link("docs/milp.md", "#no-such-heading") is not None
    assert check_link("docs/milp.md", "../../elsewhere/x.md") is not None


def test_the_walk_covers_the_repository() -> None:
    docs = documents()
    for expected in (
        "README.md",
        "docs/instance-format.md",
        "benchmarks/README.md",
        "paper_reproductions/README.md",
        "instances/third_party/README.md",
    ):
        assert expected in docs
    assert any(d.startswith("notebooks/") and d.endswith(".ipynb") for d in docs)
    assert sum(len(links(document(d))) for d in docs) > 20


# -- the repository ----------------------------------------------------------------------------


def test_every_relative_link_resolves() -> None:
    problems = []
    for source in documents():
        for target in links(document(source)):
            why = check_link(source, target)
            if why:
                problems.append(f"{source}: {why}")
    assert problems == [], "\n".join(problems)
