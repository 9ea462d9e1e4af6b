"""Single simulations: ``CircuitTemplate.from_yaml(path).run(...)`` (PyRates 1.x's API) and
``rustrates.simulate(...)``. A single run is a sweep of one point, so it goes through the
same engine path as ``grid_search``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from . import _core, _rustrates


def _node_var_target(path: str) -> tuple[str, str]:
    """``'node/op/var'`` (nested: ``'sub/node/op/var'``) → (node, 'op/var')."""
    parts = path.split("/")
    if len(parts) < 3:
        raise _core.argument_error("node_vars", f"node_vars key {path!r} must be 'node/op/var' (or 'sub/node/op/var')")
    return "/".join(parts[:-2]), "/".join(parts[-2:])


class CircuitTemplate:
    """A circuit template loaded from YAML, with optional per-variable overrides.

    ``name``, ``nodes`` and ``variables`` describe the flattened circuit; ``dump()`` returns
    its resolved equations and edges.
    """

    def __init__(
        self,
        path: str,
        circuit: Any,
        overrides: Mapping[str, float] | None = None,
        edge_overrides: Mapping[tuple[str, str, int, str], float] | None = None,
    ) -> None:
        self.path = path
        self._circuit = circuit
        self._overrides: dict[str, float] = dict(overrides or {})
        self._edge_overrides: dict[tuple[str, str, int, str], float] = dict(edge_overrides or {})

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> CircuitTemplate:
        """Load ``path``: dotted (``model_templates.montbrio.simple_montbrio.Net3``) or a file
        path with the template name last (``models/net.yaml/Net``). Raises
        :class:`TemplateError`/:class:`EquationError` with file:line:col diagnostics."""
        p = os.fspath(path)
        return cls(p, _rustrates.load_circuit(p))

    @property
    def name(self) -> str:
        return self._circuit.name

    @property
    def nodes(self) -> list[str]:
        return list(self._circuit.nodes)

    @property
    def variables(self) -> list[dict[str, Any]]:
        return list(self._circuit.variables)

    def dump(self) -> str:
        return self._circuit.dump()

    def __repr__(self) -> str:
        return f"CircuitTemplate({self.path!r}, nodes={self.nodes})"

    def update_var(
        self, node_vars: Mapping[str, Any] | None = None, edge_vars: list[tuple[Any, ...]] | None = None
    ) -> CircuitTemplate:
        """A copy with new values: ``node_vars={'PC/Op_e/eta': -3.0}`` (on a state variable:
        its initial value; ``all/op/var`` for every node having it, and with a 1-D array one
        value per such node in ``nodes`` order, as PyRates does; a vector variable takes one
        number for all its elements, an array element by element, ``'p/op/x[1]'`` one) and
        ``edge_vars=[(source_node, target_node, {'weight': 2.0})]`` or
        ``(source_node, target_node, idx, {...})``."""
        overrides = dict(self._overrides)
        for key, value in (node_vars or {}).items():
            node, var = _node_var_target(key)
            arr = np.asarray(value, dtype=float)
            if arr.ndim == 0:
                overrides[str(key)] = float(arr)
                continue
            # One value per element of a vector variable, or per node the key names.
            targets = self._circuit.value_targets(node, var)
            if arr.shape != (len(targets),):
                elements = targets[0].endswith("]")
                names = targets if elements else [t.removesuffix(f"/{var}") for t in targets]
                raise _core.argument_error(
                    "node_vars",
                    f"node_vars[{key!r}] has shape {arr.shape}; {key!r} names {len(targets)} "
                    f"{'elements' if elements else 'nodes'} ({', '.join(names)}): give one number, "
                    f"or an array of {len(targets)} values",
                )
            for target, x in zip(targets, arr.tolist()):
                overrides[target] = x
        edges = {**self._edge_overrides, **edge_var_values(edge_vars)}
        return CircuitTemplate(self.path, self._circuit, overrides, edges)

    def _values(self) -> list[tuple[str, float]]:
        """The overrides as the engine names variables (``node/op/var``,
        ``edge:SRC->TGT:IDX/var``)."""
        values = list(self._overrides.items())
        values += [(f"edge:{src}->{tgt}:{idx}/{var}", v) for (src, tgt, idx, var), v in self._edge_overrides.items()]
        return values

    def get_jacobian_func(self) -> Callable[..., np.ndarray]:
        """The Jacobian of the circuit's right-hand side as a function (PyRates 1.2's
        ``get_jacobian_func``), derived symbolically by the engine.

        The returned ``jac(state=None, params=None, t=0.0)`` gives the ``n × n`` matrix
        ``J[i, j] = ∂(dx_i/dt)/∂x_j``; ``state`` is an array in ``jac.states`` order or a
        mapping ``{'node/op/var': value}`` (unset states: their initial values), ``params``
        a mapping of parameters and inputs (on top of ``update_var``'s values). A circuit
        with delays or noise raises :class:`EquationError` at the offending equation.
        """
        base = self._values()
        circuit = self._circuit
        states, _ = circuit.jacobian(base, 0.0)

        def jac(state: Any = None, params: Mapping[str, float] | None = None, t: float = 0.0) -> np.ndarray:
            values = list(base)
            values += [(str(k), float(v)) for k, v in (params or {}).items()]
            if isinstance(state, Mapping):
                values += [(str(k), float(v)) for k, v in state.items()]
            elif state is not None:
                arr = np.asarray(state, dtype=float).reshape(-1)
                if arr.shape[0] != len(states):
                    raise ValueError(f"state has {arr.shape[0]} values; the circuit has {len(states)} states {states}")
                values += list(zip(states, arr.tolist()))
            _, rows = circuit.jacobian(values, float(t))
            return np.asarray(rows, dtype=float).reshape(len(states), len(states))

        jac.states = list(states)  # type: ignore[attr-defined]
        return jac

    def _grid(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        keys: dict[str, float] = {}
        pmap: dict[str, Any] = {}
        for i, (path, value) in enumerate(self._overrides.items()):
            node, var = _node_var_target(path)
            keys[f"v{i}"] = value
            pmap[f"v{i}"] = {"vars": [var], "nodes": [node]}
        for i, ((src, tgt, idx, var), value) in enumerate(self._edge_overrides.items()):
            keys[f"e{i}"] = value
            pmap[f"e{i}"] = {"vars": [var], "edges": [(src, tgt, idx)]}
        return pd.DataFrame({k: [v] for k, v in keys.items()}, index=[0]), pmap

    def run(
        self,
        simulation_time: float,
        step_size: float,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, str] | None = None,
        solver: str = "euler",
        sampling_step_size: float | None = None,
        backend: str | None = None,
        float_precision: Any = "float64",
        cutoff: float = 0.0,
        rtol: float | None = None,
        atol: float | None = None,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Simulate the circuit once.

        Returns a DataFrame with a time index and one column per output key (or per
        ``(key, node)`` when an ``all/...`` output covers several nodes). ``inputs`` take
        arrays of shape (steps,) or numbers, steps = round(simulation_time / step_size).
        PyRates keywords without meaning here (``vectorize``, ``verbose``, ``clear``, ...)
        are ignored; others are a TypeError.
        """
        # The settings are the request builder's, by the same names (rtol/atol as flat ones).
        named = _core.request_keywords(locals())
        grid_df, pmap = self._grid()
        req = _core.build_request("run", self.path, grid_df, pmap, extra=dict(kwargs, rtol=rtol, atol=atol), **named)
        res = _core.execute(req)
        _core.warn_status(res)
        traces = res["traces"][0]
        names = [key for _, key in res["columns"]]
        if len(set(names)) == len(names):
            columns: Any = pd.Index(names)
        else:
            columns = pd.MultiIndex.from_tuples([(key, node) for node, key in res["columns"]])
        return pd.DataFrame(np.asarray(traces), index=pd.Index(res["time"], name="time"), columns=columns)


def edge_var_values(edge_vars: Any) -> dict[tuple[str, str, int, str], float]:
    """``update_var``'s ``edge_vars`` (``(source, target[, idx], {var: value})`` entries, the
    same for this class and the PyRates drop-in) keyed ``(source, target, idx, var)``."""
    values: dict[tuple[str, str, int, str], float] = {}
    for e in edge_vars or []:
        if len(e) == 3:
            src, tgt, entries = e
            idx = 0
        elif len(e) == 4:
            src, tgt, idx, entries = e
        else:
            raise _core.argument_error(
                "edge_vars", f"edge_vars entries are (source, target[, idx], {{var: value}}), got {e!r}"
            )
        for var, value in entries.items():
            values[(str(src), str(tgt), int(idx), str(var))] = float(value)
    return values


def simulate(
    circuit_template: str | os.PathLike[str],
    simulation_time: float,
    step_size: float,
    *args: Any,
    params: Mapping[str, float] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """One simulation of a template: ``CircuitTemplate.from_yaml(circuit_template)
    .update_var(params).run(simulation_time, step_size, ...)``; the other arguments are
    ``CircuitTemplate.run``'s (``inputs``, ``outputs``, ``solver``, ...), by the same names
    and defaults. ``params`` maps ``'node/op/var'`` to a value."""
    tmpl = CircuitTemplate.from_yaml(circuit_template)
    if params:
        tmpl = tmpl.update_var(node_vars=params)
    return tmpl.run(simulation_time, step_size, *args, **kwargs)


def jacobian(
    circuit_template: str | os.PathLike[str] | CircuitTemplate,
    state: Any = None,
    params: Mapping[str, float] | None = None,
    t: float = 0.0,
) -> np.ndarray:
    """The Jacobian matrix of a template at ``state`` (see
    :meth:`CircuitTemplate.get_jacobian_func`; rows and columns in the order of its
    ``states``)."""
    tmpl = (
        circuit_template
        if isinstance(circuit_template, CircuitTemplate)
        else CircuitTemplate.from_yaml(circuit_template)
    )
    return tmpl.get_jacobian_func()(state, params, t)
