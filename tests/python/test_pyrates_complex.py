"""Complex-valued variables through the Python fronts (issue 18, item 4).

``rustrates.pyrates`` returns a complex output as PyRates 1.2.3 does in
``float_precision='complex128'``: one complex column (the whole frame complex); the engine's
files and the 0.8-layout fronts hold it as two real columns ``key.real`` and ``key.imag``.
References: a numpy transcription in complex arithmetic; PyRates itself is compared by the
drop-in script ``pyrates_scripts/theta_complex.py`` and the library walk."""

import h5py
import numpy as np
import pytest

import rustrates
from rustrates.pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate, grid_search

# Stuart–Landau normal form with a complex constant given as a Python complex, as PyRates takes it.
SL_OP = OperatorTemplate(
    name="sl_op",
    path=None,
    equations=["z' = (i*omega + mu - absv(z)**2) * z", "amp = abs(z)"],
    variables={"z": "output(0.1+0.05j)", "amp": "variable(0.0)", "i": 1j, "omega": 2.0, "mu": 1.0},
)
SL = CircuitTemplate(name="sl", path=None, nodes={"p": NodeTemplate(name="sl_pop", path=None, operators=[SL_OP])})

T, DT = 2.0, 1e-3


def numpy_euler(mu: float = 1.0, omega: float = 2.0) -> np.ndarray:
    """Forward Euler of dz/dt = (iω + μ − |z|²) z in numpy complex arithmetic; z at t = k dt."""
    z = 0.1 + 0.05j
    trace = np.empty(int(round(T / DT)), dtype=complex)
    for k in range(trace.size):
        trace[k] = z
        z = z + DT * (1j * omega + mu - abs(z) ** 2) * z
    return trace


def test_run_returns_complex128_columns_equal_to_numpy_complex_euler():
    res = SL.run(
        simulation_time=T,
        step_size=DT,
        outputs={"z": "p/sl_op/z", "amp": "p/sl_op/amp"},
        solver="euler",
        float_precision="complex128",
    )
    assert list(res.columns) == ["z", "amp"]
    # With a complex output the frame is complex as a whole, as PyRates' complex128 frames.
    assert list(res.dtypes) == [np.complex128, np.complex128]
    want = numpy_euler()
    # The same recurrence; numpy multiplies complex numbers in another order than the expanded
    # real pairs, so rounding differences (1e-16 per step) may add up over 2000 steps: 1e-12.
    np.testing.assert_allclose(res["z"].to_numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["amp"].to_numpy().real, np.abs(want), rtol=0, atol=1e-12)
    assert np.all(res["amp"].to_numpy().imag == 0.0)


def test_default_float32_gives_complex64():
    res = SL.run(simulation_time=T, step_size=DT, outputs={"z": "p/sl_op/z"}, solver="euler")
    assert res.dtypes.iloc[0] == np.complex64
    # Single precision: relative error of float32 rounding accumulated over 2000 steps.
    np.testing.assert_allclose(res["z"].to_numpy(), numpy_euler(), rtol=0, atol=1e-4)


def test_grid_search_columns_are_complex_per_point():
    res, res_map = grid_search(
        SL,
        param_grid={"mu": [0.5, 1.0]},
        param_map={"mu": {"vars": ["sl_op/mu"], "nodes": ["p"]}},
        step_size=DT,
        simulation_time=T,
        outputs={"z": "p/sl_op/z"},
        solver="euler",
        float_precision="complex128",
    )
    assert res.columns.tolist() == [("z", "sl_0", "p", "sl_op/z"), ("z", "sl_1", "p", "sl_op/z")]
    assert list(res.dtypes) == [np.complex128] * 2
    for label, mu in zip(res_map.index, res_map["mu"]):
        np.testing.assert_allclose(res[("z", label, "p", "sl_op/z")].to_numpy(), numpy_euler(mu), rtol=0, atol=1e-12)


def test_results_file_holds_real_and_imaginary_parts_as_two_columns(tmp_path):
    yaml = tmp_path / "sl.yaml"
    yaml.write_text(
        'sl_op:\n  base: OperatorTemplate\n  equations: ["z\' = (1.0j*omega + mu - abs(z)**2) * z"]\n'
        "  variables: {z: output(0.1+0.05j), omega: 2.0, mu: 1.0}\n"
        "sl_pop: {base: NodeTemplate, operators: [sl_op]}\n"
        "sl: {base: CircuitTemplate, nodes: {p: sl_pop}}\n"
    )
    path = tmp_path / "sl_sweep.h5"
    rustrates.grid_search(
        f"{yaml}/sl",
        {"mu": [1.0]},
        {"mu": {"vars": ["sl_op/mu"], "nodes": ["p"]}},
        simulation_time=T,
        dt=DT,
        outputs={"z": "p/sl_op/z"},
        solver="euler",
        out=str(path),
    )
    with h5py.File(path, "r") as f:
        keys = [k.decode() if isinstance(k, bytes) else k for k in f["columns/key"][:]]
        assert keys == ["z.real", "z.imag"]
        z = f["traces"][0, :, 0] + 1j * f["traces"][0, :, 1]
    np.testing.assert_allclose(z, numpy_euler(), rtol=0, atol=1e-12)


def test_unsupported_complex_use_names_the_operation():
    op = OperatorTemplate(
        name="bad_op",
        path=None,
        equations=["z' = 1j*z", "x' = tanh(z)"],
        variables={"z": "output(1.0+0.0j)", "x": "output(0.0)"},
    )
    bad = CircuitTemplate(name="bad", path=None, nodes={"p": NodeTemplate(name="bad_pop", path=None, operators=[op])})
    with pytest.raises(rustrates.RustratesError, match=r"`tanh` of a complex value is not supported"):
        bad.run(simulation_time=0.1, step_size=1e-3, outputs={"x": "p/bad_op/x"})


def test_update_var_sets_a_complex_initial_value():
    """update_var with a complex value sets both parts; the run starts there and follows the
    numpy transcription from that start."""
    start = -0.05 + 0.12j
    res = (
        SL._copy()
        .update_var(node_vars={"p/sl_op/z": start})
        .run(simulation_time=T, step_size=DT, outputs={"z": "p/sl_op/z"}, solver="euler", float_precision="complex128")
    )
    assert res["z"].iloc[0] == start
    z, want = start, []
    for _ in range(res.shape[0]):
        want.append(z)
        z = z + DT * (2j + 1.0 - abs(z) ** 2) * z
    # Same rounding argument as the test above.
    np.testing.assert_allclose(res["z"].to_numpy(), np.array(want), rtol=0, atol=1e-12)
