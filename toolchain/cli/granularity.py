"""Granularity on the command line: ``dnnpart solve --granularity/--split`` and ``dnnpart transform``.

``solve`` transforms the loaded instance (:func:`prepare`), solves the transformed one, and
reports the result on the original layer ids with the parts shown (:func:`report`,
:func:`print_original`). ``transform`` writes the transformed instance as a file, so that any
command (evaluate, batch runs) can use it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolchain.cli.common import UserError, console, dump_json, esc, load, user_errors
from toolchain.cli.outputs import check_output, write_output

if TYPE_CHECKING:
    from formulation.granularity import Transformed
    from formulation.model import Instance

GranularityOpt = Annotated[
    str | None, typer.Option("--granularity", help="op | layer | block | module:N (docs/granularity.md).")
]
SplitOpt = Annotated[
    list[str] | None,
    typer.Option("--split", help='Split layers into parts, e.g. "conv1-conv5:tiles=3x3", "fc1-fc2:channels=4".'),
]


def prepare(inst: Instance, granularity: str | None, splits: list[str]) -> Transformed:
    """Apply ``--split`` values then ``--granularity``; bad specifications become :class:`UserError`."""
    from formulation.granularity import GranularityError, transform

    where = f"{inst.source_path}: " if inst.source_path else ""
    try:
        return transform(inst, granularity, splits)
    except GranularityError as exc:
        raise UserError(f"{where}{exc}") from None
    except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, OverflowError) as exc:
        # Splits read layer attrs (shapes, kernel, stride, padding) that the format leaves free-form;
        # malformed ones surface here rather than as a GranularityError.
        spec = "; ".join([*(f"--split {s!r}" for s in splits), *([f"--granularity {granularity!r}"] if granularity
                                                                   else [])])
        raise UserError(
            f"{where}{spec}: the layer attrs this transformation reads (shape_in, shape_out, kernel, stride, "
            f"padding...) are malformed ({type(exc).__name__}: {str(exc)[:200]}); expected lists of positive "
            "integers as the importers write them"
        ) from None


def report(view: Transformed, res: Any) -> dict[str, Any]:
    """The ``granularity`` section of ``solve --json``: steps and the placement on original ids."""
    if not res.placement:
        return {"steps": list(view.steps), "nodes": view.instance.n, "original_layers": view.original.n}
    return view.report(res.placement, res.schedule or None)


def _describe(view: Transformed, layer: str, placement: dict[str, str]) -> tuple[str, str]:
    rows = view.layer_view(placement)[layer]
    whole = [r for r in rows if r.kind in ("layer", "merged")]
    if whole:
        r = whole[0]
        return r.device, "" if r.node == layer else f"in {r.node}"
    parts = [r for r in rows if r.kind == "part"]
    per_dev = Counter(r.device for r in parts)
    devs = ", ".join(f"{d} x{n}" for d, n in per_dev.items())
    joins = sorted({f"{r.kind} on {r.device}" for r in rows if r.kind in ("gather", "reduce")})
    return devs, f"{len(parts)} parts of split {parts[0].split!r}" + (f"; {', '.join(joins)}" if joins else "")


def print_original(view: Transformed, res: Any) -> None:
    """Print the placement on the original layer ids (parts per device for split layers)."""
    from rich.table import Table

    console.print("transformations: " + "; ".join(view.steps), highlight=False)
    if not res.placement:
        return
    t = Table(title=f"placement on the original layers ({view.original.n} layers, {view.instance.n} nodes solved)")
    t.add_column("layer")
    t.add_column("device(s)")
    t.add_column("as")
    for layer in view.original.graph.layer_ids:
        devs, how = _describe(view, layer, res.placement)
        t.add_row(layer, devs, how)
    console.print(t)


def register(app: typer.Typer) -> None:
    """Add ``dnnpart transform``."""

    @app.command()
    def transform(
        file: Annotated[Path, typer.Argument(help="Instance file.")],
        granularity: GranularityOpt = None,
        split: SplitOpt = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the transformed instance (.yaml, .json).")]
        = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the node provenance as JSON.")] = False,
    ) -> None:
        """Coarsen or split an instance's graph and show (or write) the result with its provenance."""
        from rich.table import Table

        with user_errors():
            check_output(out, "--out")
            inst = load(file)
            view = prepare(inst, granularity, split or [])
        origins = view.provenance.origins
        nodes: dict[str, dict[str, Any]] = {
            node: {"kind": origins[node].kind, "layers": list(origins[node].layers),
                   **({"detail": origins[node].detail} if origins[node].detail else {})}
            for node in view.instance.graph.layer_ids
        }
        if out is not None:
            from formulation.loader import instance_to_data

            data = instance_to_data(view.instance)
            if out.suffix.lower() == ".json":
                write_output(out, dump_json(data) + "\n")
            else:
                import yaml

                write_output(out, yaml.safe_dump(data, sort_keys=False, width=120))
        if as_json:
            print(dump_json({"instance": inst.name, "steps": list(view.steps), "nodes": nodes}))
            return
        console.print(
            f"[bold]{esc(inst.name)}[/]: {inst.n} layers -> {view.instance.n} nodes", highlight=False, markup=True
        )
        for step in view.steps:
            console.print(f"  {step}", highlight=False)
        t = Table(title="nodes of the transformed graph")
        for col in ("node", "kind", "original layers", "share"):
            t.add_column(col)
        for node, info in nodes.items():
            lays = info["layers"]
            shown = lays[0] if len(lays) == 1 else f"{lays[0]} .. {lays[-1]} ({len(lays)})"
            t.add_row(node, info["kind"], shown, info.get("detail", ""))
        console.print(t)
        if out is not None:
            console.print(f"written to {out}", highlight=False)
