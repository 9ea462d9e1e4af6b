"""Circuits nested in Python (docs: "CircuitTemplate ... circuits"): one two-node circuit
used twice as sub-circuits c1 and c2 of an outer circuit, joined by an edge between them;
nodes are named by their path through the hierarchy (``c1/b/...``). PyRates takes either
nodes or circuits at one level, so the outer circuit has circuits only."""

from _common import FORWARD_EULER_FLOAT64, save
from pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate

op = OperatorTemplate(
    name="li_op",
    path=None,
    equations=["x' = -x/tau + u"],
    variables={"x": "output(1.0)", "tau": 2.0, "u": "input(0.0)"},
)
node = NodeTemplate(name="li_node", path=None, operators=[op])
inner = CircuitTemplate(
    name="inner", path=None, nodes={"a": node, "b": node}, edges=[("a/li_op/x", "b/li_op/u", None, {"weight": 0.5})]
)


def outer_circuit():
    return CircuitTemplate(
        name="outer",
        path=None,
        circuits={"c1": inner, "c2": inner},
        edges=[("c1/b/li_op/x", "c2/a/li_op/u", None, {"weight": -1.5})],
    )


res = outer_circuit().run(
    simulation_time=2.0,
    step_size=1e-3,
    sampling_step_size=1e-2,
    outputs={"x": "all/li_op/x"},
    **FORWARD_EULER_FLOAT64,
)
# PyRates 1.2.3's run changes the circuit's edge list in place (a second run of the same object
# fails), so the single-node output is taken from a circuit built afresh.
one = outer_circuit().run(simulation_time=2.0, step_size=1e-3, outputs={"x": "c2/a/li_op/x"}, **FORWARD_EULER_FLOAT64)
save(res, single=one)
