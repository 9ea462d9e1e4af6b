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
        outputs={"r": "PC/Op_e/r"},
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
