"""A network of nested circuits (docs: "CircuitTemplate ... circuits"): one two-node column
used six times as sub-circuits c0..c5 of an outer circuit, the columns joined in a ring. Nodes
of one template at the same place of every column form a population, which rustrates' C back
end runs as one loop per place; PyRates unrolls them. Nonlinear (tanh) so errors would grow."""

from _common import FORWARD_EULER_FLOAT64, save
from pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate

op = OperatorTemplate(
    name="rate_op",
    path=None,
    equations=["x' = (-x + tanh(u + drive))/tau"],
    variables={"x": "output(0.5)", "tau": 0.02, "drive": 0.2, "u": "input(0.0)"},
)
node = NodeTemplate(name="rate_node", path=None, operators=[op])
column = CircuitTemplate(
    name="column",
    path=None,
    nodes={"e": node, "i": node},
    edges=[
        ("e/rate_op/x", "i/rate_op/u", None, {"weight": 1.2}),
        ("i/rate_op/x", "e/rate_op/u", None, {"weight": -0.8}),
    ],
)
columns = 6
net = CircuitTemplate(
    name="ring",
    path=None,
    circuits={f"c{k}": column for k in range(columns)},
    edges=[
        (f"c{k}/e/rate_op/x", f"c{(k + 1) % columns}/e/rate_op/u", None, {"weight": 0.5 + 0.25 * k})
        for k in range(columns)
    ],
)
res = net.run(
    simulation_time=1.0,
    step_size=1e-4,
    sampling_step_size=1e-2,
    outputs={"x": "all/rate_op/x"},
    **FORWARD_EULER_FLOAT64,
)
save(res)
