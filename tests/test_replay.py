"""Trace replay (``toolchain.replay``), trace files (``toolchain.traces``) and ``dnnpart replay``.

By hand, on ``offload_choice`` of tests/test_sweep.py (phone ``m`` 1 GFLOP/s, 2 W active, 0.5 W
idle; cloud ``c``; a 1 MB input, one 1 GFLOP layer with a 1 kB output; link 1 W transmit power, no
latency; offloading wins above 1.002e6 B/s). The trace holds 1, 16, 64 and 4 Mbit/s at t = 0..3 s
(1.25e5, 2e6, 8e6 and 5e5 B/s):

* static (the optimum at the file's 1e6 B/s: on the phone): latency 1 s and energy 2 J each;
* oracle: phone, cloud, cloud, phone. At 16 Mbit/s: latency 0.001 + 1.001e6 / 2e6 = 0.5015 s,
  energy 0.5 (phone sends) + 0.0005 (cloud sends) + 0.5 W x 0.001 s idle = 0.501 J; at 64 Mbit/s:
  0.001 + 1.001e6 / 8e6 = 0.126125 s and 0.125 + 0.000125 + 0.5 x 0.001 = 0.125625 J;
* with 2 MB of weights on the layer and ``--switch-cost weights``: moving to the cloud at 2e6 B/s
  takes 2e6 / 2e6 = 1 s (1 J sent by the phone), moving back at 5e5 B/s takes 4 s (4 J sent by the
  cloud).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from formulation import generators as gen
from formulation.loader import instance_to_data
from formulation.model import Constraints, Graph, Instance, ModelInput, Problem
from tests.test_sweep import offload_choice
from toolchain.cli import app
from toolchain.replay import ReplayError, replay, switch_cost
from toolchain.traces import PRESETS, Trace, TraceError, read_trace, synthetic

TRACES = Path(__file__).resolve().parent.parent / "instances" / "traces"
HAND = "time,bandwidth\n0,1\n1,16\n2,64\n3,4\n"
runner = CliRunner()


def hand_trace(tmp_path: Path, text: str = HAND) -> Trace:
    f = tmp_path / "hand.csv"
    f.write_text(text)
    return read_trace(f)


def heavy() -> Instance:
    """offload_choice with 2 MB of weights on the layer."""
    inst = offload_choice()
    lay = dataclasses.replace(inst.graph.layers[0], param_bytes=2e6)
    g = Graph("one", [ModelInput("x", 1e6)], [lay])
    return Instance(inst.name, g, inst.system, inst.problem)


def test_policies_by_hand(tmp_path: Path) -> None:
    rep = replay(offload_choice(), hand_trace(tmp_path), ["static", "oracle", "table"])
    st, orc, tab = rep.runs["static"], rep.runs["oracle"], rep.runs["table"]
    assert st.latency.tolist() == pytest.approx([1, 1, 1, 1]) and st.energy.tolist() == pytest.approx([2] * 4)
    assert orc.latency.tolist() == pytest.approx([1, 0.5015, 0.126125, 1])
    assert orc.energy.tolist() == pytest.approx([2, 0.501, 0.125625, 2])
    assert tab.latency.tolist() == pytest.approx(orc.latency.tolist())
    s = orc.summary()
    assert s["latency_mean_s"] == pytest.approx((2 + 0.5015 + 0.126125) / 4)
    assert s["latency_p95_s"] == pytest.approx(1.0) and s["switches"] == 2 and s["switch_time_s"] == 0
    assert rep.placements == [{"a": "m"}, {"a": "c"}]
    assert rep.bandwidth.tolist() == [1.25e5, 2e6, 8e6, 5e5]


def test_switch_cost_of_weights(tmp_path: Path) -> None:
    rep = replay(heavy(), hand_trace(tmp_path), ["oracle"], switch="weights")
    orc = rep.runs["oracle"]
    assert orc.switch_s.tolist() == pytest.approx([0, 1, 0, 4])
    assert orc.latency.tolist() == pytest.approx([1, 1.5015, 0.126125, 5])
    assert orc.energy.tolist() == pytest.approx([2, 1.501, 0.125625, 6])
    # the steady objective leaves the switch out
    assert orc.steady.tolist() == pytest.approx([1, 0.5015, 0.126125, 1])
    secs, joules = switch_cost(heavy(), (0,), (1,))  # at the file's 1e6 B/s: 2 s, 2 J
    assert (secs, joules) == pytest.approx((2.0, 2.0))


def test_deadline_misses_and_rate(tmp_path: Path) -> None:
    rep = replay(offload_choice(), hand_trace(tmp_path), ["static", "oracle"], deadline_s=0.6, rate=2.0)
    assert rep.times.tolist() == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5])
    assert rep.runs["static"].summary()["deadline_misses"] == 8
    assert rep.runs["oracle"].summary()["deadline_misses"] == 4
    assert rep.runs["oracle"].latency.tolist() == pytest.approx([1, 1, 0.5015, 0.5015, 0.126125, 0.126125, 1, 1])


def test_trace_without_header(tmp_path: Path) -> None:
    tr = hand_trace(tmp_path, "0,1,40\n1,16,20\n")
    assert tr.bandwidth.tolist() == [1.25e5, 2e6] and tr.latency is not None
    assert tr.latency.tolist() == pytest.approx([0.04, 0.02])
    with pytest.raises(TraceError, match="4 values and no header"):
        hand_trace(tmp_path, "0,1,2,3\n")


def test_latency_and_load_columns(tmp_path: Path) -> None:
    # 30 ms more per transfer at 16 Mbit/s: offloading costs 0.5015 + 2 x 0.03 = 0.5615 s;
    # the phone at half load runs the layer in 2 s, so at 1 Mbit/s (offload 8.009 s) it still stays
    tr = hand_trace(tmp_path, "time,bandwidth [Mbit/s],latency [ms],load:m\n0,1,0,0.5\n1,16,30,0\n")
    rep = replay(offload_choice(), tr, ["oracle"])
    assert rep.runs["oracle"].latency.tolist() == pytest.approx([2.0, 0.5615])


def _oracle_never_worse(rows: int) -> None:
    inst = gen.instance(gen.chain(6, seed=38), gen.system(2, seed=38), Problem())
    switching = 0
    for name in PRESETS:
        tr = read_trace(TRACES / f"{name}.csv")
        tr = Trace(tr.name, tr.time[:rows], tr.bandwidth[:rows], None if tr.latency is None else tr.latency[:rows])
        rep = replay(inst, tr, ["static", "oracle", "table"])
        st, orc, tab = (rep.runs[p].steady for p in ("static", "oracle", "table"))
        assert np.all(orc <= st * (1 + 1e-9)), name
        assert np.all(orc <= tab * (1 + 1e-9)), name
        assert len(rep.times) == rows, name
        switching += rep.runs["oracle"].switches > 0
    assert switching >= 2  # the optimum moves within the Wi-Fi and 5G traces (not 3G and LTE for this chain)


def test_oracle_never_worse_than_static_on_shipped_traces() -> None:
    # a 6-layer chain on two devices over the first 40 s of each shipped trace: at every step,
    # oracle <= static and oracle <= table (-m slow: the whole traces)
    _oracle_never_worse(40)


@pytest.mark.slow
def test_oracle_never_worse_than_static_on_whole_shipped_traces() -> None:
    _oracle_never_worse(300)


def test_shipped_traces_reproduce_their_published_centres() -> None:
    for name, p in PRESETS.items():
        mbit = read_trace(TRACES / f"{name}.csv").bandwidth / 125_000
        centre = np.median(mbit) if p.centre_is_median else np.mean(mbit)
        assert centre == pytest.approx(p.centre_mbit_s, rel=2e-3), name
        # the generator is deterministic: the file is what the seed gives (to the file's 4 decimals)
        again = synthetic(p, 300, seed=19 + list(PRESETS).index(name)).bandwidth / 125_000
        assert np.allclose(mbit, again, atol=6e-5), name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,latency\n0,1\n", "no 'bandwidth' column"),
        ("time,bandwidth,speed\n0,1,2\n", "unknown column 'speed'"),
        ("time,bandwidth\n0,fast\n", "line 2, column 'bandwidth': 'fast' is not a number"),
        ("time,bandwidth\n0,1\n0,2\n", "line 3: time '0' does not increase"),
        ("time,bandwidth\n0,-1\n", "expected a positive bandwidth"),
        ("time,bandwidth\n0,1,2\n", "line 2: 3 values, expected 2"),
        ("time,bandwidth,load:m\n0,1,1.5\n", "expected a load fraction in [0, 1)"),
        ("time,bandwidth,load:x\n0,1,0.5\n", "'load:x' names no device"),
        ("time,bandwidth [furlong]\n0,1\n", "unit 'furlong'"),
        ("time,bandwidth\n", "holds a header but no data row"),
        ("", "empty"),
    ],
)
def test_bad_trace_files(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(TraceError) as exc:
        read_trace(f, ("m", "c"))
    assert message in str(exc.value) and str(f) in str(exc.value)


def test_trace_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="an existing file"):
        read_trace(tmp_path / "missing.csv")
    with pytest.raises(TraceError, match="a regular file, not a directory"):
        read_trace(tmp_path)


def test_bad_requests(tmp_path: Path) -> None:
    tr = hand_trace(tmp_path)
    with pytest.raises(ReplayError, match="expected some of static, oracle, table"):
        replay(offload_choice(), tr, ["greedy"])
    with pytest.raises(ReplayError, match="weights or none"):
        replay(offload_choice(), tr, ["static"], switch="all")
    three = gen.instance(gen.chain(3, seed=1), gen.system(3, seed=1), Problem())
    with pytest.raises(ReplayError, match="several links"):
        replay(three, tr, ["static"])
    bad_table = {"param": "links.m-c.latency", "table": [{"from": 0, "to": 1, "placement": {"a": "m"}}]}
    with pytest.raises(ReplayError, match=r"the table is for 'links\.m-c\.latency'"):
        replay(offload_choice(), tr, ["table"], table=bad_table)


def test_cli_replay_with_a_table_file(tmp_path: Path) -> None:
    inst = offload_choice().with_problem(Problem(constraints=Constraints(deadline_s=0.6)))
    f = tmp_path / "one.json"
    f.write_text(json.dumps(instance_to_data(offload_choice())))
    g = tmp_path / "deadline.json"
    g.write_text(json.dumps(instance_to_data(inst)))
    pol, tr = tmp_path / "policy.json", tmp_path / "hand.csv"
    tr.write_text(HAND)
    r = runner.invoke(
        app, ["sweep", str(f), "--param", "links.m-c.bandwidth", "--values", "0.5:100", "--exact", "--out", str(pol)]
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "series.json"
    r = runner.invoke(
        app,
        ["replay", str(g), "--trace", str(tr), "--policy", f"static,table:{pol}", "--json", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["policies"]["static"]["deadline_misses"] == 4
    assert data["policies"]["table"]["deadline_misses"] == 2
    assert data["policies"]["table"]["latency_mean_s"] == pytest.approx((2 + 0.5015 + 0.126125) / 4)
    assert json.loads(out.read_text())["series"]["table"]["placement"] == [0, 1, 1, 0]
    text = runner.invoke(app, ["replay", str(f), "--trace", str(tr)])
    assert text.exit_code == 0 and "oracle" in text.output and "switches" in text.output
    bad = tmp_path / "bad.csv"
    bad.write_text("time,bandwidth\n0,x\n")
    r = runner.invoke(app, ["replay", str(f), "--trace", str(bad)])
    assert r.exit_code == 2 and "'x' is not a number" in r.output
    r = runner.invoke(app, ["replay", str(f), "--trace", str(tr), "--policy", "oracle:x.json"])
    assert r.exit_code == 2 and "--policy" in r.output


def test_replay_plot(tmp_path: Path) -> None:
    from toolchain.plots import plot_replay

    rep = replay(offload_choice(), hand_trace(tmp_path), ["static", "oracle"], deadline_s=0.6)
    fig = plot_replay(rep, path=tmp_path / "replay.png")
    assert (tmp_path / "replay.png").stat().st_size > 0
    bandwidth, latency, energy = fig.axes
    assert np.asarray(bandwidth.lines[0].get_ydata(), dtype=float).tolist() == pytest.approx([1, 16, 64, 4])
    assert np.asarray(latency.lines[2].get_ydata(), dtype=float).tolist() == pytest.approx([1, 0.5015, 0.126125, 1])
    assert [ln.get_label() for ln in energy.lines] == ["static", "oracle"]
