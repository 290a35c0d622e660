"""Output files of the command line: checked before any work, written atomically.

A command that solves for minutes and then finds that ``--out`` names a folder, or a folder that
does not exist, loses its result. So every command checks its output paths first
(:func:`check_output`), and writes each file to a temporary name in the same folder and renames
it into place (:func:`staged`, :func:`write_output`): an interrupted write never leaves half a
file, and an existing file is replaced whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from formulation.errors import OutputPathError


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_output(
    path: Path | None,
    option: str,
    *,
    suffixes: Collection[str] | None = None,
    create_parents: bool = False,
) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    Parameters
    ----------
    path : Path, optional
        The output path (nothing to check when None).
    option : str
        The option that named it, for the message (e.g. ``--out``).
    suffixes : collection of str, optional
        Accepted file name endings (lower case, with the dot), e.g. ``{".png", ".pdf"}``.
    create_parents : bool
        Missing folders on the way will be created (the command does so); else they must exist.

    Raises
    ------
    OutputPathError
        Naming the option, the path and what was expected.
    """
    if path is None:
        return
    what = f"{option} {path}"
    if str(path) in ("", ".") or path.name in ("", ".", ".."):
        raise OutputPathError(f"{what}: expected a file name, not a folder")
    if path.is_dir():
        raise OutputPathError(f"{what}: is a folder; expected the path of a file to write")
    if path.exists() and not path.is_file():
        raise OutputPathError(f"{what}: exists and is not a regular file; expected a file to write")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{what}: expected a file name ending in one of {', '.join(sorted(suffixes))}")
    parent = path.parent
    if create_parents:
        parent = _nearest_existing(parent)
    elif not parent.exists():
        raise OutputPathError(f"{what}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputPathError(f"{what}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what}: cannot write into the folder {parent} (permission denied)")


@contextlib.contextmanager
def staged(path: Path, *, create_parents: bool = False) -> Iterator[Path]:
    """A temporary path to write instead of ``path``; on success the files move into place.

    Yields ``TMPDIR/NAME`` where ``TMPDIR`` is a fresh folder beside ``path``. When the block
    ends without an exception, every file written in ``TMPDIR`` (``NAME`` and companions such as
    a Gantt chart) replaces its namesake in ``path``'s folder by an atomic rename; otherwise
    nothing is moved. The temporary folder is removed in both cases.

    Parameters
    ----------
    path : Path
        The final path.
    create_parents : bool
        Create missing folders on the way first.
    """
    parent = path.parent
    if create_parents:
        parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    try:
        yield tmpdir / path.name
        for f in sorted(tmpdir.iterdir()):
            os.replace(f, parent / f.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def write_output(path: Path, text: str, *, create_parents: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    with staged(path, create_parents=create_parents) as tmp:
        tmp.write_text(text)


def plot_suffixes() -> frozenset[str]:
    """File name endings matplotlib can write (``.png``, ``.pdf``, ``.svg``...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return frozenset(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes())


def check_plot(path: Path | None, option: str = "--plot") -> None:
    """:func:`check_output` for a figure: the ending must be a format matplotlib writes.

    Also turns matplotlib's math parsing off for this process: figures label layers and devices
    with the user's ids, and an id such as ``a$b`` must be drawn as written, not parsed as TeX
    (where it would fail after the solve). No figure of dnnpart uses math text.
    """
    if path is not None:
        check_output(path, option, suffixes=plot_suffixes())
        import matplotlib

        matplotlib.rcParams["text.parse_math"] = False
