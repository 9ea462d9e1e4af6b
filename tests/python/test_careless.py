"""Issue 14 through Python: grid_search follows the engine's rules for outputs (an existing file
needs overwrite=True, a folder or another sweep's lock is refused before anything runs),
settings (no samples, non-finite grid values) and threads (capped at the cores, with a
warning). The directory is listed before and after where files are at stake."""

import os
import warnings

import numpy as np
import pytest

from conftest import NET3

ETA_MAP = {
    "eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]},
    "eta_iin": {"vars": ["Op_i/eta"], "nodes": ["IIN"]},
}
GRID = {"eta_op": [-5.0, 0.0], "eta_iin": [-1.0]}


def run(rr, grid=GRID, **kw):
    args = dict(
        simulation_time=0.05,
        dt=1e-3,
        inputs={"PC/Op_e/inp": 1.0},
        outputs={"r": "PC/Op_e/r"},
        permute_grid=True,
        backend="reference",
    )
    args.update(kw)
    return rr.grid_search(NET3, grid, ETA_MAP, **args)


def listing(path):
    return sorted(os.listdir(path))


def test_item02_grid_search_out_existing_file_needs_overwrite(rustrates, tmp_path):
    results, _ = run(rustrates)
    out = tmp_path / "r.h5"
    out.write_bytes(b"the user's file")
    before = listing(tmp_path)
    with pytest.raises(rustrates.RustratesError, match="already exists.*overwrite=True"):
        run(rustrates, out=out)
    assert listing(tmp_path) == before == ["r.h5"]
    assert out.read_bytes() == b"the user's file"
    path, _ = run(rustrates, out=out, overwrite=True)
    assert listing(tmp_path) == ["r.h5"]
    back, _, _ = rustrates.read_results(path)
    np.testing.assert_array_equal(back.to_numpy(), results.to_numpy())


def test_item10_grid_search_out_naming_a_folder_is_refused_before_running(rustrates, tmp_path):
    (tmp_path / "d").mkdir()
    before = listing(tmp_path)
    with pytest.raises(rustrates.RustratesError, match="is a directory"):
        run(rustrates, out=tmp_path / "d")
    assert listing(tmp_path) == before


def test_item05_grid_search_settings_without_samples_are_errors(rustrates):
    with pytest.raises(rustrates.RustratesError, match="cutoff.*leaves no sample"):
        run(rustrates, cutoff=1.0)
    with pytest.raises(rustrates.RustratesError, match="sampling_step_size.*longer than simulation_time"):
        run(rustrates, sampling_step_size=0.1)
    with pytest.raises(rustrates.RustratesError, match="param_grid.eta_op.*not a finite number"):
        run(rustrates, grid={"eta_op": [-5.0, np.nan], "eta_iin": [-1.0]})
    with pytest.raises(rustrates.RustratesError, match="lists no nodes"):
        rustrates.grid_search(
            NET3,
            GRID,
            {**ETA_MAP, "eta_iin": {"vars": ["Op_i/eta"], "nodes": []}},
            simulation_time=0.05,
            dt=1e-3,
            inputs={"PC/Op_e/inp": 1.0},
            outputs={"r": "PC/Op_e/r"},
            permute_grid=True,
        )


def test_item16_grid_search_threads_beyond_the_cores_are_capped_with_a_warning(rustrates):
    reference, _ = run(rustrates, n_threads=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results, _ = run(rustrates, n_threads=10_000)
    cores = os.cpu_count()
    notes = [str(w.message) for w in caught if issubclass(w.category, rustrates.RustratesWarning)]
    assert any(f"10000 threads asked for, {cores} used" in n for n in notes), notes
    np.testing.assert_array_equal(results.to_numpy(), reference.to_numpy())
