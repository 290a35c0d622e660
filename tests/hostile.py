"""Shared helpers of the hostile-input tests: instance variants and CLI runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from toolchain.cli import app

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "instances" / "examples" / "tiny-dag-three-tier.yaml"
DNNPART = ROOT / ".venv" / "bin" / "dnnpart"
runner = CliRunner()


def tiny() -> dict[str, Any]:
    """A fresh copy of the tiny three-tier example's data."""
    return copy.deepcopy(yaml.safe_load(TINY.read_text()))


def write(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON (``.json``) or YAML and return ``path``."""
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False))
    return path


def run(*args: Any, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process; exceptions stay inside (a test sees the exit code the guard gives)."""
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_paragraph(res: Result, code: int, *needles: str) -> str:
    """The run exited ``code`` with one ``error:`` paragraph holding every needle, and no traceback."""
    err = res.stderr
    assert res.exit_code == code, (res.exit_code, res.stdout, err, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in err and "Traceback" not in res.stdout, err
    assert err.count("error:") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err
