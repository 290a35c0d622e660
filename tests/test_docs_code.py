"""Every ```python block of docs/api.md and README.md runs, verbatim.

The blocks of one page run in order in one namespace (later blocks use names defined earlier), from
a scratch folder whose ``instances`` is a link to the repository's, so files a block writes (a
results store) never land in the repository. A block preceded by the line
``<!-- docs-test: skip (REASON) -->`` is skipped; the reason is required (used for a block that
needs a Ray cluster).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "docs" / "api.md", ROOT / "README.md"]
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)
SKIP = re.compile(r"<!-- docs-test: skip \((?P<reason>[^)]+)\) -->")


def blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip reason or None)`` of every python block of ``page``."""
    text = page.read_text()
    out = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("code"))
        skip = SKIP.fullmatch(m.group("before").strip())
        out.append((line, m.group("code"), skip.group("reason") if skip else None))
    return out


def test_the_pages_have_python_blocks_and_skips_give_reasons() -> None:
    api = blocks(PAGES[0])
    assert len(api) >= 8
    assert [reason for _, _, reason in api if reason] == ["needs a running Ray cluster"]
    assert len(blocks(PAGES[1])) >= 1
    assert "import dnnpart" in blocks(PAGES[1])[0][1]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    (tmp_path / "instances").symlink_to(ROOT / "instances")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    for line, code, reason in blocks(page):
        if reason:
            continue
        try:
            exec(compile(code, f"{page.name}:{line + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.name}, the block at line {line + 1} failed: {exc!r}") from exc
        ran += 1
    assert ran >= 1
