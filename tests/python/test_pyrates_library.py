"""PyRates 1.2.3's whole template library under the same dotted names (issue 18, item 3).

One PyRates subprocess walks every circuit template of its ``model_templates`` package and runs
each one it can (forward Euler, float64, ``vectorize=False``: see below), recording every state
variable of every node. rustrates then finds each template by the same dotted name and runs it
with the same settings and outputs. Every template ends with one status:

- ``matched``: PyRates runs it; rustrates' built-in is equal to PyRates' traces (to ``ATOL``);
- ``matched (second method)``: PyRates cannot run it, rustrates' built-in is checked against an
  independent numpy transcription of its equations (or against a PyRates circuit that is the
  same model);
- ``matched (complex)``: the complex-valued templates (Kuramoto and theta-neuron mean fields,
  issue 18 item 4). PyRates computes them in ``float_precision='float64'`` by dropping the
  imaginary parts (ComplexWarning), which is no result, so the walk reruns each one that
  warns in ``'complex128'``; both sides' complex traces are compared;
- ``PyRates cannot run it``: with the reason; not built in (where the fault is a slip in
  PyRates' file, rustrates builds the corrected template in: "matched (second method)");
- ``fixture, by file``: PyRates' ``test_resources`` (its own test suite's fixtures) are not
  built in; they are loaded from PyRates' file by path and must match all the same;
- ``library extra``: built-in nodes and edges no PyRates circuit uses (``EXTRAS``), wired into
  circuits that both sides run.

Recorded are the ODE variables of the nodes' operators; those of edge operators (synaptic
depression and the like) reach them through the target's input and are covered that way.

The test fails if a template that should match does not, and if PyRates' own outcome differs
from the one recorded here (so a broken walk cannot pass by failing everywhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_script
from rustrates.pyrates import CircuitTemplate

# The same for both sides. PyRates' vectorize=True delays undelayed edges by one step (see
# test_pyrates_dropin.py); vectorize=False builds each edge as written. rustrates ignores it.
SETTINGS = {
    "simulation_time": 0.05,
    "step_size": 1e-4,
    "solver": "euler",
    "float_precision": "float64",
    "vectorize": False,
}

# Both sides compute the same float64 forward-Euler recurrences, so they can differ only in the
# order of floating-point operations: rounding level. Measured: at most 2.2e-16 (JRC2; most
# are bit-equal), also for the Izhikevich models in mV (|v| ~ 60, where one ulp is 7e-15).
# 1e-9 absolute leaves that margin and still fails on any change of an equation or default
# (flipping facilitation_op's sign moves its circuit by 1.5e-6 within these 0.05 time units).
ATOL = 1e-9

PACKAGE = "model_templates."

# What PyRates 1.2.3 itself does with the circuits it cannot run (first line of its error).
PYRATES_CANNOT = {
    "model_templates.CNS_2019_Tutorial.templates.EC": "KeyError: 'vtype'",
    "model_templates.CNS_2019_Tutorial.templates.JRC_nosyns": "KeyError: 'vtype'",
    "model_templates.CNS_2019_Tutorial.templates.JRC": "KeyError: 'vtype'",
    "model_templates.neural_mass_models.qif.qif_gap": "KeyError: 'p/qif_op/r'",
    "model_templates.neural_mass_models.qif.qif_alpha_syn": "AttributeError: Could not find alpha_edge",
    "model_templates.neural_mass_models.theta.kmo_conductance": "AttributeError: 'str' object has no attribute 'name'",
    "model_templates.test_resources.linear.ExampleCircuit": "TypeError: CircuitTemplate.__init__() got an unexpected keyword argument 'label'",
    "model_templates.test_resources.linear.MatrixCircuit": "AttributeError: Could not find CircuitFromMatrix",
    "model_templates.test_resources.test_backend.net11": "IndexError: invalid index to scalar variable.",
    "model_templates.test_resources.test_operator_caching_templates.TestCircuit2": "AttributeError: Could not find TestOp1",
}
# Why PyRates cannot (the error alone does not say).
PYRATES_CANNOT_WHY = {
    "model_templates.CNS_2019_Tutorial.templates.EC": "0.8-dialect variables",
    "model_templates.CNS_2019_Tutorial.templates.JRC_nosyns": "0.8-dialect variables; edges to r_e/r_i, which Op_exc/Op_inh lack",
    "model_templates.CNS_2019_Tutorial.templates.JRC": "0.8-dialect variables",
    "model_templates.neural_mass_models.qif.qif_gap": "edge names qif_op, the node runs qif_gap_op",
    "model_templates.neural_mass_models.qif.qif_alpha_syn": "edge template alpha_edge is defined nowhere",
    "model_templates.neural_mass_models.theta.kmo_conductance": "`edges` nested under `nodes` (built in as the lines describe)",
    "model_templates.test_resources.linear.ExampleCircuit": "`label` is no CircuitTemplate argument",
    "model_templates.test_resources.linear.MatrixCircuit": "base CircuitFromMatrix does not exist",
    "model_templates.test_resources.test_backend.net11": "two delayed edges between one pair",
    "model_templates.test_resources.test_operator_caching_templates.TestCircuit2": "base TestOp1 does not exist",
}
# PyRates "runs" these in float64 by dropping the imaginary part (ComplexWarning), so the
# walk reruns them in complex128; the list guards the walk itself (a template that stopped
# warning, or a new one that warns, is reported).
COMPLEX = {
    "model_templates.oscillators.kuramoto.kmo_mf",
    "model_templates.oscillators.kuramoto.kmo_mf_2coupled",
    "model_templates.neural_mass_models.theta.kmo_theta",
}

WALKER = r'''
import json, re, sys, warnings
from pathlib import Path
import numpy as np
from ruamel.yaml import YAML
import model_templates
from pyrates import CircuitTemplate, clear_frontend_caches

ROOT = Path(model_templates.__file__).parent
DERIVATIVE = re.compile(r"^\s*(?:d/dt\s*\*\s*([A-Za-z_]\w*)|([A-Za-z_]\w*)\s*')\s*=")


def circuit_names(text):
    doc = YAML(typ="safe", pure=True).load(text) or {}

    def is_circuit(name, seen=()):
        template = doc.get(name)
        if not isinstance(template, dict) or name in seen:
            return False
        base = template.get("base")
        return base in ("CircuitTemplate", "CircuitFromMatrix") or is_circuit(base, seen + (name,))

    return [name for name in doc if name != "aliases" and is_circuit(name)]


def state_paths(circuit, prefix=""):
    """node/op/var of every variable that has an ODE, in every node and sub-circuit."""
    paths = []
    for name, sub in (getattr(circuit, "circuits", None) or {}).items():
        paths += state_paths(sub, f"{prefix}{name}/")
    for name, node in circuit.nodes.items():
        for op in node.operators:
            for equation in op.equations:
                found = DERIVATIVE.match(equation)
                if found:
                    paths.append(f"{prefix}{name}/{op.name}/{found.group(1) or found.group(2)}")
    return paths


out = Path(sys.argv[1])
settings = json.loads(sys.argv[2])
circuits = []
for file in sorted(ROOT.rglob("*.y*ml")):
    module = ".".join(file.relative_to(ROOT.parent).with_suffix("").parts)
    circuits += [(f"{module}.{name}", file, name) for name in circuit_names(file.read_text())]
for extra in sys.argv[3:]:
    circuits += [(f"{extra}/{name}", Path(extra), name) for name in circuit_names(Path(extra).read_text())]
report = []
for template, file, name in circuits:
    entry = {"template": template, "file": str(file), "name": name}
    try:
        clear_frontend_caches()
        circuit = CircuitTemplate.from_yaml(entry["template"])
        paths = state_paths(circuit)
        entry["outputs"] = paths
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = circuit.run(outputs={p: p for p in paths}, verbose=False, **settings)
        entry["complex"] = any("ComplexWarning" in type(w.message).__name__ for w in caught)
        if entry["complex"]:
            # Dropped imaginary parts: the float64 run is no result; complex128 is.
            clear_frontend_caches()
            circuit = CircuitTemplate.from_yaml(entry["template"])
            res = circuit.run(outputs={p: p for p in paths}, verbose=False,
                              **dict(settings, float_precision="complex128"))
        kind = complex if entry["complex"] else float
        arrays = {str(i): res[p].to_numpy(dtype=kind) for i, p in enumerate(paths)}
        np.savez(out / (entry["template"].replace("/", "|") + ".npz"), time=res.index.to_numpy(dtype=float), **arrays)
        entry["status"] = "ran"
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else ""
        entry["status"] = "failed"
        entry["error"] = f"{type(error).__name__}: {message}"
    report.append(entry)
(out / "report.json").write_text(json.dumps(report, indent=1))
'''


# Built-in operators, nodes and edges that no PyRates circuit uses, wired into circuits so
# that the walk runs them too (both sides resolve the dotted names in their own library).
EXTRAS = """
qif_facilitation:
  base: CircuitTemplate
  nodes:
    p: model_templates.neural_mass_models.qif.qif_pop
  edges:
    - [p/qif_op/r, p/qif_op/r_in, model_templates.neural_mass_models.synaptic_plasticity.facilitation_edge,
       {weight: 15.0}]
li_chain:
  base: CircuitTemplate
  nodes:
    a: model_templates.base_templates.li_node
    b: model_templates.base_templates.tanh_node
    c: model_templates.base_templates.nonlinear_li_node
  edges:
    - [c/sigmoid_op/m, a/li_op/m_in, null, {weight: 2.0}]
    - [a/li_op/r, b/li_op/m_in, null, {weight: 0.5}]
    - [a/li_op/r, c/li_op/u, null, {weight: -1.5}]
    - [b/tanh_op/m, c/li_op/m_in, model_templates.base_templates.sigmoid_edge, {weight: 1.0}]
kernels:
  base: NodeTemplate
  operators:
    - model_templates.base_templates.monoexp_op
    - model_templates.base_templates.biexp_op
    - model_templates.base_templates.alpha_op
kernel_bank:
  base: CircuitTemplate
  nodes:
    drive: model_templates.base_templates.nonlinear_li_node
    k: kernels
    o: model_templates.oscillators.kuramoto.sin_pop
  edges:
    - [drive/sigmoid_op/m, k/monoexp_op/r_in, null, {weight: 3.0}]
    - [drive/sigmoid_op/m, k/biexp_op/r_in, null, {weight: 20.0}]
    - [drive/sigmoid_op/m, k/alpha_op/r_in, null, {weight: 50.0}]
    - [k/alpha_op/v, drive/li_op/u, null, {weight: 1.0}]
    - [o/sin_op/s, drive/li_op/m_in, null, {weight: 2.0}]
"""


@pytest.fixture(scope="module")
def pyrates_walk(pyrates_python, tmp_path_factory):
    """PyRates' report (one entry per circuit template) and the folder of its traces."""
    out = tmp_path_factory.mktemp("pyrates-walk")
    script = out / "walker.py"
    script.write_text(WALKER)
    extras = out / "library_extras.yaml"
    extras.write_text(EXTRAS)
    run_script(pyrates_python, script, out, json.dumps(SETTINGS), extras, cwd=out)
    return json.loads((out / "report.json").read_text()), out


def pyrates_traces(out: Path, entry: dict) -> tuple[np.ndarray, np.ndarray]:
    saved = np.load(out / (entry["template"].replace("/", "|") + ".npz"))
    return saved["time"], np.column_stack([saved[str(i)] for i in range(len(entry["outputs"]))])


def rustrates_traces(reference: str, outputs: list[str], precision: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    settings = dict(SETTINGS, float_precision=precision)
    res = CircuitTemplate.from_yaml(reference).run(outputs={p: p for p in outputs}, **settings)
    return res.index.to_numpy(dtype=float), res[outputs].to_numpy()


def largest_gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| (complex: the modulus): at most ATOL where they agree."""
    return float(np.max(np.abs(ours - theirs)))


# ---------------------------------------------------------------------------------------
# second method for the built-ins PyRates cannot run: numpy transcriptions of their equations


def euler(rhs, state: dict[str, float]) -> dict[str, np.ndarray]:
    """Forward Euler with SETTINGS' step; the trace of every state, sample k at t = k dt."""
    steps = int(round(SETTINGS["simulation_time"] / SETTINGS["step_size"]))
    trace = {k: np.empty(steps, dtype=np.asarray(v).dtype) for k, v in state.items()}
    for step in range(steps):
        for k, v in state.items():
            trace[k][step] = v
        d = rhs(state)
        state = {k: v + SETTINGS["step_size"] * d[k] for k, v in state.items()}
    return trace


def qif_rates(s, node, op, drive, delta=1.0, tau=1.0, eta=-5.0):
    """The CNS tutorial's instantaneous QIF populations: J (r + r_exc - r_inh) or
    J (r_exc - r_inh - r) is `drive`, J = 15."""
    r, v = s[f"{node}/{op}/r"], s[f"{node}/{op}/v"]
    return {
        f"{node}/{op}/r": (delta / (np.pi * tau) + 2.0 * r * v) / tau,
        f"{node}/{op}/v": (v**2 + eta + 15.0 * drive * tau - (np.pi * r * tau) ** 2) / tau,
    }


def qif_synapses(s, node, op, exc_in, inh_in, j_i):
    """Op_exc_syns / Op_inh_syns: alpha-kernel currents I_e (H 3.25, tau 1), I_i (H 22,
    tau 2), eta = -2.5, J_e = 10."""
    g = {k: s[f"{node}/{op}/{k}"] for k in ("r", "v", "I_e", "x_e", "I_i", "x_i")}
    return {
        f"{node}/{op}/r": 1.0 / np.pi + 2.0 * g["r"] * g["v"],
        f"{node}/{op}/v": g["v"] ** 2 - 2.5 + 10.0 * g["I_e"] - j_i * g["I_i"] - np.pi**2 * g["r"] ** 2,
        f"{node}/{op}/I_e": g["x_e"],
        f"{node}/{op}/x_e": 3.25 * exc_in - 2.0 * g["x_e"] - g["I_e"],
        f"{node}/{op}/I_i": g["x_i"],
        f"{node}/{op}/x_i": 22.0 * inh_in / 2.0 - g["x_i"] - g["I_i"] / 4.0,
    }


def cns_ec(s):
    return qif_rates(s, "Pop_exc", "Op_exc", s["Pop_exc/Op_exc/r"])


def cns_jrc_nosyns(s):
    r = {n: s[f"{n}/{op}/r"] for n, op in (("PC", "Op_exc"), ("EIN", "Op_exc"), ("IIN", "Op_inh"))}
    return {
        **qif_rates(s, "PC", "Op_exc", r["PC"] + 1.35 * r["EIN"] - 0.3375 * r["IIN"]),
        **qif_rates(s, "EIN", "Op_exc", r["EIN"] + 1.08 * r["PC"]),
        **qif_rates(s, "IIN", "Op_inh", 0.3375 * r["PC"] - r["IIN"]),
    }


def cns_jrc(s):
    r = {n: s[f"{n}/{op}/r"] for n, op in (("PC", "Op_exc_syns"), ("EIN", "Op_exc_syns"), ("IIN", "Op_inh_syns"))}
    return {
        **qif_synapses(s, "PC", "Op_exc_syns", r["PC"] + 1.35 * r["EIN"], 0.3375 * r["IIN"], 10.0),
        **qif_synapses(s, "EIN", "Op_exc_syns", r["EIN"] + 1.08 * r["PC"], 0.0, 10.0),
        **qif_synapses(s, "IIN", "Op_inh_syns", 0.3375 * r["PC"], r["IIN"], 0.0),
    }


def theta_conductance(s):
    """kmo_conductance as its misindented lines describe: conductance_op (theta_op with
    I_ext + s v_s and the shunt - s (z^2 - 1), v_s = -10; tau 1, eta -5, Delta 1) with its own
    rate r fed back with weight 15. Complex arithmetic by numpy."""
    z = s["p/conductance_op/z"]
    r = (1 - abs(z) ** 2) / (np.pi * (1 + z + np.conj(z) + abs(z) ** 2))
    syn = 15.0 * r.real
    dz = ((z + 1) ** 2 * (1j * (-5.0 + syn * -10.0) - 1.0) - syn * (z**2 - 1) - 1j * (z - 1) ** 2) / 2.0
    return {"p/conductance_op/z": dz}


def states(*groups: tuple[str, str, tuple[str, ...]]) -> dict[str, float]:
    return {f"{node}/{op}/{v}": 0.0 for node, op, names in groups for v in names}


SYNS = ("r", "v", "I_e", "x_e", "I_i", "x_i")
TRANSCRIPTIONS = {
    "model_templates.CNS_2019_Tutorial.templates.EC": (cns_ec, states(("Pop_exc", "Op_exc", ("r", "v")))),
    "model_templates.CNS_2019_Tutorial.templates.JRC_nosyns": (
        cns_jrc_nosyns,
        states(("PC", "Op_exc", ("r", "v")), ("EIN", "Op_exc", ("r", "v")), ("IIN", "Op_inh", ("r", "v"))),
    ),
    "model_templates.CNS_2019_Tutorial.templates.JRC": (
        cns_jrc,
        states(("PC", "Op_exc_syns", SYNS), ("EIN", "Op_exc_syns", SYNS), ("IIN", "Op_inh_syns", SYNS)),
    ),
    "model_templates.neural_mass_models.theta.kmo_conductance": (
        theta_conductance,
        {"p/conductance_op/z": -0.6 - 0.8j},
    ),
}


def second_method(template: str, reports: dict[str, dict], out: Path) -> tuple[np.ndarray, np.ndarray]:
    """The built-in's traces and those of its second method."""
    if template == "model_templates.neural_mass_models.qif.qif_gap":
        # With its default g = 0, qif_gap_op's r*(2.0*v - g) is PyRates' qif_op's 2.0*r*v
        # exactly (scaling by 2 is exact), so PyRates' own qif is the reference.
        _, theirs = pyrates_traces(out, reports["model_templates.neural_mass_models.qif.qif"])
        _, ours = rustrates_traces(template, ["p/qif_gap_op/r", "p/qif_gap_op/v"])
        return ours, theirs
    rhs, start = TRANSCRIPTIONS[template]
    reference = euler(rhs, start)
    complex_valued = any(np.iscomplexobj(v) for v in start.values())
    _, ours = rustrates_traces(template, list(reference), "complex128" if complex_valued else "float64")
    return ours, np.column_stack(list(reference.values()))


# ---------------------------------------------------------------------------------------


@pytest.mark.pyrates
@pytest.mark.slow
def test_every_pyrates_template_is_built_in_and_matches(pyrates_walk):
    report, out = pyrates_walk
    reports = {entry["template"]: entry for entry in report}
    statuses: dict[str, str] = {}
    gaps: dict[str, float] = {}  # max |rustrates - reference|, where there is a reference
    problems: list[str] = []

    pyrates_failed = {t: e["error"] for t, e in reports.items() if e["status"] == "failed"}
    for template, error in pyrates_failed.items():
        if not error.startswith(PYRATES_CANNOT.get(template, "\0")):
            problems.append(f"{template}: PyRates failed unexpectedly: {error}")
    for template in PYRATES_CANNOT.keys() - pyrates_failed.keys():
        problems.append(f"{template}: recorded as failing in PyRates, but PyRates ran it")

    for template, entry in reports.items():
        if entry["status"] == "ran" and entry["complex"] != (template in COMPLEX):
            problems.append(
                f"{template}: PyRates {'dropped' if entry['complex'] else 'kept'} imaginary parts "
                "in float64, unlike recorded in COMPLEX"
            )
        if entry["status"] == "failed":
            if template in TRANSCRIPTIONS or template.endswith(".qif.qif_gap"):
                ours, reference = second_method(template, reports, out)
                gaps[template] = largest_gap(ours, reference)
                if gaps[template] > ATOL:
                    problems.append(f"{template}: second method off by {gaps[template] / ATOL:.3g} x tolerance")
                statuses[template] = "matched (second method)"
            else:
                # Not built in either: rustrates refuses the name and says why.
                with pytest.raises(Exception, match="not built in"):
                    CircuitTemplate.from_yaml(template)
                statuses[template] = f"PyRates cannot run it: {PYRATES_CANNOT_WHY.get(template, entry['error'])}"
        else:
            fixture = template.startswith(PACKAGE + "test_resources.")
            extra = not template.startswith(PACKAGE)
            reference = f"{entry['file']}/{entry['name']}" if fixture else template
            try:
                time, ours = rustrates_traces(
                    reference, entry["outputs"], "complex128" if entry["complex"] else "float64"
                )
            except Exception as error:  # reported with the others below
                problems.append(f"{template}: rustrates cannot run it: {str(error).splitlines()[0]}")
                statuses[template] = "FAILED"
                continue
            their_time, theirs = pyrates_traces(out, entry)
            np.testing.assert_allclose(time, their_time, rtol=0, atol=1e-12, err_msg=template)
            gaps[template] = largest_gap(ours, theirs)
            if gaps[template] > ATOL:
                problems.append(
                    f"{template}: off by {gaps[template] / ATOL:.3g} x tolerance (max |diff| {gaps[template]:.3g})"
                )
                statuses[template] = "FAILED"
            else:
                statuses[template] = (
                    "fixture, by file: matched"
                    if fixture
                    else ("library extra: matched" if extra else "matched (complex)" if entry["complex"] else "matched")
                )
                if entry["complex"] and not np.iscomplexobj(ours):
                    problems.append(f"{template}: rustrates' frame is not complex")

    table = "\n".join(
        f"  {status:<30} {gaps.get(template, float('nan')):9.2e}  "
        f"{template.removeprefix(PACKAGE).replace(str(out) + '/', '')}"
        for template, status in statuses.items()
    )
    print(f"\nPyRates 1.2.3 model_templates, {len(statuses)} circuits (status, max |diff|, name):\n{table}")
    counts: dict[str, int] = {}
    for status in statuses.values():
        key = "PyRates cannot run it" if status.startswith("PyRates cannot") else status
        counts[key] = counts.get(key, 0) + 1
    print("counts:", counts)
    assert not problems, "\n".join(problems) + "\n" + table
