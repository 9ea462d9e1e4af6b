//! `connectivity:` — edges given as matrices instead of one list entry per edge.
//!
//! ```yaml
//! Net:
//!   base: CircuitTemplate
//!   nodes: {n0: qif_pop, n1: qif_pop, n2: qif_pop}
//!   connectivity:
//!     - source: qif_op/r            # variable of every source node
//!       target: qif_op/r_in         # input of every target node
//!       source_nodes: [n0, n1, n2]
//!       target_nodes: [n0, n1, n2]  # optional: the source nodes
//!       weight: [[0, 1.5, 2], [1, 0, 0.5], [2, 1, 0]]   # or weights.npy; [target][source]
//!       delay: delays.npy           # optional, seconds; a number applies to every edge
//! ```
//!
//! Instead of `delay`, a block may give `lengths` (a matrix like `delay`, any unit) and a
//! `velocity` (that unit per second, > 0): each entry's delay is `length / velocity`
//! ([`crate::model::conduction_delay`]), and the velocity is the parameter `<name>/velocity`,
//! which a sweep sets per lane (every lane then reads its own delays; no recompile).
//!
//! One block stands for the edges `source_nodes[j]/source → target_nodes[i]/target` with
//! `weight[i][j]` (rows are targets, as in PyRates' `add_edges_from_matrix`), in PyRates'
//! order (sources outer, targets inner), leaving out entries with |weight| ≤ `min_weight`
//! (default 0: exact zeros). It builds exactly the edges of that edge list, so results are
//! the same bit for bit. `weight`, `delay`, `spread` and the edge template's variables
//! (under `variables:`) each take a number, an inline list of rows, or the name of a `.npy`
//! file (2-D, as `np.save` writes it: float64, float32 or integers, either byte order, C or
//! Fortran order; relative to the YAML file): binary, so values arrive exactly and an
//! N = 1000 matrix reads in about a millisecond (`template/npy.rs`).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::yaml::Node;
use super::{suggest, Loader, Origin, Template};
use crate::syntax::{Diagnostic, Span};

pub use super::npy::{parse_npy, read_npy};

/// One `connectivity:` block.
#[derive(Clone, Debug)]
pub struct ConnectivityDecl {
    /// Variable path inside each source node (`op/var`).
    pub source: String,
    pub source_span: Span,
    pub target: String,
    pub target_span: Span,
    /// Node paths with the span of each name.
    pub source_nodes: Vec<(String, Span)>,
    pub target_nodes: Vec<(String, Span)>,
    pub template: Option<Rc<Template>>,
    /// `weight` first, then `delay`, `spread` and edge-template variables.
    pub values: Vec<EdgeValues>,
    pub min_weight: f64,
    /// `name:` (default `connectivity<k>`, `k` its place in the list): the block's scale is
    /// the parameter `<name>/scale`.
    pub name: String,
    /// `scale:` — a global coupling: the block's contribution to each target is
    /// `scale · Σ weight · source`, one parameter shared by all its edges (sweepable).
    pub scale: Option<(f64, Span)>,
    /// `velocity:` — with `lengths` (in `values`), delays are `length / velocity`; the
    /// velocity is the sweepable parameter `<name>/velocity`.
    pub velocity: Option<(f64, Span)>,
    pub span: Span,
    /// `Net.connectivity[0]`.
    pub path: String,
}

/// One edge parameter for every (target, source) pair.
#[derive(Clone, Debug)]
pub struct EdgeValues {
    pub key: String,
    pub entries: Entries,
    pub span: Span,
    pub key_span: Span,
}

#[derive(Clone, Debug)]
pub enum Entries {
    /// The same value on every edge.
    Scalar(f64),
    /// Row-major `targets × sources`; shared, not copied, by the circuit's couplings (an
    /// N = 1000 block's weights are 8 MB).
    Matrix(Arc<[f64]>),
}

impl Entries {
    pub fn at(&self, target: usize, source: usize, n_sources: usize) -> f64 {
        match self {
            Entries::Scalar(x) => *x,
            Entries::Matrix(m) => m[target * n_sources + source],
        }
    }
}

impl ConnectivityDecl {
    /// The (target, source) pairs that are edges, in edge order (sources outer).
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (nt, ns) = (self.target_nodes.len(), self.source_nodes.len());
        let weight = &self.values[0].entries;
        (0..ns)
            .flat_map(move |j| (0..nt).map(move |i| (i, j)))
            .filter(move |&(i, j)| {
                // NaN weights are rejected when loading; every kept entry is a number.
                weight.at(i, j, ns).abs() > self.min_weight
            })
    }
}

const KEYS: &[&str] = &[
    "source",
    "target",
    "source_nodes",
    "target_nodes",
    "template",
    "weight",
    "delay",
    "lengths",
    "velocity",
    "spread",
    "variables",
    "min_weight",
    "name",
    "scale",
];

impl Loader<'_> {
    pub(super) fn connectivity_decl(
        &mut self,
        f: usize,
        node: &Node,
        path: &str,
        index: usize,
    ) -> Option<ConnectivityDecl> {
        let Some(map) = node.as_map() else {
            self.diags.push(
                Diagnostic::error(
                    "connectivity/invalid",
                    "a connectivity is a mapping {source, target, source_nodes, weight, ...}",
                )
                .with_span(node.span)
                .with_path(path),
            );
            return None;
        };
        let errors_before = self.error_count();
        for (k, _) in map {
            let Some(ks) = k.as_str() else { continue };
            if !KEYS.contains(&ks) {
                let keys: Vec<String> = KEYS.iter().map(|s| s.to_string()).collect();
                let help = match suggest(ks, &keys) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("connectivity keys are: {}", KEYS.join(", ")),
                };
                self.diags.push(
                    Diagnostic::error("connectivity/unknown-key", format!("unknown connectivity key `{ks}`"))
                        .with_span(k.span)
                        .with_path(path)
                        .with_help(help),
                );
            }
        }
        let text = |this: &mut Self, key: &str| -> Option<(String, Span)> {
            match node.get(key) {
                Some(v) if v.as_str().is_some_and(|s| !s.trim().is_empty()) && !v.is_null() => {
                    Some((v.as_str()?.trim().to_string(), v.span))
                }
                other => {
                    this.diags.push(
                        Diagnostic::error(
                            "connectivity/invalid",
                            format!("`{key}` must name a variable of each node, like `qif_op/r`"),
                        )
                        .with_span(other.map_or(node.span, |v| v.span))
                        .with_path(path),
                    );
                    None
                }
            }
        };
        let source = text(self, "source");
        let target = text(self, "target");
        let source_nodes = self.node_list(node, "source_nodes", path, true);
        let target_nodes = match node.get("target_nodes") {
            Some(v) if !v.is_null() => self.node_list(node, "target_nodes", path, true),
            _ => source_nodes.clone(),
        };
        let template = self.edge_template(node.get("template"), f, path)?;
        let min_weight = match node.get("min_weight") {
            None => 0.0,
            Some(v) => match v.as_f64() {
                Some(x) if x >= 0.0 => x,
                _ => {
                    self.diags.push(
                        Diagnostic::error("connectivity/invalid", "`min_weight` must be a number >= 0")
                            .with_span(v.span)
                            .with_path(path),
                    );
                    0.0
                }
            },
        };
        let name = match node.get("name") {
            None => format!("connectivity{index}"),
            Some(v) => match v.as_str().map(str::trim) {
                Some(s) if !s.is_empty() && !v.is_null() && !s.contains(['/', '.', ' ']) => s.to_string(),
                _ => {
                    self.diags.push(
                        Diagnostic::error(
                            "connectivity/invalid",
                            "`name` must be a word without '/', '.' or spaces, like `C`",
                        )
                        .with_span(v.span)
                        .with_path(path),
                    );
                    String::new()
                }
            },
        };
        let scale = match node.get("scale") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Some((x, v.span)),
                _ => {
                    self.diags.push(
                        Diagnostic::error("connectivity/invalid", "`scale` must be a finite number")
                            .with_span(v.span)
                            .with_path(path)
                            .with_help("the global coupling's value when it is not swept, e.g. `scale: 1.0`"),
                    );
                    None
                }
            },
        };
        let velocity = match node.get("velocity") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => Some((x, v.span)),
                _ => {
                    self.diags.push(
                        Diagnostic::error("connectivity/invalid", "`velocity` must be a finite number > 0")
                            .with_span(v.span)
                            .with_path(path)
                            .with_help(
                                "the conduction velocity in length units per second, e.g. `velocity: 10.0`; \
                                 every delay is length / velocity",
                            ),
                    );
                    None
                }
            },
        };
        let (source_nodes, target_nodes) = (source_nodes?, target_nodes?);
        let shape = (target_nodes.len(), source_nodes.len());
        let mut values = Vec::new();
        let weight = match map.iter().find(|(k, _)| k.as_str() == Some("weight")) {
            Some((k, v)) => self.edge_values(f, "weight", k, v, shape, path),
            None => Some(EdgeValues {
                key: "weight".into(),
                entries: Entries::Scalar(1.0),
                span: node.span,
                key_span: node.span,
            }),
        };
        values.extend(weight);
        for key in ["delay", "lengths", "spread"] {
            if let Some((k, v)) = map.iter().find(|(k, _)| k.as_str() == Some(key)) {
                values.extend(self.edge_values(f, key, k, v, shape, path));
            }
        }
        if let Some(vars) = node.get("variables").filter(|v| !v.is_null()) {
            match vars.as_map() {
                Some(m) => {
                    for (k, v) in m {
                        let Some(ks) = k.as_str() else { continue };
                        if template.is_none() {
                            self.diags.push(
                                Diagnostic::error(
                                    "edge/unknown-parameter",
                                    format!("edge variable `{ks}` needs an edge `template`"),
                                )
                                .with_span(k.span)
                                .with_path(path)
                                .with_help("without a template, a connectivity takes `weight`, `delay` and `spread`"),
                            );
                            continue;
                        }
                        values.extend(self.edge_values(f, ks, k, v, shape, path));
                    }
                }
                None => self.diags.push(
                    Diagnostic::error("connectivity/invalid", "`variables` must be a mapping like {tau: 0.01}")
                        .with_span(vars.span)
                        .with_path(path),
                ),
            }
        }
        let key_span = |key: &str| map.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(k, _)| k.span);
        let spread = values.iter().any(|v| v.key == "spread");
        match (key_span("lengths"), key_span("velocity"), key_span("delay")) {
            (Some(at), _, Some(_)) => self.diags.push(
                Diagnostic::error("connectivity/invalid", "a block gives `lengths` or `delay`, not both")
                    .with_span(at)
                    .with_path(path)
                    .with_help("delays are `lengths / velocity`; drop `delay`, or drop `lengths` and `velocity`"),
            ),
            (Some(at), None, None) => self.diags.push(
                Diagnostic::error("connectivity/invalid", "`lengths` needs a `velocity`")
                    .with_span(at)
                    .with_path(path)
                    .with_help("add `velocity: <length units per second>`; each delay is length / velocity"),
            ),
            (None, Some(at), _) => self.diags.push(
                Diagnostic::error("connectivity/invalid", "`velocity` needs `lengths`")
                    .with_span(at)
                    .with_path(path)
                    .with_help("give the connection lengths as a matrix (or `.npy` file) under `lengths:`"),
            ),
            (Some(at), Some(_), None) if spread => self.diags.push(
                Diagnostic::error("connectivity/invalid", "`lengths` cannot be combined with `spread`")
                    .with_span(at)
                    .with_path(path)
                    .with_help("gamma-distributed delays need `delay` and `spread` per entry"),
            ),
            _ => {}
        }
        let delay = values.iter().find(|v| v.key == "delay");
        if let Some(spread) = values.iter().find(|v| v.key == "spread") {
            let positive_delay = |i: usize, j: usize| delay.is_some_and(|d| d.entries.at(i, j, shape.1) > 0.0);
            let bad = (0..shape.0)
                .flat_map(|i| (0..shape.1).map(move |j| (i, j)))
                .find(|&(i, j)| spread.entries.at(i, j, shape.1) > 0.0 && !positive_delay(i, j));
            if let Some((i, j)) = bad {
                self.diags.push(
                    Diagnostic::error(
                        "edge/invalid",
                        format!("`spread` needs a positive `delay` (entry [{i}][{j}] has none)"),
                    )
                    .with_span(spread.key_span)
                    .with_path(path),
                );
            }
        }
        if self.error_count() > errors_before {
            return None;
        }
        let (source, source_span) = source?;
        let (target, target_span) = target?;
        Some(ConnectivityDecl {
            source,
            source_span,
            target,
            target_span,
            source_nodes,
            target_nodes,
            template,
            values,
            min_weight,
            name,
            scale,
            velocity,
            span: node.span,
            path: path.to_string(),
        })
    }

    fn node_list(&mut self, node: &Node, key: &str, path: &str, required: bool) -> Option<Vec<(String, Span)>> {
        let bad = |this: &mut Self, span: Span| {
            this.diags.push(
                Diagnostic::error("connectivity/invalid", format!("`{key}` must be a list of node names"))
                    .with_span(span)
                    .with_path(path),
            );
        };
        let Some(v) = node.get(key) else {
            if required {
                bad(self, node.span);
            }
            return None;
        };
        let Some(items) = v.as_seq().filter(|s| !s.is_empty()) else {
            bad(self, v.span);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.as_str() {
                Some(s) if !s.trim().is_empty() && !item.is_null() => out.push((s.trim().to_string(), item.span)),
                _ => {
                    bad(self, item.span);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A number, an inline list of rows, or a `.npy` file, checked against `shape`
    /// (targets, sources): finite everywhere, and ≥ 0 for `delay` and `spread`.
    fn edge_values(
        &mut self,
        f: usize,
        key: &str,
        key_node: &Node,
        v: &Node,
        shape: (usize, usize),
        path: &str,
    ) -> Option<EdgeValues> {
        let nonnegative = matches!(key, "delay" | "spread" | "lengths");
        let bad_value = |x: f64| !x.is_finite() || (nonnegative && x < 0.0);
        let what = if nonnegative {
            "a finite number >= 0"
        } else {
            "a finite number"
        };
        let err = |this: &mut Self, span: Span, msg: String, help: String| {
            this.diags.push(
                Diagnostic::error("connectivity/invalid", msg)
                    .with_span(span)
                    .with_path(path)
                    .with_help(help),
            );
            None
        };
        let shape_help = format!(
            "give {} rows (one per target node) of {} values (one per source node)",
            shape.0, shape.1
        );
        let wrong_length = |what: String, got: usize, items: &str, want: usize, per: &str| {
            format!("{what} has {got} {items}, expected {want} (one per {per} node)")
        };
        let entries = if let Some(x) = v.as_f64() {
            if bad_value(x) {
                return err(self, v.span, format!("`{key}` must be {what}"), shape_help);
            }
            Entries::Scalar(x)
        } else if let Some(rows) = v.as_seq() {
            if rows.len() != shape.0 {
                let msg = wrong_length(format!("`{key}`"), rows.len(), "rows", shape.0, "target");
                return err(self, v.span, msg, shape_help);
            }
            let mut m = Vec::with_capacity(shape.0 * shape.1);
            for (i, row) in rows.iter().enumerate() {
                let Some(cols) = row.as_seq() else {
                    return err(self, row.span, format!("row {i} of `{key}` is not a list"), shape_help);
                };
                if cols.len() != shape.1 {
                    let msg = wrong_length(format!("row {i} of `{key}`"), cols.len(), "values", shape.1, "source");
                    return err(self, row.span, msg, shape_help);
                }
                for (j, c) in cols.iter().enumerate() {
                    match c.as_f64() {
                        Some(x) if !bad_value(x) => m.push(x),
                        _ => {
                            return err(
                                self,
                                c.span,
                                format!("`{key}`[{i}][{j}] must be {what}"),
                                "matrices hold plain numbers; leave out a connection with weight 0".into(),
                            )
                        }
                    }
                }
            }
            Entries::Matrix(m.into())
        } else if let Some(name) = v.as_str().filter(|s| s.trim().ends_with(".npy")) {
            let file = self.beside(f, name.trim());
            let m = match read_npy(&file) {
                Ok((dims, data)) => {
                    if dims != [shape.0, shape.1] {
                        return err(
                            self,
                            v.span,
                            format!(
                                "`{}` has shape {dims:?}, expected [{}, {}]",
                                file.display(),
                                shape.0,
                                shape.1
                            ),
                            shape_help,
                        );
                    }
                    data
                }
                Err(e) => {
                    return err(
                        self,
                        v.span,
                        format!("cannot read `{}`: {e}", file.display()),
                        "write it with numpy: np.save(path, matrix.astype(np.float64))".into(),
                    )
                }
            };
            if let Some(k) = m.iter().position(|&x| bad_value(x)) {
                let (i, j) = (k / shape.1, k % shape.1);
                return err(
                    self,
                    v.span,
                    format!("`{}`[{i}][{j}] = {} must be {what}", file.display(), m[k]),
                    "matrices hold plain numbers; leave out a connection with weight 0".into(),
                );
            }
            Entries::Matrix(m)
        } else {
            return err(
                self,
                v.span,
                format!("`{key}` must be a number, a list of rows or a `.npy` file"),
                shape_help,
            );
        };
        Some(EdgeValues {
            key: key.to_string(),
            entries,
            span: v.span,
            key_span: key_node.span,
        })
    }

    /// A file named in the YAML file `f`: relative to that file's folder.
    fn beside(&self, f: usize, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match &self.files[f].origin {
            Origin::Disk(file) => file.parent().map_or_else(|| p.to_path_buf(), |d| d.join(p)),
            Origin::Builtin(_) | Origin::Memory => self.cwd().join(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::test_models::npy_bytes;

    #[test]
    fn npy_reads_c_and_fortran_order_to_the_same_rows() {
        // [[1, 2, 3], [4, 5, 6]]: C order row by row, Fortran order column by column.
        let c = parse_npy(&npy_bytes(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], false)).unwrap();
        let f = parse_npy(&npy_bytes(2, 3, &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0], true)).unwrap();
        assert_eq!(c, (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(f, c);
    }

    #[test]
    fn npy_rejects_other_types_and_short_data() {
        let mut b = npy_bytes(1, 2, &[1.0, 2.0], false);
        let e = parse_npy(&b[..b.len() - 3]).unwrap_err();
        assert!(e.contains("needs 16"), "{e}");
        let at = b.windows(3).position(|w| w == b"<f8").unwrap();
        // Integers and float32 are read (`npy::tests`); complex values are not.
        b[at + 1] = b'c';
        let e = parse_npy(&b).unwrap_err();
        assert!(e.contains("'<c8'"), "{e}");
        assert!(parse_npy(b"hello").is_err());
    }
}
