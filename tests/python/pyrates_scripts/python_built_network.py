"""Two QIF populations built in Python (PyRates 1.x docs: "Model definition in Python"),
one driven by a step input; outputs over all nodes and of one node."""

import sys

import numpy as np
from pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate

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
net = CircuitTemplate(
    name="qif_net",
    path=None,
    nodes={"p1": node, "p2": node},
    edges=[
        ("p1/qif_op/r", "p2/qif_op/r_in", None, {"weight": 2.0}),
        ("p2/qif_op/r", "p1/qif_op/r_in", None, {"weight": -1.0}),
    ],
)
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
    solver="euler",
    float_precision="float64",
    vectorize=False,
    verbose=False,
)
res.to_pickle(sys.argv[1])
