"""The batch grid: instances x solvers x option sets x seeds, each cell a :class:`Task` with a stable key.

A task's key identifies its row in the results store, so that ``--resume`` can skip what is done:
``key = sha256(instance content hash, solver, canonical options JSON, seed)``. The instance
content hash covers everything that can change a result (model, system, problem, latency table)
and nothing that cannot (the instance's name, description or file path), so renaming or moving a
file keeps its rows, and two files with the same content are solved once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formulation.model import Instance
from solvers.options import SolverOptions


class BatchError(ValueError):
    """A batch that cannot start as asked (e.g. the store already holds rows of this grid)."""


#: Suffixes of instance files, when a folder is given.
INSTANCE_SUFFIXES = (".yaml", ".yml", ".json")


def instance_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; a folder stands for the instance files directly inside it (sorted).

    Sub-folders are not searched: they usually hold the shared model and system files that
    instances reference with ``file:``.

    Raises
    ------
    BatchError
        A path that does not exist, or a folder without instance files.
    """
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in INSTANCE_SUFFIXES)
            if not found:
                raise BatchError(f"{p}: folder holds no instance file ({', '.join(INSTANCE_SUFFIXES)})")
            out += found
        elif not p.exists():
            raise BatchError(f"{p}: no such file")
        else:
            out.append(p)
    return out


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str)


def instance_hash(inst: Instance) -> str:
    """SHA-256 of the instance's content: model, system, problem and latency table.

    The name, description and source path are left out (they cannot change a result). Layers are
    hashed in the graph's topological order, numbers as Python floats, so the hash does not depend
    on the units or the layer order used in the file.

    Parameters
    ----------
    inst : Instance

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    from formulation.loader import instance_to_data

    data = instance_to_data(inst)
    for key in ("name", "description"):
        data.pop(key, None)
    return hashlib.sha256(_canonical(data).encode()).hexdigest()


def options_json(options: Mapping[str, Any]) -> str:
    """The canonical JSON text of an option set (sorted keys, no spaces): part of a task's key."""
    return _canonical(dict(options))


@dataclass(frozen=True)
class Task:
    """One cell of the grid: solve ``instance`` with ``solver`` under ``options`` and ``seed``.

    Attributes
    ----------
    key : str
        Unique key of the task's row (see the module docstring).
    instance : Instance
        The instance itself (it travels to the worker, so workers need no file access).
    instance_hash : str
        :func:`instance_hash` of ``instance``.
    instance_file : str or None
        The file it was loaded from, for the record.
    solver : str
        Registry name.
    solver_target : str or None
        ``"module:Class"`` of the solver as registered in the driver, so that solvers registered
        at run time resolve in worker processes too (``None`` for family names like ``pyomo:cbc``).
    options : dict
        Option set (keys of :class:`solvers.options.SolverOptions`), without the seed.
    seed : int or None
        Seed passed as ``SolverOptions.seed`` (``None``: not set).
    hard_timeout_s : float or None
        Wall-clock seconds after which the worker is killed and the row records a timeout.
    """

    key: str
    instance: Instance
    instance_hash: str
    instance_file: str | None
    solver: str
    solver_target: str | None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    hard_timeout_s: float | None = None

    @property
    def options_json(self) -> str:
        """Canonical JSON of :attr:`options`."""
        return options_json(self.options)

    def solver_options(self) -> SolverOptions:
        """The :class:`SolverOptions` of this task (options plus seed).

        Raises
        ------
        TypeError, ValueError
            For an unknown option name or a bad value (the worker turns it into an error row).
        """
        opts = dict(self.options)
        if self.seed is not None:
            opts["seed"] = self.seed
        return SolverOptions(**opts)


def task_key(ihash: str, solver: str, opts_json: str, seed: int | None) -> str:
    """The row key of a task: SHA-256 over its four identifying parts."""
    return hashlib.sha256(_canonical([ihash, solver, opts_json, seed]).encode()).hexdigest()


def hard_timeout(options: Mapping[str, Any], grace_s: float) -> float | None:
    """Seconds after which a task is killed: the solver's time limit plus a grace for set-up.

    Solvers overrun their limit a little (model building, evaluation); the grace is
    ``grace_s + 50 %`` of the limit. Without a time limit the task is never killed.
    """
    limit = options.get("time_limit_s")
    if limit is None:
        return None
    return float(limit) * 1.5 + grace_s


def _solver_target(name: str) -> str | None:
    from solvers.registry import families, solver_class

    prefix, sep, _ = name.partition(":")
    if sep and prefix in families():
        return None
    cls = solver_class(name)
    return f"{cls.__module__}:{cls.__qualname__}"


InstanceLike = Instance | str | os.PathLike[str]


def option_sets_of(option_sets: Sequence[Mapping[str, Any]], time_limit_s: float | None) -> list[dict[str, Any]]:
    """The option sets as run: checked (unknown names, bad values), with the default time limit filled in.

    Raises
    ------
    ValueError, TypeError
        For an unknown option or a bad value.
    """
    known = [f.name for f in dataclasses.fields(SolverOptions) if f.name not in ("seed", "verbose")]
    sets = []
    for opts in option_sets:
        o = dict(opts)
        unknown = sorted(set(o) - set(known))
        if unknown:
            raise ValueError(
                f"option set {options_json(o)}: unknown option(s) {unknown} (known: {', '.join(known)}; "
                "seeds go in `seeds`)"
            )
        if time_limit_s is not None:
            o.setdefault("time_limit_s", float(time_limit_s))
        SolverOptions(**o)  # fail early on a bad value
        sets.append(o)
    return sets


@dataclass(frozen=True)
class BadFile:
    """An instance file that could not be loaded: its tasks become error rows, the others run.

    Attributes
    ----------
    file : str
        The file as given.
    message : str
        Why it could not be loaded (one paragraph).
    content_hash : str
        ``file-sha256:`` and the SHA-256 of its bytes (of its name when unreadable): it stands for
        the instance hash in the task keys, so a corrected file is a new task.
    """

    file: str
    message: str
    content_hash: str


def bad_file(path: str | os.PathLike[str], exc: BaseException) -> BadFile:
    """The :class:`BadFile` of ``path``, which raised ``exc`` when loaded."""
    from formulation.errors import DnnpartError

    file = os.fspath(path)
    if isinstance(exc, DnnpartError):
        message = exc.message()
    else:
        text = " ".join(str(exc).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        message = f"{file}: the file could not be loaded ({type(exc).__name__}: {text})"
    digest = hashlib.sha256(file.encode()).hexdigest()
    if os.path.isfile(file):  # never open a pipe or a device: reading it may block or never end
        with contextlib.suppress(OSError), open(file, "rb") as f:
            digest = hashlib.sha256(f.read(64 << 20)).hexdigest()
    return BadFile(file, message, f"file-sha256:{digest}")


def bad_file_cells(
    bad: BadFile, solvers: Sequence[str], sets: Sequence[Mapping[str, Any]], seeds: Sequence[int | None]
) -> list[tuple[str, str, str, int | None]]:
    """``(key, solver, options JSON, seed)`` of every task of a bad file (``sets`` from :func:`option_sets_of`)."""
    cells = []
    for name in dict.fromkeys(solvers):
        for o in sets:
            oj = options_json(o)
            for seed in seeds:
                cells.append((task_key(bad.content_hash, name, oj, seed), name, oj, seed))
    return cells


def expand_grid(
    instances: Iterable[InstanceLike],
    solvers: Sequence[str],
    option_sets: Sequence[Mapping[str, Any]] = ({},),
    seeds: Sequence[int | None] = (None,),
    *,
    time_limit_s: float | None = None,
    grace_s: float = 10.0,
) -> list[Task]:
    """The grid of tasks, instance-major, deduplicated by key.

    Parameters
    ----------
    instances : iterable of Instance or path
        Instances, or instance files (loaded here, so a bad file fails before anything runs).
    solvers : sequence of str
        Registry names (unknown names raise :class:`solvers.registry.UnknownSolver`).
    option_sets : sequence of mapping
        Each a dict of :class:`SolverOptions` fields (e.g. ``{"gap": 0.01}``).
    seeds : sequence of int or None
        Seeds; ``None`` leaves ``SolverOptions.seed`` unset.
    time_limit_s : float, optional
        Default ``time_limit_s`` for option sets that do not set one.
    grace_s : float
        See :func:`hard_timeout`.

    Returns
    -------
    list of Task
    """
    from formulation.loader import load_instance

    targets = {name: _solver_target(name) for name in dict.fromkeys(solvers)}
    sets = option_sets_of(option_sets, time_limit_s)
    tasks: dict[str, Task] = {}
    for item in instances:
        if isinstance(item, Instance):
            inst, file = item, item.source_path
        else:
            inst, file = load_instance(item), os.fspath(item)
        ihash = instance_hash(inst)
        for name, target in targets.items():
            for o in sets:
                oj = options_json(o)
                for seed in seeds:
                    key = task_key(ihash, name, oj, seed)
                    if key not in tasks:
                        tasks[key] = Task(key, inst, ihash, file, name, target, o, seed, hard_timeout(o, grace_s))
    return list(tasks.values())
