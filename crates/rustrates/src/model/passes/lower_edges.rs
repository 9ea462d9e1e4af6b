//! Edges → assignments of their target inputs.
//!
//! Every input fed by edges becomes an algebraic variable
//! `target = Σ weight · source(t − delay) + target#ext`, where `target#ext` is a new input
//! (default 0) so the user can still drive it. Weights and delays stay parameters, read by
//! the expression: a sweep changes them per lane without rebuilding. With `spread`, the delay
//! is a gamma chain of n = round((delay/spread)²) first-order states with rate k = n/delay
//! (z₀ = source, zᵢ' = k (zᵢ₋₁ − zᵢ), the edge delivers z_n); n is fixed by the template
//! values, k follows the `delay` parameter. The edges of a `connectivity:` block with a
//! `scale` enter as one term `scale · (Σ weight · source)`.
//!
//! Sweeps whose lanes need different chain lengths set the `delay`/`spread` parameter values
//! of a copy of the (unlowered) circuit to a representative lane of each group and lower each
//! copy: [`chain_len`] of those values fixes the structure, the per-lane parameter values
//! still set k.

use std::collections::HashMap;

use crate::model::build::{collect_vars, topo_order};
use crate::model::ir::{Assign, BinOp, Circuit, Expr, ExprId, Ode, Var, VarId, VarKind};

/// Number of gamma-chain stages for a delay and spread (at least 1).
pub fn chain_len(delay: f64, spread: f64) -> usize {
    // NaN fails both comparisons and gives one stage too.
    let positive = |x: f64| x > 0.0;
    if !positive(spread) || !positive(delay) {
        return 1;
    }
    ((delay / spread).powi(2).round() as usize).max(1)
}

pub fn lower_edges(c: &Circuit) -> Circuit {
    let mut out = c.clone();
    out.edges.clear();
    let mut order: Vec<VarId> = Vec::new();
    // Per target: each term with the scale of its connectivity block, if any.
    let mut terms: HashMap<VarId, Vec<(ExprId, Option<VarId>)>> = HashMap::new();
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
                    out.odes.push(Ode {
                        var: z,
                        rhs,
                        span: e.span,
                    });
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
        terms.entry(e.target).or_default().push((term, param("scale")));
        // A complex source delivers its imaginary part to a complex target with the same
        // weight (the builder refuses delays of complex sources); a real target keeps the
        // real part, as numpy's cast does in PyRates.
        if let (Some(src_im), Some(tgt_im)) = (c.imag_part(e.source), c.imag_part(e.target)) {
            let src = out.add_expr(Expr::Var(src_im));
            let term = match param("weight") {
                Some(w) => {
                    let wv = out.add_expr(Expr::Var(w));
                    out.add_expr(Expr::Binary(BinOp::Mul, wv, src))
                }
                None => src,
            };
            if !terms.contains_key(&tgt_im) {
                order.push(tgt_im);
            }
            terms.entry(tgt_im).or_default().push((term, param("scale")));
        }
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
        let list = terms.remove(&tgt).unwrap_or_default();
        let mut k = 0;
        while k < list.len() {
            match list[k].1 {
                None => {
                    rhs = out.add_expr(Expr::Binary(BinOp::Add, rhs, list[k].0));
                    k += 1;
                }
                // A scaled block's consecutive terms: ext + s·(w₁x₁ + w₂x₂ + …), as
                // `network_grid.c` computes G·Σ — the sum rounds like the unscaled one.
                Some(scale) => {
                    let mut inner = list[k].0;
                    k += 1;
                    while k < list.len() && list[k].1 == Some(scale) {
                        inner = out.add_expr(Expr::Binary(BinOp::Add, inner, list[k].0));
                        k += 1;
                    }
                    let s = out.add_expr(Expr::Var(scale));
                    let scaled = out.add_expr(Expr::Binary(BinOp::Mul, s, inner));
                    rhs = out.add_expr(Expr::Binary(BinOp::Add, rhs, scaled));
                }
            }
        }
        // An input already fed inside its node keeps that sum and gets the edges on top.
        if let Some(a) = out.assigns.iter_mut().find(|a| a.var == tgt) {
            a.rhs = out_add(&mut out.exprs, a.rhs, rhs);
        } else {
            out.assigns.push(Assign {
                var: tgt,
                rhs,
                span: tv.span,
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::build::{build_template, eval, eval_all};
    use crate::template::{LoadOptions, Loader};

    const NET: &str = r#"
P:
  base: OperatorTemplate
  equations: "r' = -r + r_in"
  variables: {r: output(0.0), r_in: input(7.0)}
Pop: {base: NodeTemplate, operators: [P]}
Net:
  base: CircuitTemplate
  nodes: {a: Pop, b: Pop, c: Pop}
  edges:
    - [a/P/r, c/P/r_in, null, {weight: 2.0}]
    - [b/P/r, c/P/r_in, null, {weight: -3.0}]
    - [a/P/r, c/P/r_in, null, {weight: 0.5, delay: 0.25}]
    - [b/P/r, a/P/r_in, null, {weight: 1.5, delay: 0.004, spread: 0.001}]
"#;

    fn circuit() -> Circuit {
        let d = tempfile::tempdir().expect("temp dir");
        std::fs::write(d.path().join("n.yaml"), NET).expect("write");
        let o = LoadOptions {
            search_path: Vec::new(),
            cwd: Some(d.path().to_path_buf()),
        };
        let mut l = Loader::new(&o);
        let t = l.resolve_path("n.Net").expect("resolves");
        let (c, diags) = build_template(&t, &mut l.sources);
        c.unwrap_or_else(|| panic!("{diags:?}"))
    }

    fn set(c: &mut Circuit, n: &str, x: f64) {
        let id = c.find_var(n).expect(n);
        c.vars[id.0 as usize].value = x;
    }

    fn get(c: &Circuit, vals: &[f64], n: &str) -> f64 {
        vals[c.find_var(n).expect(n).0 as usize]
    }

    #[test]
    fn lower_edges_sums_weighted_sources_plus_external_input() {
        let mut c = lower_edges(&circuit());
        assert!(c.edges.is_empty());
        set(&mut c, "a/P/r", 0.3);
        set(&mut c, "b/P/r", 0.7);
        set(&mut c, "c/P/r_in#ext", 0.125);
        let vals = eval_all(&c);
        // Past reads the current value in `eval`: 2·0.3 − 3·0.7 + 0.5·0.3 + ext.
        let want = 2.0 * 0.3 - 3.0 * 0.7 + 0.5 * 0.3 + 0.125;
        assert!((get(&c, &vals, "c/P/r_in") - want).abs() < 1e-15);
        let tgt = c.var(c.find_var("c/P/r_in").expect("target"));
        assert_eq!(tgt.kind, VarKind::Algebraic);
        assert_eq!(tgt.external_input, c.find_var("c/P/r_in#ext"));
        // The node without incoming edges keeps its input and default.
        assert_eq!(c.var(c.find_var("b/P/r_in").expect("b")).kind, VarKind::Input);
        assert_eq!(c.var(c.find_var("b/P/r_in").expect("b")).value, 7.0);
    }

    #[test]
    fn lower_edges_weight_is_a_parameter_read_at_run_time() {
        let mut c = lower_edges(&circuit());
        let n_exprs = c.exprs.len();
        set(&mut c, "a/P/r", 1.0);
        set(&mut c, "edge:a->c:0/weight", 10.0);
        let vals = eval_all(&c);
        assert!((get(&c, &vals, "c/P/r_in") - (10.0 + 0.5)).abs() < 1e-15);
        assert_eq!(c.exprs.len(), n_exprs, "no rebuild to change a weight");
    }

    #[test]
    fn lower_edges_delay_reads_source_in_the_past_by_the_delay_param() {
        let c = lower_edges(&circuit());
        let delay = c.find_var("edge:a->c:1/delay").expect("delay param");
        let src = c.find_var("a/P/r").expect("src");
        let found = c
            .exprs
            .iter()
            .any(|e| matches!(e, Expr::Past(v, d) if *v == src && c.expr(*d) == &Expr::Var(delay)));
        assert!(found);
    }

    #[test]
    fn lower_edges_spread_builds_gamma_chain_of_round_ratio_squared_stages() {
        let c = lower_edges(&circuit());
        // delay 0.004, spread 0.001: n = (0.004/0.001)^2 = 16 stages, k = 16/0.004 = 4000.
        let stages: Vec<&Var> = c.vars.iter().filter(|v| v.name.starts_with("edge:b->a:0/z")).collect();
        assert_eq!(stages.len(), 16);
        let z1 = c.find_var("edge:b->a:0/z1").expect("z1");
        let ode = c.odes.iter().find(|o| o.var == z1).expect("z1 ode");
        // z1' = k (source − z1); with source 1 and z1 0 that is k.
        let b = c.find_var("b/P/r").expect("b");
        let k = eval(
            &c,
            ode.rhs,
            &|v| {
                if v == b {
                    1.0
                } else if v == z1 {
                    0.0
                } else {
                    c.var(v).value
                }
            },
            0.0,
        );
        assert!((k - 4000.0).abs() < 1e-9, "k = {k}");
        // The target reads the last stage.
        let a_in = c
            .assigns
            .iter()
            .find(|a| c.var(a.var).name == "a/P/r_in")
            .expect("a input");
        let z16 = c.find_var("edge:b->a:0/z16").expect("z16");
        let v = eval(&c, a_in.rhs, &|v| if v == z16 { 2.0 } else { c.var(v).value }, 0.0);
        assert!((v - (1.5 * 2.0 + 0.0)).abs() < 1e-15);
    }

    #[test]
    fn chain_len_rounds_ratio_squared_and_is_at_least_one() {
        assert_eq!(chain_len(0.004, 0.001), 16);
        assert_eq!(chain_len(1.0, 0.4), 6); // 6.25 → 6
        assert_eq!(chain_len(1.0, 5.0), 1); // 0.04 → 0, kept at 1
        assert_eq!(chain_len(1.0, 0.0), 1);
    }
}
