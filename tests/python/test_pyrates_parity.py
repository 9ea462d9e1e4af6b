"""Parity with PyRates 1.2.3 (from PyPI, in a throw-away venv): the same YAML circuit and
sweep through both grid_searches give the same result_map and traces.

Both run forward Euler in float64 on the same equations; they differ only in the order of
floating-point operations, so traces agree to rounding level (≤ 1e-9 absolute over the
runs here)."""

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_script

pytestmark = [pytest.mark.pyrates, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


def pyrates_grid_search(python: Path, tmp_path: Path, spec: dict) -> dict:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / "pyrates.npz"
    run_script(python, HERE / "pyrates_reference.py", spec_file, out, cwd=REPO)
    with np.load(out) as z:
        return {
            "time": z["time"],
            "traces": z["traces"],
            "grid": z["grid"],
            "seconds": float(z["seconds"]),
            "columns": json.loads(str(z["columns"])),
            "labels": json.loads(str(z["labels"])),
            "grid_keys": json.loads(str(z["grid_keys"])),
        }


def compare(rustrates, python, tmp_path, spec, rr_template, prefix):
    ref = pyrates_grid_search(python, tmp_path, spec)
    start = time.perf_counter()
    results, result_map = rustrates.grid_search(
        rr_template,
        spec["param_grid"],
        spec["param_map"],
        step_size=spec["step_size"],
        simulation_time=spec["simulation_time"],
        sampling_step_size=spec["sampling_step_size"],
        permute_grid=spec["permute_grid"],
        inputs=spec["inputs"],
        outputs=spec["outputs"],
        solver="euler",
        backend="default",
        float_precision="float64",
    )
    seconds = time.perf_counter() - start
    print(f"{prefix}: PyRates {ref['seconds']:.2f} s, rustrates {seconds:.3f} s")

    # result_map: same labels after the template-name prefix, same order, same values.
    n = len(ref["labels"])
    assert [lab.rsplit("_", 1)[1] for lab in ref["labels"]] == [str(i) for i in range(n)]
    assert list(result_map.index) == [f"{prefix}_{i}" for i in range(n)]
    assert list(result_map.columns) == ref["grid_keys"]
    np.testing.assert_array_equal(result_map.to_numpy(), ref["grid"])

    # Traces: PyRates' columns are (key, label, node, op/var); ours (label, node, key).
    np.testing.assert_allclose(results.index.to_numpy(), ref["time"], rtol=0, atol=1e-12)
    assert results.shape == ref["traces"].shape
    for j, (key, label, node, _var) in enumerate(ref["columns"]):
        ours = results[(f"{prefix}_{label.rsplit('_', 1)[1]}", node, key)].to_numpy()
        np.testing.assert_allclose(ours, ref["traces"][:, j], rtol=0, atol=1e-9, err_msg=f"column {j}: {label}")


def test_pyrates_parity_reference_qif_sweep(rustrates, pyrates_python, tmp_path):
    spec = {
        "template": "examples/models/reference_qif/pc_iin",
        "param_grid": {"eta_pc": list(np.linspace(-5, 5, 4)), "eta_iin": list(np.linspace(-5, 5, 4))},
        "param_map": {
            "eta_pc": {"vars": ["qif_op/eta"], "nodes": ["PC"]},
            "eta_iin": {"vars": ["qif_op/eta"], "nodes": ["IIN"]},
        },
        "step_size": 1e-4,
        "simulation_time": 2.0,
        "sampling_step_size": 1e-3,
        "permute_grid": True,
        "inputs": {"PC/qif_op/I_ext": 1.0},
        "outputs": {"r": "PC/qif_op/r"},
    }
    compare(rustrates, pyrates_python, tmp_path, spec, "examples/models/reference_qif.yaml/pc_iin", "pc_iin")


def test_pyrates_parity_jansen_rit_input_sweep(rustrates, pyrates_python, tmp_path):
    # PyRates' own JRC file, so both sides read the very same YAML.
    site = subprocess.run(
        [str(pyrates_python), "-c", "import model_templates, os; print(os.path.dirname(model_templates.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    spec = {
        "template": "model_templates.neural_mass_models.jansenrit.JRC",
        "param_grid": {"u": [80.0, 130.0, 220.0, 300.0]},
        "param_map": {"u": {"vars": ["rpo_e_in/u"], "nodes": ["pc"]}},
        "step_size": 1e-4,
        "simulation_time": 1.0,
        "sampling_step_size": 1e-3,
        "permute_grid": False,
        "inputs": {},
        "outputs": {"v": "pc/rpo_e_in/v"},
    }
    compare(rustrates, pyrates_python, tmp_path, spec, f"{site}/neural_mass_models/jansenrit.yaml/JRC", "JRC")


VECTOR_HELPERS = """\
clip_op:
  base: OperatorTemplate
  equations: "x' = a - 2.0*x + maxi(x_in, 0.5) - mini(x, 0.2)"
  variables:
    x: output(1.0)
    a: 0.0
    x_in: input(0.0)
clip_node: {base: NodeTemplate, operators: [clip_op]}
net:
  base: CircuitTemplate
  nodes: {p1: clip_node, p2: clip_node}
  edges:
    - [p1/clip_op/x, p2/clip_op/x_in, null, {weight: 1.0}]
    - [p2/clip_op/x, p1/clip_op/x_in, null, {weight: -0.5}]
"""


def test_pyrates_parity_vector_helpers_and_all_nodes_param_map(rustrates, pyrates_python, tmp_path):
    """PyRates 1.x's maxi/mini (numpy's maximum, minimum) and a param_map naming every node
    with ``nodes: ['all']``: a's values move x and x_in across the clipping levels 0.2 and
    0.5, so both branches of each are taken. (Not vsum: PyRates 1.2.3's grid_search
    vectorises all nodes of all points into one vector, and vsum of a node's scalar then sums
    that whole vector — 8 values here — where the template means the node's own value.)"""
    (tmp_path / "vec.yaml").write_text(VECTOR_HELPERS)
    spec = {
        "template": f"{tmp_path}/vec/net",
        "param_grid": {"a": [-1.0, 0.0, 1.0, 2.0]},
        "param_map": {"a": {"vars": ["clip_op/a"], "nodes": ["all"]}},
        "step_size": 1e-3,
        "simulation_time": 3.0,
        "sampling_step_size": 1e-2,
        "permute_grid": True,
        "inputs": {},
        "outputs": {"x1": "p1/clip_op/x", "x2": "p2/clip_op/x"},
    }
    compare(rustrates, pyrates_python, tmp_path, spec, f"{tmp_path}/vec.yaml/net", "net")
