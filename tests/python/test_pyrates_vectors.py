"""PyRates 1.x vector variables of fixed length (``x: output(0.5, 3)``) through
``rustrates.pyrates``: the same YAML and calls give PyRates 1.2.3's frame (columns
``('x', 0)``, ...) and values on every back end. Both run forward Euler in float64 on the same
equations and differ only in the order of floating-point operations, so the traces agree to
rounding level (≤ 1e-9 absolute over the 2000 steps here)."""

import json

import numpy as np
import pytest

import rustrates
from conftest import REPO, run_script
from rustrates.pyrates import CircuitTemplate

# The vector model: circuit `net_states` of the fixture the Rust vector tests read too (its
# header says what each circuit covers). PyRates 1.2.3 outputs only states and has no `dot`,
# so `dot` and algebraic vectors are checked against closed forms in
# crates/rustrates/tests/it/vectors.rs on circuit `net`.
VECTORS = REPO / "tests" / "fixtures" / "models" / "leaky_vectors.yaml"
#: Template paths in both spellings PyRates accepts: without and with the file's ending.
TEMPLATE = f"{VECTORS.with_suffix('')}/net_states"
TEMPLATE_YAML = f"{VECTORS}/net_states"
OUTPUTS = {"x": "p/li_states_op/x", "u": "p/li_states_op/u", "m": "p/li_states_op/m"}
RUN = dict(simulation_time=2.0, step_size=1e-3, sampling_step_size=0.01, solver="euler", float_precision="float64")
X0 = [0.1, 0.5, 0.9]

REFERENCE = """
import json, sys
import numpy as np
from pyrates import CircuitTemplate
spec = json.loads(sys.argv[2])
c = CircuitTemplate.from_yaml(sys.argv[1])
c.update_var(node_vars={"p/li_states_op/x": np.asarray(spec["x0"])})
r = c.run(outputs=spec["outputs"], verbose=False, clear=True, **spec["run"])
np.savez(sys.argv[3], time=r.index.to_numpy(dtype=np.float64), traces=r.to_numpy(dtype=np.float64),
         columns=np.array(json.dumps([[str(a), str(b)] for a, b in r.columns])))
"""


@pytest.mark.pyrates
@pytest.mark.slow
def test_vector_variables_equal_pyrates_on_every_back_end(pyrates_python, tmp_path):
    (tmp_path / "reference.py").write_text(REFERENCE)
    out = tmp_path / "pyrates.npz"
    spec = json.dumps({"x0": X0, "outputs": OUTPUTS, "run": RUN})
    run_script(pyrates_python, tmp_path / "reference.py", TEMPLATE, spec, out, cwd=tmp_path)
    with np.load(out) as z:
        ref_time, ref_traces = z["time"], z["traces"]
        ref_columns = json.loads(str(z["columns"]))
    # PyRates 1.2.3: [x, 0.0], [x, 1.0], [x, 2.0], [u, 0.0], ..., [m, nan].
    assert len(ref_columns) == 7
    for backend in ("reference", "jit", "c"):
        circuit = CircuitTemplate.from_yaml(TEMPLATE)
        circuit.update_var(node_vars={"p/li_states_op/x": np.asarray(X0)})
        res = circuit.run(outputs=OUTPUTS, backend=backend, **RUN)
        assert [[str(a), str(b)] for a, b in res.columns] == ref_columns, backend
        np.testing.assert_allclose(res.index.to_numpy(), ref_time, rtol=0, atol=1e-12)
        # Rounding-level agreement (module docstring); the elements differ by O(0.1), so
        # a swapped element or a dropped term is far outside it.
        np.testing.assert_allclose(res.to_numpy(), ref_traces, rtol=0, atol=1e-9, err_msg=backend)


def test_update_var_sets_a_vector_whole_by_element_or_by_array():
    """An array sets the elements in order, ``x[i]`` one element, a number every element:
    the three forms of the same start give the same traces, bit for bit."""

    def run(node_vars):
        circuit = CircuitTemplate.from_yaml(TEMPLATE)
        circuit.update_var(node_vars=node_vars)
        return circuit.run(outputs=OUTPUTS, backend="reference", **RUN)

    by_array = run({"p/li_states_op/x": np.asarray(X0)})
    by_element = run({f"p/li_states_op/x[{i}]": v for i, v in enumerate(X0)})
    np.testing.assert_array_equal(by_array.to_numpy(), by_element.to_numpy())
    assert by_array[("x", 0.0)].iloc[0] == X0[0] and by_array[("x", 2.0)].iloc[0] == X0[2]

    every = run({"p/li_states_op/x": 0.4})
    first = every[[("x", 0.0), ("x", 1.0), ("x", 2.0)]].to_numpy()
    assert (first[0] == 0.4).all()
    # Equal starts stay equal: the elements see the same equation.
    np.testing.assert_array_equal(first[:, 0], first[:, 2])

    with pytest.raises(rustrates.SweepError, match=r"names 3 elements \(p/li_states_op/x\[0\]"):
        run({"p/li_states_op/x": np.zeros(2)})


def test_grid_search_gives_a_column_per_element_in_memory_and_in_files(tmp_path):
    """rustrates.grid_search names a vector's columns ``x[0]``, ... (per point and node) in
    memory and in its results file, each equal, bit for bit, to a single run of that point."""
    args = dict(
        param_grid={"c": [0.1, 0.4]},
        param_map={"c": {"vars": ["li_states_op/c"], "nodes": ["p"]}},
        step_size=1e-3,
        simulation_time=0.5,
        sampling_step_size=0.1,
        outputs={"x": "p/li_states_op/x", "m": "p/li_states_op/m"},
        solver="euler",
        backend="reference",
    )
    results, _ = rustrates.grid_search(TEMPLATE_YAML, **args)
    assert [k for _, _, k in results.columns] == ["x[0]", "x[1]", "x[2]", "m"] * 2
    rustrates.grid_search(TEMPLATE_YAML, out=str(tmp_path / "r.h5"), **args)
    on_disk, _, _ = rustrates.read_results(tmp_path / "r.h5")
    np.testing.assert_array_equal(on_disk.to_numpy(), results.to_numpy())
    assert list(on_disk.columns) == list(results.columns)
    for i, c in enumerate([0.1, 0.4]):
        single = CircuitTemplate.from_yaml(TEMPLATE)
        single.update_var(node_vars={"p/li_states_op/c": c})
        frame = single.run(
            simulation_time=0.5,
            step_size=1e-3,
            sampling_step_size=0.1,
            outputs={"x": "p/li_states_op/x", "m": "p/li_states_op/m"},
            solver="euler",
            backend="reference",
            float_precision="float64",
        )
        label = results.columns[4 * i][0]
        np.testing.assert_array_equal(results[label].to_numpy(), frame.to_numpy())
