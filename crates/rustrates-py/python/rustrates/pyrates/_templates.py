"""Templates built in Python, PyRates 1.x style, and their YAML.

A circuit built from ``OperatorTemplate``/``NodeTemplate``/``EdgeTemplate``/``CircuitTemplate``
objects is written as one PyRates 1.x YAML document (JSON syntax, which YAML 1.2 reads) into a
content-addressed file, and the engine loads that file like any other template: the same
parser, checks, diagnostics and kernels, and a file the cluster mode can ship to its workers.
Templates loaded with ``from_yaml`` are referred to by their path and never copied.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


class TemplateBuildError(ValueError):
    """A Python-built template that cannot be written as YAML (names, values)."""


def _number_or_text(owner: str, name: str, value: Any) -> Any:
    """Variable definitions as PyRates takes them: a number (constant) or a string such as
    ``'output(0.0)'``, ``'input(0.0)'``, ``'variable(-2.0)'``."""
    if isinstance(value, bool):
        raise TemplateBuildError(
            f"{owner}: variable {name!r} is a bool; give a number or a string such as 'input(0.0)'"
        )
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        # 0.8's verbose form {default: ..., ...} passes through as written.
        return {str(k): _number_or_text(owner, f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, (complex, np.complexfloating)):
        # A complex constant, as PyRates takes `1j`: written the way YAML templates write it.
        z = complex(value)
        if not (math.isfinite(z.real) and math.isfinite(z.imag)):
            raise TemplateBuildError(f"{owner}: variable {name!r} = {value!r} is not finite")
        return f"{z.real!r}{z.imag:+}j"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TemplateBuildError(
            f"{owner}: variable {name!r} = {value!r} is neither a number nor a string such as 'output(0.0)'"
        ) from None
    if not math.isfinite(number):
        raise TemplateBuildError(f"{owner}: variable {name!r} = {value!r} is not finite")
    return number


def _path_reference(path: str) -> str:
    """A template path as the generated file must name it: dotted paths as they are, file
    paths (``dir/file.yaml/Name``) made absolute so they resolve from the cache folder."""
    file_part, _, name = path.rpartition("/")
    if file_part and (file_part.endswith((".yaml", ".yml")) or os.sep in file_part):
        return f"{os.path.abspath(file_part)}/{name}"
    return path


class _Template:
    """What the four kinds share: a name, PyRates' ``path`` and ``description``, and either a
    definition given in Python or a reference to a YAML template (``from_yaml``)."""

    kind = "Template"

    def __init__(self, name: str, path: str | None = None, description: str = "") -> None:
        if not isinstance(name, str) or not name or "/" in name or "." in name:
            raise TemplateBuildError(f"{self.kind} name must be a non-empty string without '/' or '.', got {name!r}")
        self.name = name
        self.path = path
        self.description = description
        self._reference: str | None = None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Any:
        """A template defined in YAML (dotted ``model_templates.x.y`` or ``file.yaml/Name``);
        the engine reads it when a circuit using it is loaded."""
        text = os.fspath(path)
        obj = cls.__new__(cls)
        _Template.__init__(obj, text.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[-1], text, "")
        obj._reference = _path_reference(text)
        obj._init_empty()
        return obj

    def _init_empty(self) -> None:  # pragma: no cover - overridden
        pass

    def __repr__(self) -> str:
        where = f"from {self._reference!r}" if self._reference else "built in Python"
        return f"<{self.kind} {self.name!r} {where}>"


class OperatorTemplate(_Template):
    """``OperatorTemplate(name, path, equations=[...], variables={...})`` as in PyRates 1.x.
    Variables: numbers are constants; ``'output(0.0)'``, ``'input(0.0)'``,
    ``'variable(0.0)'`` strings define state/output, input and other variables."""

    kind = "OperatorTemplate"

    def __init__(
        self,
        name: str,
        path: str | None = None,
        equations: Sequence[str] | str | None = None,
        variables: Mapping[str, Any] | None = None,
        description: str = "An operator template.",
    ) -> None:
        super().__init__(name, path, description)
        if isinstance(equations, str):
            equations = [equations]
        self.equations = [str(e) for e in (equations or [])]
        self.variables = {
            str(k): _number_or_text(f"OperatorTemplate {name!r}", k, v) for k, v in (variables or {}).items()
        }

    def _init_empty(self) -> None:
        self.equations, self.variables = [], {}

    def update_template(
        self,
        name: str | None = None,
        path: str | None = None,
        equations: Sequence[str] | None = None,
        variables: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> OperatorTemplate:
        """A new operator with the given parts replaced (``variables`` are merged)."""
        if self._reference:
            raise TemplateBuildError(
                f"{self!r}: update_template on a YAML operator is not supported; derive it in YAML "
                "(base: ..., equations: {replace: ...}) or build it in Python"
            )
        merged = dict(self.variables)
        merged.update(variables or {})
        return OperatorTemplate(
            name or self.name,
            path or self.path,
            list(equations) if equations is not None else self.equations,
            merged,
            description or self.description,
        )

    def _yaml(self) -> dict[str, Any]:
        return {"base": "OperatorTemplate", "equations": list(self.equations), "variables": dict(self.variables)}


class NodeTemplate(_Template):
    """``NodeTemplate(name, path, operators=[op, ...])``; ``operators`` may also map operators
    to value changes, ``{op: {'eta': -3.0}}``. Operators are ``OperatorTemplate`` objects or
    template paths."""

    kind = "NodeTemplate"

    def __init__(
        self,
        name: str,
        path: str | None = None,
        operators: Sequence[Any] | Mapping[Any, Mapping[str, Any]] | None = None,
        description: str = "A node template.",
    ) -> None:
        super().__init__(name, path, description)
        self.operators: list[tuple[Any, dict[str, Any]]] = []
        if isinstance(operators, Mapping):
            items = [(op, dict(changes or {})) for op, changes in operators.items()]
        else:
            items = [(op, {}) for op in (operators or [])]
        for op, changes in items:
            if not isinstance(op, (OperatorTemplate, str)):
                raise TemplateBuildError(
                    f"{self.kind} {name!r}: operators are OperatorTemplates or template paths, got {op!r}"
                )
            self.operators.append(
                (op, {str(k): _number_or_text(f"{self.kind} {name!r}", k, v) for k, v in changes.items()})
            )

    def _init_empty(self) -> None:
        self.operators = []

    def update_var(self, op: str, var: str, val: Any) -> None:
        """Sets ``op/var`` on this node (PyRates 1.x's ``NodeTemplate.update_var``)."""
        for i, (operator, changes) in enumerate(self.operators):
            if _op_name(operator) == op:
                changes = dict(changes)
                changes[var] = _number_or_text(f"{self.kind} {self.name!r}", var, val)
                self.operators[i] = (operator, changes)
                return
        raise TemplateBuildError(
            f"{self!r} has no operator {op!r} (operators: {[_op_name(o) for o, _ in self.operators]})"
        )


class EdgeTemplate(NodeTemplate):
    """``EdgeTemplate(name, path, operators=[op])``: an edge operator between source and
    target variables, as in PyRates 1.x."""

    kind = "EdgeTemplate"


def _op_name(op: Any) -> str:
    return (
        op.name
        if isinstance(op, OperatorTemplate)
        else str(op).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    )


Edge = tuple[str, str, Any, dict[str, Any]]


def normalise_edge(edge: Any) -> Edge:
    """``(source, target, template, {weight, delay, ...})``; PyRates also takes the
    3-tuple without the template and a dict with those keys."""
    if isinstance(edge, Mapping):
        attrs = dict(edge.get("variables") or {})
        for key in ("weight", "delay", "spread"):
            if key in edge:
                attrs[key] = edge[key]
        edge = (edge["source"], edge["target"], edge.get("template"), attrs)
    if len(edge) == 3:
        source, target, attrs = edge
        template = None
    elif len(edge) == 4:
        source, target, template, attrs = edge
    else:
        raise TemplateBuildError(f"an edge is (source, target, template, {{weight, delay}}), got {edge!r}")
    if template is not None and not isinstance(template, (EdgeTemplate, str)):
        raise TemplateBuildError(
            f"edge {source} -> {target}: the template must be an EdgeTemplate, a path or None, got {template!r}"
        )
    return str(source), str(target), template, dict(attrs or {})


def matrix_edges(block: Mapping[str, Any]) -> list[Edge]:
    """The edges a ``connectivity`` block stands for, as the engine builds them: sources
    outer, targets inner, |weight| > ``min_weight``."""
    sources = block["source_nodes"]
    targets = block.get("target_nodes", sources)

    def at(value: Any, j: int, i: int) -> Any:
        return value[j][i] if isinstance(value, list) else value

    attrs_of = {k: block[k] for k in ("delay", "spread") if k in block}
    attrs_of.update(block.get("variables", {}))
    edges = []
    for i, source in enumerate(sources):
        for j, target in enumerate(targets):
            w = at(block["weight"], j, i)
            if abs(w) > block.get("min_weight", 0.0):
                attrs = {"weight": w}
                attrs.update({k: at(v, j, i) for k, v in attrs_of.items()})
                edges.append(
                    (f"{source}/{block['source']}", f"{target}/{block['target']}", block.get("template"), attrs)
                )
    return edges


class YamlWriter:
    """Collects the Python-built templates a circuit uses into one YAML document."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {}
        self._names: dict[int, str] = {}

    def _key(self, template: _Template, body: dict[str, Any], wanted: str) -> str:
        if id(template) in self._names:
            return self._names[id(template)]
        key, n = wanted, 1
        while key in self.doc and self.doc[key] != body:
            n += 1
            key = f"{wanted}_{n}"
        self.doc[key] = body
        self._names[id(template)] = key
        return key

    def operator(self, op: Any) -> tuple[str, str]:
        """(reference used in the node, operator name)."""
        if isinstance(op, str):
            return _path_reference(op), _op_name(op)
        if op._reference:
            return op._reference, op.name
        body = op._yaml()
        if op.name in self.doc and self.doc[op.name] != body:
            # The operator's name is part of every variable path ('node/op/var'), so two
            # different operators may not share it within one circuit.
            raise TemplateBuildError(
                f"two different OperatorTemplates are named {op.name!r} in this circuit; give them distinct names"
            )
        return self._key(op, body, op.name), op.name

    def node(self, node: Any, kind: str = "NodeTemplate") -> str:
        if isinstance(node, str):
            return _path_reference(node)
        if node._reference:
            return node._reference
        operators: dict[str, Any] = {}
        for op, changes in node.operators:
            ref, _name = self.operator(op)
            operators[ref] = dict(changes) if changes else None
        if all(v is None for v in operators.values()):
            body: dict[str, Any] = {"base": kind, "operators": list(operators)}
        else:
            body = {"base": kind, "operators": {k: (v or {}) for k, v in operators.items()}}
        return self._key(node, body, f"{node.name}_{'edge' if kind == 'EdgeTemplate' else 'node'}")

    def circuit(self, circuit: Any, top: bool = True) -> str:
        """The key of ``circuit`` (a drop-in ``CircuitTemplate``) in the document. The top
        circuit keeps its own name (it labels the grid points, ``f"{name}_{i}"``); a
        sub-circuit used several times is written once, and different sub-circuits that share
        a name get distinct keys."""
        if circuit._reference and not (circuit._added_edges or circuit._added_matrices or circuit._added_nodes):
            return circuit._reference
        if top:
            self.doc[circuit.name] = None  # reserved before the sub-templates take keys
        body: dict[str, Any] = {"base": circuit._reference or "CircuitTemplate"}
        nodes = {key: self.node(n) for key, n in circuit._added_nodes.items()}
        if nodes:
            body["nodes"] = nodes
        circuits = {
            key: self.circuit(c, top=False) if not isinstance(c, str) else _path_reference(c)
            for key, c in circuit._added_circuits.items()
        }
        if circuits:
            body["circuits"] = circuits
        edges = []
        for source, target, template, attrs in circuit._added_edges:
            ref = None if template is None else self.node(template, "EdgeTemplate")
            values = {}
            for k, v in attrs.items():
                if hasattr(v, "item"):
                    v = v.item()
                values[str(k)] = _number_or_text(f"edge {source} -> {target}", k, v)
            edges.append([source, target, ref, values])
        if edges:
            body["edges"] = edges
        blocks = []
        for block in circuit._added_matrices:
            block = dict(block)
            if block.get("template") is not None:
                block["template"] = self.node(block["template"], "EdgeTemplate")
            blocks.append(block)
        if blocks:
            body["connectivity"] = blocks
        if circuit._reference is None and not nodes and not circuits:
            raise TemplateBuildError(f"CircuitTemplate {circuit.name!r} has neither nodes nor circuits")
        if not top:
            return self._key(circuit, body, circuit.name)
        self.doc[circuit.name] = body
        return circuit.name


def cache_folder() -> Path:
    base = os.environ.get("RUSTRATES_TEMPLATE_CACHE")
    folder = Path(base) if base else Path(tempfile.gettempdir()) / f"rustrates-templates-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_document(doc: Mapping[str, Any]) -> Path:
    """The YAML file holding ``doc``, named by its content (the same circuit built twice is
    the same file, so kernels are reused and the cluster mode ships it once)."""
    text = "# Written by rustrates.pyrates from templates built in Python.\n" + json.dumps(doc, indent=1) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    path = cache_folder() / f"circuit_{digest}.yaml"
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path
