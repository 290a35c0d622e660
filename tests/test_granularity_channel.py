"""Channel split and the proportional (CoEdge) row split, against hand-computed values."""

from __future__ import annotations

import pytest

from formulation.evaluator import evaluate
from formulation.granularity import GranularityError, natural_placement, split_channels
from formulation.granularity.channel import shares
from formulation.model import Device, Graph, Instance, Layer, Link, ModelInput, Problem, System
from solvers.proportional import proportional_split

# An MLP block, float32: x [1, 512] (2048 B) -> fc1 512->2048 -> fc2 2048->512.
# fc1: 2*512*2048 = 2097152 FLOP, 512*2048*4 = 4194304 B of weights, output 2048*4 = 8192 B.
# fc2: 2*2048*512 = 2097152 FLOP, 4194304 B of weights, output 512*4 = 2048 B.


def mlp() -> Instance:
    fc1 = Layer("fc1", "linear", ("x",), 2097152.0, 8192.0, 4194304.0,
                attrs={"shape_in": [1, 512], "shape_out": [1, 2048]})
    fc2 = Layer("fc2", "linear", ("fc1",), 2097152.0, 2048.0, 4194304.0,
                attrs={"shape_in": [1, 2048], "shape_out": [1, 512]})
    g = Graph("mlp", [ModelInput("x", 2048.0)], [fc1, fc2])
    s = System([Device("a", 1e9), Device("b", 1e9)], [Link("a", "b", 1e6), Link("b", "a", 1e6)], "a", "a")
    return Instance("mlp", g, s, Problem())


def test_output_channel_split_with_all_gather() -> None:
    t = split_channels(mlp(), "fc1", parts=4)
    lay = {v.id: v for v in t.instance.graph.layers}
    # Each part: 2048/4 = 512 output features: 2097152/4 FLOP, 4194304/4 B weights, 8192/4 B out.
    for p in range(4):
        assert (lay[f"fc1#p{p}"].flops, lay[f"fc1#p{p}"].param_bytes, lay[f"fc1#p{p}"].output_bytes) == (
            524288.0, 1048576.0, 2048.0)
        assert lay[f"fc1#p{p}"].inputs == ("x",)
    assert lay["fc1#out"].output_bytes == 8192.0 and lay["fc1#out"].flops == 0.0
    assert lay["fc2"].inputs == ("fc1#out",)
    assert t.provenance.origins["fc1#p1"].detail == "channels 512:1024 of 2048"


def test_input_channel_split_with_reduce() -> None:
    t = split_channels(mlp(), "fc2", parts=4, mode="reduce")
    lay = {v.id: v for v in t.instance.graph.layers}
    # Slices of fc1's 8192 B output, 512 of 2048 input features each: 2048 B.
    assert [lay[f"fc2#in{p}"].output_bytes for p in range(4)] == [2048.0] * 4
    # Parts: a quarter of the FLOP and weights, a full-size partial sum (2048 B).
    assert lay["fc2#p0"].flops == 524288.0 and lay["fc2#p0"].output_bytes == 2048.0
    # The reduce adds 4 partial sums of 512 elements: 3 * 512 = 1536 FLOP.
    assert lay["fc2#out"].flops == 1536.0 and lay["fc2#out"].output_bytes == 2048.0


def test_column_row_pair_on_two_devices_by_hand() -> None:
    t = split_channels(mlp(), "fc1", "fc2", parts=2)
    lay = {v.id: v for v in t.instance.graph.layers}
    assert lay["fc1-fc2#p1"].inputs == ("fc1-fc2#a1",)
    assert lay["fc1-fc2#a1"].output_bytes == 4096.0 and lay["fc1-fc2#p1"].output_bytes == 2048.0
    pl = natural_placement(t, ["a", "b"], assign="round_robin")
    assert pl["fc1-fc2#a1"] == pl["fc1-fc2#p1"] == "b" and pl["fc1-fc2#out"] == "a"
    ev = evaluate(t.instance, pl)
    # Compute: 2 * 2097152 + 512 (reduce of 2 sums) FLOP at 1e9 FLOP/s = 4194.816 us.
    # Transfers at 1 MB/s: x (2048 B) a->b and part 1's partial sum (2048 B) b->a: 4096 us.
    assert ev.latency_sequential_s == pytest.approx(4194.816e-6 + 4096e-6)
    assert ev.link_bytes == {"a->b": 2048.0, "b->a": 2048.0}
    assert t.original_placement(pl) == {"fc1": ["a", "b"], "fc2": ["a", "b"]}


def test_shares_over_whole_units() -> None:
    # 12 heads in 5 parts: bounds i*12//5 = 0, 2, 4, 7, 9, 12.
    assert [d for _, d in shares(5, 12)] == ["0:2 of 12", "2:4 of 12", "4:7 of 12", "7:9 of 12", "9:12 of 12"]
    assert [f for f, _ in shares(3, None)] == [1 / 3] * 3
    with pytest.raises(GranularityError, match="non-empty"):
        shares(5, 4)
    att = Layer("attn", "attention", ("x",), 1.2e6, 4096.0, attrs={"heads": 12})
    g = Graph("a", [ModelInput("x", 4096.0)], [att])
    inst = Instance("a", g, mlp().system)
    t = split_channels(inst, "attn", parts=5, units="heads")
    assert [v.flops for v in t.instance.graph.layers[:5]] == pytest.approx([2e5, 2e5, 3e5, 2e5, 3e5])


# --------------------------------------------------------------------------------------------------
# Proportional split (CoEdge)
# --------------------------------------------------------------------------------------------------


def one_conv() -> Instance:
    """A 1->1 channel 3x3 conv on 10x10 (1800 FLOP, 400 B in and out; 40 B per row).

    Two devices of 100 FLOP/s (18 s for the whole layer, 1.8 s per output row), links of 40 B/s
    (1 s per row), d0 holds the input and collects the output.
    """
    c = Layer("c", "conv2d", ("x",), 1800.0, 400.0,
              attrs={"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "shape_in": [1, 1, 10, 10],
                     "shape_out": [1, 1, 10, 10]})
    g = Graph("one", [ModelInput("x", 400.0)], [c])
    s = System([Device("d0", 100.0), Device("d1", 100.0)], [Link("d0", "d1", 40.0), Link("d1", "d0", 40.0)], "d0", "d0")
    return Instance("one", g, s, Problem(execution="parallel"))


def test_proportional_split_by_hand() -> None:
    plan = proportional_split(one_conv(), "c")
    # Model: d1 with h rows receives h + 2 halo rows (h + 2 s), computes 1.8 h s, returns h s:
    # 3.8 h + 2; d0 computes 1.8 (10 - h). h = 2: max(9.6, 14.4) = 14.4; h = 3: max(13.4, 12.6) = 13.4;
    # h = 4: max(17.2, 10.8). The integer optimum is h = 3, T = 13.4 s.
    assert plan.rows == {"d0": 7, "d1": 3}
    assert plan.row_bounds == (0, 7, 10)
    assert plan.model_makespan_s == pytest.approx(13.4)
    # Exact: d1's band is the last one; rows [7,10) need input rows [6, 10) only (row 10 is padding):
    # 4 s + 5.4 s + 3 s = 12.4 s, while d0 computes 7 rows in 12.6 s. Makespan 12.6 <= 13.4.
    assert plan.evaluation.latency_parallel_s == pytest.approx(12.6)
    assert plan.evaluation.feasible
    # The evaluator's default list schedule (no insertion) runs d0's 12.6 s part before the zero-time
    # slice for d1, which then starts at 12.6: 12.6 + 4 + 5.4 + 3 = 25 s.
    assert evaluate(plan.transformed.instance, plan.placement).latency_parallel_s == pytest.approx(25.0)


def test_proportional_split_with_continuous_rows_rounds_to_the_same_split() -> None:
    plan = proportional_split(one_conv(), "c", integer_rows=False)
    # Continuous optimum: 3.8 h + 2 = 18 - 1.8 h, h = 16/5.6 = 2.857, T = 12.857; rounded to 3 rows.
    assert plan.model_makespan_s == pytest.approx(18 - 1.8 * 16 / 5.6, rel=1e-6)
    assert plan.rows == {"d0": 7, "d1": 3}
