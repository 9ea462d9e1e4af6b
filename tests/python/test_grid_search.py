"""grid_search, CircuitTemplate.run and simulate against numpy integrations of the same
circuits (conftest.py), and the argument errors users hit."""

import _thread
import threading
import time

import numpy as np
import pandas as pd
import pytest

from conftest import NET3, integrate, net3_rhs

T, DT, DTS = 0.5, 1e-4, 1e-3
STEPS = int(round(T / DT))
ETA_MAP = {
    "eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]},
    "eta_iin": {"vars": ["Op_i/eta"], "nodes": ["IIN"]},
}

# Same arithmetic in another order: rounding-level differences (~1e-16 per step) on a
# non-chaotic system stay far below this over a few thousand steps.
ATOL = 1e-9


def run(rr, grid, pmap=ETA_MAP, **kw):
    args = dict(
        simulation_time=T,
        dt=DT,
        sampling_step_size=DTS,
        inputs={"PC/Op_e/inp": np.ones(STEPS)},
        outputs={"r": "PC/Op_e/r"},
        permute_grid=True,
        backend="auto",
        solver="euler",
    )
    args.update(kw)
    return rr.grid_search(NET3, grid, pmap, **args)


def test_grid_search_one_point_equals_single_run(rustrates):
    grid = {"eta_op": np.array([-3.0, 1.0]), "eta_iin": np.array([-2.0, 0.5])}
    results, result_map = run(rustrates, grid)
    assert list(result_map.index) == ["Net3_0", "Net3_1", "Net3_2", "Net3_3"]
    for label in result_map.index:
        eta_op, eta_iin = result_map.loc[label]
        single = (
            rustrates.CircuitTemplate.from_yaml(NET3)
            .update_var(node_vars={"PC/Op_e/eta": eta_op, "IIN/Op_i/eta": eta_iin})
            .run(
                simulation_time=T,
                step_size=DT,
                sampling_step_size=DTS,
                inputs={"PC/Op_e/inp": np.ones(STEPS)},
                outputs={"r": "PC/Op_e/r"},
                solver="euler",
            )
        )
        # Lanes are independent copies of the model: bit for bit the single run.
        np.testing.assert_array_equal(results[(label, "PC", "r")].to_numpy(), single["r"].to_numpy())


def net3_r_of_pc(grid, dt: float = DT, solver: str = "euler", inp=None) -> np.ndarray:
    """numpy's r of PC, (samples, points), for the zipped points of ``grid`` (``eta_op``,
    ``eta_iin``; a dict or DataFrame), input 1 unless ``inp`` is given."""
    eta_e, eta_i = np.asarray(grid["eta_op"], dtype=float), np.asarray(grid["eta_iin"], dtype=float)
    u = np.ones((STEPS, len(eta_e))) if inp is None else inp
    return integrate(net3_rhs, np.zeros((4, len(eta_e))), u, dt, DTS, T, solver, eta_e=eta_e, eta_i=eta_i)[:, 0, :]


def test_simulate_equals_numpy_euler(rustrates):
    df = rustrates.simulate(
        NET3,
        T,
        DT,
        inputs={"PC/Op_e/inp": 0.5},
        outputs={"r": "PC/Op_e/r", "ri": "IIN/Op_i/r"},
        sampling_step_size=DTS,
        params={"PC/Op_e/eta": -4.0},
    )
    ref = integrate(net3_rhs, np.zeros((4, 1)), np.full((STEPS, 1), 0.5), DT, DTS, T, eta_e=-4.0, eta_i=-1.0)
    np.testing.assert_allclose(df["r"].to_numpy(), ref[:, 0, 0], rtol=0, atol=ATOL)
    np.testing.assert_allclose(df["ri"].to_numpy(), ref[:, 2, 0], rtol=0, atol=ATOL)
    # The rest are CircuitTemplate.run's arguments, by position too (inputs, outputs, solver,
    # sampling_step_size): the same run, so the same frame bit for bit.
    outputs = {"r": "PC/Op_e/r", "ri": "IIN/Op_i/r"}
    by_position = rustrates.simulate(
        NET3, T, DT, {"PC/Op_e/inp": 0.5}, outputs, "euler", DTS, params={"PC/Op_e/eta": -4.0}
    )
    pd.testing.assert_frame_equal(by_position, df, check_exact=True)


def test_grid_search_dataframe_grid_is_explicit_rows(rustrates):
    rows = pd.DataFrame({"eta_op": [-5.0, 2.0, 0.0], "eta_iin": [1.0, 1.0, -3.0]})
    results, result_map = run(rustrates, rows)
    np.testing.assert_array_equal(result_map.to_numpy(), rows.to_numpy())
    np.testing.assert_allclose(results.to_numpy(), net3_r_of_pc(rows), rtol=0, atol=ATOL)


def test_grid_search_zip_order_and_step_size_alias(rustrates):
    grid = {"eta_op": [-4.0, -2.0, 3.0], "eta_iin": [0.0, 1.0, 2.0]}
    results, result_map = run(rustrates, grid, permute_grid=False, dt=None, step_size=DT)
    np.testing.assert_array_equal(result_map.to_numpy(), np.array([[-4.0, 0.0], [-2.0, 1.0], [3.0, 2.0]]))


def test_grid_search_edge_weight_sweep_equals_numpy(rustrates):
    weights = np.array([0.0, 2.5, 5.0, 8.0])
    pmap = {"w": {"vars": ["weight"], "edges": [("PC", "IIN")]}}
    results, result_map = run(rustrates, {"w": weights}, pmap)
    np.testing.assert_array_equal(result_map["w"].to_numpy(), weights)
    ref = integrate(net3_rhs, np.zeros((4, 4)), np.ones((STEPS, 4)), DT, DTS, T, eta_e=-5.0, eta_i=-1.0, w_pi=weights)
    np.testing.assert_allclose(results.to_numpy(), ref[:, 0, :], rtol=0, atol=ATOL)


def test_grid_search_per_point_inputs(rustrates):
    grid = {"eta_op": [-5.0, -5.0, -3.0], "eta_iin": [-1.0, -1.0, -1.0]}
    t = np.arange(STEPS) * DT
    inp = np.stack([np.ones(STEPS), 2.0 * np.sin(2 * np.pi * 4 * t), np.where(t > 0.2, 3.0, 0.0)], axis=1)
    results, _ = run(rustrates, grid, permute_grid=False, inputs={"PC/Op_e/inp": inp})
    np.testing.assert_allclose(results.to_numpy(), net3_r_of_pc(grid, inp=inp), rtol=0, atol=ATOL)
    # The first two points differ only by their input column: their traces must differ.
    assert np.abs(results.iloc[:, 0] - results.iloc[:, 1]).max() > 1e-3


def test_grid_search_float32_close_to_float64(rustrates):
    grid = {"eta_op": np.linspace(-5, 5, 3), "eta_iin": np.linspace(-5, 5, 3)}
    r64, _ = run(rustrates, grid, float_precision="float64")
    r32, _ = run(rustrates, grid, init_kwargs={"float_precision": "float32"})
    diff = np.abs(r32.to_numpy() - r64.to_numpy())
    # float32 rounds each step at ~6e-8 relative; 5,000 steps of a contracting system keep
    # the difference at the 1e-4 level PyRates' float32 shows (SPEC §10), not beyond.
    assert diff.max() < 1e-3 * max(1.0, np.abs(r64.to_numpy()).max())
    assert diff.max() > 0.0  # it really ran in float32


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4"])
def test_grid_search_fixed_step_solvers_equal_numpy(rustrates, solver):
    grid = {"eta_op": [-5.0, 0.0, 4.0], "eta_iin": [-1.0, 2.0, -3.0]}
    results, _ = run(rustrates, grid, permute_grid=False, solver=solver, dt=1e-3, inputs={"PC/Op_e/inp": 1.0})
    np.testing.assert_allclose(results.to_numpy(), net3_r_of_pc(grid, 1e-3, solver), rtol=0, atol=ATOL)


@pytest.mark.parametrize("solver", ["rk45", "scipy"])
def test_grid_search_adaptive_solver_close_to_fine_rk4(rustrates, solver):
    grid = {"eta_op": [-5.0, 0.0], "eta_iin": [-1.0, 2.0]}
    results, _ = run(
        rustrates, grid, permute_grid=False, solver=solver, dt=1e-3, rtol=1e-8, atol=1e-10, inputs={"PC/Op_e/inp": 1.0}
    )
    # RK4 at dt = 1e-4 has a global error ~1e-12 here: the truth for this comparison.
    ref = net3_r_of_pc(grid, 1e-4, "rk4")
    # Tolerances 1e-8/1e-10 per step; dense-output sampling and error accumulation allow
    # a few hundred times that globally.
    np.testing.assert_allclose(results.to_numpy(), ref, rtol=0, atol=1e-5)


def test_grid_search_summaries_equal_numpy_statistics(rustrates):
    grid = {"eta_op": np.linspace(-5, 5, 3), "eta_iin": np.linspace(-5, 5, 2)}
    stats = ["mean", "std", "min", "max", "last", "ptp", "dominant_frequency"]
    traces, _ = run(rustrates, grid, cutoff=0.1)
    summ, result_map = run(rustrates, grid, cutoff=0.1, summaries=stats)
    assert list(summ.index) == list(result_map.index)
    x = traces.to_numpy()  # (time, points), samples with t >= 0.1
    assert np.isclose(traces.index[0], 0.1)
    expected = {
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "last": x[-1],
        "ptp": np.ptp(x, axis=0),
    }
    for name, values in expected.items():
        np.testing.assert_allclose(summ[("r", name)].to_numpy(), values, rtol=1e-10, atol=1e-12, err_msg=name)
    # Dominant frequency: the largest non-DC bin of the mean-removed trace's FFT.
    n = x.shape[0]
    power = np.abs(np.fft.rfft(x - x.mean(axis=0), axis=0)) ** 2
    freq = (np.argmax(power[1:], axis=0) + 1) / (n * DTS)
    dom = [c for c in summ.columns if c[0] == "r" and c[1] in ("dom_freq", "dominant_frequency")]
    np.testing.assert_allclose(summ[dom[0]].to_numpy(), freq, rtol=1e-12)


def test_grid_search_out_round_trips_through_read_results(rustrates, tmp_path):
    grid = {"eta_op": np.linspace(-5, 5, 3), "eta_iin": np.linspace(-5, 5, 2)}
    results, result_map = run(rustrates, grid)
    path = tmp_path / "sweep.h5"
    first, result_map_file = run(rustrates, grid, out=str(path), summaries=["mean"])
    assert first == str(path)
    pd.testing.assert_frame_equal(result_map_file, result_map)
    back, back_map, back_summ = rustrates.read_results(path)
    np.testing.assert_array_equal(back.to_numpy(), results.to_numpy())
    assert list(back.columns) == list(results.columns)
    pd.testing.assert_frame_equal(back_map, result_map)
    np.testing.assert_allclose(back_summ[("r", "mean")].to_numpy(), results.to_numpy().mean(axis=0), rtol=1e-12)
    # The seed's pandas keys, as ClusterGridSearch files have them.
    pd.testing.assert_frame_equal(pd.read_hdf(path, key="Results/result_map"), result_map)
    pd.testing.assert_frame_equal(pd.read_hdf(path, key="Results/results"), results)


def test_grid_search_profile_m_and_mt(rustrates):
    grid = {"eta_op": [-5.0], "eta_iin": [-1.0]}
    _, _, mem = run(rustrates, grid, profile="m")
    _, _, (sec, mem2) = run(rustrates, grid, profile="mt")
    assert mem > 10.0 and mem2 >= mem  # MB: the interpreter alone needs more than 10
    assert 0.0 < sec < 60.0


def test_grid_search_releases_the_gil(rustrates):
    grid = {"eta_op": np.linspace(-5, 5, 40), "eta_iin": np.linspace(-5, 5, 40)}
    ticks = 0
    done = threading.Event()

    def sweep():
        try:
            run(rustrates, grid, simulation_time=2.0, inputs={"PC/Op_e/inp": 1.0})
        finally:
            done.set()

    worker = threading.Thread(target=sweep)
    start = time.perf_counter()
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - start
    # With the GIL held for the whole sweep this loop would tick about once.
    assert ticks > min(20, elapsed / 0.002 / 4), (ticks, elapsed)


def test_grid_search_ctrl_c_stops_promptly(rustrates):
    # The engine stops between blocks of lanes, so size the sweep from a calibration run
    # (debug and release builds differ ~100×): blocks of ~0.1 s, ~30 s of work in total.
    side = 16
    calib = {"eta_op": np.linspace(-5, 5, side), "eta_iin": np.linspace(-5, 5, side)}
    start = time.perf_counter()
    run(rustrates, calib, simulation_time=0.1, inputs={"PC/Op_e/inp": 1.0}, summaries=["mean"])
    lane_step = (time.perf_counter() - start) / (side * side * 1000)
    steps = int(np.clip(0.1 / (64 * 2 * lane_step), 100, 1_000_000))
    n = int(np.ceil(np.sqrt(30.0 / (steps * lane_step))))
    grid = {"eta_op": np.linspace(-5, 5, n), "eta_iin": np.linspace(-5, 5, n)}

    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run(rustrates, grid, simulation_time=steps * DT, inputs={"PC/Op_e/inp": 1.0}, summaries=["mean"])
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5 + 2.0, (elapsed, steps, n)


def test_grid_search_progress_callback_line(rustrates, capsys, monkeypatch):
    import rustrates._progress as progress_mod

    monkeypatch.setattr(progress_mod.Progress, "__init__", _no_tqdm_init(progress_mod.Progress.__init__))
    run(rustrates, {"eta_op": [-5.0, 0.0], "eta_iin": [-1.0]}, progress=True)
    err = capsys.readouterr().err
    assert "2/2 points" in err


def _no_tqdm_init(init):
    def patched(self, description="rustrates"):
        init(self, description)
        self._tqdm = None

    return patched


# ---------------------------------------------------------------------------------------
# errors name the argument


def test_error_unknown_param_map_variable_names_it(rustrates):
    pmap = {"eta_op": {"vars": ["Op_e/etta"], "nodes": ["PC"]}}
    with pytest.raises(rustrates.SweepError, match="param_map") as info:
        run(rustrates, {"eta_op": [1.0]}, pmap)
    assert "etta" in str(info.value)
    assert info.value.diagnostics[0]["path"] == "param_map"


def test_error_unknown_param_map_node_names_it(rustrates):
    pmap = {"eta_op": {"vars": ["Op_e/eta"], "nodes": ["PCC"]}}
    with pytest.raises(rustrates.SweepError, match="PCC"):
        run(rustrates, {"eta_op": [1.0]}, pmap)


def test_error_grid_key_missing_from_param_map(rustrates):
    with pytest.raises(rustrates.SweepError, match="param_map.*'eta_x'|'eta_x'.*param_map"):
        run(rustrates, {"eta_x": [1.0]})


def test_error_wrong_input_length_names_input_and_expected_rows(rustrates):
    with pytest.raises(rustrates.RustratesError, match=r"inputs\['PC/Op_e/inp'\].*100 rows.*5000"):
        run(rustrates, {"eta_op": [1.0], "eta_iin": [1.0]}, inputs={"PC/Op_e/inp": np.ones(100)})


def test_error_wrong_input_columns(rustrates):
    with pytest.raises(rustrates.RustratesError, match=r"inputs\['PC/Op_e/inp'\].*3 columns.*\(2\)"):
        run(rustrates, {"eta_op": [1.0, 2.0], "eta_iin": [1.0]}, inputs={"PC/Op_e/inp": np.ones((STEPS, 3))})


def test_error_unequal_zip_lengths_names_param_grid(rustrates):
    with pytest.raises(rustrates.SweepError, match=r"param_grid.*'eta_op': 3.*'eta_iin': 2"):
        run(rustrates, {"eta_op": [1.0, 2.0, 3.0], "eta_iin": [1.0, 2.0]}, permute_grid=False)


def test_error_unknown_keyword_is_type_error(rustrates):
    with pytest.raises(TypeError, match="unexpected keyword argument 'simulaton_time'"):
        run(rustrates, {"eta_op": [1.0], "eta_iin": [1.0]}, simulaton_time=1.0)


def test_pyrates_keywords_are_accepted_and_ignored(rustrates):
    grid = {"eta_op": [-5.0], "eta_iin": [-1.0]}
    plain, _ = run(rustrates, grid)
    noisy, _ = run(
        rustrates,
        grid,
        vectorize=True,
        matrix_sparseness=0.0,
        verbose=False,
        clear=True,
        file_name="x",
        njit=False,
        parallel=True,
    )
    pd.testing.assert_frame_equal(plain, noisy)


def test_error_unknown_output_names_it(rustrates):
    with pytest.raises(rustrates.SweepError, match="PC/Op_e/rr"):
        run(rustrates, {"eta_op": [1.0], "eta_iin": [1.0]}, outputs={"r": "PC/Op_e/rr"})


def test_error_template_diagnostic_has_file_line_col(rustrates, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'Op:\n  base: OperatorTemplate\n  equations: "d/dt * r = -r + qq"\n'
        "  variables:\n    r: output(0.0)\n"
        "Pop:\n  base: NodeTemplate\n  operators: [Op]\n"
        "Net:\n  base: CircuitTemplate\n  nodes: {P: Pop}\n"
    )
    with pytest.raises(rustrates.EquationError) as info:
        rustrates.CircuitTemplate.from_yaml(f"{bad}/Net")
    d = [x for x in info.value.diagnostics if "qq" in x["message"]][0]
    assert (d["line"], d["col"]) == (3, 31)
    assert "bad.yaml:3:31" in str(info.value)


def test_grid_search_all_nodes_output_gives_one_column_per_node(rustrates):
    from conftest import REFERENCE_QIF, qif_rhs

    grid = {"eta_pc": [-5.0, 1.0], "eta_iin": [-5.0, -2.0]}
    pmap = {"eta_pc": {"vars": ["qif_op/eta"], "nodes": ["PC"]}, "eta_iin": {"vars": ["qif_op/eta"], "nodes": ["IIN"]}}
    results, _ = rustrates.grid_search(
        REFERENCE_QIF,
        grid,
        pmap,
        dt=DT,
        simulation_time=T,
        sampling_step_size=DTS,
        inputs={"PC/qif_op/I_ext": 1.0},
        outputs={"r": "all/qif_op/r"},
    )
    assert list(results.columns) == [(f"pc_iin_{i}", node, "r") for i in range(2) for node in ("PC", "IIN")]
    y0 = np.tile(np.array([[0.01], [-2.0], [0.01], [-2.0]]), (1, 2))
    ref = integrate(
        qif_rhs, y0, np.ones((STEPS, 2)), DT, DTS, T, eta_pc=np.array(grid["eta_pc"]), eta_iin=np.array(grid["eta_iin"])
    )
    for i in range(2):
        np.testing.assert_allclose(results[(f"pc_iin_{i}", "PC", "r")], ref[:, 0, i], rtol=0, atol=ATOL)
        np.testing.assert_allclose(results[(f"pc_iin_{i}", "IIN", "r")], ref[:, 2, i], rtol=0, atol=ATOL)


def test_grid_search_population_param_map_and_per_node_inputs(rustrates):
    """``nodes: 'all'`` (a whole population, PyRates' ``all``) equals the node list, and each
    node reads its own (steps, points) input series: both against a numpy integration."""
    from conftest import REFERENCE_QIF

    etas = np.array([-5.0, -3.0])
    t = np.arange(STEPS) * DT
    inp = np.stack(
        [
            np.stack([np.sin(2 * np.pi * 3 * t), np.where(t > 0.2, 2.0, 0.0)], axis=1),
            np.cos(2 * np.pi * 5 * t)[:, None] * [1.0, -1.0],
        ],
        axis=1,
    )  # (steps, node, point): PC's two columns, IIN's two columns

    def rhs(y, u, eta):
        r_p, v_p, r_i, v_i = y
        return np.stack(
            [
                1.0 / np.pi + 2.0 * r_p * v_p,
                v_p**2 + eta + u[0] + 15.0 * r_p - 10.0 * r_i - (np.pi * r_p) ** 2,
                1.0 / np.pi + 2.0 * r_i * v_i,
                v_i**2 + eta + u[1] + 10.0 * r_p - (np.pi * r_i) ** 2,
            ]
        )

    def sweep(nodes):
        results, _ = rustrates.grid_search(
            REFERENCE_QIF,
            {"eta": etas},
            {"eta": {"vars": ["qif_op/eta"], "nodes": nodes}},
            dt=DT,
            simulation_time=T,
            sampling_step_size=DTS,
            inputs={"PC/qif_op/I_ext": inp[:, 0, :], "IIN/qif_op/I_ext": inp[:, 1, :]},
            outputs={"r": "all/qif_op/r"},
        )
        return results

    population, listed = sweep("all"), sweep(["PC", "IIN"])
    np.testing.assert_array_equal(population.to_numpy(), listed.to_numpy())
    y0 = np.tile(np.array([[0.01], [-2.0], [0.01], [-2.0]]), (1, 2))
    ref = integrate(rhs, y0, inp, DT, DTS, T, eta=etas)
    for i, label in enumerate(dict.fromkeys(c[0] for c in population.columns)):
        np.testing.assert_allclose(population[(label, "PC", "r")], ref[:, 0, i], rtol=0, atol=ATOL)
        np.testing.assert_allclose(population[(label, "IIN", "r")], ref[:, 2, i], rtol=0, atol=ATOL)


def test_results_file_reads_with_h5py_and_pytables_in_the_same_process(rustrates, tmp_path):
    # The extension links its own static HDF5; h5py and PyTables bring theirs. All three
    # in one process must not clash.
    import h5py
    import tables  # noqa: F401  (loaded before the engine writes)

    grid = {"eta_op": [-5.0, 0.0], "eta_iin": [-1.0]}
    results, _ = run(rustrates, grid)
    path = tmp_path / "both.h5"
    run(rustrates, grid, out=path)
    with h5py.File(path, "r") as f:
        traces = f["traces"]  # [point, time, column], read lazily
        assert traces.shape == (2, 500, 1)
        np.testing.assert_array_equal(traces[1, :, 0], results[("Net3_1", "PC", "r")].to_numpy())
    pd.testing.assert_frame_equal(pd.read_hdf(path, key="Results/results"), results)
