"""The layers of the house: formulation <- solvers <- toolchain <- reproductions (and the public API).

A lower layer never imports an upper one, not even lazily inside a function: the check reads every
import statement of each package's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: package -> the packages above it, which it must not import.
UPPER = {
    "formulation": {"solvers", "toolchain", "dnnpart", "paper_reproductions", "benchmarks"},
    "solvers": {"toolchain", "dnnpart", "paper_reproductions", "benchmarks"},
    "toolchain": {"dnnpart", "paper_reproductions", "benchmarks"},
}


def imported_packages(source: str) -> set[str]:
    """Top-level package names of every import in ``source`` (relative imports excluded)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_imported_packages_sees_lazy_imports() -> None:
    src = "import os\ndef f():\n    from solvers.base import Solver\n    import toolchain.cli as c\n"
    assert imported_packages(src) == {"os", "solvers", "toolchain"}


@pytest.mark.parametrize("package", sorted(UPPER))
def test_no_layer_imports_an_upper_one(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        hits = imported_packages(path.read_text(encoding="utf-8")) & UPPER[package]
        if hits:
            bad.append(f"{path.relative_to(ROOT)} imports {sorted(hits)}")
    assert bad == []
