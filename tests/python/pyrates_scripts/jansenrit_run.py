"""PyRates' Jansen-Rit circuit loaded by its dotted name and run once with a constant input
(docs: "Jansen-Rit model"), and once more through ``integrate``. (Forward Euler: PyRates
1.2.3's ``heun`` is only first-order accurate, see test_pyrates_dropin.py.)"""

import numpy as np
from _common import FORWARD_EULER_FLOAT64, save
from pyrates import CircuitTemplate, clear, integrate

jrc = CircuitTemplate.from_yaml("model_templates.neural_mass_models.jansenrit.JRC")
T, dt = 1.0, 1e-4
res = jrc.run(
    simulation_time=T,
    step_size=dt,
    sampling_step_size=1e-3,
    inputs={"pc/rpo_e_in/u": np.full(int(round(T / dt)), 220.0)},
    outputs={"v_pce": "pc/rpo_e_in/v", "v_pci": "pc/rpo_i/v"},
    **FORWARD_EULER_FLOAT64,
)
clear(jrc)
res2 = integrate(
    "model_templates.neural_mass_models.jansenrit.JRC",
    simulation_time=0.5,
    step_size=dt,
    outputs={"v": "pc/rpo_e_in/v"},
    **FORWARD_EULER_FLOAT64,
)
save(res, integrate=res2)
