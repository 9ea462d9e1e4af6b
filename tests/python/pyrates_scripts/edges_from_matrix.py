"""A network of five QIF populations coupled by a weight matrix (docs: "Networks from
connectivity matrices"), swept with grid_search over the template object."""

import numpy as np
from _common import FORWARD_EULER_FLOAT64, save
from pyrates import CircuitTemplate, NodeTemplate, grid_search

node = NodeTemplate.from_yaml("model_templates.neural_mass_models.qif.qif_pop")
names = [f"n{i}" for i in range(5)]
net = CircuitTemplate(name="net", nodes={n: node for n in names})
rng = np.random.default_rng(7)
weights = rng.uniform(0.0, 2.0, size=(5, 5))
weights[weights < 0.5] = 0.0  # a sparse matrix: PyRates leaves out edges with |w| <= 1e-6
net.add_edges_from_matrix(source_var="qif_op/r", target_var="qif_op/r_in", source_nodes=names, weight=weights)
res, res_map = grid_search(
    net,
    param_grid={"eta": [-6.0, -4.0, -2.0]},
    param_map={"eta": {"vars": ["qif_op/eta"], "nodes": ["n0", "n2"]}},
    step_size=1e-4,
    simulation_time=0.5,
    outputs={"r": "all/qif_op/r"},
    sampling_step_size=1e-3,
    **FORWARD_EULER_FLOAT64,
)
save(res, map=res_map)
