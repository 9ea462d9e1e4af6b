//! Edges → assignments of their target inputs.
//!
//! Every input fed by edges becomes an algebraic variable
//! `target = Σ weight · source(t − delay) + target#ext`, where `target#ext` is a new input
//! (default 0) so the user can still drive it. Weights and delays stay parameters, read by
//! the expression: a sweep changes them per lane without rebuilding. With `spread`, the delay
//! is a gamma chain of n = round((delay/spread)²) first-order states with rate k = n/delay
//! (z₀ = source, zᵢ' = k (zᵢ₋₁ − zᵢ), the edge delivers z_n); n is fixed by the template
//! values, k follows the `delay` parameter.

use std::collections::HashMap;

use crate::model::build::{collect_vars, topo_order};
use crate::model::ir::{Assign, BinOp, Circuit, Expr, ExprId, Ode, Var, VarId, VarKind};

/// Number of gamma-chain stages for a delay and spread (at least 1).
pub fn chain_len(delay: f64, spread: f64) -> usize {
    if !(spread > 0.0) || !(delay > 0.0) {
        return 1;
    }
    ((delay / spread).powi(2).round() as usize).max(1)
}

pub fn lower_edges(c: &Circuit) -> Circuit {
    let mut out = c.clone();
    out.edges.clear();
    let mut order: Vec<VarId> = Vec::new();
    let mut terms: HashMap<VarId, Vec<ExprId>> = HashMap::new();
    for e in &c.edges {
        let param = |k: &str| e.params.iter().find(|(n, _)| n == k).map(|(_, id)| *id);
        let mut src = out.add_expr(Expr::Var(e.source));
        match (param("delay"), param("spread")) {
            (Some(d), Some(s)) if c.var(d).value > 0.0 => {
                let n = chain_len(c.var(d).value, c.var(s).value);
                let base = c.var(d).name.trim_end_matches("/delay").to_string();
                // k = n / delay, recomputed from the lane's delay parameter.
                let nn = out.add_expr(Expr::Const(n as f64));
                let dv = out.add_expr(Expr::Var(d));
                let k = out.add_expr(Expr::Binary(BinOp::Div, nn, dv));
                let init = c.var(e.source).value;
                let mut prev = src;
                for i in 1..=n {
                    let z = out.add_var(Var {
                        name: format!("{base}/z{i}"),
                        kind: VarKind::State,
                        value: init,
                        node: None,
                        external_input: None,
                        span: e.span,
                    });
                    let zv = out.add_expr(Expr::Var(z));
                    let diff = out.add_expr(Expr::Binary(BinOp::Sub, prev, zv));
                    let rhs = out.add_expr(Expr::Binary(BinOp::Mul, k, diff));
                    out.odes.push(Ode { var: z, rhs, span: e.span });
                    prev = out.add_expr(Expr::Var(z));
                }
                src = prev;
            }
            (Some(d), _) => {
                let dv = out.add_expr(Expr::Var(d));
                src = out.add_expr(Expr::Past(e.source, dv));
            }
            _ => {}
        }
        let term = match param("weight") {
            Some(w) => {
                let wv = out.add_expr(Expr::Var(w));
                out.add_expr(Expr::Binary(BinOp::Mul, wv, src))
            }
            None => src,
        };
        if !terms.contains_key(&e.target) {
            order.push(e.target);
        }
        terms.entry(e.target).or_default().push(term);
    }
    for tgt in order {
        let tv = out.var(tgt).clone();
        let ext = out.add_var(Var {
            name: format!("{}#ext", tv.name),
            kind: VarKind::Input,
            value: 0.0,
            node: tv.node.clone(),
            external_input: None,
            span: tv.span,
        });
        let mut rhs = out.add_expr(Expr::Var(ext));
        for t in terms.remove(&tgt).unwrap_or_default() {
            rhs = out.add_expr(Expr::Binary(BinOp::Add, rhs, t));
        }
        // An input already fed inside its node keeps that sum and gets the edges on top.
        if let Some(a) = out.assigns.iter_mut().find(|a| a.var == tgt) {
            a.rhs = out_add(&mut out.exprs, a.rhs, rhs);
        } else {
            out.assigns.push(Assign { var: tgt, rhs, span: tv.span });
        }
        let v = &mut out.vars[tgt.0 as usize];
        v.kind = VarKind::Algebraic;
        v.external_input = Some(ext);
    }
    reorder(&mut out);
    out
}

fn out_add(exprs: &mut Vec<Expr>, a: ExprId, b: ExprId) -> ExprId {
    exprs.push(Expr::Binary(BinOp::Add, a, b));
    ExprId(exprs.len() as u32 - 1)
}

/// Restore evaluation order (an edge may make an earlier assignment read a later one). On an
/// algebraic loop the order is left as is; the builder rejects such loops inside templates.
fn reorder(c: &mut Circuit) {
    let pos: HashMap<VarId, usize> = c.assigns.iter().enumerate().map(|(i, a)| (a.var, i)).collect();
    let deps: Vec<Vec<usize>> = c
        .assigns
        .iter()
        .map(|a| {
            let mut vs = Vec::new();
            collect_vars(c, a.rhs, &mut vs);
            vs.iter().filter_map(|v| pos.get(v).copied()).collect()
        })
        .collect();
    if let Ok(order) = topo_order(&deps) {
        let old = std::mem::take(&mut c.assigns);
        c.assigns = order.into_iter().map(|i| old[i].clone()).collect();
    }
}
