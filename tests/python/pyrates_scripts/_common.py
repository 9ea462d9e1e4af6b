"""What the drop-in scripts share; not a script itself (test_pyrates_dropin.py runs the files
without a leading underscore). Plain Python with no PyRates import, so both runs of a script —
under PyRates 1.2.3 and with the import changed to rustrates.pyrates — import it as it stands.
Other code integrating the same way imports it too (bench_network_pyrates.py's PyRates run,
test_connectivity.py)."""

import sys

#: The QIF population of PyRates' docs ("Model definition in Python"), as equations and
#: variables for an OperatorTemplate named qif_op.
QIF_EQUATIONS = [
    "d/dt * r = (Delta/(pi*tau) + 2.0*r*v) / tau",
    "d/dt * v = (v^2 + eta + I_ext + (r_in*J - pi*r*tau)*tau) / tau",
]
QIF_VARIABLES = {
    "r": "output(0.01)",
    "v": "variable(-2.0)",
    "Delta": 1.0,
    "tau": 1.0,
    "eta": -5.0,
    "J": 15.0,
    "I_ext": "input(0.0)",
    "r_in": "input(0.0)",
}


def qif_pair_edges(delay: float | None = None) -> list:
    """The edges of two QIF populations p1 and p2 (qif_op above): p1 excites p2 (weight 2), p2
    inhibits p1 (weight -1, after ``delay`` seconds if given)."""
    back = {"weight": -1.0} if delay is None else {"weight": -1.0, "delay": delay}
    return [("p1/qif_op/r", "p2/qif_op/r_in", None, {"weight": 2.0}), ("p2/qif_op/r", "p1/qif_op/r_in", None, back)]


#: How every script integrates: forward Euler in float64 (PyRates' default float32 would round
#: the two tools apart), quietly. Both tools then differ only by the order of operations.
FORWARD_EULER_FLOAT64 = dict(solver="euler", float_precision="float64", verbose=False)


def save(frame, **more) -> None:
    """Pickles ``frame`` to sys.argv[1] and each of ``more`` to sys.argv[1] + '.' + its
    keyword: the files test_pyrates_dropin.py compares between the two runs."""
    frame.to_pickle(sys.argv[1])
    for suffix, other in more.items():
        other.to_pickle(f"{sys.argv[1]}.{suffix}")
