"""The repository stands alone: no tracked file refers to a folder beside it or to a machine path.

A clone on another machine has nothing next to it and none of the author's directories, so a path
such as ``../<folder>/data`` or an absolute home, temporary or system directory in code, tests,
docs or data is a dead reference there. Third-party data lives in ``instances/third_party/``.

The patterns are assembled from pieces, so that this file does not match itself.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_SLASH = "/"
_DOTS = ".."
#: (what it is, pattern)
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a folder beside the repository", re.compile(re.escape(_DOTS + _SLASH + "shared"))),
    ("an absolute machine path", re.compile(r"(?<![\w.~-])" + _SLASH + "(?:work|home|root|Users)" + _SLASH)),
    ("an absolute temporary path", re.compile(r"(?<![\w.~-])" + _SLASH + "tmp" + _SLASH + r"[A-Za-z0-9_]")),
    # an upper-case drive letter, one or two backslashes, then a name (not an escape such as \n)
    ("a Windows drive path", re.compile(r"(?<![A-Za-z])[A-Z]:" + re.escape("\\") + r"{1,2}(?![ntr]\b)[A-Za-z]")),
)


def tracked_files() -> list[str]:
    """Every file git tracks (paths relative to the repository root)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode("utf-8").split("\0") if p]


def hits(text: str) -> list[tuple[int, str, str]]:
    """``(line number, kind, line)`` for every forbidden reference in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for kind, pattern in PATTERNS:
            if pattern.search(line):
                found.append((number, kind, line.strip()[:160]))
    return found


@pytest.mark.parametrize(
    "line",
    [
        "data = " + _DOTS + _SLASH + "shared" + "/data/x.json",
        "see " + _SLASH + "work" + _SLASH + "main/README.md",
        "cd " + _SLASH + "home" + _SLASH + "me",
        "python " + _SLASH + "root" + _SLASH + "x.py",
        "open('" + _SLASH + "Users" + _SLASH + "me/x')",
        "log at " + _SLASH + "tmp" + _SLASH + "run1/out.txt",
        "C:" + "\\\\" + "Users\\me",
        "D:" + "\\" + "data",
    ],
)
def test_each_pattern_catches_its_case(line: str) -> None:
    assert hits(line), line


@pytest.mark.parametrize(
    "line",
    [
        "instances/third_party/msr-dnn-partitioning/README.md",
        "tmp_path / 'outside' / 'm.yaml'",
        "see docs" + _SLASH + "work" + _SLASH + "notes and a" + _SLASH + "home" + _SLASH + "b",  # relative paths
        "https://github.com/msr-fiddle/pipedream/tree/master/profiler",
        "x = a[1:] / b",
        'text = "a:\\n  b: 1\\n"',
        'text = "A:\\n  b: 1"',
    ],
)
def test_ordinary_text_passes(line: str) -> None:
    assert hits(line) == []


def test_no_tracked_file_refers_outside_the_repository() -> None:
    files = tracked_files()
    assert "README.md" in files and len(files) > 100
    problems = []
    for name in files:
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        problems += [f"{name}:{n}: {kind}: {line}" for n, kind, line in hits(text)]
    assert problems == [], "\n".join(problems)
