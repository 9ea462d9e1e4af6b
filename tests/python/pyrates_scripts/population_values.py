"""A population of five QIF nodes built in Python: one value per node through `update_var`
with an array on `all/...` (PyRates gives the i-th value to the i-th node), then a
grid_search whose param_map names every node with `nodes: ['all']`."""

import sys

import numpy as np
from pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate, grid_search

eqs = ["d/dt * r = (Delta/(pi*tau) + 2.0*r*v) / tau", "d/dt * v = (v^2 + eta + I_ext + (r_in*J - pi*r*tau)*tau) / tau"]
variables = {
    "r": "output(0.01)",
    "v": "variable(-2.0)",
    "Delta": 1.0,
    "tau": 1.0,
    "eta": -5.0,
    "J": 15.0,
    "I_ext": "input(0.0)",
    "r_in": "input(0.0)",
}
op = OperatorTemplate(name="qif_op", path=None, equations=eqs, variables=variables)
node = NodeTemplate(name="qif_node", path=None, operators=[op])
nodes = [f"p{i}" for i in range(5)]
net = CircuitTemplate(
    name="ring",
    path=None,
    nodes={n: node for n in nodes},
    edges=[(f"{nodes[i]}/qif_op/r", f"{nodes[(i + 1) % 5]}/qif_op/r_in", None, {"weight": 0.5}) for i in range(5)],
)
net.update_var(node_vars={"all/qif_op/eta": np.array([-6.0, -5.0, -4.0, -3.0, -2.0])})

T, dt = 1.0, 1e-4
res = net.run(
    simulation_time=T,
    step_size=dt,
    inputs={"p0/qif_op/I_ext": np.full(int(round(T / dt)), 1.0)},
    outputs={"r": "all/qif_op/r"},
    sampling_step_size=1e-3,
    solver="euler",
    float_precision="float64",
    vectorize=False,
    verbose=False,
)
res.to_pickle(sys.argv[1])

swept, swept_map = grid_search(
    net,
    param_grid={"J": [5.0, 15.0]},
    param_map={"J": {"vars": ["qif_op/J"], "nodes": ["all"]}},
    step_size=dt,
    simulation_time=0.5,
    outputs={"r": "p3/qif_op/r"},
    sampling_step_size=1e-3,
    permute_grid=True,
    solver="euler",
    float_precision="float64",
    verbose=False,
)
swept.to_pickle(sys.argv[1] + ".grid")
swept_map.to_pickle(sys.argv[1] + ".map")
