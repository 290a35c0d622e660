"""A reader that closes the pipe early (``dnnpart ... | head``) ends the command quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: An instance whose JSON result (per-layer entries) is far larger than a pipe's 64 kB buffer.
BIG = ROOT / "instances" / "zoo" / "llama2_13b_decode--llm-edge--pipeline.yaml"


def test_closed_pipe_is_not_an_internal_error() -> None:
    cmd = [sys.executable, "-m", "toolchain.cli", "solve", str(BIG), "--solver", "local", "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10).startswith(b"{")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "internal error" not in err and "Traceback" not in err and "BrokenPipe" not in err, err
