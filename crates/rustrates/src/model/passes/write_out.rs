//! `connectivity:` blocks written out as the edges of their edge list, so one entry can be
//! named and set on its own (`edge:SRC->TGT:IDX/weight` in `param_map`, `update_var`,
//! `jacobian_at`): each entry becomes the edge the equivalent edge list has, with the same
//! name, index and parameters (`weight`, `delay`, the block's `scale`), at the block's place
//! in the edge sequence, so lowering gives the same sums in the same order (bit for bit).

use std::collections::HashMap;

use super::lower_edges::entries_in_edge_order;
use crate::model::ir::{parse_edge_name, Circuit, Declared, Edge, Scale, Var, VarKind};

/// Why a named entry cannot be written out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteOutError {
    #[error(
        "`{name}` is an entry of the block {block}, whose delays are lengths / velocity: name the \
         block's `{block}/velocity` instead, or give that block its delays under `delay:`"
    )]
    Velocity { name: String, block: String },
}

/// The blocks of `c` (unlowered) that have an entry named by one of `names` (edge-list names
/// `edge:S->T:IDX/var`, or `(source_node, target_node, idx)` triples) and no edge of that
/// name already, written out; `None` when no name is such an entry.
pub fn write_out_named(
    c: &Circuit,
    names: &[String],
    triples: &[(String, String, usize)],
) -> Result<Option<Circuit>, WriteOutError> {
    if c.couplings.is_empty() {
        return Ok(None);
    }
    let mut which = Vec::new();
    let parsed = names
        .iter()
        .filter(|n| c.find_var(n).is_none())
        .filter_map(|n| parse_edge_name(n).map(|(s, t, i, _)| (n.clone(), s.to_string(), t.to_string(), i)));
    let given = triples
        .iter()
        .map(|(s, t, i)| (format!("edge:{s}->{t}:{i}"), s.clone(), t.clone(), *i));
    for (name, s, t, i) in parsed.chain(given) {
        let exists = c
            .edges
            .iter()
            .any(|e| e.source_node == s && e.target_node == t && e.idx == i);
        if exists {
            continue;
        }
        if let Some((k, _)) = c.block_entry_named(&s, &t, i) {
            if c.couplings[k].velocity.is_some() {
                return Err(WriteOutError::Velocity {
                    name,
                    block: c.couplings[k].name.clone(),
                });
            }
            if !which.contains(&k) {
                which.push(k);
            }
        }
    }
    if which.is_empty() {
        return Ok(None);
    }
    Ok(Some(write_out(c, &which)))
}

/// `c` (unlowered) with the blocks `which` (indices into `couplings`, none with a velocity)
/// replaced by their edges.
pub fn write_out(c: &Circuit, which: &[usize]) -> Circuit {
    let mut out = c.clone();
    out.edges.clear();
    out.couplings.clear();
    let last = which.iter().copied().max().unwrap_or(0);
    // Edges between each pair of nodes so far: the numbering of `Circuit::block_entry_named`.
    let mut count: HashMap<(String, String), usize> = HashMap::new();
    let node = |v: crate::model::VarId| c.var(v).node.clone().unwrap_or_default();
    // Blocks passed so far: an edge counts for the numbering only before the last block written out.
    let mut blocks_passed = 0;
    for item in c.declaration_order() {
        let k = match item {
            Declared::Edge(pos) => {
                let e = &c.edges[pos];
                if blocks_passed <= last {
                    *count.entry((e.source_node.clone(), e.target_node.clone())).or_insert(0) += 1;
                }
                out.edges.push(e.clone());
                continue;
            }
            Declared::Block(k) => k,
        };
        blocks_passed = k + 1;
        let cp = &c.couplings[k];
        if !which.contains(&k) {
            if k < last {
                for (i, _, j) in entries_in_edge_order(cp) {
                    *count.entry((node(cp.sources[j]), node(cp.targets[i]))).or_insert(0) += 1;
                }
            }
            let mut kept = cp.clone();
            kept.after_edges = out.edges.len();
            out.couplings.push(kept);
            continue;
        }
        let scale = match cp.scale {
            Some(Scale::Param(v)) => Some(v),
            _ => None,
        };
        for (i, e, j) in entries_in_edge_order(cp) {
            let (source_node, target_node) = (node(cp.sources[j]), node(cp.targets[i]));
            let n = count.entry((source_node.clone(), target_node.clone())).or_insert(0);
            let idx = *n;
            *n += 1;
            let mut params = Vec::new();
            let mut param = |out: &mut Circuit, key: &str, value: f64| {
                let id = out.add_var(Var {
                    name: format!("edge:{source_node}->{target_node}:{idx}/{key}"),
                    kind: VarKind::Param,
                    value,
                    node: None,
                    external_input: None,
                    span: cp.span,
                });
                params.push((key.to_string(), id));
            };
            param(&mut out, "weight", cp.weights[e]);
            if let Some(d) = cp.delay(e) {
                param(&mut out, "delay", d);
            }
            if let Some(s) = scale {
                params.push(("scale".into(), s));
            }
            out.edges.push(Edge {
                source_node,
                target_node,
                idx,
                source: cp.sources[j],
                target: cp.targets[i],
                params,
                span: cp.span,
            });
        }
    }
    out
}
