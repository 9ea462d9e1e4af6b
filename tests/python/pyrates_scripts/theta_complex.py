"""PyRates' theta-neuron mean field (docs: "Theta Neuron Mean-Field Model"): the complex
Kuramoto order parameter z of kmo_theta under a step input, through ``integrate``, and a
``grid_search`` of the Kuramoto mean field kmo_mf over the frequency spread Delta. Both in
``float_precision='complex128'`` (PyRates drops the imaginary parts otherwise) and with forward
Euler instead of the docs' scipy solver, so both tools compute the same recurrence."""

import numpy as np
from _common import save
from pyrates import grid_search, integrate

T, dt = 10.0, 5e-4
start, stop = 2.0, 8.0
steps = int(np.round(T / dt))
I_ext = np.zeros((steps,))
I_ext[int(start / dt) : int(stop / dt)] = 3.0
res = integrate(
    "model_templates.neural_mass_models.theta.kmo_theta",
    step_size=dt,
    simulation_time=T,
    sampling_step_size=1e-2,
    outputs={"z": "p/theta_op/z"},
    inputs={"p/theta_op/I_ext": I_ext},
    clear=True,
    solver="euler",
    float_precision="complex128",
    verbose=False,
)
# |z| as the docs plot it: the synchrony of the population.
pd_abs = np.abs(res)

results, result_map = grid_search(
    "model_templates.oscillators.kuramoto.kmo_mf",
    param_grid={"Delta": [0.5, 1.0, 2.0]},
    param_map={"Delta": {"vars": ["kmo_op/Delta"], "nodes": ["p"]}},
    step_size=1e-3,
    simulation_time=2.0,
    sampling_step_size=1e-2,
    outputs={"z": "p/kmo_op/z"},
    solver="euler",
    float_precision="complex128",
    verbose=False,
)
save(res, abs=pd_abs, grid=results, map=result_map)
