"""A population of five QIF nodes built in Python: one value per node through `update_var`
with an array on `all/...` (PyRates gives the i-th value to the i-th node), then a
grid_search whose param_map names every node with `nodes: ['all']`."""

import numpy as np
from _common import FORWARD_EULER_FLOAT64, QIF_EQUATIONS, QIF_VARIABLES, save
from pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate, grid_search

op = OperatorTemplate(name="qif_op", path=None, equations=QIF_EQUATIONS, variables=QIF_VARIABLES)
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
    vectorize=False,
    **FORWARD_EULER_FLOAT64,
)

swept, swept_map = grid_search(
    net,
    param_grid={"J": [5.0, 15.0]},
    param_map={"J": {"vars": ["qif_op/J"], "nodes": ["all"]}},
    step_size=dt,
    simulation_time=0.5,
    outputs={"r": "p3/qif_op/r"},
    sampling_step_size=1e-3,
    permute_grid=True,
    **FORWARD_EULER_FLOAT64,
)
save(res, grid=swept, map=swept_map)
