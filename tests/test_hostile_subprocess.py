"""The installed ``dnnpart`` command on hostile files, in a real process: exit codes and stderr as users see them.

In-process runs cannot show what a real interpreter does with a deep recursion, a file without end
or a FIFO that nobody writes to; these run the console script itself, each under a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile import DNNPART, ROOT, TINY, tiny, write

COMMAND = [str(DNNPART)] if DNNPART.exists() else [sys.executable, "-m", "toolchain.cli"]


def dnnpart(*args: object, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DNNPART_")}
    full_env.update(env or {})
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=full_env
    )


def one_paragraph(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("error:") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def test_json_nested_100000_deep(tmp_path: Path) -> None:
    f = tmp_path / "deep.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    one_paragraph(dnnpart("validate", f), 2, "nesting deeper than 64")


def test_yaml_nested_100000_deep(tmp_path: Path) -> None:
    f = tmp_path / "deep.yaml"
    f.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    one_paragraph(dnnpart("validate", f), 2, str(f), "valid YAML")


def test_dev_zero_is_refused_at_once() -> None:
    one_paragraph(dnnpart("validate", "/dev/zero", timeout=20), 2, "a regular file, not a character device")


def test_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    one_paragraph(dnnpart("validate", fifo, timeout=20), 2, "a regular file, not a FIFO")


def test_size_limit_from_the_environment(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(TINY.read_text() + "#" * 5000 + "\n")
    proc = dnnpart("validate", big, env={"DNNPART_MAX_FILE_BYTES": "4096"})
    one_paragraph(proc, 2, f"{big}: got a file of {big.stat().st_size} bytes; expected at most 4096 bytes")
    assert dnnpart("validate", big).returncode == 0


def test_400_digit_integer(tmp_path: Path) -> None:
    data = tiny()
    data["system"]["links"][0]["bandwidth"] = int("4" * 400)
    f = write(tmp_path / "big.json", data)
    one_paragraph(dnnpart("validate", f), 2, "system.links[0].bandwidth: got an integer of 400 digits")


def test_markup_in_a_device_id(tmp_path: Path) -> None:
    data = tiny()
    data["system"]["sink"] = "[/]"
    f = write(tmp_path / "sink.yaml", data)
    one_paragraph(dnnpart("solve", f), 2, "system.sink: got '[/]'")


@pytest.mark.parametrize("debug", ["", "1"])
def test_bad_limit_setting_with_and_without_debug(debug: str) -> None:
    proc = dnnpart("validate", TINY, env={"DNNPART_MAX_DEPTH": "deep", "DNNPART_DEBUG": debug})
    assert proc.returncode == 2
    assert "DNNPART_MAX_DEPTH='deep': expected a positive integer" in proc.stderr
    assert ("Traceback" in proc.stderr) == bool(debug)
