"""Run every paper reproduction and assemble ``paper_reproductions/REPORT.md``.

``python -m paper_reproductions.report`` (``make reproduce``) runs each
``paper_reproductions/<name>/run.py`` as ``python -m paper_reproductions.<name>.run`` in its own
process (a crash or a time-out of one does not stop the others), reads the ``results.json`` it
writes (the convention of :mod:`paper_reproductions.common`, documented in README.md) and writes
one Markdown report: a summary table (numbers judged, reproduced, differing, problems, time), then
each reproduction's verdicts and tables.

A reproduction written before the convention (``deepthings_modnn``: ``run.py --json`` prints rows,
``expected.json`` holds ``studies`` with published speedup ranges) is read through an adapter.

Options: ``--only NAME`` (repeatable: run only these; the others enter the report from their
existing ``results.json``, judged again against the current ``expected.json``), ``--no-run`` (run
nothing: assemble the existing files, judged again),
``--fast`` (each reproduction's test subset; the report says so), ``--timeout S`` per reproduction,
``--out FILE``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paper_reproductions.common import MACHINE, Outcome, Table, markdown_table, rejudge, render, results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def discover() -> list[str]:
    """Names of the folders of ``paper_reproductions/`` that hold a ``run.py``."""
    return sorted(p.parent.name for p in HERE.glob("*/run.py"))


def is_legacy(name: str) -> bool:
    """A reproduction whose ``expected.json`` predates the convention (no ``numbers`` key)."""
    exp = HERE / name / "expected.json"
    return exp.is_file() and "numbers" not in json.loads(exp.read_text())


def legacy_expected(expected: Mapping[str, Any]) -> dict[str, Any]:
    """A ``deepthings_modnn``-style ``expected.json`` (``studies``) in the convention's form.

    Each study's published speedup at its fewest and most devices becomes a judged number, with
    the study's relative tolerance, its ``known_differences`` as the reason for a miss, and what
    its ``recorded`` entry holds for that device count (``ours``, ``verdict``, ``standing``).
    """
    numbers: dict[str, Any] = {}
    for study, exp in expected.get("studies", {}).items():
        src = str(exp.get("source", ""))
        metric = exp.get("metric", "speedup")
        for k, pub in zip(exp["devices"], exp["speedup_range"], strict=True):
            numbers[f"{study}.{metric}_{k}"] = {
                "what": f"{study}: {metric} on {k} devices ({exp.get('scope')}, {exp.get('variant')} split)",
                "unit": "x", "source": src.rsplit("; ", 1)[-1], "published": pub,
                "tolerance": {"rel": exp.get("tolerance", 0.0)}, "why": " ".join(exp.get("known_differences", [])),
                **exp.get("recorded", {}).get(str(k), {}),
            }
    return {"paper": expected.get("paper", ""), "reference": "; ".join(
        s.get("source", "") for s in expected.get("studies", {}).values()), "numbers": numbers}


def adapt_legacy(name: str, data: Mapping[str, Any], expected: Mapping[str, Any], wall_s: float) -> dict[str, Any]:
    """A results document from a ``deepthings_modnn``-style run (``--json`` rows + ``studies``),
    judged by :func:`paper_reproductions.common.judge` through :func:`legacy_expected`."""
    spec = legacy_expected(expected)
    rows = data.get("rows", [])
    values: dict[str, Any] = {}
    for study, exp in expected.get("studies", {}).items():
        metric = exp.get("metric", "speedup")
        for k in exp["devices"]:
            hits = [r for r in rows if r.get("study") == study and r.get("scope") == exp.get("scope")
                    and r.get("variant") == exp.get("variant") and r.get("devices") == k]
            values[f"{study}.{metric}_{k}"] = float(hits[0][metric]) if hits else None
    cols = ["study", "scope", "variant", "devices", "split", "speedup", "bound_speedup", "throughput_speedup"]
    table = Table("All configurations (from run.py --json)", cols, [[r.get(c) for c in cols] for r in rows])
    doc = results(name, Outcome(values, [table], [], list(data.get("problems", []))), spec, False, wall_s)
    doc["paper"] = expected.get("paper") or _title(name)
    return doc


def _title(name: str) -> str:
    """The first ``# `` heading of the folder's README, else the folder name."""
    readme = HERE / name / "README.md"
    if readme.is_file():
        for line in readme.read_text().splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return name


def run_one(name: str, timeout_s: float, fast: bool) -> tuple[dict[str, Any] | None, str]:
    """Run one reproduction in a subprocess; its results document (or None) and a log excerpt."""
    module = f"paper_reproductions.{name}.run"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        legacy = is_legacy(name)
        out = Path(tmp) / "results.json" if fast else HERE / name / "results.json"
        args = [sys.executable, "-m", module] + (["--json"] if legacy else ["--out", str(out)])
        if fast:
            args.append("--fast")
        try:
            proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return None, f"{name}: no result within {timeout_s:g} s"
        wall = time.perf_counter() - t0
        log = (proc.stderr or "")[-2000:]
        if legacy:
            try:
                data = json.loads(proc.stdout)
            except json.JSONDecodeError:
                return None, f"{name}: exit {proc.returncode}, no JSON on stdout\n{log}"
            expected = json.loads((HERE / name / "expected.json").read_text())
            doc = adapt_legacy(name, data, expected, wall)
            if not fast:
                (HERE / name / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
            return doc, log
        if not out.is_file():
            return None, f"{name}: exit {proc.returncode}, no results.json\n{log}"
        return json.loads(out.read_text()), log


def stored(name: str) -> dict[str, Any]:
    """``<name>/results.json`` judged again against the current ``expected.json`` (as ``--rejudge``
    does), so that the report never shows a verdict older than the expected values."""
    doc: dict[str, Any] = json.loads((HERE / name / "results.json").read_text())
    if "values" not in doc:
        return doc
    expected = json.loads((HERE / name / "expected.json").read_text())
    new = rejudge(doc, legacy_expected(expected) if "numbers" not in expected else expected)
    new["paper"] = doc["paper"]
    return new


def counts(doc: Mapping[str, Any]) -> tuple[int, int, int]:
    """(judged, reproduced, differs) numbers of a results document."""
    verdicts = [r["verdict"] for r in doc.get("numbers", [])]
    return (sum(v in ("reproduced", "differs") for v in verdicts), verdicts.count("reproduced"),
            verdicts.count("differs"))


def build(docs: Mapping[str, dict[str, Any] | None], failures: Mapping[str, str], fast: bool) -> str:
    """The Markdown report."""
    rows: list[list[Any]] = []
    for name, doc in docs.items():
        if doc is None:
            rows.append([name, "-", "-", "-", "-", "did not run: see Failures", "-"])
            continue
        judged, ok, diff = counts(doc)
        rows.append([name, doc["paper"], judged, ok, diff, len(doc.get("problems", [])) or "none",
                     f"{doc['wall_time_s']:.1f}" + (" (fast)" if doc.get("fast") else "")])
    parts = [
        "# Paper reproductions",
        "",
        f"Assembled by `make reproduce` (`python -m paper_reproductions.report`) on {_dt.date.today().isoformat()}, "
        f"{MACHINE}" + (", fast subsets only" if fast else "") + ". Each section comes from that reproduction's "
        "`results.json` and `expected.json`; see `paper_reproductions/README.md` for the convention and each "
        "folder's README for the discussion. A number is *reproduced* when ours lies within the stated tolerance "
        "of the published one; otherwise the verdict says why it differs. *Problems* are failed checks (a value "
        "that left its recorded value, two exact solvers that disagree).",
        "",
        markdown_table(["reproduction", "paper", "numbers judged", "reproduced", "differs", "problems", "time (s)"],
                       rows),
        "",
    ]
    for doc in docs.values():
        if doc is not None:
            parts += [render(doc, level=2), ""]
    if failures:
        parts += ["## Failures", ""] + [f"* {name}: {msg}" for name, msg in failures.items()] + [""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or collect) the reproductions, write the report; 1 if one that ran failed or reported problems."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--only", action="append", default=None,
                    help="run only this reproduction (repeatable); the others come from their results.json")
    ap.add_argument("--no-run", action="store_true", help="assemble the existing results.json files")
    ap.add_argument("--fast", action="store_true", help="each reproduction's test subset")
    # tarnawski2020 alone runs 16 exact solves of up to 300 s each (about an hour on 2 cores).
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds per reproduction")
    ap.add_argument("--out", type=Path, default=HERE / "REPORT.md")
    args = ap.parse_args(argv)
    known = discover()
    unknown = sorted(set(args.only or []) - set(known))
    if unknown:
        ap.error(f"no reproduction {unknown}; known: {known}")
    to_run = set() if args.no_run else set(args.only or known)
    docs: dict[str, dict[str, Any] | None] = {}
    failures: dict[str, str] = {}
    for name in known:
        path = HERE / name / "results.json"
        if name not in to_run:
            docs[name] = stored(name) if path.is_file() else None
            if docs[name] is None:
                failures[name] = "no results.json (not run yet)"
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        doc, log = run_one(name, args.timeout, args.fast)
        docs[name] = doc
        if doc is None:
            failures[name] = log
        else:
            judged, ok, diff = counts(doc)
            print(f"  {judged} judged, {ok} reproduced, {diff} differ, {len(doc.get('problems', []))} problems, "
                  f"{doc['wall_time_s']:.1f} s", file=sys.stderr, flush=True)
    args.out.write_text(build(docs, failures, args.fast))
    print(f"wrote {args.out}", file=sys.stderr)
    covered = to_run or set(known)  # the exit status speaks for what was run (all, with --no-run)
    bad = any(n in failures or (docs[n] or {}).get("problems") for n in covered)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
