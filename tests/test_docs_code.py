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


def test_the_one_line_commands_of_docs_api_run_verbatim() -> None:
    """The ``python -c "..."`` lines of docs/api.md's shell blocks (after ``pip install -e .``)."""
    import shlex
    import subprocess
    import sys

    text = PAGES[0].read_text()
    shells = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    commands = [line for block in shells for line in block.splitlines() if line.startswith("python -c ")]
    assert commands
    for line in commands:
        args = shlex.split(line.split("  #")[0])
        out = subprocess.run([sys.executable, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert float(out.stdout) == pytest.approx(0.298668185, rel=1e-8)  # AlexNet over LTE, all on the phone
