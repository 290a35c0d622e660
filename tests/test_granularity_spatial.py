"""Spatial split: halos, FLOPs and bytes of parts against hand-computed values.

The stack used throughout (float32, one image, 2 FLOP per multiply-add):

=====  =============================  ===========  ==========================================
layer  geometry                       output       FLOP
=====  =============================  ===========  ==========================================
x      input                          3 x 8 x 8    (768 B)
c1     3->4, k3 s1 p1                 4 x 8 x 8    2 * (4*8*8) * (3*3*3) = 13824   (1024 B)
c2     4->8, k3 s2 p1                 8 x 4 x 4    2 * (8*4*4) * (4*3*3) =  9216   (512 B)
c3     8->8, k3 s1 p1                 8 x 4 x 4    2 * (8*4*4) * (8*3*3) = 18432   (512 B)
=====  =============================  ===========  ==========================================

Output rows [a, b) of a layer need input rows [max(0, a*s - p), min(H, (b-1)*s - p + k)).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulation.evaluator import evaluate
from formulation.granularity import (
    GranularityError,
    even_bounds,
    insertion_schedule,
    natural_placement,
    split_spatial,
    stack_regions,
    window_of,
)
from formulation.granularity.spatial import stack_windows
from formulation.model import Device, Graph, Instance, Layer, Link, ModelInput, Problem, System


def conv(lid: str, src: str, cin: int, cout: int, h: int, k: int = 3, s: int = 1, p: int = 1) -> Layer:
    hout = (h + 2 * p - k) // s + 1
    return Layer(
        lid, "conv2d", (src,), 2.0 * cout * hout * hout * cin * k * k, 4.0 * cout * hout * hout,
        param_bytes=4.0 * cout * cin * k * k,
        attrs={"kernel": [k, k], "stride": [s, s], "padding": [p, p], "dilation": [1, 1],
               "shape_in": [1, cin, h, h], "shape_out": [1, cout, hout, hout]},
    )


def stack_instance(extra: list[Layer] | None = None) -> Instance:
    layers = [conv("c1", "x", 3, 4, 8), conv("c2", "c1", 4, 8, 8, s=2), conv("c3", "c2", 8, 8, 4), *(extra or [])]
    g = Graph("stack", [ModelInput("x", 768.0)], layers)
    s = System([Device("a", 1e9), Device("b", 1e9)], [Link("a", "b", 1e6), Link("b", "a", 1e6)], "a", "a")
    return Instance("stack", g, s, Problem())


def test_halo_regions_through_the_stack() -> None:
    inst = stack_instance()
    wins = stack_windows(inst, ["c1", "c2", "c3"])
    # Band 0: c3 rows [0,2) <- c2 rows [0, 1*1-1+3) = [0,3) <- c1 rows [0, 2*2-1+3) = [0,6)
    #         <- x rows [0, 5-1+3) = [0,7).
    assert [r[0] for r in stack_regions(wins, ((0, 2), (0, 4)))] == [(0, 7), (0, 6), (0, 3), (0, 2)]
    # Band 1: c3 rows [2,4) <- c2 rows [2-1, 3-1+3) = [1,4) <- c1 rows [2-1, 3*2-1+3) = [1,8)
    #         <- x rows [0, min(8, 7-1+3)) = [0,8): the whole input.
    assert [r[0] for r in stack_regions(wins, ((2, 4), (0, 4)))] == [(0, 8), (1, 8), (1, 4), (2, 4)]


def test_fused_row_bands_flops_bytes_and_outputs() -> None:
    t = split_spatial(stack_instance(), "c1", "c3", rows=2)
    g = t.instance.graph
    lay = {v.id: v for v in g.layers}
    # Part 0: 13824*6/8 + 9216*3/4 + 18432*2/4 = 10368 + 6912 + 9216 = 26496 FLOP.
    # Part 1: 13824*7/8 + 9216*3/4 + 18432*2/4 = 12096 + 6912 + 9216 = 28224 FLOP
    # (54720 in all against 41472 unsplit: 13248 FLOP of halo recomputation).
    assert lay["c1-c3#p0"].flops == 26496.0
    assert lay["c1-c3#p1"].flops == 28224.0
    # Slices carry the input rows with halo: 768 * 7/8 = 672 B and 768 * 8/8 = 768 B.
    assert lay["c1-c3#in0"].output_bytes == 672.0 and lay["c1-c3#in1"].output_bytes == 768.0
    assert lay["c1-c3#in0"].inputs == ("x",) and lay["c1-c3#p0"].inputs == ("c1-c3#in0",)
    # Each part outputs half of c3 (256 B); the parts' outputs sum to the layer's output.
    assert lay["c1-c3#p0"].output_bytes + lay["c1-c3#p1"].output_bytes == 512.0
    assert lay["c1-c3#out"].output_bytes == 512.0 and lay["c1-c3#out"].flops == 0.0
    # Every part holds all weights: 4*(4*3*9) + 4*(8*4*9) + 4*(8*8*9) = 432 + 1152 + 2304 = 3888 B.
    assert lay["c1-c3#p0"].param_bytes == 3888.0
    # Part 1's largest layer: c1 reads 768 B and writes 1024*7/8 = 896 B; less its in 768 and out 256.
    assert lay["c1-c3#p1"].workspace_bytes == 1664.0 - 768.0 - 256.0
    assert g.outputs == (g.layer_index["c1-c3#out"],)
    assert t.provenance.origins["c1-c3#p1"].detail == "rows 2:4, cols 0:4"


def test_tile_grid_flops_and_sum_of_outputs() -> None:
    t = split_spatial(stack_instance(), "c1", "c3", rows=2, cols=2)
    lay = {v.id: v for v in t.instance.graph.layers}
    # Tile (0,0): c3 2x2 of 4x4, c2 3x3 of 4x4, c1 6x6 of 8x8:
    #   18432*4/16 + 9216*9/16 + 13824*36/64 = 4608 + 5184 + 7776 = 17568 FLOP; input 7x7: 768*49/64 = 588 B.
    assert lay["c1-c3#p0.0"].flops == 17568.0 and lay["c1-c3#in0.0"].output_bytes == 588.0
    # Tile (0,1): c1 rows [0,6) x cols [1,8) = 42 of 64: 4608 + 5184 + 9072 = 18864; input 7 x 8 = 672 B.
    assert lay["c1-c3#p0.1"].flops == 18864.0 and lay["c1-c3#in0.1"].output_bytes == 672.0
    # Tile (1,1): c1 7x7 = 49 of 64: 4608 + 5184 + 10584 = 20376; input the whole 8x8 = 768 B.
    assert lay["c1-c3#p1.1"].flops == 20376.0 and lay["c1-c3#in1.1"].output_bytes == 768.0
    outs = [lay[f"c1-c3#p{r}.{c}"].output_bytes for r in range(2) for c in range(2)]
    assert outs == [128.0] * 4 and sum(outs) == lay["c1-c3#out"].output_bytes == 512.0


def test_layerwise_split_gathers_after_each_layer() -> None:
    t = split_spatial(stack_instance(), "c1", "c3", rows=2, mode="layerwise")
    lay = {v.id: v for v in t.instance.graph.layers}
    assert len(lay) == 15  # per layer: 2 slices, 2 parts, 1 gather
    # c1 bands [0,4), [4,8) read x rows [0,5) and [3,8): 768*5/8 = 480 B each; 13824/2 FLOP each.
    assert [lay[f"c1#in{i}"].output_bytes for i in range(2)] == [480.0, 480.0]
    assert lay["c1#p0"].flops == 6912.0
    # c2 bands [0,2), [2,4) read c1 rows [0,4) and [3,8) of its gathered 1024 B: 512 B and 640 B.
    assert lay["c2#in0"].inputs == ("c1#out",)
    assert [lay[f"c2#in{i}"].output_bytes for i in range(2)] == [512.0, 640.0]
    # c3 bands read c2 rows [0,3) and [1,4): 384 B each; no halo recomputation at all.
    assert [lay[f"c3#in{i}"].output_bytes for i in range(2)] == [384.0, 384.0]
    assert sum(v.flops for v in lay.values()) == 13824 + 9216 + 18432


def test_exchange_split_moves_only_the_halo() -> None:
    t = split_spatial(stack_instance(), "c1", "c3", rows=2, mode="exchange")
    lay = {v.id: v for v in t.instance.graph.layers}
    assert len(lay) == 16  # c1: 2 slices + 2 parts; c2: 3 slices + 2 parts; c3: 4 slices + 2 parts + gather
    # c2 part 0 (rows [0,2)) needs c1 rows [0,4): all of c1 part 0 (512 B), nothing of part 1.
    assert lay["c2#p0"].inputs == ("c2#in0<0",) and lay["c2#in0<0"].output_bytes == 512.0
    # c2 part 1 (rows [2,4)) needs c1 rows [3,8): row 3 of part 0 (512 * 1/4 = 128 B) and all of part 1.
    assert lay["c2#p1"].inputs == ("c2#in1<0", "c2#in1<1")
    assert (lay["c2#in1<0"].output_bytes, lay["c2#in1<1"].output_bytes) == (128.0, 512.0)
    # c3 parts need c2 rows [0,3) and [1,4): one halo row (128 B) from the neighbour each.
    assert [lay[f"c3#in{i}<{j}"].output_bytes for i in range(2) for j in range(2)] == [256.0, 128.0, 128.0, 256.0]
    pl = natural_placement(t, ["a", "b"], assign="round_robin")
    ev = evaluate(t.instance, pl)
    # a->b: x rows [3,8) (480 B) + c1 halo row (128 B) + c2 halo row (128 B); b->a: c2 halo + c3 part 1.
    assert ev.link_bytes == {"a->b": 480.0 + 128.0 + 128.0, "b->a": 128.0 + 256.0}
    assert sum(v.flops for v in lay.values()) == 13824 + 9216 + 18432  # no recomputation


def test_natural_placement_metrics_by_hand() -> None:
    t = split_spatial(stack_instance(), "c1", "c3", rows=2)
    pl = natural_placement(t, ["a", "b"], assign="round_robin")
    assert pl == {"c1-c3#in0": "a", "c1-c3#in1": "a", "c1-c3#p0": "a", "c1-c3#p1": "b", "c1-c3#out": "a"}
    ev = evaluate(t.instance, pl, insertion_schedule(t.instance, pl))
    # Compute 54720 FLOP / 1e9 = 54.72 us; transfers: slice 1 (768 B) a->b and part 1 (256 B) b->a at 1 MB/s.
    assert ev.latency_sequential_s == pytest.approx(54.72e-6 + 768e-6 + 256e-6)
    # Parallel: part 1 starts when its slice arrives (768 us), runs 28.224 us, returns in 256 us.
    assert ev.latency_parallel_s == pytest.approx(768e-6 + 28.224e-6 + 256e-6)
    # Memory of a: params 3888 + largest peak, slice 1 reading x: 768 + 768.
    # Memory of b: params 3888 + part 1's peak 1664 (c1 reading 768 B and writing 896 B).
    assert ev.memory_bytes == {"a": 3888.0 + 1536.0, "b": 3888.0 + 1664.0}
    view = t.original_placement(pl)
    assert view == {"c1": ["a", "b"], "c2": ["a", "b"], "c3": ["a", "b"]}
    with pytest.raises(GranularityError, match="split into parts"):
        t.provenance.expand(pl)


def test_elementwise_layers_ride_along_and_pools_infer_their_shape() -> None:
    relu = Layer("r3", "ReLU", ("c3",), 128.0, 512.0)
    pool = Layer("p3", "max_pool2d", ("r3",), 128.0, 128.0, attrs={"kernel": [2, 2], "stride": [2, 2]})
    t = split_spatial(stack_instance([relu, pool]), "c1", "p3", rows=2)
    lay = {v.id: v for v in t.instance.graph.layers}
    # p3 halves 4x4 to 2x2; band 0 = pool row 0 <- r3/c3 rows [0,2) <- as before: 26496 + 64 + 64 FLOP.
    assert lay["c1-p3#p0"].flops == 26496.0 + 128 * 2 / 4 + 128 * 1 / 2
    assert lay["c1-p3#p0"].output_bytes == 64.0


@st.composite
def random_stack(draw: st.DrawFn) -> Instance:
    """1-4 window layers (kernel 1-5, stride 1-2, dilation 1-2, padding 0..k//2) on a random image."""
    h = draw(st.integers(6, 24))
    w = draw(st.integers(6, 24))
    c, src, layers = 2, "x", []
    for i in range(draw(st.integers(1, 4))):
        k, s, d = draw(st.integers(1, 5)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
        p = draw(st.integers(0, k // 2))
        ho, wo = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
        if ho < 2 or wo < 2:
            break
        layers.append(Layer(f"l{i}", "conv2d", (src,), 2.0 * c * ho * wo * k * k, 4.0 * c * ho * wo,
                            attrs={"kernel": [k, k], "stride": [s, s], "padding": [p, p], "dilation": [d, d],
                                   "shape_in": [c, h, w], "shape_out": [c, ho, wo]}))
        src, h, w = f"l{i}", ho, wo
    if not layers:
        layers.append(Layer("l0", "relu", ("x",), float(c * h * w), 4.0 * c * h * w, attrs={"shape_in": [c, h, w]}))
    g = Graph("rand", [ModelInput("x", 4.0 * 2 * layers[0].attrs["shape_in"][1] * layers[0].attrs["shape_in"][2])],
              layers)
    return Instance("rand", g, stack_instance().system)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(inst=random_stack(), data=st.data())
def test_random_stacks_halo_matches_naive_receptive_field(inst: Instance, data: st.DataObject) -> None:
    chain = list(inst.graph.layer_ids)
    wins = stack_windows(inst, chain)
    for w in wins:  # one layer: the interval is the hull of every kernel tap of every output row
        k, s, d, p, size = w.kernel[0], w.stride[0], w.dilation[0], w.pad[0], w.in_shape[1]
        a = data.draw(st.integers(0, w.out_shape[1] - 1))
        b = data.draw(st.integers(a + 1, w.out_shape[1]))
        taps = [o * s - p + d * j for o in range(a, b) for j in range(k)]
        inside = [r for r in taps if 0 <= r < size]
        assert w.input_interval(0, a, b) == ((min(inside), max(inside) + 1) if inside else (0, 0))
    out_h, out_w = wins[-1].out_shape[1:]
    rows = data.draw(st.integers(1, min(4, out_h)))
    cols = data.draw(st.integers(1, min(3, out_w)))
    t = split_spatial(inst, chain[0], chain[-1], rows=rows, cols=cols)
    lay = {v.id: v for v in t.instance.graph.layers}
    parts = [v for n, v in lay.items() if t.provenance.origins[n].kind == "part"]
    # The parts' outputs tile the last layer's output exactly.
    assert sum(p.output_bytes for p in parts) == pytest.approx(inst.graph.layers[-1].output_bytes)
    # At every layer, the parts' intervals cover every row (column) that some kernel tap of the
    # whole output reaches, computed naively tap by tap from the last layer back.
    for axis, n_out, bands in ((0, out_h, even_bounds(out_h, rows)), (1, out_w, even_bounds(out_w, cols))):
        needed = set(range(n_out))
        hulls = [stack_regions(wins, ((a, b), (0, out_w)) if axis == 0 else ((0, out_h), (a, b)))
                 for a, b in itertools.pairwise(bands)]
        for j in range(len(wins), -1, -1):
            covered = set().union(*(range(*h[j][axis]) for h in hulls))
            assert needed <= covered
            if j:
                w = wins[j - 1]
                k, s, d, p = w.kernel[axis], w.stride[axis], w.dilation[axis], w.pad[axis]
                size = w.in_shape[1 + axis]
                needed = {o * s - p + d * i for o in needed for i in range(k)} & set(range(size))


def test_window_parsing_and_errors() -> None:
    w = window_of(conv("c", "x", 3, 4, 8))
    assert (w.kernel, w.stride, w.pad, w.in_shape, w.out_shape) == ((3, 3), (1, 1), (1, 1), (3, 8, 8), (4, 8, 8))
    assert w.input_interval(0, 0, 0) == (0, 0)
    assert even_bounds(38, 5) == [0, 7, 15, 22, 30, 38]
    with pytest.raises(GranularityError, match="no window geometry"):
        window_of(Layer("fc", "linear", ("x",), 1.0, 4.0, attrs={"shape_in": [1, 3, 8, 8]}))
    with pytest.raises(GranularityError, match="shape_in"):
        window_of(Layer("c", "conv2d", ("x",), 1.0, 4.0, attrs={"kernel": [3, 3]}))
    with pytest.raises(GranularityError, match="non-empty bands"):
        split_spatial(stack_instance(), "c3", rows=5)
    with pytest.raises(GranularityError, match="not a chain"):
        branch = Layer("side", "relu", ("c1",), 1.0, 1024.0)
        split_spatial(stack_instance([branch]), "c1", "c2", rows=2)
    t = split_spatial(stack_instance(), "c1", rows=2)
    with pytest.raises(GranularityError, match="part node"):
        split_spatial(t, "c1#p0", rows=2)
