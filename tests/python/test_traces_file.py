"""Trace files as the writer thread writes them (chunks encoded on the worker threads, written
with H5Dwrite_chunk): h5py, PyTables and pandas read them with no plugin, and every value equals
the in-memory sweep's, uncompressed and compressed (shuffle + deflate), float64 and float32."""

import h5py
import numpy as np
import pandas as pd
import pytest
import tables

from conftest import NET3

ETA_MAP = {
    "eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]},
    "eta_iin": {"vars": ["Op_i/eta"], "nodes": ["IIN"]},
}
# 64 points. At T = 140 s the traces (64 × 140,000 samples of float64, 72 MB) pass the size
# from which the engine compresses them when asked (64 MiB); at T = 0.5 s they are stored raw.
LONG, SHORT = 140.0, 0.5
THREE = {"r": "PC/Op_e/r", "ri": "IIN/Op_i/r", "v": "PC/Op_e/v"}


def sweep(rr, simulation_time, **kw):
    grid = {"eta_op": np.linspace(-5, 5, 8), "eta_iin": np.linspace(-5, 5, 8)}
    return rr.grid_search(
        NET3,
        grid,
        ETA_MAP,
        simulation_time=simulation_time,
        dt=1e-4,
        sampling_step_size=1e-3,
        inputs={"PC/Op_e/inp": 1.0},
        outputs=kw.pop("outputs", {"r": "PC/Op_e/r"}),
        permute_grid=True,
        solver="euler",
        **kw,
    )


@pytest.mark.parametrize("simulation_time, compress", [(SHORT, True), (LONG, True), (LONG, False)])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_trace_file_equals_memory_in_h5py_pytables_and_pandas(
    rustrates, tmp_path, simulation_time, compress, precision
):
    results, result_map = sweep(rustrates, simulation_time)
    # [point, time] of the in-memory run; float32 files hold each value rounded to single.
    ref = np.stack([results[(label, "PC", "r")].to_numpy() for label in result_map.index])
    ref = ref.astype(precision)
    path = tmp_path / "sweep.h5"
    sweep(rustrates, simulation_time, out=str(path), trace_precision=precision, compress=compress)
    # Deflated only when asked and 64 MiB or more; uncompressed by default.
    compressed = compress and simulation_time == LONG
    with h5py.File(path, "r") as f:
        traces = f["traces"]
        assert traces.dtype == np.dtype(precision)
        assert traces.shape == (64, ref.shape[1], 1)
        # HDF5's standard filters: nothing to install to read them.
        assert (traces.compression, traces.shuffle) == (("gzip", True) if compressed else (None, False))
        np.testing.assert_array_equal(traces[:, :, 0], ref)
        np.testing.assert_array_equal(traces[37, :, 0], ref[37])  # one point, read lazily
    with tables.open_file(path) as f:
        np.testing.assert_array_equal(f.root.traces[:, :, 0], ref)
    # The pandas key grid_search adds holds the file's values, as float64.
    back = pd.read_hdf(path, "Results/results")
    np.testing.assert_array_equal(back.to_numpy().T, ref.astype(np.float64))


def test_trace_precision_unknown_name_is_an_argument_error(rustrates, tmp_path):
    with pytest.raises(Exception, match="trace_precision must be float64 or float32, got 'half'"):
        sweep(rustrates, SHORT, out=str(tmp_path / "x.h5"), trace_precision="half")
    assert not (tmp_path / "x.h5").exists()


def test_read_results_points_equals_that_slice_of_the_whole_read(rustrates, tmp_path):
    path = tmp_path / "sweep.h5"
    sweep(rustrates, SHORT, out=str(path), summaries=["mean"], keep_traces=True)
    results, result_map, summaries = rustrates.read_results(path)
    for points in [range(0, 1), range(5, 40), slice(60, None), slice(62, 100)]:
        part, part_map, part_summ = rustrates.read_results(path, points=points)
        labels = list(result_map.index)[points if isinstance(points, slice) else slice(points.start, points.stop)]
        assert list(part_map.index) == labels
        pd.testing.assert_frame_equal(part_map, result_map.loc[labels])
        pd.testing.assert_frame_equal(part, results[labels])
        pd.testing.assert_frame_equal(part_summ, summaries.loc[labels])
    with pytest.raises(ValueError, match="step 1"):
        rustrates.read_results(path, points=range(0, 10, 2))


def test_read_results_every_selection_equals_that_part_of_the_whole_read(rustrates, tmp_path):
    # Three columns (PC, r), (IIN, ri), (PC, v). Reference: the whole file's read, selected in
    # pandas; every combination of points × outputs × traces × summaries the docstring names.
    path = tmp_path / "sweep.h5"
    sweep(rustrates, SHORT, out=str(path), summaries=["mean", "max"], keep_traces=True, outputs=THREE)
    results, result_map, summaries = rustrates.read_results(path)
    file_columns = [("PC", "r"), ("IIN", "ri"), ("PC", "v")]
    # Asked → the columns read, in the file's order whatever the order asked (non-adjacent too).
    column_cases = [
        (None, [0, 1, 2]),
        ("ri", [1]),
        (["v", "r"], [0, 2]),
        ("PC/v", [2]),
        (["IIN/ri", "r", "v"], [0, 1, 2]),
    ]
    all_labels = list(result_map.index)
    for points, labels in [(None, all_labels), (range(5, 40), all_labels[5:40]), (slice(60, None), all_labels[60:])]:
        for asked, cols in column_cases:
            for traces, summ in [(True, True), (True, False), (False, True), (False, False)]:
                case = (points, asked, traces, summ)
                part, part_map, part_summ = rustrates.read_results(
                    path, points=points, outputs=asked, traces=traces, summaries=summ
                )
                pd.testing.assert_frame_equal(part_map, result_map.loc[labels])
                if traces:
                    want_cols = [(label, *file_columns[c]) for label in labels for c in cols]
                    assert list(part.columns) == want_cols, case
                    pd.testing.assert_index_equal(part.index, results.index)
                    np.testing.assert_array_equal(part.to_numpy(), results.loc[:, want_cols].to_numpy())
                else:
                    assert part is None, case
                if summ:
                    want_summ = [(file_columns[c][1], s) for c in cols for s in ("mean", "max")]
                    assert list(part_summ.columns) == want_summ, case
                    np.testing.assert_array_equal(part_summ.to_numpy(), summaries.loc[labels, want_summ].to_numpy())
                else:
                    assert part_summ is None, case
    with pytest.raises(rustrates.SweepError, match="no output column 'w'.*r, PC/r, ri, IIN/ri, v, PC/v"):
        rustrates.read_results(path, outputs=["r", "w"])


@pytest.mark.parametrize("compress", [False, True])
def test_grid_search_out_pandas_key_equals_the_in_memory_frame_with_several_columns(rustrates, tmp_path, compress):
    # The key's block is copied by the engine from /traces ([point, time, column] transposed
    # to [time, (label, node, output)]); with three columns a transposition error shows. The
    # reference is the in-memory run's frame. Compressed: 64 points × 3 columns × 50,000
    # samples (77 MB) are past the 64 MiB from which the engine deflates.
    T = 50.0 if compress else SHORT
    results, result_map = sweep(rustrates, T, outputs=THREE)
    path = tmp_path / "sweep.h5"
    first, file_map = sweep(rustrates, T, out=str(path), outputs=THREE, compress=compress)
    assert first == str(path)
    pd.testing.assert_frame_equal(file_map, result_map)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/results"), results, check_exact=True)
    # pandas stores the block transposed, [time, column]: h5py and PyTables read it as such.
    with h5py.File(path, "r") as f:
        assert f["traces"].compression == ("gzip" if compress else None)
        np.testing.assert_array_equal(f["Results/results/block0_values"][...], results.to_numpy())
    with tables.open_file(path) as f:
        np.testing.assert_array_equal(f.root.Results.results.block0_values.read(), results.to_numpy())
        assert f.root.Results.results._v_attrs.pandas_type == "frame"
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/result_map"), result_map)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "ParameterGrid/Grid_df"), result_map)


def test_grid_search_out_too_large_for_one_frame_writes_only_the_result_map(rustrates, tmp_path, monkeypatch):
    # Past PANDAS_KEYS_MAX_BYTES (lowered here to just under this sweep's 64 × 501 × 8 bytes)
    # the file keeps the traces in the engine's layout only; at the limit the key is written.
    results, result_map = sweep(rustrates, SHORT)
    size = 64 * results.shape[0] * 8
    for limit, with_key in [(size - 1, False), (size, True)]:
        monkeypatch.setattr(rustrates._results, "PANDAS_KEYS_MAX_BYTES", limit)
        path = tmp_path / f"sweep{limit}.h5"
        sweep(rustrates, SHORT, out=str(path))
        with pd.HDFStore(path, "r") as store:
            keys = set(store.keys())
        assert ("/Results/results" in keys) == with_key
        assert {"/Results/result_map", "/ParameterGrid/Grid_df"} <= keys
        pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/result_map"), result_map)
        with h5py.File(path, "r") as f:
            ref = np.stack([results[(label, "PC", "r")].to_numpy() for label in result_map.index])
            np.testing.assert_array_equal(f["traces"][:, :, 0], ref)


def test_grid_search_out_summaries_only_has_no_traces_key(rustrates, tmp_path):
    path = tmp_path / "sweep.h5"
    _, result_map = sweep(rustrates, SHORT, out=str(path), summaries=["mean"], keep_traces=False)
    with pd.HDFStore(path, "r") as store:
        assert "/Results/results" not in store.keys()
    with h5py.File(path, "r") as f:
        assert "traces" not in f
    pd.testing.assert_frame_equal(pd.read_hdf(path, "Results/result_map"), result_map)
