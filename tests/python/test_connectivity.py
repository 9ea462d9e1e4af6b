"""``add_edges_from_matrix`` reaches the engine as one ``connectivity:`` block (issue 15):
the same results bit for bit as the network written edge by edge, a G x eta grid equal to a
numpy transcription of ``shared/bench/network_grid.c``, and bad matrices named by the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyrates_scripts._common import FORWARD_EULER_FLOAT64
from rustrates.pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate, grid_search

DT = 1e-4

# network_grid.c's node: r' = 1/pi + 2rv, v' = v^2 + eta + G r_in - (pi r)^2.
NET_OP = OperatorTemplate(
    name="net_op",
    path=None,
    equations=["d/dt * r = 1/pi + 2.0*r*v", "d/dt * v = v^2 + eta + G*r_in - (pi*r)^2"],
    variables={"r": "output(0.01)", "v": "variable(-2.0)", "eta": -5.0, "G": 1.0, "r_in": "input(0.0)"},
)
NET_POP = NodeTemplate(name="net_pop", path=None, operators=[NET_OP])


def weights(n: int, sparse: bool = False) -> np.ndarray:
    """network_grid.c's W[i, j] (from j to i); ``sparse`` zeroes every third entry."""
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    w = 0.5 * (1 + np.sin(7 * i + 13 * j)) * 15.0 / n
    if sparse:
        w[(i + 2 * j) % 3 == 0] = 0.0
    return w


def delays(n: int, dmax: float) -> np.ndarray:
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    return np.round(dmax * 0.5 * (1 + np.cos(3 * i + 5 * j)) / DT) * DT


def network(n: int, w: np.ndarray, d: np.ndarray | None, as_matrix: bool) -> CircuitTemplate:
    names = [f"n{i}" for i in range(n)]
    if as_matrix:
        net = CircuitTemplate(name="net", nodes={k: NET_POP for k in names})
        net.add_edges_from_matrix(
            "net_op/r", "net_op/r_in", names, weight=w, edge_attr=None if d is None else {"delay": d}, min_weight=0.0
        )
        return net
    edges = []
    for i in range(n):
        for j in range(n):
            if w[i, j] != 0.0:
                attrs = {"weight": float(w[i, j])}
                if d is not None:
                    attrs["delay"] = float(d[i, j])
                edges.append((f"n{j}/net_op/r", f"n{i}/net_op/r_in", None, attrs))
    return CircuitTemplate(name="net", nodes={k: NET_POP for k in names}, edges=edges)


#: network_grid.c's integration: Euler at DT in double precision, every node's r at every step.
EULER_EVERY_STEP = dict(step_size=DT, sampling_step_size=DT, outputs={"r": "all/net_op/r"}, **FORWARD_EULER_FLOAT64)


def sweep(net: CircuitTemplate, n: int, steps: int, g_vars: dict | None = None):
    """The G × eta sweep of network_grid.c; G is every node's `G` unless `g_vars` maps it."""
    names = [f"n{i}" for i in range(n)]
    return grid_search(
        net,
        param_grid={"G": [0.0, 1.0, 2.0], "eta": [-6.0, -4.0]},
        param_map={
            "G": g_vars or {"vars": ["net_op/G"], "nodes": names},
            "eta": {"vars": ["net_op/eta"], "nodes": names},
        },
        simulation_time=steps * DT,
        permute_grid=True,
        **EULER_EVERY_STEP,
    )


@pytest.mark.parametrize(("n", "sparse", "dmax"), [(5, False, 0.002), (20, True, 0.0)])
def test_matrix_gives_the_edge_list_bit_for_bit(n, sparse, dmax):
    w = weights(n, sparse)
    d = delays(n, dmax) if dmax > 0 else None
    matrix_net = network(n, w, d, as_matrix=True)
    text = Path(matrix_net._document_path().rsplit("/", 1)[0]).read_text()
    assert '"connectivity"' in text and '"edges"' not in text, "the matrix reaches the engine as one block"
    by_matrix, map_m = sweep(matrix_net, n, 200)
    by_edges, map_e = sweep(network(n, w, d, as_matrix=False), n, 200)
    assert np.isfinite(by_edges.to_numpy()).all()
    assert list(by_matrix.columns) == list(by_edges.columns)
    assert map_m.equals(map_e)
    assert np.array_equal(by_matrix.to_numpy(), by_edges.to_numpy()), "same circuit, same bits"


def transcription(n: int, g: float, eta: float, steps: int) -> np.ndarray:
    """network_grid.c's loop in numpy: r of every node before every step, [step, node]."""
    w = weights(n)
    r, v = np.full(n, 0.01), np.full(n, -2.0)
    out = [r.copy()]
    for _ in range(steps - 1):
        rin = g * np.array([sum(w[i, j] * r[j] for j in range(n)) for i in range(n)])
        r, v = r + DT * (1.0 / np.pi + 2.0 * r * v), v + DT * (v * v + eta + rin - (np.pi * r) * (np.pi * r))
        out.append(r.copy())
    return np.array(out)


def test_g_eta_grid_of_a_matrix_network_equals_the_c_program():
    n, steps = 5, 300
    res, res_map = sweep(network(n, weights(n), None, as_matrix=True), n, steps)
    worst = 0.0
    for label, row in res_map.iterrows():
        want = transcription(n, row["G"], row["eta"], steps)
        for i in range(n):
            got = res[("r", label, f"n{i}", "net_op/r")].to_numpy()
            worst = max(worst, float(np.max(np.abs(got - want[:, i]) / np.abs(want[:, i]))))
    # The same operations as the C program in another association order: a few ulps per step.
    assert worst <= 1e-12, worst


def test_bad_matrix_is_reported_by_the_engine_with_its_position():
    names = ["a", "b", "c"]
    net = CircuitTemplate(name="net", nodes={k: NET_POP for k in names})
    w = np.ones((3, 3))
    w[1, 2] = np.nan
    net.add_edges_from_matrix("net_op/r", "net_op/r_in", names, weight=w)
    with pytest.raises(Exception, match=r"weight`\[1\]\[2\] must be a finite number") as err:
        net.run(simulation_time=0.01, step_size=1e-3, outputs={"r": "a/net_op/r"})
    assert "circuit_" in str(err.value) and ".yaml:" in str(err.value), str(err.value)
    net = CircuitTemplate(name="net", nodes={k: NET_POP for k in names})
    net.add_edges_from_matrix("net_op/rr", "net_op/r_in", names, weight=np.ones((3, 3)))
    with pytest.raises(Exception, match="is not a variable"):
        net.run(simulation_time=0.01, step_size=1e-3, outputs={"r": "a/net_op/r"})


def test_global_coupling_scale_sweeps_like_the_nodes_g():
    """G as the connectivity's scale (one parameter, weights shared by the lanes) equals G as
    every node's own parameter: G * sum_j W_ij r_j either way."""
    n, steps = 5, 300
    names = [f"n{i}" for i in range(n)]
    scaled = CircuitTemplate(name="net", nodes={k: NET_POP for k in names})
    scaled.add_edges_from_matrix(
        "net_op/r", "net_op/r_in", names, weight=weights(n), min_weight=0.0, name="C", scale=1.0
    )
    res, res_map = sweep(scaled, n, steps, g_vars={"vars": ["C/scale"]})
    by_nodes, map_n = sweep(network(n, weights(n), None, as_matrix=True), n, steps)
    assert map_n[["G", "eta"]].to_numpy().tolist() == res_map[["G", "eta"]].to_numpy().tolist()
    a, b = res.to_numpy(), by_nodes.to_numpy()
    assert np.isfinite(a).all()
    # 0 + G·Σ then 1·(that) against G·Σ: the same products, equal up to a few ulps at most.
    assert np.max(np.abs(a - b) / np.abs(b)) <= 1e-12


def velocity_net(tmp_path: Path, n: int, lengths: np.ndarray | None, d: np.ndarray | None) -> str:
    """network_grid.c's network as one scaled block ``C`` (weights in ``w.npy``), with
    ``lengths`` and a velocity, or with its delays ``d`` given directly."""
    np.save(tmp_path / "w.npy", weights(n))
    nodes = ", ".join(f"n{i}: net_pop" for i in range(n))
    block = (
        "  connectivity:\n    - source: net_op/r\n      target: net_op/r_in\n"
        f"      source_nodes: [{', '.join(f'n{i}' for i in range(n))}]\n      weight: w.npy\n"
        "      name: C\n      scale: 1.0\n"
    )
    if lengths is not None:
        np.save(tmp_path / "l.npy", lengths)
        block += "      lengths: l.npy\n      velocity: 10.0\n"
        name = "velocity.yaml"
    else:
        np.save(tmp_path / "d.npy", d)
        block += "      delay: d.npy\n"
        name = "given.yaml"
    (tmp_path / name).write_text(
        "net_op:\n  base: OperatorTemplate\n  equations:\n"
        '    - "d/dt * r = 1/pi + 2.0*r*v"\n    - "d/dt * v = v^2 + eta + G*r_in - (pi*r)^2"\n'
        "  variables: {r: output(0.01), v: variable(-2.0), eta: -5.0, G: 1.0, r_in: input(0.0)}\n"
        "net_pop: {base: NodeTemplate, operators: [net_op]}\n"
        f"Net:\n  base: CircuitTemplate\n  nodes: {{{nodes}}}\n" + block
    )
    return f"{tmp_path / name}/Net"


def test_velocity_grid_search_equals_the_c_program_and_runs_with_the_delays_given(tmp_path):
    """grid_search over G x conduction velocity (param_map naming ``C/velocity``): every lane
    reads its own delays ``lengths / velocity``. Against a numpy transcription of
    network_grid.c with those delays (velocities 10, 5, 2.5 make whole steps: 1, 2, 4 times the
    C program's), and, bit for bit, against grid_search of the block with ``delay: L / v``."""
    n, steps, dmax = 5, 300, 0.002
    base = delays(n, dmax)
    lengths = base * 10.0
    grid = {"G": [0.5, 2.0], "velocity": [10.0, 5.0, 2.5]}
    args = dict(simulation_time=steps * DT, **EULER_EVERY_STEP)
    res, res_map = grid_search(
        velocity_net(tmp_path, n, lengths, None),
        param_grid=grid,
        param_map={"G": {"vars": ["C/scale"]}, "velocity": {"vars": ["C/velocity"]}},
        permute_grid=True,
        **args,
    )
    w = weights(n)
    worst = 0.0
    for label, row in res_map.iterrows():
        g, v = row["G"], row["velocity"]
        k = np.round(lengths / v / DT).astype(int)
        r, vv = np.full(n, 0.01), np.full(n, -2.0)
        hist = [r.copy()]
        for s in range(steps - 1):
            past = np.array([[hist[s - k[i, j]][j] if s >= k[i, j] else 0.01 for j in range(n)] for i in range(n)])
            rin = g * np.array([sum(w[i, j] * past[i, j] for j in range(n)) for i in range(n)])
            r, vv = r + DT * (1.0 / np.pi + 2.0 * r * vv), vv + DT * (vv * vv - 5.0 + rin - (np.pi * r) * (np.pi * r))
            hist.append(r.copy())
        want = np.array(hist)
        for i in range(n):
            got = res[("r", label, f"n{i}", "net_op/r")].to_numpy()
            worst = max(worst, float(np.max(np.abs(got - want[:, i]) / np.abs(want[:, i]))))
        # The lane equals the block with its delays written out: length / velocity, the same
        # IEEE division in numpy and in the engine.
        alone, _ = grid_search(
            velocity_net(tmp_path, n, None, lengths / v),
            param_grid={"G": [g]},
            param_map={"G": {"vars": ["C/scale"]}},
            **args,
        )
        for i in range(n):
            a = res[("r", label, f"n{i}", "net_op/r")].to_numpy()
            b = alone.iloc[:, i].to_numpy()
            assert np.array_equal(a, b), (label, i)
    # Whole-step reads: the C program's operations in another association order, a few ulps.
    assert worst <= 1e-12, worst


def test_update_var_sets_a_blocks_entry_by_its_edge_list_name():
    """``update_var(edge_vars=...)`` on a network given by ``add_edges_from_matrix`` sets one
    entry as it sets that edge of the edge list: the runs are equal bit for bit."""
    n, steps = 5, 200
    w = weights(n)
    runs = []
    for as_matrix in (True, False):
        net = network(n, w, delays(n, 0.002), as_matrix=as_matrix)
        net = net.update_var(edge_vars=[("n1", "n3", {"weight": 4.0}), ("n2", "n0", 0, {"delay": 0.0015})])
        res = net.run(
            simulation_time=steps * DT,
            step_size=DT,
            outputs={"r": "all/net_op/r"},
            solver="euler",
            float_precision="float64",
        )
        runs.append(res.to_numpy())
    assert np.isfinite(runs[1]).all()
    assert np.array_equal(runs[0], runs[1]), "the block's entry differs from the edge list's edge"
    unchanged = network(n, w, delays(n, 0.002), as_matrix=True).run(
        simulation_time=steps * DT,
        step_size=DT,
        outputs={"r": "all/net_op/r"},
        solver="euler",
        float_precision="float64",
    )
    assert not np.array_equal(unchanged.to_numpy(), runs[0]), "the entry was set"
