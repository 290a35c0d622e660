"""The reproduction convention: ``expected.json`` in, ``results.json`` out, one verdict per number.

Every ``paper_reproductions/<paper>/run.py`` computes a set of named numbers and hands them to
:func:`main`, which joins them with the folder's ``expected.json``, decides a verdict for each
number against the published value and its tolerance, checks each against the value recorded for
our model (so a change in the cost model, a catalogue or a solver shows up), and writes
``results.json`` beside ``run.py``. ``paper_reproductions/report.py`` assembles every
``results.json`` into ``REPORT.md``. The format is documented in ``paper_reproductions/README.md``.

``expected.json``::

    {"paper": "short title", "reference": "full citation",
     "numbers": {"<id>": {
         "what": "what the number is", "unit": "x" | "%" | "s" | "" ...,
         "published": 3.1 | "input",      # the paper's value (a number or a word)
         "source": "abstract" | "Table 3" | "Fig. 2" | "Sec. 5.1",
         "tolerance": {"rel": 0.3} | {"abs": 0.1} | {"range": [lo, hi]} | {"equals": true},
         "why": "differs because ...",     # required when our value misses the tolerance
         "ours": 13.04, "ours_rtol": 0.01, # our model's recorded value (a regression check)
         "verdict": "differs",             # the verdict the why was written for
         "standing": 4.207                 # where ours stood against the published value then
     }}}

A number without ``published`` is ours only (shown, never judged). ``published`` may also be an
interval ``[lo, hi]`` (ours must lie inside it). Every judged number records ``ours``,
``verdict`` and ``standing``, and the judgement turns each of these into a *problem* (a failing
check, exit status 1) rather than a quiet verdict: our value leaving its recorded value by more
than ``ours_rtol``, a verdict other than the recorded one, and a standing other than the recorded
one (so that an edited published value, or an edited tolerance, cannot pass unnoticed under a
``why`` written for another difference). See :func:`standing`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The machine every number here was measured on (times only; model values do not depend on it).
MACHINE = "2-core x86_64, 24 GiB, Python 3.11"

Value = float | int | str | None


@dataclass
class Table:
    """A results table: a title, column names, rows of cells, and a note under it."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note}


@dataclass
class Outcome:
    """What a run hands to :func:`main`: our numbers, tables, notes, and problems it found itself
    (e.g. two exact solvers that disagree)."""

    numbers: dict[str, Value]
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_expected(folder: Path) -> dict[str, Any]:
    """``folder/expected.json``."""
    data: dict[str, Any] = json.loads((folder / "expected.json").read_text())
    return data


def within(ours: Value, published: Value, tolerance: Mapping[str, Any]) -> bool:
    """Whether ``ours`` matches ``published`` under ``tolerance`` (see the module docstring)."""
    if ours is None:
        return False
    if isinstance(published, list) and not isinstance(ours, str):
        lo, hi = published
        return float(lo) <= float(ours) <= float(hi)
    if "range" in tolerance and not isinstance(ours, str):
        lo, hi = tolerance["range"]
        return float(lo) <= float(ours) <= float(hi)
    if "equals" in tolerance or isinstance(published, str) or isinstance(ours, str):
        return str(ours) == str(published)
    o = float(ours)
    if not math.isfinite(o):
        return False
    if published is None:
        return False
    p = float(published)
    if "abs" in tolerance:
        return abs(o - p) <= float(tolerance["abs"])
    return abs(o - p) <= float(tolerance.get("rel", 0.0)) * abs(p)


def tolerance_text(tolerance: Mapping[str, Any], published: Any = None) -> str:
    """A tolerance in words: ``±30%``, ``±0.1``, ``in [4, 18]``, ``exact``."""
    if isinstance(published, list):
        return f"in [{float(published[0]):g}, {float(published[1]):g}]"
    if "range" in tolerance:
        lo, hi = tolerance["range"]
        return f"in [{lo:g}, {hi:g}]"
    if "abs" in tolerance:
        return f"±{float(tolerance['abs']):g}"
    if "rel" in tolerance:
        return f"±{100 * float(tolerance['rel']):g}%"
    return "exact"


def standing(ours: Value, published: Any) -> Value:
    """Where our value stands against the published one, as recorded beside a verdict.

    A number: ``ours / published`` (``ours - published`` when the published value is 0); an
    interval ``[lo, hi]``: ``(ours - lo) / (hi - lo)`` (0 at ``lo``, 1 at ``hi``); a word: the
    published word it was judged against (a word has no ratio). The verdict's ``why`` explains
    this standing: when it moves (ours changed, or the published value was edited) the judgement
    reports a problem until the standing, and the why, are recorded again.
    """
    if ours is None or published is None:
        return None
    if isinstance(published, list):
        lo, hi = float(published[0]), float(published[1])
        return (float(ours) - lo) / (hi - lo) if not isinstance(ours, str) else None
    if isinstance(published, str) or isinstance(ours, str):
        return str(published)
    p = float(published)
    return float(ours) / p if p != 0 else float(ours) - p


def judge(numbers: Mapping[str, Value], expected: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per expected number (verdict, reason) and the problems found.

    Problems (each a failing check): a miss without a ``why``; for every judged number, a value
    of ours, a verdict or a standing (:func:`standing`) that expected.json does not record, or
    that differs from the recorded one (ours and standing within ``ours_rtol``); for a number
    ours only, a value that left its recorded ``ours``. An expected number the run did not
    produce is left to the caller (a fast run produces only some).
    """
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for key, spec in expected["numbers"].items():
        if key not in numbers:
            continue
        ours = numbers[key]
        published = spec.get("published")
        rtol = float(spec.get("ours_rtol", 1e-6))
        row = {"id": key, "what": spec.get("what", key), "unit": spec.get("unit", ""), "source": spec.get("source", ""),
               "published": published, "ours": ours}
        if published is None:
            row.update(tolerance="", verdict="ours only", why=spec.get("why", ""))
        else:
            tol = spec.get("tolerance", {"rel": 0.0})
            ok = within(ours, published, tol)
            verdict = "reproduced" if ok else "differs"
            row.update(tolerance=tolerance_text(tol, published), verdict=verdict, why="" if ok else spec.get("why", ""))
            if not ok and not spec.get("why"):
                problems.append(f"{key}: ours {ours!r} misses the published {published!r}; expected.json gives no why")
            for field_, value in (("ours", ours), ("verdict", verdict), ("standing", standing(ours, published))):
                if spec.get(field_) is None:
                    problems.append(f"{key}: judged, but expected.json records no {field_!r} (now {value!r}); "
                                    "a change would pass unnoticed")
            if spec.get("verdict") is not None and spec["verdict"] != verdict:
                problems.append(f"{key}: verdict {verdict!r}, recorded {spec['verdict']!r} (published {published!r}, "
                                f"ours {ours!r}): review the why and the tolerance, then record it again")
            now, then = standing(ours, published), spec.get("standing")
            if then is not None and not _same(now, then, rtol):
                problems.append(f"{key}: ours stands at {now!r} against the published {published!r}, recorded "
                                f"{then!r}: ours or the published value changed; review the why, then record it again")
        recorded = spec.get("ours")
        if recorded is not None and not _same(ours, recorded, rtol):
            problems.append(f"{key}: ours {ours!r} differs from the recorded {recorded!r} "
                            f"(rtol {rtol:g}): update expected.json if the change is intended")
        rows.append(row)
    return rows, problems


def record(expected: Mapping[str, Any], doc: Mapping[str, Any]) -> dict[str, Any]:
    """``expected`` with ``ours``, ``verdict`` and ``standing`` of every judged number of the
    results document ``doc`` recorded, and ``ours`` of a number ours only updated where one is
    recorded already (times and limit-bound values stay unrecorded). Review every ``why`` first:
    this makes the current values the reference."""
    out = json.loads(json.dumps(expected))
    values = doc.get("values", {})
    for r in doc["numbers"]:
        spec = out["numbers"].get(r["id"])
        if spec is None:
            continue
        ours = values.get(r["id"], r["ours"])
        if spec.get("published") is None and spec.get("ours") is None:
            continue
        spec["ours"] = ours
        spec.setdefault("ours_rtol", 0 if isinstance(ours, str) else 1e-6)
        if spec.get("published") is not None:
            spec["verdict"] = r["verdict"]
            spec["standing"] = standing(ours, spec["published"])
    return plain(out)  # type: ignore[no-any-return]


def _same(a: Value, b: Value, rtol: float) -> bool:
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return a == b
    return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-12)


def plain(x: Any) -> Any:
    """JSON-safe copy: non-finite floats as strings, numpy scalars and tuples as plain types."""
    if isinstance(x, Mapping):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    if isinstance(x, bool | str) or x is None:
        return x
    if isinstance(x, int):
        return int(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isfinite(f):
        return int(f) if type(x).__name__.startswith("int") else f
    return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")


def results(name: str, outcome: Outcome, expected: Mapping[str, Any], fast: bool, wall_s: float) -> dict[str, Any]:
    """The ``results.json`` document of a run (JSON-safe)."""
    rows, problems = judge(outcome.numbers, expected)
    problems = list(outcome.problems) + problems
    missing = [k for k in expected["numbers"] if k not in outcome.numbers]
    if not fast:
        problems += [f"{k}: expected.json names it but the run did not produce it" for k in missing]
    return plain({
        "reproduction": name,
        "paper": expected.get("paper", name),
        "reference": expected.get("reference", ""),
        "date": _dt.date.today().isoformat(),
        "machine": MACHINE,
        "fast": fast,
        "wall_time_s": round(wall_s, 3),
        "numbers": rows,
        "values": dict(outcome.numbers),
        "run_problems": list(outcome.problems),
        "tables": [t.to_dict() for t in outcome.tables],
        "notes": list(outcome.notes),
        "problems": problems,
    })


def rejudge(doc: Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, Any]:
    """A results document judged again, from its stored ``values`` and ``run_problems``, against
    ``expected`` (the run's date, time, tables and notes are kept)."""
    if "values" not in doc:
        raise ValueError("this results.json stores no values (written before they were kept): run it again")
    outcome = Outcome(dict(doc["values"]), [Table(**t) for t in doc.get("tables", [])], list(doc.get("notes", [])),
                      list(doc.get("run_problems", [])))
    new = results(str(doc["reproduction"]), outcome, expected, bool(doc.get("fast")), float(doc["wall_time_s"]))
    new["date"] = doc["date"]
    return new


def fmt(x: Any, digits: int = 4) -> str:
    """A cell: numbers to ``digits`` significant digits, ``inf`` as such, None as ``-``."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{digits}g}"
    return str(x)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    def cell(x: Any) -> str:
        return fmt(x).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def numbers_table(doc: Mapping[str, Any]) -> str:
    """The verdict table of a results document (Markdown)."""
    rows = []
    for r in doc["numbers"]:
        unit = f" {r['unit']}" if r.get("unit") and r["unit"] not in ("", "word") else ""
        published = r["published"]
        if isinstance(published, list):
            published = f"{fmt(published[0])} to {fmt(published[1])}"
        pub = "-" if published is None else f"{fmt(published)}{unit}"
        why = r.get("why") or ""
        if r["verdict"] == "differs":
            verdict = f"differs {why}" if why.startswith("because") else f"differs: {why}"
        elif r["verdict"] == "ours only" and why:
            verdict = f"ours only ({why})"
        else:
            verdict = r["verdict"]
        rows.append([r["what"], r.get("source", ""), pub, f"{fmt(r['ours'])}{unit}", r.get("tolerance", ""), verdict])
    return markdown_table(["number", "source", "published", "ours", "tolerance", "verdict"], rows)


def render(doc: Mapping[str, Any], level: int = 2) -> str:
    """A results document as Markdown: the verdicts, then each table and the notes."""
    h = "#" * level
    parts = [f"{h} {doc['paper']}", "", doc.get("reference", ""), "",
             f"Run {doc['date']} on {doc['machine']} in {doc['wall_time_s']:.1f} s"
             + (" (fast subset)" if doc.get("fast") else "") + ".", "", numbers_table(doc), ""]
    for t in doc.get("tables", []):
        parts += [f"{h}# {t['title']}", "", markdown_table(t["columns"], t["rows"]), ""]
        if t.get("note"):
            parts += [t["note"], ""]
    if doc.get("notes"):
        parts += [f"{h}# Notes", ""] + [f"* {n}" for n in doc["notes"]] + [""]
    if doc.get("problems"):
        parts += [f"{h}# Problems", ""] + [f"* {p}" for p in doc["problems"]] + [""]
    return "\n".join(parts)


def main(
    name: str, folder: Path, run: Callable[[bool], Outcome], argv: Sequence[str] | None = None,
    description: str = "",
) -> int:
    """The command line every reproduction shares.

    ``--fast`` runs the subset the tests run and writes nothing unless ``--out`` is given; a full
    run writes ``results.json`` beside ``run.py``. Prints the verdicts (``--json``: the document).
    Returns 1 when there are problems (see :func:`judge`), else 0.
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--fast", action="store_true", help="the subset the default tests run")
    ap.add_argument("--out", type=Path, default=None, help="results file (default: results.json beside run.py)")
    ap.add_argument("--json", action="store_true", help="print the results document as JSON")
    ap.add_argument("--rejudge", action="store_true",
                    help="run nothing: judge the values of the existing results.json against expected.json again")
    ap.add_argument("--record", action="store_true",
                    help="with --rejudge: record ours, verdict and standing of every number of results.json in "
                    "expected.json (review every why first)")
    args = ap.parse_args(argv)
    if args.record and not args.rejudge:
        ap.error("--record goes with --rejudge")
    if args.rejudge:
        path = folder / "results.json"
        try:
            stored = json.loads(path.read_text())
            if args.record:
                (folder / "expected.json").write_text(
                    json.dumps(record(load_expected(folder), stored), indent=2, ensure_ascii=False) + "\n")
            doc = rejudge(stored, load_expected(folder))
        except (OSError, ValueError, KeyError) as exc:
            print(f"{path}: cannot judge it again: {exc!s} (expected a results.json written by a full run)",
                  file=sys.stderr)
            return 2
        (args.out or path).write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")
        print(json.dumps(doc, indent=2, default=str) if args.json else render(doc))
        return 1 if doc["problems"] else 0
    t0 = time.perf_counter()
    outcome = run(args.fast)
    expected = load_expected(folder)  # read after a run that may take an hour, so the latest is judged against
    doc = results(name, outcome, expected, args.fast, time.perf_counter() - t0)
    out = args.out if args.out is not None else (None if args.fast else folder / "results.json")
    if out is not None:
        out.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")
    print(json.dumps(doc, indent=2, default=str) if args.json else render(doc))
    return 1 if doc["problems"] else 0


def exit_with(code: int) -> None:
    """``sys.exit`` for ``run.py`` scripts."""
    sys.exit(code)
