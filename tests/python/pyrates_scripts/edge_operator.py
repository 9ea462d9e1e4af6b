"""An edge that carries an edge operator between two QIF populations (a sigmoid of the source
rate, built in Python), swept by its weight and its operator's threshold, both named by the
variable paths the edge connects (docs: "Edge templates")."""

import numpy as np
from _common import FORWARD_EULER_FLOAT64, save
from pyrates import CircuitTemplate, EdgeTemplate, NodeTemplate, OperatorTemplate, grid_search

node = NodeTemplate.from_yaml("model_templates.neural_mass_models.qif.qif_pop")
# PyRates wants the operator's input named unlike the source node's variable (x, not r).
sigmoid = OperatorTemplate(
    name="sig_op",
    path=None,
    equations=["m = m_max / (1 + exp(s*(r_thr - x)))"],
    variables={"m": "output(0.0)", "x": "input(0.0)", "m_max": 2.0, "s": 4.0, "r_thr": 0.5},
)
edge = EdgeTemplate(name="sig_edge", path=None, operators=[sigmoid])
net = CircuitTemplate(
    name="net", nodes={"p": node, "q": node}, edges=[("p/qif_op/r", "q/qif_op/r_in", edge, {"weight": 2.0})]
)
edge_key = ("p/qif_op/r", "q/qif_op/r_in")
res, res_map = grid_search(
    net,
    param_grid={"w": [1.0, 4.0], "thr": [0.0, 1.0]},
    param_map={"w": {"vars": ["weight"], "edges": [edge_key]}, "thr": {"vars": ["sig_op/r_thr"], "edges": [edge_key]}},
    step_size=1e-4,
    simulation_time=0.5,
    outputs={"r": "q/qif_op/r"},
    inputs={"p/qif_op/I_ext": np.full(5000, 3.0)},
    permute_grid=True,
    vectorize=False,
    **FORWARD_EULER_FLOAT64,
)
save(res, map=res_map)
