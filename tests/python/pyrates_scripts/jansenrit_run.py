"""PyRates' Jansen-Rit circuit loaded by its dotted name and run once with a constant input
(docs: "Jansen-Rit model"), and once more through ``integrate``. (Forward Euler: PyRates
1.2.3's ``heun`` is only first-order accurate, see test_pyrates_dropin.py.)"""

import sys

import numpy as np
from pyrates import CircuitTemplate, clear, integrate

jrc = CircuitTemplate.from_yaml("model_templates.neural_mass_models.jansenrit.JRC")
T, dt = 1.0, 1e-4
res = jrc.run(
    simulation_time=T,
    step_size=dt,
    sampling_step_size=1e-3,
    solver="euler",
    inputs={"pc/rpo_e_in/u": np.full(int(round(T / dt)), 220.0)},
    outputs={"v_pce": "pc/rpo_e_in/v", "v_pci": "pc/rpo_i/v"},
    float_precision="float64",
    verbose=False,
)
clear(jrc)
res.to_pickle(sys.argv[1])
res2 = integrate(
    "model_templates.neural_mass_models.jansenrit.JRC",
    simulation_time=0.5,
    step_size=dt,
    outputs={"v": "pc/rpo_e_in/v"},
    solver="euler",
    float_precision="float64",
    verbose=False,
)
res2.to_pickle(sys.argv[1] + ".integrate")
