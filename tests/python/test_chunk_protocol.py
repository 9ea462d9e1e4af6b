"""Issue 17: the chunk protocol is the engine's. A sweep cut into chunks, each run into a
scratch directory as a worker would, recorded and merged by the engine (``ClusterSweep``,
``ChunkMerger``); each part file read back through the engine's part reader
(``ClusterSweep.read_part``) equals its points in the merged file, and the merged file equals
the same sweep run at once in memory. No Dask: only the protocol."""

from __future__ import annotations

import h5py
import numpy as np

from conftest import NET3

GRID = {"eta_op": [-5.0, -2.0, 1.0, 4.0, 7.0]}
PMAP = {"eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]}}


def request():
    from rustrates import _core

    return _core.build_request(
        "test",
        NET3,
        GRID,
        PMAP,
        simulation_time=0.05,
        step_size=1e-3,
        inputs={"PC/Op_e/inp": 1.0},
        outputs={"r": "PC/Op_e/r", "v": "PC/Op_e/v"},
        backend="reference",
        summaries=["mean", "max"],
        keep_traces=True,
    )


def test_a_part_read_through_the_engine_equals_its_points_in_the_merged_file(rustrates, tmp_path):
    from rustrates import _core, _rustrates

    req = request()
    sweep = _rustrates.ClusterSweep(req.template, _rustrates.SweepArgs(**req.engine_args()), chunk_size=2)
    chunks = sweep.chunks()
    assert chunks == [(0, 2), (2, 4), (4, 5)]
    compute_dir = tmp_path / "cd"
    compute_dir.mkdir()
    assert sweep.prepare_dir(compute_dir) == []
    for i in range(len(chunks)):
        worker_dir = tmp_path / f"worker{i}"
        worker_dir.mkdir()
        rel = sweep.run_chunk(i, worker_dir)
        assert rel == sweep.part_path(i)
        sweep.record_part(compute_dir, i, _rustrates.read_bytes(worker_dir / rel))
    # Every chunk is now in the manifest: a second call would compute nothing.
    assert sorted(sweep.prepare_dir(compute_dir)) == [0, 1, 2]

    out = tmp_path / "merged.h5"
    h5py.File(out, "w").close()  # the staging file the client's pandas keys would be in
    merger = sweep.merger(compute_dir, out)
    for i in range(len(chunks)):
        merger.add(i)
    assert merger.finish([])["failed_points"] == 0
    merged = _rustrates.read_results(out)
    assert sweep.labels() == [f"{sweep.circuit_name}_{i}" for i in range(5)]

    # The merged file is the sweep run at once (same engine, same back end: bitwise).
    at_once = _core.execute(req)
    np.testing.assert_array_equal(merged["traces"], at_once["traces"])
    np.testing.assert_array_equal(merged["summaries"], at_once["summaries"])
    assert list(merged["labels"]) == list(at_once["labels"]) == sweep.labels()

    for i, (start, end) in enumerate(chunks):
        part = sweep.read_part(compute_dir / sweep.part_path(i))
        assert list(part["labels"]) == list(merged["labels"])[start:end] == sweep.labels(start, end)
        np.testing.assert_array_equal(part["grid"], merged["grid"][start:end])
        np.testing.assert_array_equal(part["time"], merged["time"])
        np.testing.assert_array_equal(part["traces"], merged["traces"][start:end])
        np.testing.assert_array_equal(part["summaries"], merged["summaries"][start:end])
        assert list(part["status"]) == list(merged["status"])[start:end] == ["ok"] * (end - start)
