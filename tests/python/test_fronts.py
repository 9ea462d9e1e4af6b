"""Issue 17: the same bad and edge-case arguments fed to every front — ``grid_search``,
``ClusterGridSearch.run``, ``CircuitTemplate.run``, the PyRates 1.x drop-in
(``rustrates.pyrates``) and the CLI's spec file — give the same error code and argument
name, or the same result. The rules live in the engine (``sweep::checks``, reported through
``SweepError::problems``) or, for type and shape checks, in ``rustrates._core``'s one request
builder; a front that re-derived a rule would drift from the others and fail here."""

from __future__ import annotations

import json
import math
import re
import subprocess

import numpy as np
import pytest

from conftest import NET3, local_dask_client, rustrates_binary

T, DT = 0.02, 1e-3
GRID = {"eta_op": [-5.0, 0.0]}
PMAP = {"eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]}}
INPUTS = {"PC/Op_e/inp": 1.0}
OUTPUTS = {"r": "PC/Op_e/r"}


@pytest.fixture(scope="module")
def client():
    # Bad arguments are refused before any task is sent; one in-process worker suffices.
    with local_dask_client(1, processes=False) as c:
        yield c


def settings(case: dict) -> dict:
    """The run's settings with the case's changes (``dt`` only when the case gives it)."""
    s = {"simulation_time": T, "step_size": DT, "inputs": INPUTS, "outputs": OUTPUTS}
    s.update(case)
    return s


def run_grid_search(rr, tmp_path, client, case):
    s = settings(case)
    return rr.grid_search(NET3, GRID, PMAP, backend="reference", **s)


def run_cluster(rr, tmp_path, client, case):
    from rustrates.cluster import ClusterGridSearch

    s = settings(case)
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    return cgs.run(NET3, GRID, PMAP, chunk_size=1, backend="reference", **s)


def run_template(rr, tmp_path, client, case):
    s = settings(case)
    tmpl = rr.CircuitTemplate.from_yaml(NET3).update_var(node_vars={"PC/Op_e/eta": GRID["eta_op"][0]})
    return tmpl.run(s.pop("simulation_time"), s.pop("step_size"), backend="reference", **s)


def run_dropin(rr, tmp_path, client, case):
    from rustrates import pyrates

    s = settings(case)
    return pyrates.grid_search(
        NET3,
        GRID,
        PMAP,
        s.pop("step_size"),
        s.pop("simulation_time"),
        s.pop("outputs"),
        backend="reference",
        float_precision="float64",
        **s,
    )


def cli_spec(case: dict) -> str:
    s = settings(case)
    lines = [
        f"template: {NET3}",
        "backend: reference",
        "param_grid:",
        "  eta_op: [-5.0, 0.0]",
        "param_map:",
        "  eta_op: {vars: [Op_e/eta], nodes: [PC]}",
        "inputs:",
        "  PC/Op_e/inp: 1.0",
        "outputs:",
    ]
    lines += [f"  {k}: {v}" for k, v in s.pop("outputs").items()]
    del s["inputs"]
    for key, value in s.items():
        text = ".nan" if isinstance(value, float) and math.isnan(value) else repr(value)
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n"


def run_cli(rr, tmp_path, client, case):
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = tmp_path / "s.yaml"
    spec.write_text(cli_spec(case), encoding="utf-8")
    return subprocess.run(
        [rustrates_binary(), "sweep", spec, "--out", tmp_path / "r.h5", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )


FRONTS = {
    "grid_search": run_grid_search,
    "ClusterGridSearch.run": run_cluster,
    "CircuitTemplate.run": run_template,
    "rustrates.pyrates": run_dropin,
    "cli": run_cli,
}
ALL = tuple(FRONTS)
PYTHON = ALL[:-1]

# (case, its arguments, the fronts that take them, code, argument)
BAD = [
    ("negative cutoff", {"cutoff": -0.01}, ALL, "sweep/bad-setting", "cutoff"),
    ("cutoff past the last sample", {"cutoff": T}, ALL, "sweep/bad-setting", "cutoff"),
    ("zero step", {"step_size": 0.0}, ALL, "sweep/bad-setting", "step_size"),
    ("NaN step", {"step_size": math.nan}, ALL, "sweep/bad-setting", "step_size"),
    ("negative simulation_time", {"simulation_time": -1.0}, ALL, "sweep/bad-setting", "simulation_time"),
    ("sampling longer than the run", {"sampling_step_size": 1.0}, ALL, "sweep/bad-setting", "sampling_step_size"),
    (
        "sampling not a multiple of the step",
        {"sampling_step_size": 1.5e-3},
        ALL,
        "sweep/bad-setting",
        "sampling_step_size",
    ),
    (
        "summaries as a string",
        {"summaries": "mean"},
        ("grid_search", "ClusterGridSearch.run"),
        "argument/invalid",
        "summaries",
    ),
    (
        "dt and step_size disagree",
        {"dt": 2e-3},
        ("grid_search", "ClusterGridSearch.run"),
        "argument/invalid",
        "step_size",
    ),
    ("zero threads", {"n_threads": 0}, ("grid_search", "ClusterGridSearch.run"), "argument/invalid", "n_threads"),
    ("step that is no number", {"step_size": "fast"}, PYTHON, "argument/invalid", "step_size"),
    ("unknown output", {"outputs": {"r": "PC/Op_e/rr"}}, PYTHON, "sweep/output", "outputs"),
]


def bad_cases():
    for name, case, fronts, code, argument in BAD:
        for front in fronts:
            yield pytest.param(front, case, code, argument, id=f"{name}-{front}")


@pytest.mark.parametrize(("front", "case", "code", "argument"), list(bad_cases()))
def test_the_same_bad_argument_gives_the_same_code_and_argument_on_every_front(
    rustrates, tmp_path, client, front, case, code, argument
):
    if front == "cli":
        out = run_cli(rustrates, tmp_path, client, case)
        assert out.returncode == 1, out.stderr
        # The full form: `error[code]: `argument` message`, at the setting's line.
        found = re.findall(r"error\[([^\]]+)\]: `([^`]+)`", out.stderr)
        assert found[:1] == [(code, argument)], out.stderr
        assert not (tmp_path / "r.h5").exists()
        return
    with pytest.raises(rustrates.RustratesError) as info:
        FRONTS[front](rustrates, tmp_path, client, case)
    first = info.value.diagnostics[0]
    assert (first["code"], first["path"]) == (code, argument), str(info.value)
    # The message is the engine's concise rendering: `code: message`.
    assert str(info.value).startswith(f"{code}: "), str(info.value)


def traces_of(front, result, tmp_path):
    """Each front's result as (time, points × 1 column of r) float64."""
    import rustrates

    if front in ("ClusterGridSearch.run", "cli"):
        path = result if front != "cli" else tmp_path / "r.h5"
        if front == "cli":
            assert result.returncode == 0, result.stderr
        frame, _, _ = rustrates.read_results(path)
        return frame.to_numpy()
    if front == "grid_search":
        return result[0].to_numpy()
    if front == "rustrates.pyrates":
        return result[0].to_numpy()
    return result.to_numpy()


# (case, fronts): edge cases every front takes, each giving what the plain run gives.
EDGE = [
    ("dt and step_size agree by value", {"dt": np.float64(DT)}, ("grid_search", "ClusterGridSearch.run")),
    ("cutoff zero", {"cutoff": 0.0}, ALL),
    # 0.5 · 2e-3 is exactly 1e-3 in binary floating point.
    ("step given as a numpy number", {"step_size": np.float32(0.5) * np.float64(2 * DT)}, PYTHON),
    ("step given as text", {"step_size": "1e-3"}, PYTHON),
]


def edge_cases():
    for name, case, fronts in EDGE:
        for front in fronts:
            yield pytest.param(front, case, id=f"{name}-{front}")


@pytest.mark.parametrize(("front", "case"), list(edge_cases()))
def test_an_edge_case_gives_what_the_plain_run_gives_on_every_front(rustrates, tmp_path, client, front, case):
    # Same engine, same reference back end, same steps: the traces agree bitwise.
    plain = traces_of(front, FRONTS[front](rustrates, tmp_path / "plain", client, {}), tmp_path / "plain")
    edge = traces_of(front, FRONTS[front](rustrates, tmp_path / "edge", client, case), tmp_path / "edge")
    np.testing.assert_array_equal(edge, plain)


def test_every_front_computes_the_same_traces(rustrates, tmp_path, client):
    """The plain run through each front: grid point 0 (eta_op = -5) equal bitwise everywhere
    (one engine path, the reference back end, float64); the grid fronts' point 1 as well."""
    results = {
        front: traces_of(
            front,
            FRONTS[front](rustrates, tmp_path / front.replace(".", "_"), client, {}),
            tmp_path / front.replace(".", "_"),
        )
        for front in ALL
    }
    reference = results["grid_search"]
    assert reference.shape == (round(T / DT), 2)
    for front, traces in results.items():
        if front == "CircuitTemplate.run":
            np.testing.assert_array_equal(traces[:, 0], reference[:, 0], err_msg=front)
        else:
            np.testing.assert_array_equal(traces, reference, err_msg=front)


def test_the_cluster_mode_passes_every_sweep_argument_grid_search_takes(rustrates, tmp_path, client):
    """Issue 17: the engine arguments beyond the plain run — the regime summary and its
    thresholds, several initial conditions (``multistable``), ``trace_precision``, a cutoff,
    the solver and precision — reach the engine the same through ``ClusterGridSearch.run`` as
    through ``grid_search``: the files record the same settings (the engine's own
    ``settings`` attribute, which the fingerprint hashes; only ``chunk_size`` differs) and
    hold bitwise-equal traces and summaries (same engine, reference back end)."""
    import h5py

    from rustrates import _rustrates
    from rustrates.cluster import ClusterGridSearch

    grid = {"eta_op": [-5.0, -1.0, 2.0]}
    args = dict(
        simulation_time=0.5,
        step_size=1e-3,
        inputs=INPUTS,
        outputs={"r": "PC/Op_e/r", "v": "PC/Op_e/v"},
        summaries=["mean", "regime", "multistable"],
        keep_traces=True,
        cutoff=0.1,
        solver="heun",
        regime={"stationary_tol": 1e-3, "min_cycles": 2},
        initial_conditions=[{"PC/Op_e/r": 0.0}, {"PC/Op_e/r": 2.5}],
        trace_precision="float32",
        backend="reference",
        float_precision="float64",
    )
    out = tmp_path / "grid_search.h5"
    rustrates.grid_search(NET3, grid, PMAP, out=out, **args)
    cgs = ClusterGridSearch(client, compute_dir=tmp_path / "cd", progress=False)
    path = cgs.run(NET3, grid, PMAP, chunk_size=2, **args)

    def settings_of(p):
        with h5py.File(p, "r") as f:
            settings = json.loads(f.attrs["settings"])
            assert f["traces"].dtype == np.float32, p
        settings.pop("chunk_size")
        return settings

    recorded = settings_of(out)
    assert recorded == settings_of(path)
    # The arguments did reach the engine (the test fails if a front dropped them).
    assert recorded["regime"]["thresholds"]["stationary_tol"] == 1e-3
    assert recorded["initial_conditions"] == [{"PC/Op_e/r": 0.0}, {"PC/Op_e/r": 2.5}]
    assert recorded["cutoff"] == 0.1 and recorded["solver"]["name"] == "heun"
    a, b = _rustrates.read_results(out), _rustrates.read_results(path)
    assert a["summary_names"] == b["summary_names"] and "multistable" in a["summary_names"]
    np.testing.assert_array_equal(a["traces"], b["traces"])
    np.testing.assert_array_equal(a["summaries"], b["summaries"])
    assert list(a["status"]) == list(b["status"]) and list(a["labels"]) == list(b["labels"])


def test_every_front_names_its_settings_as_the_request_builder_does():
    """The fronts hand their settings to ``_core.build_request`` with
    ``_core.request_keywords(locals())``, which keeps the names the builder takes: a front
    parameter under any other name would be dropped silently. Each front's parameters are the
    builder's keywords, or listed here with where they go instead."""
    import inspect

    from rustrates import _core, pyrates
    from rustrates.cluster import ClusterGridSearch
    from rustrates.template import CircuitTemplate
    from rustrates.utility.grid_search import grid_search

    positional = {"self", "circuit_template", "param_grid", "param_map"}
    handled_elsewhere = {
        # progress bar; accepted and ignored PyRates keywords
        grid_search: {"progress", "njit", "parallel"},
        # cluster settings; the seed's aliases; config_kwargs is split into builder keywords
        ClusterGridSearch.run: {
            "chunk_size",
            "worker_env",
            "worker_file",
            "add_template_info",
            "config_kwargs",
            "result_kwargs",
            "params",
            "permute",
        },
        # flat PyRates settings, passed in `extra`
        CircuitTemplate.run: {"rtol", "atol"},
        # PyRates 1.2.3's keywords without meaning here
        pyrates.CircuitTemplate.run: {"vectorize", "verbose", "clear", "in_place"},
        pyrates.grid_search: set(),
    }
    for front, elsewhere in handled_elsewhere.items():
        params = inspect.signature(front).parameters
        named = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD} - positional - elsewhere
        assert named, front
        assert named <= _core.REQUEST_KEYWORDS, (front.__qualname__, named - _core.REQUEST_KEYWORDS)


def test_both_template_classes_read_edge_vars_alike(rustrates):
    """``update_var(edge_vars=...)`` of ``rustrates.CircuitTemplate`` and of the PyRates
    drop-in read entries with one function: the same keys and values for the 3- and 4-tuple
    forms, and the same argument error for a malformed entry."""
    from rustrates import pyrates

    entries = [("PC", "IIN", {"weight": 2.0}), ("IIN", "PC", 1, {"delay": 1e-3, "weight": 3})]
    want = {("PC", "IIN", 0, "weight"): 2.0, ("IIN", "PC", 1, "delay"): 1e-3, ("IIN", "PC", 1, "weight"): 3.0}
    engine = rustrates.CircuitTemplate.from_yaml(NET3).update_var(edge_vars=entries)
    dropin = pyrates.CircuitTemplate.from_yaml(NET3).update_var(edge_vars=entries)
    assert engine._edge_overrides == want
    assert dropin._edge_vars == want
    for tmpl in (rustrates.CircuitTemplate.from_yaml(NET3), pyrates.CircuitTemplate.from_yaml(NET3)):
        with pytest.raises(rustrates.RustratesError) as info:
            tmpl.update_var(edge_vars=[("PC", "IIN")])
        first = info.value.diagnostics[0]
        assert (first["code"], first["path"]) == ("argument/invalid", "edge_vars"), str(info.value)
