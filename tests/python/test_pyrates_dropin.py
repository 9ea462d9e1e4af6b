"""``rustrates.pyrates``: PyRates 1.2.3's API (issue 18).

The scripts in ``pyrates_scripts/`` are PyRates 1.x code; each runs twice — with PyRates 1.2.3
in its throw-away venv, and here with only the import changed — and the frames must agree in
column levels, names, index and values. Where PyRates 1.2.3 itself is off (its ``heun``, the
history of delayed edges before t = 0), a second method shows which result is right.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rustrates
from conftest import run_script
from pyrates_scripts._common import QIF_EQUATIONS, QIF_VARIABLES, qif_pair_edges
from rustrates.pyrates import (
    CircuitTemplate,
    NodeTemplate,
    OperatorTemplate,
    TemplateBuildError,
    grid_search,
)

SCRIPTS = Path(__file__).resolve().parent / "pyrates_scripts"
#: The scripts' shared module(s), `_*.py`: imported by the scripts, not run.
SCRIPT_HELPERS = sorted(SCRIPTS.glob("_*.py"))


def with_rustrates_import(script: Path, target: Path) -> Path:
    text = script.read_text()
    changed = re.sub(r"^from pyrates import", "from rustrates.pyrates import", text, flags=re.M)
    assert changed != text, f"{script.name} has no `from pyrates import` line"
    target.write_text(changed)
    return target


@pytest.mark.pyrates
@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py") if p not in SCRIPT_HELPERS))
def test_pyrates_script_runs_unchanged_but_the_import(script, pyrates_python, tmp_path):
    source = SCRIPTS / script
    theirs, ours = tmp_path / "pyrates", tmp_path / "rustrates"
    theirs.mkdir()
    ours.mkdir()
    # PyRates runs the script where it stands (its helpers beside it); the changed copy gets
    # the helpers beside it too.
    for helper in SCRIPT_HELPERS:
        (ours / helper.name).write_text(helper.read_text())
    run_script(pyrates_python, source, theirs / "out.pkl", cwd=theirs)
    run_script(sys.executable, with_rustrates_import(source, ours / script), ours / "out.pkl", cwd=ours)

    produced = sorted(p.name for p in theirs.glob("out.pkl*"))
    assert produced and produced == sorted(p.name for p in ours.glob("out.pkl*"))
    for name in produced:
        a, b = pd.read_pickle(theirs / name), pd.read_pickle(ours / name)
        assert a.columns.equals(b.columns), (name, a.columns[:4].tolist(), b.columns[:4].tolist())
        assert list(a.columns.names) == list(b.columns.names)
        assert a.columns.nlevels == b.columns.nlevels
        assert a.index.equals(b.index) and a.index.name == b.index.name, name
        assert list(a.dtypes) == list(b.dtypes), name
        # float64 forward Euler on the same equations: the two differ only in the order of
        # floating-point operations, so rounding level over these short runs. Complex frames
        # (complex128) compare as complex: |b - a| covers both parts.
        np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=0, atol=1e-9, err_msg=name)


# ---------------------------------------------------------------------------------------
# where PyRates 1.2.3 differs, and a second method says which is right

JRC_PROBE = """
import sys, numpy as np
from pyrates import CircuitTemplate
jrc = CircuitTemplate.from_yaml("model_templates.neural_mass_models.jansenrit.JRC")
res = jrc.run(simulation_time=1.0, step_size=1e-4, sampling_step_size=1e-3, solver="heun",
              outputs={"v": "pc/rpo_e_in/v"}, float_precision="float64", verbose=False)
np.save(sys.argv[1], res.to_numpy()[:, 0])
"""


@pytest.mark.pyrates
@pytest.mark.slow
def test_heun_is_second_order_where_pyrates_heun_is_not(pyrates_python, tmp_path):
    jrc = "model_templates.neural_mass_models.jansenrit.JRC"
    settings = dict(
        simulation_time=1.0, sampling_step_size=1e-3, outputs={"v": "pc/rpo_e_in/v"}, float_precision="float64"
    )
    # Second method: classical RK4 at a tenth of the step (error far below 1e-9 here).
    truth = CircuitTemplate.from_yaml(jrc).run(step_size=1e-5, solver="rk4", **settings).to_numpy()[:, 0]
    ours = CircuitTemplate.from_yaml(jrc).run(step_size=1e-4, solver="heun", **settings).to_numpy()[:, 0]
    euler = CircuitTemplate.from_yaml(jrc).run(step_size=1e-4, solver="euler", **settings).to_numpy()[:, 0]
    probe = tmp_path / "probe.py"
    probe.write_text(JRC_PROBE)
    run_script(pyrates_python, probe, tmp_path / "theirs.npy", cwd=tmp_path)
    theirs = np.load(tmp_path / "theirs.npy")

    amplitude = np.abs(truth).max()
    # Heun's global error is O(dt^2): measured 1.2e-7 against an amplitude of 0.025.
    assert np.abs(ours - truth).max() < 1e-5 * amplitude
    # PyRates 1.2.3's heun adds its two stages from one reused buffer, so it is as far off as
    # forward Euler (measured 2.6e-4 and 2.8e-4): first order.
    assert np.abs(theirs - truth).max() > 0.5 * np.abs(euler - truth).max()


def qif_pair_with_delay(delay: float) -> CircuitTemplate:
    op = OperatorTemplate(name="qif_op", path=None, equations=QIF_EQUATIONS, variables=QIF_VARIABLES)
    node = NodeTemplate(name="qif_node", path=None, operators=[op])
    net = CircuitTemplate(name="pair", path=None, nodes={"p1": node, "p2": node}, edges=qif_pair_edges(delay))
    return net.update_var(node_vars={"p1/qif_op/eta": -3.0})


def euler_transcription(history_before_zero: float | None, undelayed_lag: int = 0) -> np.ndarray:
    """The pair above, by hand over T = 2 s: forward Euler, r2 read 100 steps (0.01 s) back,
    r1 read ``undelayed_lag`` steps back; before t = 0 a delayed value is
    ``history_before_zero`` (None: the initial value, 0.01)."""
    steps = 20000
    inp = np.zeros(steps)
    inp[5000:10000] = 3.0
    eta = np.array([-3.0, -5.0])
    r, v = np.array([0.01, 0.01]), np.array([-2.0, -2.0])
    past = np.empty((steps + 1, 2))
    past[0] = r
    out = np.empty((steps, 2))
    before = 0.01 if history_before_zero is None else history_before_zero
    for k in range(steps):
        out[k] = r
        r2 = past[k - 100, 1] if k >= 100 else before
        r1 = past[k - undelayed_lag, 0] if k >= undelayed_lag else before
        r_in = np.array([-1.0 * r2, 2.0 * r1])
        dr = 1.0 / np.pi + 2 * r * v
        dv = v**2 + eta + np.array([inp[k], 0.0]) + (r_in * 15.0 - np.pi * r)
        r, v = r + 1e-4 * dr, v + 1e-4 * dv
        past[k + 1] = r
    return out


def test_delayed_edge_is_the_dde_with_constant_history():
    T, dt = 2.0, 1e-4
    inp = np.zeros(20000)
    inp[5000:10000] = 3.0
    res = qif_pair_with_delay(0.01).run(
        simulation_time=T,
        step_size=dt,
        inputs={"p1/qif_op/I_ext": inp},
        outputs={"r": "all/qif_op/r"},
        float_precision="float64",
    )
    reference = euler_transcription(None)
    # Same operations in the same order: exact.
    np.testing.assert_array_equal(res.to_numpy(), reference)
    # The convention matters: a zero history before t = 0 (PyRates 1.2.3's ring buffer,
    # test_pyrates_delay_history_is_zero below) is visibly different.
    assert np.abs(euler_transcription(0.0) - reference).max() > 1e-6


PAIR_PROBE = """
import sys, numpy as np
from pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate
eqs = {eqs!r}
op = OperatorTemplate(name="qif_op", path=None, equations=eqs, variables={variables!r})
node = NodeTemplate(name="qif_node", path=None, operators=[op])
net = CircuitTemplate(name="pair", path=None, nodes={{"p1": node, "p2": node}}, edges={edges!r})
net.update_var(node_vars={{"p1/qif_op/eta": -3.0}})
inp = np.zeros(20000); inp[5000:10000] = 3.0
for vectorize in (True, False):
    res = net.run(simulation_time=2.0, step_size=1e-4, inputs={{"p1/qif_op/I_ext": inp}},
                  outputs={{"r": "all/qif_op/r"}}, float_precision="float64", verbose=False,
                  vectorize=vectorize)
    np.save(sys.argv[1] + f".{{vectorize}}.npy", res.to_numpy())
"""


@pytest.mark.pyrates
@pytest.mark.slow
def test_pyrates_delay_history_is_zero(pyrates_python, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PAIR_PROBE.format(eqs=QIF_EQUATIONS, variables=QIF_VARIABLES, edges=qif_pair_edges(0.01)))
    run_script(pyrates_python, probe, tmp_path / "theirs", cwd=tmp_path)
    # PyRates 1.2.3 starts its delay ring buffer at zero (rustrates keeps the standard DDE
    # convention, history = initial value: test above), and with vectorize=True (its
    # default) it also delays the undelayed edge by one step, so its result depends on a
    # code-generation keyword. Each matches the transcription of that behaviour to rounding.
    np.testing.assert_allclose(np.load(tmp_path / "theirs.False.npy"), euler_transcription(0.0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "theirs.True.npy"), euler_transcription(0.0, 1), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------
# the API itself (no PyRates needed)


def test_python_built_circuit_equals_its_yaml_twin(tmp_path):
    yaml = tmp_path / "pair.yaml"
    yaml.write_text(
        "qif_op:\n  base: OperatorTemplate\n  equations:\n"
        + "".join(f'    - "{e}"\n' for e in QIF_EQUATIONS)
        + "  variables:\n"
        + "".join(f"    {k}: {v}\n" for k, v in QIF_VARIABLES.items())
        + "qif_node:\n  base: NodeTemplate\n  operators: [qif_op]\n"
        + "pair:\n  base: CircuitTemplate\n  nodes: {p1: qif_node, p2: qif_node}\n  edges:\n"
        + "    - [p1/qif_op/r, p2/qif_op/r_in, null, {weight: 2.0}]\n"
        + "    - [p2/qif_op/r, p1/qif_op/r_in, null, {weight: -1.0, delay: 0.01}]\n"
    )
    settings = dict(simulation_time=0.5, step_size=1e-4, outputs={"r": "all/qif_op/r"}, float_precision="float64")
    built = qif_pair_with_delay(0.01).run(**settings)
    loaded = CircuitTemplate.from_yaml(f"{yaml}/pair").update_var(node_vars={"p1/qif_op/eta": -3.0}).run(**settings)
    pd.testing.assert_frame_equal(built, loaded, check_exact=True)


def test_update_var_array_gives_one_value_per_node():
    """PyRates 1.x: ``update_var(node_vars={'all/op/var': array})`` gives the i-th value to the
    i-th node having the variable. eta = (-3, -5) is the Euler transcription's."""
    settings = dict(
        simulation_time=2.0,
        step_size=1e-4,
        inputs={"p1/qif_op/I_ext": np.r_[np.zeros(5000), np.full(5000, 3.0), np.zeros(10000)]},
        outputs={"r": "all/qif_op/r"},
        float_precision="float64",
    )
    by_array = qif_pair_with_delay(0.01).update_var(node_vars={"all/qif_op/eta": np.array([-3.0, -5.0])})
    # Same operations in the same order as the transcription: exact.
    np.testing.assert_array_equal(by_array.run(**settings).to_numpy(), euler_transcription(None))
    # One number for `all` sets every node: eta = -5 in p1 too changes p1's trace.
    one = qif_pair_with_delay(0.01).update_var(node_vars={"all/qif_op/eta": -5.0}).run(**settings)
    assert np.abs(one.to_numpy()[:, 0] - euler_transcription(None)[:, 0]).max() > 1e-3
    with pytest.raises(rustrates.SweepError, match=r"names 2 nodes \(p1, p2\)"):
        qif_pair_with_delay(0.01).update_var(node_vars={"all/qif_op/eta": np.zeros(3)}).run(**settings)


def test_nested_sub_circuits_sharing_a_name_stay_distinct(tmp_path):
    """Two different Python-built sub-circuits both named 'inner' (time constants 2 and 4): each
    keeps its own definition. Reference: the same hierarchy written as YAML by hand."""

    def inner(tau: float) -> CircuitTemplate:
        op = OperatorTemplate(
            name="li_op",
            path=None,
            equations=["x' = -x/tau + u"],
            variables={"x": "output(1.0)", "tau": tau, "u": "input(0.0)"},
        )
        node = NodeTemplate(name=f"li_{int(tau)}", path=None, operators=[op])
        return CircuitTemplate(name="inner", path=None, nodes={"a": node})

    with pytest.raises(Exception, match="two different OperatorTemplates are named 'li_op'"):
        CircuitTemplate(name="outer", path=None, circuits={"c1": inner(2.0), "c2": inner(4.0)}).run(
            simulation_time=0.1, step_size=1e-3, outputs={"x": "all/li_op/x"}
        )
    yaml = tmp_path / "nest.yaml"
    yaml.write_text(
        'op2: {base: OperatorTemplate, equations: ["x\' = -x/tau + u"], variables: {x: output(1.0), tau: 2.0, u: input(0.0)}}\n'
        'op4: {base: OperatorTemplate, equations: ["x\' = -x/tau + u"], variables: {x: output(1.0), tau: 4.0, u: input(0.0)}}\n'
        "n2: {base: NodeTemplate, operators: [op2]}\nn4: {base: NodeTemplate, operators: [op4]}\n"
        "i2: {base: CircuitTemplate, nodes: {a: n2}}\ni4: {base: CircuitTemplate, nodes: {a: n4}}\n"
        "outer: {base: CircuitTemplate, circuits: {c1: i2, c2: i4}, edges: [[c1/a/op2/x, c2/a/op4/u, null, {weight: 1.0}]]}\n"
    )
    ops = [
        OperatorTemplate(
            name=f"op{k}",
            path=None,
            equations=["x' = -x/tau + u"],
            variables={"x": "output(1.0)", "tau": float(k), "u": "input(0.0)"},
        )
        for k in (2, 4)
    ]
    subs = [
        CircuitTemplate(name="inner", path=None, nodes={"a": NodeTemplate(name=f"n{k}", path=None, operators=[o])})
        for k, o in zip((2, 4), ops)
    ]
    built = CircuitTemplate(
        name="outer",
        path=None,
        circuits={"c1": subs[0], "c2": subs[1]},
        edges=[("c1/a/op2/x", "c2/a/op4/u", None, {"weight": 1.0})],
    )
    settings = dict(
        simulation_time=1.0, step_size=1e-3, outputs={"x1": "c1/a/op2/x", "x2": "c2/a/op4/x"}, float_precision="float64"
    )
    res = built.run(**settings)
    pd.testing.assert_frame_equal(res, CircuitTemplate.from_yaml(f"{yaml}/outer").run(**settings), check_exact=True)
    assert res.shape[1] == 2


def test_defaults_follow_pyrates_float32_and_layouts():
    qif = CircuitTemplate.from_yaml("model_templates.neural_mass_models.qif.qif")
    single = qif.run(simulation_time=0.1, step_size=1e-4, outputs={"r": "p/qif_op/r"})
    assert list(single.columns) == ["r"] and single.dtypes.iloc[0] == np.float32
    res, res_map = grid_search(
        qif,
        param_grid={"eta": [-5.0, 0.0], "J": [1.0, 2.0]},
        param_map={
            "eta": {"vars": ["qif_op/eta"], "nodes": ["p"]},
            "J": {"vars": ["weight"], "edges": [("p/qif_op/r", "p/qif_op/r_in")]},
        },
        step_size=1e-4,
        simulation_time=0.1,
        outputs={"r": "p/qif_op/r"},
        permute_grid=True,
        float_precision="float64",
    )
    assert res.columns.tolist() == [("r", f"qif_{i}", "p", "qif_op/r") for i in range(4)]
    # PyRates' linearize_grid: the first key varies fastest.
    assert res_map.to_dict("list") == {"eta": [-5.0, 0.0, -5.0, 0.0], "J": [1.0, 1.0, 2.0, 2.0]}
    # Each column is the single run with that point's values (lanes = single runs).
    one = (
        CircuitTemplate.from_yaml("model_templates.neural_mass_models.qif.qif")
        .update_var(node_vars={"p/qif_op/eta": 0.0}, edge_vars=[("p/qif_op/r", "p/qif_op/r_in", {"weight": 2.0})])
        .run(simulation_time=0.1, step_size=1e-4, outputs={"r": "p/qif_op/r"}, float_precision="float64")
    )
    np.testing.assert_array_equal(res[("r", "qif_3", "p", "qif_op/r")].to_numpy(), one["r"].to_numpy())


def test_grid_search_keeps_update_var_values_and_dataframe_labels():
    qif = CircuitTemplate.from_yaml("model_templates.neural_mass_models.qif.qif")
    qif.update_var(node_vars={"p/qif_op/Delta": 2.0})
    grid = pd.DataFrame({"eta": [-4.0, -1.0]}, index=[10, 20])
    res, res_map = grid_search(
        qif,
        grid,
        {"eta": {"vars": ["qif_op/eta"], "nodes": ["p"]}},
        step_size=1e-4,
        simulation_time=0.2,
        outputs={"r": "p/qif_op/r"},
        float_precision="float64",
    )
    assert list(res_map.index) == ["qif_10", "qif_20"] and list(res_map.columns) == ["eta"]
    single = (
        CircuitTemplate.from_yaml("model_templates.neural_mass_models.qif.qif")
        .update_var(node_vars={"p/qif_op/Delta": 2.0, "p/qif_op/eta": -1.0})
        .run(simulation_time=0.2, step_size=1e-4, outputs={"r": "p/qif_op/r"}, float_precision="float64")
    )
    np.testing.assert_array_equal(res[("r", "qif_20", "p", "qif_op/r")].to_numpy(), single["r"].to_numpy())
    # Delta = 2 changes the run: the override really reached the engine.
    plain = (
        CircuitTemplate.from_yaml("model_templates.neural_mass_models.qif.qif")
        .update_var(node_vars={"p/qif_op/eta": -1.0})
        .run(simulation_time=0.2, step_size=1e-4, outputs={"r": "p/qif_op/r"}, float_precision="float64")
    )
    assert np.abs(plain["r"].to_numpy() - single["r"].to_numpy()).max() > 1e-3


def test_get_nodes_and_edges_from_matrix():
    node = NodeTemplate.from_yaml("model_templates.neural_mass_models.qif.qif_pop")
    names = ["a", "b", "c"]
    net = CircuitTemplate(name="net", nodes={n: node for n in names})
    weights = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 1e-9], [0.5, 0.5, 0.0]])
    net.add_edges_from_matrix("qif_op/r", "qif_op/r_in", names, weight=weights, edge_attr={"delay": 0.002})
    # weight[target, source]; |w| <= 1e-6 is left out, as PyRates does.
    assert [(s, t, a["weight"], a["delay"]) for s, t, _, a in net.edges] == [
        ("a/qif_op/r", "b/qif_op/r_in", 2.0, 0.002),
        ("a/qif_op/r", "c/qif_op/r_in", 0.5, 0.002),
        ("b/qif_op/r", "a/qif_op/r_in", 1.0, 0.002),
        ("b/qif_op/r", "c/qif_op/r_in", 0.5, 0.002),
    ]
    assert net.get_nodes("all") == names
    assert net.get_nodes("b", var_identifier=("qif_op", "eta")) == ["b"]
    assert net.get_nodes("all", var_identifier=("qif_op", "nope")) == []
    assert [v["value"] for v in net.get_var("all/qif_op/eta")] == [-5.0, -5.0, -5.0]


def test_bad_templates_and_arguments_are_named():
    op = OperatorTemplate(name="op", path=None, equations=QIF_EQUATIONS, variables=QIF_VARIABLES)
    other = OperatorTemplate(name="op", path=None, equations=["d/dt * r = -r"], variables={"r": "output(1.0)"})
    net = CircuitTemplate(
        name="c", nodes={"a": NodeTemplate("n1", operators=[op]), "b": NodeTemplate("n2", operators=[other])}
    )
    with pytest.raises(TemplateBuildError, match="two different OperatorTemplates are named 'op'"):
        net.run(simulation_time=0.1, step_size=1e-3, outputs={"r": "a/op/r"})
    with pytest.raises(TemplateBuildError, match="variable 'tau' = \\[1, 2\\]"):
        OperatorTemplate(name="x", equations=["d/dt * r = -r/tau"], variables={"r": "output(0.0)", "tau": [1, 2]})
    qif = CircuitTemplate.from_yaml("model_templates.neural_mass_models.qif.qif")
    with pytest.raises(TypeError, match="unexpected keyword argument 'adaptive'"):
        qif.run(simulation_time=0.1, step_size=1e-3, outputs={"r": "p/qif_op/r"}, adaptive=True)
    with pytest.raises(NotImplementedError, match="populations"):
        CircuitTemplate(name="c", populations={"p": None})
    # PyRates' code-generation keywords change no number and are accepted.
    qif.run(
        simulation_time=0.01,
        step_size=1e-3,
        outputs={"r": "p/qif_op/r"},
        vectorize=False,
        verbose=False,
        clear=True,
        file_name="x",
        backend="numpy",
    )
