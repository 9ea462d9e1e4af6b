"""``grid_search(..., refine=...)`` (issue 19, item 3): the engine's refinement through the
Python front, against the analytic Hopf and Montbrió boundaries."""

from __future__ import annotations

import numpy as np
import pytest

import rustrates
from conftest import HOPF, HOPF_MU, hopf_rk4


def test_grid_search_refine_finds_hopf_within_the_finest_cell_and_plots_the_regular_view(tmp_path):
    # Stuart–Landau, Hopf at μ = 0 exactly: a stable focus below, a cycle above. Coarse μ
    # every 0.5 from −1.03, 3 levels (finest cell 1/16): only the boundary cell is halved, so
    # 5 + 3 points, and the switch lies between −0.03 and 0.0325. At |μ| ≥ 0.03 the transient
    # decays like e^{−|μ|t} below 1e-6 by the cutoff.
    mus = -1.03 + 0.5 * np.arange(5)
    sweep = dict(
        param_grid={"mu": mus},
        param_map=HOPF_MU,
        **hopf_rk4(600.0, 0.02, 500.0, summaries=["regime"], refine={"levels": 3, "criterion": "regime"}),
    )
    summ, result_map = rustrates.grid_search(HOPF, **sweep)
    assert list(result_map.columns) == ["mu", "refine_level"]
    assert len(result_map) == 8 and len(summ) == 8
    order = np.argsort(result_map["mu"].to_numpy())
    mu = result_map["mu"].to_numpy()[order]
    regime = summ[("x", "regime")].astype(str).to_numpy()[order]
    assert list(regime) == ["stable_focus" if m < 0 else "periodic" for m in mu]
    k = int(np.argmax(regime == "periodic"))
    assert mu[k] - mu[k - 1] == pytest.approx(1 / 16, abs=1e-12) and mu[k - 1] < 0 < mu[k]
    assert sorted(result_map["refine_level"]) == [0, 0, 0, 0, 0, 1, 2, 3]
    # plot_regimes draws the finest lattice (33 nodes), each node the analytic regime.
    xs, _, cell, _ = rustrates._regimes.regime_grid(summ, result_map, "mu")
    assert len(xs) == 33
    codes = {v: k for k, v in rustrates._rustrates.REGIME_CODES.items()}
    want = np.where(xs < 0, codes["stable_focus"], codes["periodic"])
    np.testing.assert_array_equal(cell[0], want)
    ax = rustrates.plot_regimes(summ, result_map, path=tmp_path / "refined.png")
    assert ax.get_xlabel() == "mu" and (tmp_path / "refined.png").stat().st_size > 0
    # Written to a file, the same points and levels read back.
    path = tmp_path / "refined.h5"
    rustrates.grid_search(HOPF, **sweep, out=path)
    _, back_map, back = rustrates.read_results(path)
    np.testing.assert_array_equal(back_map.to_numpy(), result_map.to_numpy())
    assert list(back[("x", "regime")].astype(str)) == list(summ[("x", "regime")].astype(str))


def test_grid_search_refine_bad_settings_name_the_argument():
    base = dict(
        param_grid={"mu": [-1.0, 1.0]},
        param_map=HOPF_MU,
        simulation_time=1.0,
        step_size=0.1,
        outputs={"x": "p/hopf_op/x"},
        summaries=["mean"],
    )
    for refine, match in [
        ({"levels": 2}, "add `regime` to the summaries"),
        ({"levels": 0, "criterion": "mean"}, "levels must be 1"),
        ({"levels": 2, "criterion": "mean", "tolerance": -1}, "tolerance must be"),
        ({"levels": 2, "criterion": "wobble"}, "unknown refine criterion"),
        ({"levels": 2.5}, "whole number"),
        ({"levls": 2}, "unknown refine setting"),
    ]:
        with pytest.raises(rustrates.SweepError, match=match) as err:
            rustrates.grid_search(HOPF, refine=refine, **base)
        assert err.value.diagnostics[0]["path"] == "refine", refine
