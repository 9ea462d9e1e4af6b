"""PyRates 1.2.3's API on the rustrates engine: ``from pyrates import X`` becomes
``from rustrates.pyrates import X`` and nothing else changes.

    from rustrates.pyrates import CircuitTemplate, NodeTemplate, OperatorTemplate, grid_search

Results use PyRates 1.2.3's layouts: ``CircuitTemplate.run`` returns a frame with one plain
column per output key, or columns ``(key, *node_path, 'op/var')`` where a key covers several
nodes; ``grid_search`` returns ``(results, result_map)`` with columns
``(key, f"{circuit}_{i}", *node_path, 'op/var')``. (``rustrates.utility.grid_search`` keeps the
seed's 0.8 layout; the top-level ``rustrates`` API is unchanged.)

Keywords that only steer PyRates' code generation (``vectorize``, ``verbose``, ``clear``,
``backend`` names such as ``'numpy'``, ``file_name``, ...) are accepted; anything that would
change results and is not supported raises an error naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import _core, _rustrates
from ..template import CircuitTemplate as _EngineCircuit
from ._templates import (
    EdgeTemplate,
    NodeTemplate,
    OperatorTemplate,
    TemplateBuildError,
    YamlWriter,
    _path_reference,
    matrix_edges,
    normalise_edge,
    write_document,
)

__all__ = [
    "CircuitTemplate",
    "EdgeTemplate",
    "NodeTemplate",
    "OperatorTemplate",
    "TemplateBuildError",
    "clear",
    "clear_frontend_caches",
    "grid_search",
    "integrate",
]

#: ``run``/``grid_search`` keywords of PyRates 1.2.3 that pick among its code generators and
#: change no number: accepted and ignored.
RUN_IGNORED_KWARGS = _core.PYRATES_IGNORED_KWARGS


class CircuitTemplate:
    """PyRates 1.x's ``CircuitTemplate``: built in Python (``nodes``, ``edges``, ``circuits``)
    or loaded with :meth:`from_yaml`, then changed with ``update_var``, ``update_template`` and
    ``add_edges_from_matrix`` and simulated with :meth:`run`."""

    def __init__(
        self,
        name: str,
        path: str | None = None,
        description: str = "A circuit template.",
        circuits: Mapping[str, Any] | None = None,
        nodes: Mapping[str, Any] | None = None,
        edges: Sequence[Any] | None = None,
        populations: Any = None,
        connections: Any = None,
    ) -> None:
        if populations is not None or connections is not None:
            raise NotImplementedError(
                "CircuitTemplate(populations=..., connections=...) is not supported yet; "
                "give nodes and edges, or use add_edges_from_matrix"
            )
        if not isinstance(name, str) or not name or "/" in name:
            raise TemplateBuildError(f"CircuitTemplate name must be a non-empty string without '/', got {name!r}")
        self.name = name
        self.path = path
        self.description = description
        self._reference: str | None = None
        self._added_nodes: dict[str, Any] = {}
        self._added_circuits: dict[str, Any] = {}
        self._added_edges: list[tuple[str, str, Any, dict[str, Any]]] = []
        # add_edges_from_matrix blocks, written as the engine's `connectivity:` form.
        self._added_matrices: list[dict[str, Any]] = []
        self._node_vars: dict[str, Any] = {}
        self._edge_vars: dict[tuple[str, str, int, str], float] = {}
        for key, node in (nodes or {}).items():
            if not isinstance(node, (NodeTemplate, str)):
                raise TemplateBuildError(
                    f"CircuitTemplate {name!r}: node {key!r} must be a NodeTemplate or a path, got {node!r}"
                )
            self._added_nodes[str(key)] = node
        for key, circuit in (circuits or {}).items():
            if not isinstance(circuit, (CircuitTemplate, str)):
                raise TemplateBuildError(
                    f"CircuitTemplate {name!r}: circuit {key!r} must be a CircuitTemplate or a path, got {circuit!r}"
                )
            self._added_circuits[str(key)] = circuit
        self._added_edges = [normalise_edge(e) for e in (edges or [])]
        self._engine: _EngineCircuit | None = None
        self._engine_path: str | None = None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> CircuitTemplate:
        """A circuit defined in YAML: dotted (``model_templates.neural_mass_models.qif.qif``)
        or ``file.yaml/Name``. Loaded (and checked) at once."""
        text = os.fspath(path)
        obj = cls(text.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[-1], text)
        obj._reference = _path_reference(text)
        obj._load()
        return obj

    # -- the engine's view -------------------------------------------------------------

    def _document_path(self) -> str:
        if self._reference and not (
            self._added_edges or self._added_matrices or self._added_nodes or self._added_circuits
        ):
            return self._reference
        writer = YamlWriter()
        key = writer.circuit(self)
        return f"{write_document(writer.doc)}/{key}"

    def _load(self) -> _EngineCircuit:
        path = self._document_path()
        if self._engine is None or self._engine_path != path:
            self._engine = _EngineCircuit(path, _rustrates.load_circuit(path))
            self._engine_path = path
        return self._engine

    def _changed(self) -> None:
        self._engine = None

    @property
    def nodes(self) -> dict[str, Any]:
        """``{node: template}`` of the circuit's own level, as built in Python."""
        return dict(self._added_nodes)

    @property
    def circuits(self) -> dict[str, Any]:
        return dict(self._added_circuits)

    @property
    def edges(self) -> list[tuple[str, str, Any, dict[str, Any]]]:
        """The edges added in Python, those of ``add_edges_from_matrix`` spelled out one by one
        (built only when asked for: the engine reads the matrices as they are)."""
        return list(self._added_edges) + [e for block in self._added_matrices for e in matrix_edges(block)]

    def get_nodes(
        self, node_identifier: str | Sequence[str], var_identifier: tuple[str, str] | None = None
    ) -> list[str]:
        """Node keys (``'c1/p'`` for nested circuits) matching ``node_identifier`` (a key, a
        path, or ``'all'`` at any level), optionally only those with operator variable
        ``var_identifier = (op, var)``."""
        parts = node_identifier.split("/") if isinstance(node_identifier, str) else list(node_identifier)
        flat = self._load()
        matches = []
        for node in flat.nodes:
            levels = node.split("/")
            if len(parts) == 1 and parts[0] == "all":
                ok = True
            elif len(parts) != len(levels):
                ok = False
            else:
                ok = all(p in ("all", level) for p, level in zip(parts, levels))
            if ok and var_identifier is not None:
                op, var = var_identifier
                ok = any(v["name"] == f"{node}/{op}/{var}" for v in flat.variables)
            if ok:
                matches.append(node)
        return matches

    def get_var(self, var: str) -> list[dict[str, Any]]:
        """The variables ``'node/op/var'`` names (``node`` may be ``all``): one dict per node
        with its kind and value."""
        *node, op, name = var.split("/")
        nodes = set(self.get_nodes(node or ["all"], (op, name)))
        return [v for v in self._load().variables if v["node"] in nodes and v["name"] == f"{v['node']}/{op}/{name}"]

    # -- changes -----------------------------------------------------------------------

    def update_template(
        self,
        name: str | None = None,
        path: str | None = None,
        description: str | None = None,
        circuits: Mapping[str, Any] | None = None,
        nodes: Mapping[str, Any] | None = None,
        edges: Sequence[Any] | None = None,
        in_place: bool = False,
    ) -> CircuitTemplate:
        """Adds nodes, circuits and edges (PyRates 1.x): in place or to a copy."""
        target = self if in_place else self._copy()
        if name is not None:
            target.name = name
        if path is not None:
            target.path = path
        if description is not None:
            target.description = description
        extra = CircuitTemplate(target.name, circuits=circuits, nodes=nodes, edges=edges)
        target._added_nodes.update(extra._added_nodes)
        target._added_circuits.update(extra._added_circuits)
        target._added_edges.extend(extra._added_edges)
        target._changed()
        return target

    def _copy(self) -> CircuitTemplate:
        other = CircuitTemplate.__new__(CircuitTemplate)
        other.__dict__.update(self.__dict__)
        other._added_nodes = dict(self._added_nodes)
        other._added_circuits = dict(self._added_circuits)
        other._added_edges = list(self._added_edges)
        other._added_matrices = list(self._added_matrices)
        other._node_vars = dict(self._node_vars)
        other._edge_vars = dict(self._edge_vars)
        other._engine = None
        return other

    def update_var(
        self, node_vars: Mapping[str, Any] | None = None, edge_vars: Sequence[Any] | None = None
    ) -> CircuitTemplate:
        """Sets variable values in place and returns the template (PyRates 1.x):
        ``node_vars={'p/qif_op/eta': -3.0}`` (``all/...`` for every node; an array gives one
        value per node, in node order),
        ``edge_vars=[(source, target, {'weight': 2.0})]`` with node or variable paths."""
        for key, value in (node_vars or {}).items():
            arr = np.asarray(value)
            if len(str(key).split("/")) < 3:
                raise TemplateBuildError(f"update_var: node_vars keys are 'node/op/var', got {key!r}")
            if arr.ndim != 0 and np.iscomplexobj(arr):
                raise TemplateBuildError(
                    f"update_var: node_vars[{key!r}] is a complex array; set each node's complex value by its own path"
                )
            if arr.ndim != 0:
                # One value per node the key names (PyRates: `val[i]` for its i-th node); the
                # engine's template checks the length against those nodes when it is built.
                self._node_vars[str(key)] = arr.astype(np.float64)
            elif np.iscomplexobj(arr):
                # The engine holds a complex variable as its two parts (`var.real`, `var.imag`).
                self._node_vars[f"{key}.real"] = float(arr.real)
                self._node_vars[f"{key}.imag"] = float(arr.imag)
            else:
                self._node_vars[str(key)] = float(arr.astype(np.float64))
        for edge in edge_vars or []:
            if len(edge) == 3:
                source, target, values = edge
                idx = 0
            elif len(edge) == 4:
                source, target, idx, values = edge
            else:
                raise TemplateBuildError(
                    f"update_var: edge_vars entries are (source, target[, idx], {{var: value}}), got {edge!r}"
                )
            for var, value in values.items():
                self._edge_vars[(str(source), str(target), int(idx), str(var))] = float(value)
        return self

    def add_edges_from_matrix(
        self,
        source_var: str,
        target_var: str,
        source_nodes: Sequence[str],
        target_nodes: Sequence[str] | None = None,
        weight: Any = None,
        template: Any = None,
        edge_attr: Mapping[str, Any] | None = None,
        min_weight: float = 1e-6,
        *,
        name: str | None = None,
        scale: float | None = None,
    ) -> None:
        """Edges from every source node's ``source_var`` ('op/var') to every target node's
        ``target_var``, with ``weight[target, source]`` (default 1) and ``edge_attr`` values
        that are matrices of the same shape or numbers; edges whose |weight| is at most
        ``min_weight`` are left out, as PyRates does. The matrices reach the engine as one
        ``connectivity:`` block (no edge list of N² entries); the engine checks them and builds
        the same edges, in PyRates' order, as the edge list would. rustrates' additions:
        ``scale`` makes the block's sum ``scale * (W @ source)``, a global coupling swept as
        ``param_map={'G': {'vars': [f'{name}/scale']}}`` (``name`` defaults to
        ``connectivity<k>``, k the block's place in the circuit)."""
        targets = [str(t) for t in (source_nodes if target_nodes is None else target_nodes)]
        sources = [str(s) for s in source_nodes]
        w = np.ones((len(targets), len(sources))) if weight is None else np.asarray(weight, dtype=np.float64)
        if w.shape != (len(targets), len(sources)):
            raise TemplateBuildError(
                f"add_edges_from_matrix: weight has shape {w.shape}; expected (targets, sources) = "
                f"({len(targets)}, {len(sources)})"
            )
        block: dict[str, Any] = {"source": str(source_var), "target": str(target_var), "source_nodes": sources}
        if target_nodes is not None:
            block["target_nodes"] = targets
        if template is not None:
            if not isinstance(template, (EdgeTemplate, str)):
                raise TemplateBuildError(
                    f"add_edges_from_matrix: template must be an EdgeTemplate, a path or None, got {template!r}"
                )
            block["template"] = template
        block["weight"] = w.tolist()
        variables: dict[str, Any] = {}
        for key, value in (edge_attr or {}).items():
            arr = np.asarray(value)
            if arr.ndim >= 2:
                if tuple(arr.shape[:2]) != w.shape:
                    raise TemplateBuildError(
                        f"add_edges_from_matrix: edge_attr[{key!r}] has shape {arr.shape}; expected {w.shape}"
                    )
                entry: Any = np.asarray(arr, dtype=np.float64).tolist()
            elif arr.ndim == 0 and np.issubdtype(arr.dtype, np.number):
                entry = float(arr)
            else:
                # A wiring such as {'tpl/op/in': 'source'} has no matrix form: spelled out.
                self._add_matrix_as_edges(block, edge_attr or {}, template, min_weight)
                return
            if key in ("delay", "spread"):
                block[key] = entry
            else:
                variables[str(key)] = entry
        if variables:
            block["variables"] = variables
        block["min_weight"] = float(min_weight)
        if name is not None:
            block["name"] = str(name)
        if scale is not None:
            block["scale"] = float(scale)
        self._added_matrices.append(block)
        self._changed()

    def _add_matrix_as_edges(
        self, block: dict[str, Any], edge_attr: Mapping[str, Any], template: Any, min_weight: float
    ) -> None:
        w = np.asarray(block["weight"])
        edges = []
        for i, source in enumerate(block["source_nodes"]):
            for j, target in enumerate(block.get("target_nodes", block["source_nodes"])):
                if abs(w[j, i]) > min_weight:
                    attrs = {"weight": float(w[j, i])}
                    for key, value in edge_attr.items():
                        attrs[key] = value[j, i] if np.ndim(value) >= 2 else value
                    edges.append((f"{source}/{block['source']}", f"{target}/{block['target']}", template, attrs))
        self.update_template(edges=edges, in_place=True)

    def clear(self) -> None:
        """Nothing to clean: rustrates writes no build files (PyRates 1.x compatibility)."""

    # -- running -----------------------------------------------------------------------

    def _overrides(self) -> _EngineCircuit:
        engine = self._load()
        edge_vars = [(s, t, i, {v: value}) for (s, t, i, v), value in self._edge_vars.items()]
        return engine.update_var(node_vars=self._node_vars, edge_vars=edge_vars)

    def run(
        self,
        simulation_time: float,
        step_size: float,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, str] | Sequence[str] | None = None,
        sampling_step_size: float | None = None,
        cutoff: float | None = 0.0,
        solver: str = "euler",
        backend: str | None = None,
        vectorize: bool = True,
        verbose: bool = True,
        clear: bool = True,
        in_place: bool | None = True,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Simulates the circuit once; PyRates 1.2.3's frame: time index, a plain column per
        output key, or ``(key, *node_path, 'op/var')`` columns where a key covers several
        nodes."""
        del vectorize, verbose, clear, in_place
        outs = _outputs_dict(outputs)
        engine = self._overrides()
        grid_df, pmap = engine._grid()
        res = _execute(
            "run",
            engine.path,
            grid_df,
            pmap,
            simulation_time,
            step_size,
            inputs,
            outs,
            sampling_step_size,
            cutoff,
            solver,
            backend,
            kwargs,
        )
        return _run_frame(res, outs)


def _outputs_dict(outputs: Any) -> dict[str, str]:
    if outputs is None:
        raise _core.argument_error("outputs", "outputs is required: a dict key -> 'node/op/var'")
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, Mapping):
        # PyRates' list form names each output by its path.
        outputs = {str(path): str(path) for path in outputs}
    return _core.make_outputs(outputs)


def _execute(
    front: str,
    template: str,
    grid_df: pd.DataFrame,
    pmap: Mapping[str, Any],
    simulation_time: Any,
    step_size: Any,
    inputs: Any,
    outputs: dict[str, str],
    sampling_step_size: Any,
    cutoff: Any,
    solver: Any,
    backend: Any,
    kwargs: Mapping[str, Any],
    permute_grid: bool = False,
) -> dict[str, Any]:
    req = _core.build_request(
        front,
        template,
        grid_df,
        pmap,
        permute_grid=permute_grid,
        simulation_time=simulation_time,
        step_size=step_size,
        inputs=inputs,
        outputs=outputs,
        sampling_step_size=sampling_step_size,
        cutoff=cutoff,
        solver=solver,
        backend=backend,
        extra=kwargs,
        # PyRates 1.2.3 computes in float32 unless told otherwise; so does its drop-in.
        default_precision="float32",
    )
    res = _core.execute(req)
    _core.warn_status(res)
    if req.precision == "float32":
        # The engine hands float32 runs over widened to float64 (exactly); PyRates' frames
        # are float32 then.
        res = dict(res, traces=np.asarray(res["traces"], dtype=np.float32))
    return _complex_columns(res)


def _complex_columns(res: dict[str, Any]) -> dict[str, Any]:
    """The engine returns a complex output as two columns, ``key.real`` then ``key.imag``;
    PyRates returns it as one complex column, and its frame is complex as a whole (it
    computes every variable in ``float_precision='complex128'``, which complex models need),
    so with any complex output every column is complex here (complex64 in float32)."""
    columns = res["columns"]
    if not any(key.endswith(".imag") for _node, key in columns):
        return res
    traces = np.asarray(res["traces"])
    dtype = np.complex64 if traces.dtype == np.float32 else np.complex128
    merged: list[tuple[str, str]] = []
    parts: list[np.ndarray] = []
    i = 0
    while i < len(columns):
        node, key = columns[i]
        base = key.removesuffix(".real")
        if key != base and i + 1 < len(columns) and tuple(columns[i + 1]) == (node, f"{base}.imag"):
            parts.append(traces[..., i] + 1j * traces[..., i + 1])
            merged.append((node, base))
            i += 2
        else:
            parts.append(traces[..., i].astype(dtype))
            merged.append((node, key))
            i += 1
    return dict(res, columns=merged, traces=np.stack(parts, axis=-1).astype(dtype))


def _op_var(path: str) -> str:
    return "/".join(path.split("/")[-2:])


def _run_frame(res: Mapping[str, Any], outputs: Mapping[str, str]) -> pd.DataFrame:
    traces = np.asarray(res["traces"][0])
    # (column, element) per key: the engine names a vector variable's elements `key[i]`.
    per_key: dict[str, list[tuple[int, int | None]]] = {key: [] for key in outputs}
    for i, (_node, key) in enumerate(res["columns"]):
        element = _ELEMENT.fullmatch(key)
        if key not in per_key and element is not None:
            per_key[element.group(1)].append((i, int(element.group(2))))
        else:
            per_key[key].append((i, None))
    elements = [el for idx in per_key.values() for _, el in idx]
    vectors = any(el is not None for el in elements)
    # PyRates labels a vector's columns (key, i); next to a scalar's (key, nan), i is a float.
    with_scalars = vectors and None in elements
    columns: list[Any] = []
    order: list[int] = []
    multi = vectors
    for key, idx in per_key.items():
        nodes = {res["columns"][i][0] for i, _ in idx}
        for i, el in idx:
            order.append(i)
            if len(nodes) > 1:
                multi = True
                node = res["columns"][i][0]
                columns.append((key, *node.split("/"), _op_var(outputs[key]), *(() if el is None else (el,))))
            elif vectors:
                label: Any = float("nan") if el is None else (float(el) if with_scalars else el)
                columns.append((key, label))
            else:
                columns.append(key)
    index = pd.Index(np.asarray(res["time"], dtype=np.float64))
    cols: Any = pd.MultiIndex.from_tuples(columns) if multi else pd.Index(columns)
    return pd.DataFrame(traces[:, order], index=index, columns=cols)


_ELEMENT = re.compile(r"(.*)\[(\d+)\]")


# ---------------------------------------------------------------------------------------
# module functions


def grid_search(
    circuit_template: CircuitTemplate | str,
    param_grid: Any,
    param_map: Mapping[str, Any],
    step_size: float,
    simulation_time: float,
    outputs: Mapping[str, str],
    inputs: Mapping[str, Any] | None = None,
    sampling_step_size: float | None = None,
    permute_grid: bool = False,
    **kwargs: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PyRates 1.2.3's ``grid_search``: one circuit (a path or a :class:`CircuitTemplate`)
    simulated at every point of ``param_grid``, in one compiled run.

    Returns ``(results, result_map)``: results with columns
    ``(key, f"{circuit}_{i}", *node_path, 'op/var')``, result_map the linearised grid
    indexed by those circuit labels. ``kwargs`` are ``run``'s (``solver``, ``backend``,
    ``cutoff``, ...)."""
    template = (
        CircuitTemplate.from_yaml(circuit_template)
        if isinstance(circuit_template, (str, os.PathLike))
        else circuit_template
    )
    if not isinstance(template, CircuitTemplate):
        raise TypeError(f"circuit_template must be a template path or a CircuitTemplate, got {type(template).__name__}")
    solver = kwargs.pop("solver", "euler")
    backend = kwargs.pop("backend", None)
    cutoff = kwargs.pop("cutoff", 0.0)
    outs = _outputs_dict(outputs)

    engine = template._overrides()
    override_df, override_map = engine._grid()
    # The engine linearises the grid (PyRates' order: the first key varies fastest); values set
    # with update_var join it as keys of one value that hold at every point.
    if isinstance(param_grid, pd.DataFrame):
        grid: Any = param_grid.copy()
        grid.columns = [str(k) for k in grid.columns]
        keys = list(grid.columns)
        for key in override_map:
            grid[f"__update_var_{key}"] = float(override_df[key].iloc[0])
    elif isinstance(param_grid, Mapping):
        keys = [str(k) for k in param_grid]
        grid = {str(k): v for k, v in param_grid.items()}
        points = 1 if permute_grid or not grid else len(np.atleast_1d(next(iter(grid.values()))))
        for key in override_map:
            grid[f"__update_var_{key}"] = [float(override_df[key].iloc[0])] * (1 if permute_grid else points)
    else:
        raise TypeError(
            f"param_grid must be a dict of value lists or a pandas DataFrame, got {type(param_grid).__name__}"
        )
    pmap = {k: param_map[k] for k in keys if k in param_map}
    pmap.update({f"__update_var_{key}": entry for key, entry in override_map.items()})
    res = _execute(
        "grid_search",
        engine.path,
        grid,
        pmap,
        simulation_time,
        step_size,
        inputs,
        outs,
        sampling_step_size,
        cutoff,
        solver,
        backend,
        kwargs,
        permute_grid=permute_grid,
    )

    point_names = param_grid.index if isinstance(param_grid, pd.DataFrame) else range(len(res["labels"]))
    labels = [f"{template.name}_{i}" for i in point_names]
    result_map = _core.result_map_frame(res)[keys]
    result_map.index = labels
    return _grid_frame(res, outs, labels), result_map


def _grid_frame(res: Mapping[str, Any], outputs: Mapping[str, str], labels: Sequence[str]) -> pd.DataFrame:
    traces = np.asarray(res["traces"])  # (points, time, columns)
    columns: list[tuple[str, ...]] = []
    picks: list[tuple[int, int]] = []
    for key, path in outputs.items():
        for p, label in enumerate(labels):
            for c, (node, col_key) in enumerate(res["columns"]):
                if col_key == key:
                    columns.append((key, label, *node.split("/"), _op_var(path)))
                    picks.append((p, c))
    data = np.empty((traces.shape[1], len(picks)), dtype=traces.dtype)
    for j, (p, c) in enumerate(picks):
        data[:, j] = traces[p, :, c]
    index = pd.Index(np.asarray(res["time"], dtype=np.float64))
    return pd.DataFrame(data, index=index, columns=pd.MultiIndex.from_tuples(columns))


def integrate(circuit: CircuitTemplate | str, **kwargs: Any) -> pd.DataFrame:
    """``CircuitTemplate.from_yaml(circuit).run(**kwargs)`` for a path, ``circuit.run`` for
    a template (PyRates 1.2.3)."""
    template = CircuitTemplate.from_yaml(circuit) if isinstance(circuit, (str, os.PathLike)) else circuit
    return template.run(**kwargs)


def clear(model: Any, **kwargs: Any) -> None:
    """PyRates removes its generated build files; rustrates writes none, so this does nothing."""
    del model, kwargs


def clear_frontend_caches(clear_template_cache: bool = True, clear_ir_cache: bool = True) -> None:
    """PyRates' template caches; rustrates loads templates per call, so this does nothing."""
    del clear_template_cache, clear_ir_cache
