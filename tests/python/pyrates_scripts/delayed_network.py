"""Five QIF populations coupled all-to-all with a conduction delay on every edge (docs:
"edges ... delay"), weights and whole-step delays (1 to 40 steps) from a formula, built as an
edge list in Python. The sources start at r = 0, so the history before t = 0 is the same
for both tools (PyRates 1.2.3 starts its delay buffers at zero, rustrates at the initial value),
and every edge is delayed (PyRates' vectorised code delays an undelayed edge by one step)."""

from _common import FORWARD_EULER_FLOAT64, save
from pyrates import CircuitTemplate, NodeTemplate

n, dt = 5, 1e-4
node = NodeTemplate.from_yaml("model_templates.neural_mass_models.qif.qif_pop")
names = [f"n{i}" for i in range(n)]
edges = [
    (
        f"{names[j]}/qif_op/r",
        f"{names[i]}/qif_op/r_in",
        None,
        {"weight": (1.0 + (i * 7 + j * 3) % 5) / (5.0 * n), "delay": (1 + (i * 13 + j * 17) % 40) * dt},
    )
    for i in range(n)
    for j in range(n)
    if i != j
]
net = CircuitTemplate(name="net", nodes={name: node for name in names}, edges=edges)
net.update_var(node_vars={"all/qif_op/r": 0.0, "all/qif_op/eta": -3.0, "n0/qif_op/eta": 2.0})
res = net.run(
    simulation_time=0.5,
    step_size=dt,
    sampling_step_size=1e-3,
    outputs={"r": "all/qif_op/r"},
    **FORWARD_EULER_FLOAT64,
)
save(res)
