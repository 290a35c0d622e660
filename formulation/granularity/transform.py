"""Granularity and split specifications as the command line takes them, and their application.

``--granularity``:

* ``op`` -- the graph as in the file (every node of the file is one node);
* ``layer`` -- :func:`.coarsen.merge_cheap_successors`: a layer with its activation,
  normalisation and residual ``add`` (the "layer" of most partitioning papers);
* ``block`` -- ``layer``, then :func:`.coarsen.merge_to_cut_points`: the segments between cut
  points (a ResNet block, a transformer sub-layer; chains keep every layer);
* ``module:N`` -- :func:`.coarsen.merge_by_module` at depth ``N`` of ``attrs.module``.

``--split "RANGE:KEY=VALUE[,KEY=VALUE...]"``, where RANGE is a layer id or ``first-last`` (a chain):

* ``tiles=RxC`` / ``rows=K`` / ``cols=K`` -- spatial split (:mod:`.spatial`), with
  ``mode=fused`` (default, DeepThings), ``mode=layerwise`` (MoDNN) or ``mode=exchange``
  (per-layer parts exchanging halos, CoEdge/AOFL);
* ``channels=K`` / ``heads=K`` -- channel split (:mod:`.channel`), with ``mode=gather`` (default
  for one layer) or ``mode=reduce``; a two-layer range is a column/row-parallel pair.

Splits are applied first, on the file's layer ids, then the granularity; coarsening never merges
the nodes of a split.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from formulation.granularity.channel import split_channels
from formulation.granularity.coarsen import merge_by_module, merge_cheap_successors, merge_to_cut_points
from formulation.granularity.provenance import GranularityError, Transformed, as_transformed
from formulation.granularity.spatial import split_spatial
from formulation.model import Instance

GRANULARITIES = ("op", "layer", "block", "module:N")

_SPLIT_FORMS = (
    '"conv1-conv5:tiles=3x3", "conv1:rows=4", "conv1-conv13:rows=4,mode=layerwise", '
    '"fc1-fc2:channels=4", "attn:heads=8", "conv3:channels=2,mode=reduce"'
)


@dataclass(frozen=True)
class SplitSpec:
    """One parsed ``--split`` value."""

    text: str
    first: str
    last: str
    kind: str  # "spatial" | "channel"
    rows: int = 1
    cols: int = 1
    parts: int = 1
    units: str = "channels"
    mode: str = ""


def _range(rng: str, ids: Collection[str], text: str) -> tuple[str, str]:
    if rng in ids:
        return rng, rng
    cuts = [(rng[:i], rng[i + 1 :]) for i, ch in enumerate(rng) if ch == "-"]
    found = [(a, b) for a, b in cuts if a in ids and b in ids]
    if len(found) == 1:
        return found[0]
    if found:
        raise GranularityError(f"--split {text!r}: the range {rng!r} is ambiguous: {found}")
    raise GranularityError(f"--split {text!r}: {rng!r} is neither a layer id nor FIRST-LAST of two layer ids")


def _positive(text: str, key: str, value: str) -> int:
    if not re.fullmatch(r"\d+", value) or int(value) < 1:
        raise GranularityError(f"--split {text!r}: {key}={value!r}; expected a positive integer")
    return int(value)


def parse_split(text: str, layer_ids: Collection[str]) -> SplitSpec:
    """Parse ``RANGE:KEY=VALUE,...`` against the layer ids of the instance.

    Raises
    ------
    GranularityError
        With the text, the offending part and the accepted forms.
    """
    rng, sep, opts = text.rpartition(":")
    if not sep or not rng or not opts:
        raise GranularityError(f"--split {text!r}: expected RANGE:KEY=VALUE, e.g. {_SPLIT_FORMS}")
    first, last = _range(rng.strip(), layer_ids, text)
    kv: dict[str, str] = {}
    for item in opts.split(","):
        key, eq, val = item.strip().partition("=")
        if not eq or not key or not val:
            raise GranularityError(f"--split {text!r}: {item!r} is not KEY=VALUE; forms: {_SPLIT_FORMS}")
        kv[key.strip()] = val.strip()
    mode = kv.pop("mode", "")
    spatial = {k: kv.pop(k) for k in ("tiles", "rows", "cols") if k in kv}
    channel: dict[str, str] = {k: kv.pop(k) for k in ("channels", "heads") if k in kv}
    if kv:
        raise GranularityError(f"--split {text!r}: unknown key(s) {sorted(kv)}; forms: {_SPLIT_FORMS}")
    if bool(spatial) == bool(channel):
        raise GranularityError(
            f"--split {text!r}: give either tiles/rows/cols or channels/heads; forms: {_SPLIT_FORMS}"
        )
    if spatial:
        rows = cols = 1
        if "tiles" in spatial:
            m = re.fullmatch(r"(\d+)\s*[xX*]\s*(\d+)", spatial["tiles"])
            if not m or min(int(m[1]), int(m[2])) < 1:
                raise GranularityError(f"--split {text!r}: tiles={spatial['tiles']!r}; expected RxC, e.g. 3x3")
            rows, cols = int(m[1]), int(m[2])
        rows = _positive(text, "rows", spatial["rows"]) if "rows" in spatial else rows
        cols = _positive(text, "cols", spatial["cols"]) if "cols" in spatial else cols
        if mode not in ("", "fused", "layerwise", "exchange"):
            raise GranularityError(
                f"--split {text!r}: mode={mode!r}; a spatial split takes fused, layerwise or exchange"
            )
        return SplitSpec(text, first, last, "spatial", rows=rows, cols=cols, mode=mode or "fused")
    units = "heads" if "heads" in channel else "channels"
    if len(channel) > 1:
        raise GranularityError(f"--split {text!r}: give channels or heads, not both")
    parts = _positive(text, units, channel[units])
    if mode not in ("", "gather", "reduce"):
        raise GranularityError(f"--split {text!r}: mode={mode!r}; a channel split takes gather or reduce")
    return SplitSpec(text, first, last, "channel", parts=parts, units=units, mode=mode or "gather")


def apply_split(x: Instance | Transformed, spec: SplitSpec) -> Transformed:
    """Apply one parsed split."""
    if spec.kind == "spatial":
        spatial_mode: Literal["fused", "layerwise", "exchange"] = (
            "layerwise" if spec.mode == "layerwise" else "exchange" if spec.mode == "exchange" else "fused"
        )
        return split_spatial(x, spec.first, spec.last, rows=spec.rows, cols=spec.cols, mode=spatial_mode)
    channel_mode: Literal["gather", "reduce"] = "reduce" if spec.mode == "reduce" else "gather"
    units: Literal["channels", "heads"] = "heads" if spec.units == "heads" else "channels"
    return split_channels(x, spec.first, spec.last, parts=spec.parts, mode=channel_mode, units=units)


def apply_granularity(x: Instance | Transformed, granularity: str) -> Transformed:
    """Apply ``op`` | ``layer`` | ``block`` | ``module:N``.

    Raises
    ------
    GranularityError
        For any other value.
    """
    t = as_transformed(x)
    gran = granularity.strip().lower()
    if gran == "op":
        return t
    if gran == "layer":
        return merge_cheap_successors(t)
    if gran == "block":
        return merge_to_cut_points(merge_cheap_successors(t))
    m = re.fullmatch(r"module:(\d+)", gran)
    if m:
        return merge_by_module(t, int(m[1]))
    raise GranularityError(f"--granularity {granularity!r}: expected one of {', '.join(GRANULARITIES)}")


def transform(
    inst: Instance, granularity: str | None = None, splits: Sequence[str] = ()
) -> Transformed:
    """Apply ``--split`` values (in order, on the file's ids) and then ``--granularity``."""
    t = as_transformed(inst)
    for text in splits:
        t = apply_split(t, parse_split(text, inst.graph.layer_ids))
    if granularity:
        t = apply_granularity(t, granularity)
    return t
