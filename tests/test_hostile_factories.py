"""`import torch` and `profile` run the user's factory: its failures are exit 2 naming the module."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.hostile import assert_paragraph, run

pytest.importorskip("torch")

GOOD = """
import torch

def build():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()), (torch.zeros(1, 4),)
"""
BAD = """
import sys

def raises():
    raise RuntimeError("boom in the factory")

def leaves():
    sys.exit(0)

def one():
    return (1,)

CONSTANT = 3
"""


@pytest.fixture
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hostile_good_factory.py").write_text(GOOD)
    (tmp_path / "hostile_bad_factory.py").write_text(BAD)
    (tmp_path / "hostile_syntax.py").write_text("def build(:\n    pass\n")
    (tmp_path / "hostile_import_exit.py").write_text("raise SystemExit(3)\n")
    return tmp_path


@pytest.mark.parametrize(
    ("target", "needles"),
    [
        ("hostile_bad_factory:raises", ["the factory raised RuntimeError: boom in the factory"]),
        ("hostile_bad_factory:leaves", ["the factory raised SystemExit: 0"]),
        ("sys:exit", ["model 'sys:exit': the factory raised SystemExit"]),
        ("hostile_syntax:build", ["importing 'hostile_syntax' raised SyntaxError", "hostile_syntax.py, line 1"]),
        ("hostile_import_exit:build", ["importing 'hostile_import_exit' raised SystemExit: 3"]),
        (":build", ["expected MODULE:FACTORY or path/to/file.py:FACTORY"]),
        ("hostile_bad_factory:", ["expected MODULE:FACTORY"]),
        ("hostile_bad_factory:missing", ["'missing' in module 'hostile_bad_factory': not found"]),
        ("hostile_bad_factory:CONSTANT", ["an object of type int, not a factory"]),
        ("hostile_bad_factory:one", ["the factory returned a tuple of 1 items"]),
        ("no_such_module_here:build", ["cannot load 'build' from module 'no_such_module_here'"]),
        ("missing.py:build", ["missing.py: no such file"]),
    ],
)
def test_factory_failures_exit_2(code: Path, target: str, needles: list[str]) -> None:
    out = code / "out.yaml"
    res = run("import", "torch", target, "-o", out)
    assert_paragraph(res, 2, f"model {target!r}", *needles)
    assert not out.exists()


@pytest.mark.parametrize("target", ["hostile_good_factory:build", "hostile_good_factory.py:build"])
def test_factory_from_the_current_directory_or_a_file(code: Path, target: str) -> None:
    out = code / "out.yaml"
    res = run("import", "torch", target, "-o", out)
    assert res.exit_code == 0, res.stderr
    layers = yaml.safe_load(out.read_text())["layers"]
    assert [lay["op"] for lay in layers] == ["linear", "relu"]
    assert layers[0]["flops"] == 2 * 4 * 3  # a multiply-add counts 2


def test_help_says_the_factory_is_executed() -> None:
    for args in (["import", "torch", "--help"], ["profile", "--help"]):
        res = run(*args)
        assert res.exit_code == 0
        assert "code you trust" in " ".join(res.stdout.split()), res.stdout


def test_profile_factory_failure(code: Path) -> None:
    res = run("profile", "hostile_bad_factory:raises", "--repeats", "1", "--warmup", "0")
    assert_paragraph(res, 2, "model 'hostile_bad_factory:raises': the factory raised RuntimeError")


def test_factory_file_in_a_folder_imports_its_siblings(code: Path) -> None:
    folder = code / "nets"
    folder.mkdir()
    (folder / "hostile_sibling_part.py").write_text("import torch\n\ndef make():\n    return torch.nn.Linear(2, 5)\n")
    (folder / "hostile_net_file.py").write_text(
        "import torch\nfrom hostile_sibling_part import make\n\ndef build():\n    return make(), (torch.zeros(1, 2),)\n"
    )
    out = code / "out.yaml"
    res = run("import", "torch", "nets/hostile_net_file.py:build", "-o", out)
    assert res.exit_code == 0, res.stderr
    layers = yaml.safe_load(out.read_text())["layers"]
    assert [lay["op"] for lay in layers] == ["linear"] and layers[0]["flops"] == 2 * 2 * 5
