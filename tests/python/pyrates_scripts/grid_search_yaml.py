"""grid_search over PyRates' own QIF template (docs: "Parameter sweeps"): excitability on a
node and the recurrent coupling on its edge, named by the edge's variable paths."""

from _common import FORWARD_EULER_FLOAT64, save
from pyrates import CircuitTemplate, grid_search

qif = CircuitTemplate.from_yaml("model_templates.neural_mass_models.qif.qif")
res, res_map = grid_search(
    qif,
    param_grid={"eta": [-5.0, -2.0, 0.0], "J": [5.0, 15.0]},
    param_map={
        "eta": {"vars": ["qif_op/eta"], "nodes": ["p"]},
        "J": {"vars": ["weight"], "edges": [("p/qif_op/r", "p/qif_op/r_in")]},
    },
    step_size=1e-4,
    simulation_time=1.0,
    outputs={"r": "p/qif_op/r", "v": "p/qif_op/v"},
    sampling_step_size=1e-3,
    permute_grid=True,
    vectorize=True,
    **FORWARD_EULER_FLOAT64,
)
save(res, map=res_map)
