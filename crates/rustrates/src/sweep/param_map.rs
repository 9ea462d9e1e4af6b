//! `param_map`: which model variables each grid key writes.
//!
//! Spec form (PyRates'): `{key: {vars: [...], nodes: [...]}}` for node variables, where a var
//! is `Op/var` (that operator) or a bare `var` (every operator of the node that has it), or
//! `{key: {vars: ["weight" | "delay" | ...], edges: [(source, target[, idx])]}}` for edge
//! variables (`idx` counts edges between the same two nodes in template order; omitted = 0).
//! A node may be `all` (every node having the var, at any depth of nested circuits) or a
//! path with `all` at some levels (`c1/all`, `all/p`), PyRates' node identifiers: one grid
//! value then sets the var of a whole population.
//! Without `nodes` or `edges`, each var must be a full path `node/op/var` — or the path of a
//! `connectivity:` block's scale, `name/scale` (a global coupling: one parameter per lane,
//! the block's weights shared by all lanes).
//!
//! Resolution against the circuit happens before anything runs and reports unknown keys,
//! nodes (with the closest name), variables and edges as typed errors.

use indexmap::IndexMap;

use crate::model::{Circuit, VarId, VarKind};

/// One edge named in a `param_map` entry. `source`/`target` are node names (or the full
/// `node/op/var` paths of the edge's source and target variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeRef {
    pub source: String,
    pub target: String,
    pub idx: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapTargets {
    Nodes(Vec<String>),
    Edges(Vec<EdgeRef>),
    /// Vars are full paths.
    Paths,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub vars: Vec<String>,
    pub targets: MapTargets,
}

/// The spec form of `param_map`, keyed by grid key in insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamMap {
    pub entries: IndexMap<String, MapEntry>,
}

impl ParamMap {
    pub fn new() -> ParamMap {
        ParamMap::default()
    }
    /// The map as JSON in PyRates' shape (`{key: {vars, nodes | edges}}`), for settings records.
    pub fn to_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        for (key, e) in &self.entries {
            let mut entry = serde_json::Map::new();
            entry.insert("vars".into(), serde_json::json!(e.vars));
            match &e.targets {
                MapTargets::Nodes(n) => {
                    entry.insert("nodes".into(), serde_json::json!(n));
                }
                MapTargets::Edges(edges) => {
                    let list: Vec<serde_json::Value> = edges
                        .iter()
                        .map(|x| match x.idx {
                            Some(i) => serde_json::json!([x.source, x.target, i]),
                            None => serde_json::json!([x.source, x.target]),
                        })
                        .collect();
                    entry.insert("edges".into(), serde_json::Value::Array(list));
                }
                MapTargets::Paths => {}
            }
            obj.insert(key.clone(), serde_json::Value::Object(entry));
        }
        serde_json::Value::Object(obj)
    }
    /// Adds `{key: {vars}}`: every var a full path (`node/op/var`, `edge:…/weight`, `C/scale`).
    pub fn paths(mut self, key: &str, vars: &[&str]) -> ParamMap {
        self.entries.insert(
            key.to_string(),
            MapEntry {
                vars: vars.iter().map(|s| s.to_string()).collect(),
                targets: MapTargets::Paths,
            },
        );
        self
    }
    /// Adds `{key: {vars, nodes}}`.
    pub fn nodes(mut self, key: &str, vars: &[&str], nodes: &[&str]) -> ParamMap {
        self.entries.insert(
            key.to_string(),
            MapEntry {
                vars: vars.iter().map(|s| s.to_string()).collect(),
                targets: MapTargets::Nodes(nodes.iter().map(|s| s.to_string()).collect()),
            },
        );
        self
    }
    /// Adds `{key: {vars, edges}}`.
    pub fn edges(mut self, key: &str, vars: &[&str], edges: &[(&str, &str, Option<usize>)]) -> ParamMap {
        self.entries.insert(
            key.to_string(),
            MapEntry {
                vars: vars.iter().map(|s| s.to_string()).collect(),
                targets: MapTargets::Edges(
                    edges
                        .iter()
                        .map(|&(s, t, idx)| EdgeRef {
                            source: s.to_string(),
                            target: t.to_string(),
                            idx,
                        })
                        .collect(),
                ),
            },
        );
        self
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamMapError {
    #[error("param_grid key '{key}' has no entry in param_map (param_map has: {})", .known.join(", "))]
    UnknownKey { key: String, known: Vec<String> },
    #[error("param_map['{key}']: unknown node '{node}'{}", suggestion_text(.suggestion))]
    UnknownNode {
        key: String,
        node: String,
        suggestion: Option<String>,
    },
    #[error("param_map['{key}']: node '{node}' has no variable '{var}' (it has: {})", .available.join(", "))]
    VarNotFound {
        key: String,
        node: String,
        var: String,
        available: Vec<String>,
    },
    #[error("param_map['{key}']: no variable '{path}'{}", suggestion_text(.suggestion))]
    PathNotFound {
        key: String,
        path: String,
        suggestion: Option<String>,
    },
    #[error("param_map['{key}']: no edge {from} -> {to} with index {idx}; {}", edge_list(.existing))]
    EdgeNotFound {
        key: String,
        from: String,
        to: String,
        idx: usize,
        existing: Vec<usize>,
    },
    #[error("param_map['{key}']: edge {from} -> {to} [{idx}] has no variable '{var}' (it has: {})", .available.join(", "))]
    EdgeVarNotFound {
        key: String,
        from: String,
        to: String,
        idx: usize,
        var: String,
        available: Vec<String>,
    },
    #[error("param_map['{key}']: '{var}' is computed from other variables ({kind:?}) and cannot be set")]
    NotSettable { key: String, var: String, kind: VarKind },
    #[error("param_map['{key}'] lists no variables")]
    NoVars { key: String },
    #[error("param_map['{key}'] lists no {what}, so sweeping '{key}' would change nothing; name at least one")]
    NoTargets { key: String, what: &'static str },
    #[error("param_map['{key}']: {error}")]
    BlockEntry {
        key: String,
        error: crate::model::passes::WriteOutError,
    },
}

fn suggestion_text(s: &Option<String>) -> String {
    s.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default()
}

fn edge_list(existing: &[usize]) -> String {
    if existing.is_empty() {
        "there is no edge between these nodes".to_string()
    } else {
        format!("existing indices between these nodes: {existing:?}")
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate within a distance of about a third of the name's length.
pub(crate) fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

/// For each grid key (in grid order), the variables of `circuit` it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedMap {
    pub keys: Vec<(String, Vec<VarId>)>,
}

impl ResolvedMap {
    /// Per key, whether it writes any of `vars`.
    pub fn keys_setting(&self, vars: &[VarId]) -> Vec<bool> {
        self.keys
            .iter()
            .map(|(_, ids)| ids.iter().any(|id| vars.contains(id)))
            .collect()
    }
    /// The variable names per key (stable across rewrite passes, unlike ids).
    pub fn names(&self, circuit: &Circuit) -> Vec<(String, Vec<String>)> {
        self.keys
            .iter()
            .map(|(k, ids)| (k.clone(), ids.iter().map(|&id| circuit.var(id).name.clone()).collect()))
            .collect()
    }
}

/// `circuit` with the `connectivity:` blocks written out whose entries `map` names by their
/// edge-list names (`edges: [[src, tgt, idx]]`, or a path `edge:SRC->TGT:IDX/var`), so they
/// resolve as the equivalent edge list's edges (`None`: no such name). Sweeping one entry
/// makes its block edges: the C back end still runs them as loops when their weights stay
/// constant, otherwise as written-out code.
pub fn write_out_named_blocks(map: &ParamMap, circuit: &Circuit) -> Result<Option<Circuit>, ParamMapError> {
    if circuit.couplings.is_empty() {
        return Ok(None);
    }
    let node_of = |name: &str| -> Option<String> {
        if circuit.nodes.iter().any(|n| n == name) {
            return Some(name.to_string());
        }
        circuit.find_var(name).and_then(|v| circuit.var(v).node.clone())
    };
    let mut paths = Vec::new();
    let mut triples = Vec::new();
    // The key each name came from, for the error.
    let mut keys = Vec::new();
    for (key, entry) in &map.entries {
        match &entry.targets {
            MapTargets::Paths => {
                paths.extend(entry.vars.iter().cloned());
                keys.extend(entry.vars.iter().map(|v| (v.clone(), key)));
            }
            MapTargets::Edges(edges) => {
                for e in edges {
                    if let (Some(s), Some(t)) = (node_of(&e.source), node_of(&e.target)) {
                        let idx = e.idx.unwrap_or(0);
                        keys.push((format!("edge:{s}->{t}:{idx}"), key));
                        triples.push((s, t, idx));
                    }
                }
            }
            MapTargets::Nodes(_) => {}
        }
    }
    crate::model::passes::write_out_named(circuit, &paths, &triples).map_err(|error| {
        let crate::model::passes::WriteOutError::Velocity { name, .. } = &error;
        let key = keys.iter().find(|(n, _)| n == name).map_or("", |(_, k)| k.as_str());
        ParamMapError::BlockEntry {
            key: key.to_string(),
            error,
        }
    })
}

/// Resolves `map` for the grid keys `grid_keys` against the unlowered `circuit`.
pub fn resolve(map: &ParamMap, grid_keys: &[String], circuit: &Circuit) -> Result<ResolvedMap, ParamMapError> {
    let mut keys = Vec::with_capacity(grid_keys.len());
    for key in grid_keys {
        let Some(entry) = map.entries.get(key) else {
            return Err(ParamMapError::UnknownKey {
                key: key.clone(),
                known: map.entries.keys().cloned().collect(),
            });
        };
        if entry.vars.is_empty() {
            return Err(ParamMapError::NoVars { key: key.clone() });
        }
        let mut ids = Vec::new();
        match &entry.targets {
            MapTargets::Nodes(nodes) if nodes.is_empty() => {
                return Err(ParamMapError::NoTargets {
                    key: key.clone(),
                    what: "nodes",
                })
            }
            MapTargets::Edges(edges) if edges.is_empty() => {
                return Err(ParamMapError::NoTargets {
                    key: key.clone(),
                    what: "edges",
                })
            }
            MapTargets::Nodes(nodes) => {
                for node in nodes {
                    ids.extend(resolve_nodes(key, node, &entry.vars, circuit)?);
                }
            }
            MapTargets::Edges(edges) => {
                for e in edges {
                    ids.extend(resolve_edge(key, e, &entry.vars, circuit)?);
                }
            }
            MapTargets::Paths => {
                for path in &entry.vars {
                    // A vector variable's path sets all its elements, `path[i]` one.
                    let found = circuit.find_vars(path);
                    if found.is_empty() {
                        return Err(ParamMapError::PathNotFound {
                            key: key.clone(),
                            path: path.clone(),
                            suggestion: closest(path, circuit.vars.iter().map(|v| v.name.as_str())),
                        });
                    }
                    ids.extend(found);
                }
            }
        }
        for &id in &ids {
            let v = circuit.var(id);
            if v.kind == VarKind::Algebraic && v.external_input.is_none() {
                return Err(ParamMapError::NotSettable {
                    key: key.clone(),
                    var: v.name.clone(),
                    kind: v.kind,
                });
            }
        }
        keys.push((key.clone(), ids));
    }
    for extra in map.entries.keys().filter(|k| !grid_keys.contains(k)) {
        log::warn!("param_map key '{extra}' is not in param_grid; it is ignored");
    }
    Ok(ResolvedMap { keys })
}

/// A node entry that names several nodes: `all` (every node, at any depth) or a path with
/// `all` at some levels (`all/p`, `c1/all`: any name at that level), as PyRates'
/// `CircuitTemplate.get_nodes` reads it.
fn is_node_pattern(node: &str) -> bool {
    node.split('/').any(|level| level == "all")
}

/// The circuit's nodes a pattern names, in circuit order.
fn pattern_nodes<'c>(pattern: &str, circuit: &'c Circuit) -> Vec<&'c str> {
    let parts: Vec<&str> = pattern.split('/').collect();
    circuit
        .nodes
        .iter()
        .map(String::as_str)
        .filter(|node| {
            let levels: Vec<&str> = node.split('/').collect();
            parts == ["all"]
                || (parts.len() == levels.len() && parts.iter().zip(&levels).all(|(p, l)| *p == "all" || p == l))
        })
        .collect()
}

/// The variables `var` (`op/var`, or a bare `var`: every operator of the node having it)
/// names on `node`, whose operators are `ops`.
fn node_vars(node: &str, ops: &[String], var: &str, circuit: &Circuit) -> Vec<VarId> {
    // A vector variable names all its elements (`x`), or one (`x[1]`).
    if var.contains('/') {
        circuit.find_vars(&format!("{node}/{var}"))
    } else {
        ops.iter()
            .flat_map(|op| circuit.find_vars(&format!("{node}/{op}/{var}")))
            .collect()
    }
}

/// The `op/var` names a node has, for error messages.
fn available_vars(node: &str, ops: &[String], circuit: &Circuit) -> Vec<String> {
    let prefix = format!("{node}/");
    circuit
        .vars
        .iter()
        .filter_map(|v| v.name.strip_prefix(&prefix))
        .filter(|rest| ops.iter().any(|op| rest.starts_with(&format!("{op}/"))))
        .map(str::to_string)
        .collect()
}

fn operators_of<'c>(node: &str, circuit: &'c Circuit) -> &'c [String] {
    circuit
        .node_operators
        .iter()
        .find(|(n, _)| n == node)
        .map_or(&[], |(_, ops)| ops.as_slice())
}

/// A node entry (a node, or a pattern): each var is set on every named node that has it
/// (PyRates filters the nodes by the variable the same way); a var none of them has is an
/// error.
fn resolve_nodes(key: &str, pattern: &str, vars: &[String], circuit: &Circuit) -> Result<Vec<VarId>, ParamMapError> {
    let mut ids = Vec::new();
    for var in vars {
        for node in nodes_having(key, pattern, var, circuit)? {
            ids.extend(node_vars(&node, operators_of(&node, circuit), var, circuit));
        }
    }
    Ok(ids)
}

/// The nodes a `param_map` node entry (a node, or a pattern with `all`) names that have `var`,
/// in circuit order: a vector of per-node values (PyRates' `update_var` with an array) gives
/// value `i` to node `i`. Errors name the entry as `key`.
pub fn nodes_having(key: &str, node: &str, var: &str, circuit: &Circuit) -> Result<Vec<String>, ParamMapError> {
    let literal = circuit.nodes.iter().any(|n| n == node);
    let candidates: Vec<&str> = if literal || !is_node_pattern(node) {
        vec![node]
    } else {
        pattern_nodes(node, circuit)
    };
    let Some(first) = candidates.first().filter(|n| circuit.nodes.iter().any(|c| c == *n)) else {
        return Err(ParamMapError::UnknownNode {
            key: key.to_string(),
            node: node.to_string(),
            suggestion: (!is_node_pattern(node))
                .then(|| closest(node, circuit.nodes.iter().map(String::as_str)))
                .flatten(),
        });
    };
    let having: Vec<String> = candidates
        .iter()
        .filter(|n| !node_vars(n, operators_of(n, circuit), var, circuit).is_empty())
        .map(|n| n.to_string())
        .collect();
    if having.is_empty() {
        return Err(ParamMapError::VarNotFound {
            key: key.to_string(),
            node: node.to_string(),
            var: var.to_string(),
            available: available_vars(first, operators_of(first, circuit), circuit),
        });
    }
    Ok(having)
}

/// Where the values of an array go (PyRates' `update_var` with an array): the elements
/// `node/var[i]` when `node` names one node whose `var` is a vector variable, else one node
/// each (`nodes_having`, as `node/var`). The caller checks the array's length against them.
pub fn value_targets(key: &str, node: &str, var: &str, circuit: &Circuit) -> Result<Vec<String>, ParamMapError> {
    let nodes = nodes_having(key, node, var, circuit)?;
    if let [only] = nodes.as_slice() {
        let path = format!("{only}/{var}");
        if circuit.find_var(&path).is_none() {
            let n = circuit.find_vars(&path).len();
            if n > 0 {
                return Ok((0..n).map(|i| format!("{path}[{i}]")).collect());
            }
        }
    }
    Ok(nodes.iter().map(|n| format!("{n}/{var}")).collect())
}

fn resolve_edge(key: &str, e: &EdgeRef, vars: &[String], circuit: &Circuit) -> Result<Vec<VarId>, ParamMapError> {
    // An edge is named by its nodes or, as PyRates 1.x names it, by the variable paths it
    // connects. Through an edge operator the IR's source is the operator's output, so there the
    // declared source path (`node/op/var` of the source node) names it.
    let through_operator = |edge: &crate::model::Edge| circuit.var(edge.source).name.starts_with("edge:");
    let src_matches = |edge: &crate::model::Edge| {
        edge.source_node == e.source
            || circuit.var(edge.source).name == e.source
            || (through_operator(edge)
                && e.source
                    .strip_prefix(edge.source_node.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
                && circuit.find_var(&e.source).is_some())
    };
    let tgt_matches =
        |edge: &crate::model::Edge| edge.target_node == e.target || circuit.var(edge.target).name == e.target;
    for name in [&e.source, &e.target] {
        let known = circuit.nodes.iter().any(|n| n == name) || circuit.find_var(name).is_some();
        if !known {
            return Err(ParamMapError::UnknownNode {
                key: key.to_string(),
                node: name.clone(),
                suggestion: closest(name, circuit.nodes.iter().map(String::as_str)),
            });
        }
    }
    let idx = e.idx.unwrap_or(0);
    let between: Vec<&crate::model::Edge> = circuit
        .edges
        .iter()
        .filter(|x| src_matches(x) && tgt_matches(x))
        .collect();
    let Some(edge) = between.iter().find(|x| x.idx == idx) else {
        return Err(ParamMapError::EdgeNotFound {
            key: key.to_string(),
            from: e.source.clone(),
            to: e.target.clone(),
            idx,
            existing: between.iter().map(|x| x.idx).collect(),
        });
    };
    let mut ids = Vec::with_capacity(vars.len());
    for var in vars {
        // An edge operator's own variables (`op/var`) are the edge's too, whether or not the
        // edge's attribute dict set them.
        let operator_prefix = format!("edge:{}->{}:{}/", edge.source_node, edge.target_node, edge.idx);
        let found = edge
            .params
            .iter()
            .find(|(n, _)| n == var)
            .map(|(_, id)| *id)
            .or_else(|| circuit.find_var(&format!("{operator_prefix}{var}")));
        let Some(id) = found else {
            let mut available: Vec<String> = edge.params.iter().map(|(n, _)| n.clone()).collect();
            for v in &circuit.vars {
                if let Some(rest) = v.name.strip_prefix(&operator_prefix) {
                    if v.kind == VarKind::Param && !available.iter().any(|a| a == rest) {
                        available.push(rest.to_string());
                    }
                }
            }
            return Err(ParamMapError::EdgeVarNotFound {
                key: key.to_string(),
                from: e.source.clone(),
                to: e.target.clone(),
                idx,
                var: var.clone(),
                available,
            });
        };
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Edge, Var};

    fn var(c: &mut Circuit, name: &str, kind: VarKind, node: Option<&str>) -> VarId {
        c.add_var(Var {
            name: name.into(),
            kind,
            value: 0.0,
            node: node.map(str::to_string),
            external_input: None,
            span: None,
        })
    }

    /// Two nodes with two operators each and two edges PC -> IIN, one IIN -> PC.
    pub(crate) fn circuit() -> Circuit {
        let mut c = Circuit {
            name: "Net".into(),
            ..Circuit::default()
        };
        c.nodes = vec!["PC".into(), "IIN".into()];
        c.node_operators = vec![
            ("PC".into(), vec!["Op_e".into(), "Pro".into()]),
            ("IIN".into(), vec!["Op_i".into(), "Pro".into()]),
        ];
        var(&mut c, "PC/Op_e/eta", VarKind::Param, Some("PC"));
        var(&mut c, "PC/Op_e/r", VarKind::State, Some("PC"));
        var(&mut c, "PC/Pro/eta", VarKind::Param, Some("PC"));
        var(&mut c, "PC/Pro/m", VarKind::Algebraic, Some("PC"));
        var(&mut c, "IIN/Op_i/eta", VarKind::Param, Some("IIN"));
        var(&mut c, "IIN/Op_i/r", VarKind::State, Some("IIN"));
        var(&mut c, "IIN/Pro/m", VarKind::Algebraic, Some("IIN"));
        for (s, t, idx) in [("PC", "IIN", 0), ("PC", "IIN", 1), ("IIN", "PC", 0)] {
            let w = var(&mut c, &format!("edge:{s}->{t}:{idx}/weight"), VarKind::Param, None);
            let d = var(&mut c, &format!("edge:{s}->{t}:{idx}/delay"), VarKind::Param, None);
            let source = c.find_var(&format!("{s}/Pro/m")).unwrap();
            let target = c.find_var(&format!("{t}/Pro/m")).unwrap();
            c.edges.push(Edge {
                source_node: s.into(),
                target_node: t.into(),
                idx,
                source,
                target,
                params: vec![("weight".into(), w), ("delay".into(), d)],
                span: None,
            });
        }
        c
    }

    fn names(c: &Circuit, r: &ResolvedMap) -> Vec<(String, Vec<String>)> {
        r.names(c)
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn param_map_bare_var_hits_every_operator_having_it() {
        let c = circuit();
        let m = ParamMap::new().nodes("eta", &["eta"], &["PC", "IIN"]);
        let r = resolve(&m, &keys(&["eta"]), &c).unwrap();
        assert_eq!(
            names(&c, &r),
            vec![("eta".into(), keys(&["PC/Op_e/eta", "PC/Pro/eta", "IIN/Op_i/eta"]))]
        );
    }

    #[test]
    fn param_map_op_var_and_edges_resolve_in_grid_order() {
        let c = circuit();
        let m = ParamMap::new()
            .edges(
                "w",
                &["weight", "delay"],
                &[("PC", "IIN", Some(1)), ("IIN", "PC", None)],
            )
            .nodes("eta_pc", &["Op_e/eta", "Op_e/r"], &["PC"]);
        let r = resolve(&m, &keys(&["eta_pc", "w"]), &c).unwrap();
        assert_eq!(
            names(&c, &r),
            vec![
                ("eta_pc".into(), keys(&["PC/Op_e/eta", "PC/Op_e/r"])),
                (
                    "w".into(),
                    keys(&[
                        "edge:PC->IIN:1/weight",
                        "edge:PC->IIN:1/delay",
                        "edge:IIN->PC:0/weight",
                        "edge:IIN->PC:0/delay"
                    ])
                ),
            ]
        );
    }

    /// Four nodes of one template (`p0 … p3`, in circuits `c0`, `c1`) and a node `x` of
    /// another template without `eta`.
    fn population() -> Circuit {
        let mut c = Circuit {
            name: "Pop".into(),
            ..Circuit::default()
        };
        for node in ["c0/p0", "c0/p1", "c1/p2", "c1/p3", "x"] {
            c.nodes.push(node.into());
            let op = if node == "x" { "other" } else { "qif_op" };
            c.node_operators.push((node.into(), vec![op.into()]));
            if node != "x" {
                var(&mut c, &format!("{node}/{op}/eta"), VarKind::Param, Some(node));
            }
            var(&mut c, &format!("{node}/{op}/r"), VarKind::State, Some(node));
        }
        c
    }

    #[test]
    fn param_map_all_names_every_node_having_the_var_as_the_node_list_does() {
        let c = population();
        let listed = ParamMap::new().nodes("eta", &["qif_op/eta"], &["c0/p0", "c0/p1", "c1/p2", "c1/p3"]);
        let listed = resolve(&listed, &keys(&["eta"]), &c).unwrap();
        for nodes in [
            &["all"][..],
            &["all/all"],
            &["c0/all", "c1/all"],
            &["all/p0", "all/p1", "c1/all"],
        ] {
            for var in ["qif_op/eta", "eta"] {
                let m = ParamMap::new().nodes("eta", &[var], nodes);
                let r = resolve(&m, &keys(&["eta"]), &c).unwrap();
                assert_eq!(r, listed, "nodes {nodes:?}, var {var}");
            }
        }
        // `r` is on every node: `all` takes `x` too, `c1/all` only that circuit's nodes.
        let m = ParamMap::new().nodes("r", &["r"], &["all"]);
        assert_eq!(resolve(&m, &keys(&["r"]), &c).unwrap().keys[0].1.len(), 5);
        let m = ParamMap::new().nodes("r", &["r"], &["c1/all"]);
        assert_eq!(
            names(&c, &resolve(&m, &keys(&["r"]), &c).unwrap()),
            vec![("r".into(), keys(&["c1/p2/qif_op/r", "c1/p3/qif_op/r"]))]
        );
    }

    #[test]
    fn nodes_having_lists_a_population_in_circuit_order_for_per_node_values() {
        let c = population();
        assert_eq!(
            nodes_having("k", "all", "qif_op/eta", &c).unwrap(),
            keys(&["c0/p0", "c0/p1", "c1/p2", "c1/p3"])
        );
        assert_eq!(nodes_having("k", "all", "r", &c).unwrap().len(), 5);
        assert_eq!(
            nodes_having("k", "c1/all", "eta", &c).unwrap(),
            keys(&["c1/p2", "c1/p3"])
        );
        assert_eq!(nodes_having("k", "x", "other/r", &c).unwrap(), keys(&["x"]));
        assert!(matches!(
            nodes_having("k", "x", "eta", &c),
            Err(ParamMapError::VarNotFound { ref node, .. }) if node == "x"
        ));
        assert!(matches!(
            nodes_having("k", "c0/p9", "eta", &c),
            Err(ParamMapError::UnknownNode { suggestion: Some(ref s), .. }) if s == "c0/p0"
        ));
    }

    /// Every mistake of a `param_map` names its key and what there is instead: the whole
    /// error compared where it is plain data, its telling fields otherwise. (Six tests before,
    /// one table now; every assertion kept.)
    #[test]
    fn param_map_errors_name_the_key_and_what_there_is() {
        let (c, pop) = (circuit(), population());
        let nodes = |key: &str, vars: &[&str], nodes: &[&str]| ParamMap::new().nodes(key, vars, nodes);
        let edges =
            |key: &str, vars: &[&str], edge: (&str, &str, Option<usize>)| ParamMap::new().edges(key, vars, &[edge]);
        let exact = [
            (
                &c,
                nodes("eta", &["eta"], &["PC"]),
                "tau",
                ParamMapError::UnknownKey {
                    key: "tau".into(),
                    known: keys(&["eta"]),
                },
            ),
            (
                &c,
                nodes("eta", &["eta"], &["PCC"]),
                "eta",
                ParamMapError::UnknownNode {
                    key: "eta".into(),
                    node: "PCC".into(),
                    suggestion: Some("PC".into()),
                },
            ),
            (
                &c,
                nodes("tau", &["Op_e/tau"], &["PC"]),
                "tau",
                ParamMapError::VarNotFound {
                    key: "tau".into(),
                    node: "PC".into(),
                    var: "Op_e/tau".into(),
                    available: keys(&["Op_e/eta", "Op_e/r", "Pro/eta", "Pro/m"]),
                },
            ),
            (
                &c,
                edges("w", &["weight"], ("PC", "IIN", Some(2))),
                "w",
                ParamMapError::EdgeNotFound {
                    key: "w".into(),
                    from: "PC".into(),
                    to: "IIN".into(),
                    idx: 2,
                    existing: vec![0, 1],
                },
            ),
            // A pattern is named as written.
            (
                &pop,
                nodes("tau", &["qif_op/tau"], &["all"]),
                "tau",
                ParamMapError::VarNotFound {
                    key: "tau".into(),
                    node: "all".into(),
                    var: "qif_op/tau".into(),
                    available: keys(&["qif_op/eta", "qif_op/r"]),
                },
            ),
        ];
        for (circuit, m, key, want) in exact {
            assert_eq!(resolve(&m, &keys(&[key]), circuit).unwrap_err(), want);
        }
        let err = resolve(&nodes("eta", &["eta"], &["PCC"]), &keys(&["eta"]), &c).unwrap_err();
        assert!(err.to_string().contains("did you mean 'PC'"), "{err}");
        // (circuit, map, grid key, what the error must show)
        type Telling<'c> = (&'c Circuit, ParamMap, &'c str, fn(&ParamMapError) -> bool);
        let telling: [Telling<'_>; 4] = [
            (
                &c,
                edges("w", &["weight"], ("IIN", "IIN", None)),
                "w",
                |e| matches!(e, ParamMapError::EdgeNotFound { existing, .. } if existing.is_empty()),
            ),
            (
                &c,
                edges("w", &["gain"], ("PC", "IIN", None)),
                "w",
                |e| matches!(e, ParamMapError::EdgeVarNotFound { available, .. } if available == &keys(&["weight", "delay"])),
            ),
            (
                &pop,
                nodes("eta", &["eta"], &["c2/all"]),
                "eta",
                |e| matches!(e, ParamMapError::UnknownNode { node, .. } if node == "c2/all"),
            ),
            // An algebraic is computed, not set.
            (
                &c,
                nodes("m", &["Pro/m"], &["PC"]),
                "m",
                |e| matches!(e, ParamMapError::NotSettable { var, .. } if var == "PC/Pro/m"),
            ),
        ];
        for (circuit, m, key, holds) in telling {
            let err = resolve(&m, &keys(&[key]), circuit).unwrap_err();
            assert!(holds(&err), "{key}: {err:?}");
        }
    }
}
