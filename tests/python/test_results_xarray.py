"""``read_results(path).to_xarray()`` (issue 19 item 4) against the frames ``read_results``
returns, and ``random_starts`` through ``grid_search`` (issue 19 item 2)."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import rustrates
from conftest import HOPF, HOPF_MU_OMEGA, QIF, QIF_SETTLED_SWEEP


def hopf_file(tmp_path, param_grid, permute, keep_traces):
    path = tmp_path / "hopf.h5"
    rustrates.grid_search(
        HOPF,
        param_grid=param_grid,
        permute_grid=permute,
        param_map=HOPF_MU_OMEGA,
        simulation_time=60.0,
        step_size=0.01,
        sampling_step_size=0.1,
        solver="rk4",
        cutoff=20.0,
        outputs={"x": "p/hopf_op/x", "z": "p/hopf_op/z"},
        summaries=["regime", "mean"],
        keep_traces=keep_traces,
        out=str(path),
    )
    return path


def test_to_xarray_cartesian_grid_has_one_dimension_per_key(tmp_path):
    # μ × ω, permuted in PyRates' order (not the coordinates' sorted order): every value of the
    # Dataset, found by its coordinates, equals the frames' value at the label whose
    # result_map row has those coordinates (exactly: both are the file's numbers).
    mus, omegas = [0.3, -0.5, 0.2], [2.0, 1.0]
    path = hopf_file(tmp_path, {"mu": mus, "omega": omegas}, True, True)
    results, result_map, summ = rustrates.read_results(path)
    ds = rustrates.read_results(path).to_xarray()
    assert dict(ds.sizes) == {"mu": 3, "omega": 2, "output": 2, "time": results.shape[0]}
    np.testing.assert_array_equal(ds["mu"], sorted(mus))
    np.testing.assert_array_equal(ds["omega"], sorted(omegas))
    assert list(ds["output"].values) == ["x", "z"]
    np.testing.assert_array_equal(ds["time"], results.index.to_numpy())
    for label, (mu, omega) in result_map[["mu", "omega"]].iterrows():
        point = ds.sel(mu=mu, omega=omega)
        assert point["label"].item() == label
        for out in ("x", "z"):
            assert point["mean"].sel(output=out).item() == summ.loc[label, (out, "mean")]
            np.testing.assert_array_equal(point["traces"].sel(output=out), results[(label, "p", out)].to_numpy())
            for stat in ("period", "amplitude", "eig_re", "eig_im"):
                np.testing.assert_array_equal(point[stat].sel(output=out), summ.loc[label, (out, stat)])
        assert point["regime_name"].item() == summ.loc[label, ("x", "regime")]
        assert dict(rustrates._rustrates.REGIME_CODES)[int(point["regime"].item())] == point["regime_name"].item()
        assert point["status"].item() == "ok"
    # The analytic regimes, by coordinates: μ < 0 stable focus, μ > 0 periodic (μ = −0.5 has
    # decayed to ~1e-13 by t = 60; μ = 0.3 has converged to its cycle like e^{−0.6t}; 40/2π ≥ 6 cycles after the cutoff).
    assert set(ds["regime_name"].sel(mu=-0.5).values) == {"stable_focus"}
    assert set(ds["regime_name"].sel(mu=0.3).values) == {"periodic"}


def test_to_xarray_zipped_grid_has_a_point_dimension(tmp_path):
    # Zipped keys whose pairs are not every combination: one `point` dimension, the keys as
    # coordinates along it, in the file's order; no traces kept, so no time dimension.
    path = hopf_file(tmp_path, {"mu": [-0.2, 0.1, 0.3], "omega": [1.0, 2.0, 2.0]}, False, False)
    _, result_map, summ = rustrates.read_results(path)
    ds = rustrates.read_results(path).to_xarray()
    assert dict(ds.sizes) == {"point": 3, "output": 2}
    assert "traces" not in ds and "time" not in ds.coords
    np.testing.assert_array_equal(ds["mu"], result_map["mu"].to_numpy())
    np.testing.assert_array_equal(ds["omega"], result_map["omega"].to_numpy())
    assert list(ds["label"].values) == list(result_map.index)
    np.testing.assert_array_equal(ds["mean"].values, summ.xs("mean", axis=1, level=1).to_numpy())
    assert list(ds["regime_name"].values) == list(summ[("x", "regime")].astype(str))
    # A partial read keeps its points (these two are not a product either).
    part = rustrates.read_results(path, points=range(0, 2)).to_xarray()
    np.testing.assert_array_equal(part["mean"].values, ds["mean"].values[0:2])


def test_to_xarray_without_xarray_says_how_to_install_it(tmp_path, monkeypatch):
    path = hopf_file(tmp_path, {"mu": [0.1], "omega": [2.0]}, True, False)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"pip install 'rustrates\[xarray\]'"):
        rustrates.read_results(path).to_xarray()
    # The tuple unpacks as before, and survives pickling with its file.
    results, result_map, summ = rustrates.read_results(path)
    assert results is None and list(result_map.columns) == ["mu", "omega"]
    back = pickle.loads(pickle.dumps(rustrates.read_results(path)))
    assert back._path == str(path) and back[1].equals(result_map)


def test_grid_search_random_starts_montbrio_multistable():
    # One Montbrió population (qif, τ = Δ = 1, J = 15): bistable for η ∈ (−5.7435, −3.1361)
    # (the quartic's root count). Eight random starts per η find both attractors inside and
    # one outside; the reported end is the first start's and is one of the quartic's stable
    # roots (numpy roots, 1e-6: the decay by t = 100 leaves ~1e-12). Same seed, other
    # threads: bit for bit; another seed draws other starts.
    etas = np.array([-7.0, -5.0, -4.0, -2.5])
    kwargs = dict(param_grid={"eta": etas}, **QIF_SETTLED_SWEEP)
    starts = {"n": 8, "seed": 3, "bounds": {"p/qif_op/r": (0.0, 2.5), "p/qif_op/v": (-2.5, 0.0)}}
    summ, _ = rustrates.grid_search(QIF, random_starts=starts, n_threads=2, **kwargs)
    bistable = (etas > -5.7435) & (etas < -3.1361)
    np.testing.assert_array_equal(summ[("r", "multistable")].to_numpy(), bistable.astype(float))
    for eta, last in zip(etas, summ[("r", "last")].to_numpy()):
        roots = np.roots([np.pi**2, -15.0, -eta, 0.0, -1.0 / (4 * np.pi**2)])
        real = sorted(r.real for r in roots if abs(r.imag) < 1e-9 and r.real > 0)
        assert min(abs(last - real[0]), abs(last - real[-1])) < 1e-6, (eta, last, real)
    again, _ = rustrates.grid_search(QIF, random_starts=starts, n_threads=1, **kwargs)
    np.testing.assert_array_equal(again[("r", "last")].to_numpy(), summ[("r", "last")].to_numpy())
    with pytest.raises(rustrates.SweepError, match="random_starts"):
        rustrates.grid_search(QIF, random_starts={"n": 2, "bounds": {"p/qif_op/rr": (0, 1)}}, **kwargs)
    with pytest.raises(rustrates.SweepError, match="random_starts"):
        rustrates.grid_search(QIF, random_starts={"n": 2, "spread": 1}, **kwargs)
