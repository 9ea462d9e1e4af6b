"""Two QIF populations built in Python (PyRates 1.x docs: "Model definition in Python"),
one driven by a step input; outputs over all nodes and of one node."""

import numpy as np
from _common import FORWARD_EULER_FLOAT64, QIF_EQUATIONS, QIF_VARIABLES, qif_pair_edges, save
from pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate

op = OperatorTemplate(name="qif_op", path=None, equations=QIF_EQUATIONS, variables=QIF_VARIABLES)
node = NodeTemplate(name="qif_node", path=None, operators=[op])
net = CircuitTemplate(name="qif_net", path=None, nodes={"p1": node, "p2": node}, edges=qif_pair_edges())
net.update_var(node_vars={"p1/qif_op/eta": -3.0})

T, dt = 2.0, 1e-4
inp = np.zeros(int(round(T / dt)))
inp[5000:10000] = 3.0
res = net.run(
    simulation_time=T,
    step_size=dt,
    inputs={"p1/qif_op/I_ext": inp},
    outputs={"r": "all/qif_op/r", "v1": "p1/qif_op/v"},
    sampling_step_size=1e-3,
    vectorize=False,
    **FORWARD_EULER_FLOAT64,
)
save(res)
