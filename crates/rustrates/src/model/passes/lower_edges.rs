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
use crate::model::ir::{Assign, BinOp, Circuit, Coupling, Declared, Expr, ExprId, Ode, Scale, Var, VarId, VarKind};

/// Number of gamma-chain stages for a delay and spread (at least 1).
pub fn chain_len(delay: f64, spread: f64) -> usize {
    // NaN fails both comparisons and gives one stage too.
    let positive = |x: f64| x > 0.0;
    if !positive(spread) || !positive(delay) {
        return 1;
    }
    ((delay / spread).powi(2).round() as usize).max(1)
}

/// Edges and `connectivity:` blocks → assignments of their target inputs, every block
/// written out term by term: the form every back end runs.
pub fn lower_edges(c: &Circuit) -> Circuit {
    expand_couplings(&lower_edges_keeping_couplings(c))
}

/// How a term enters its target's sum: alone, or grouped with the other consecutive terms
/// of the same scaled block (`ext + s·(t₁ + t₂ + …)`).
type TermScale = Option<(usize, Scale)>;

/// As [`lower_edges`], but a block whose targets nothing else feeds (no edge, no other block,
/// no equation of their node) stays one [`Coupling`]: its
/// targets' assignments are their external inputs alone and `lowered` is set, so the sum
/// is added by the back end that runs the coupling, or written out by [`expand_couplings`].
pub fn lower_edges_keeping_couplings(c: &Circuit) -> Circuit {
    let mut out = c.clone();
    out.edges.clear();
    out.couplings.clear();
    // How many edges and blocks feed each variable.
    let mut feeds = vec![0u32; c.vars.len()];
    for e in &c.edges {
        feeds[e.target.0 as usize] += 1;
        if let Some(im) = c.imag_part(e.target) {
            feeds[im.0 as usize] += 1;
        }
    }
    for cp in &c.couplings {
        for (i, t) in cp.targets.iter().enumerate() {
            if cp.row_starts[i + 1] > cp.row_starts[i] {
                feeds[t.0 as usize] += 1;
            }
        }
    }
    let keep: Vec<bool> = c
        .couplings
        .iter()
        .map(|cp| {
            // A target whose row is empty (a region without inputs in a connectome) is fed
            // by nothing: its sum is its external input alone, as the edge list's.
            !cp.lowered
                && cp.targets.iter().enumerate().all(|(i, t)| {
                    let fed_here = u32::from(cp.row_starts[i + 1] > cp.row_starts[i]);
                    feeds[t.0 as usize] == fed_here && c.var(*t).kind == VarKind::Input
                })
        })
        .collect();
    let mut order: Vec<VarId> = Vec::new();
    let mut terms: HashMap<VarId, Vec<(ExprId, TermScale)>> = HashMap::new();
    let mut kept_targets: Vec<(VarId, usize)> = Vec::new();
    for item in c.declaration_order() {
        let k = match item {
            Declared::Edge(pos) => {
                lower_edge(c, &mut out, &c.edges[pos], &mut order, &mut terms);
                continue;
            }
            Declared::Block(k) => k,
        };
        let cp = &c.couplings[k];
        if keep[k] {
            for &t in &cp.targets {
                order.push(t);
                kept_targets.push((t, k));
            }
            continue;
        }
        let scale = cp.scale.map(|s| (k, s));
        for (i, e, j) in entries_in_edge_order(cp) {
            let term = coupling_term(&mut out, cp, e, j);
            let t = cp.targets[i];
            if !terms.contains_key(&t) {
                order.push(t);
            }
            terms.entry(t).or_default().push((term, scale));
        }
    }
    let kept: HashMap<VarId, usize> = kept_targets.into_iter().collect();
    // Per variable, its assignment (a lookup per target, not a scan of all assignments:
    // N targets × ~3N assignments at N = 1000).
    let mut assign_of: Vec<Option<usize>> = vec![None; out.vars.len()];
    for (i, a) in out.assigns.iter().enumerate() {
        assign_of[a.var.0 as usize] = Some(i);
    }
    for tgt in order {
        let ext_var = out.var(tgt).feeding_input("#ext");
        let span = ext_var.span;
        let ext = out.add_var(ext_var);
        let mut rhs = out.add_expr(Expr::Var(ext));
        if !kept.contains_key(&tgt) {
            let list = terms.remove(&tgt).unwrap_or_default();
            rhs = sum_terms(&mut out, rhs, &list);
        }
        // An input already fed inside its node keeps that sum and gets the edges on top.
        if let Some(a) = assign_of.get(tgt.0 as usize).copied().flatten() {
            let a = &mut out.assigns[a];
            a.rhs = out_add(&mut out.exprs, a.rhs, rhs);
        } else {
            out.assigns.push(Assign { var: tgt, rhs, span });
        }
        let v = &mut out.vars[tgt.0 as usize];
        v.kind = VarKind::Algebraic;
        v.external_input = Some(ext);
    }
    for (k, cp) in c.couplings.iter().enumerate() {
        if keep[k] {
            let mut cp = cp.clone();
            cp.lowered = true;
            out.couplings.push(cp);
        }
    }
    reorder(&mut out);
    out
}

/// A circuit lowered by [`lower_edges_keeping_couplings`] with every kept coupling written
/// into its targets' assignments, term by term in the edge list's order: the same sums as
/// lowering the equivalent edge list, so every back end rounds them alike. Variables and
/// the order of assignments do not change (the layout stays the same).
pub fn expand_couplings(c: &Circuit) -> Circuit {
    let mut out = c.clone();
    if c.couplings.is_empty() {
        return out;
    }
    out.couplings.clear();
    let assign_of: HashMap<VarId, usize> = c.assigns.iter().enumerate().map(|(i, a)| (a.var, i)).collect();
    for (k, cp) in c.couplings.iter().enumerate() {
        let scale = cp.scale.map(|s| (k, s));
        for (i, &t) in cp.targets.iter().enumerate() {
            let list: Vec<(ExprId, TermScale)> = cp
                .row(i)
                .map(|(e, j)| (coupling_term(&mut out, cp, e, j), scale))
                .collect();
            let a = assign_of[&t];
            let rhs = sum_terms(&mut out, c.assigns[a].rhs, &list);
            out.assigns[a].rhs = rhs;
        }
    }
    out
}

/// A block's entries as the equivalent edge list orders them (sources outer, targets
/// inner): `(target row, entry, source column)`.
pub(crate) fn entries_in_edge_order(cp: &Coupling) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut next: Vec<usize> = cp.row_starts[..cp.targets.len()].to_vec();
    (0..cp.sources.len()).flat_map(move |j| {
        let mut col = Vec::new();
        for (i, n) in next.iter_mut().enumerate() {
            let column = |e: usize| {
                if cp.columns.is_empty() {
                    e - cp.row_starts[i]
                } else {
                    cp.columns[e] as usize
                }
            };
            if *n < cp.row_starts[i + 1] && column(*n) == j {
                col.push((i, *n, j));
                *n += 1;
            }
        }
        col
    })
}

/// `w · source` (or `w · past(source, d)` when the block has delays) of entry `e`.
fn coupling_term(out: &mut Circuit, cp: &Coupling, e: usize, j: usize) -> ExprId {
    let x = out.add_expr(Expr::Var(cp.sources[j]));
    let x = match (cp.velocity, &cp.delays) {
        // Per lane: length / velocity, the division `conduction_delay` does.
        (Some(Scale::Param(v)), Some(lengths)) => {
            let length = out.add_expr(Expr::Const(lengths[e]));
            let velocity = out.add_expr(Expr::Var(v));
            let d = out.add_expr(Expr::Binary(BinOp::Div, length, velocity));
            out.add_expr(Expr::Past(cp.sources[j], d))
        }
        _ => match cp.delay(e) {
            Some(d) => {
                let d = out.add_expr(Expr::Const(d));
                out.add_expr(Expr::Past(cp.sources[j], d))
            }
            None => x,
        },
    };
    let w = out.add_expr(Expr::Const(cp.weights[e]));
    out.add_expr(Expr::Binary(BinOp::Mul, w, x))
}

/// `start + t₁ + t₂ + …`, left-nested, a scaled block's consecutive terms as
/// `+ s·(t₁ + t₂ + …)`, as `network_grid.c` computes G·Σ — the sum rounds like the
/// unscaled one.
fn sum_terms(out: &mut Circuit, start: ExprId, list: &[(ExprId, TermScale)]) -> ExprId {
    let mut rhs = start;
    let mut k = 0;
    while k < list.len() {
        match list[k].1 {
            None => {
                rhs = out.add_expr(Expr::Binary(BinOp::Add, rhs, list[k].0));
                k += 1;
            }
            Some((block, scale)) => {
                let mut inner = list[k].0;
                k += 1;
                while k < list.len() && list[k].1.is_some_and(|(b, _)| b == block) {
                    inner = out.add_expr(Expr::Binary(BinOp::Add, inner, list[k].0));
                    k += 1;
                }
                let s = out.add_expr(match scale {
                    Scale::Param(p) => Expr::Var(p),
                    Scale::Const(x) => Expr::Const(x),
                });
                let scaled = out.add_expr(Expr::Binary(BinOp::Mul, s, inner));
                rhs = out.add_expr(Expr::Binary(BinOp::Add, rhs, scaled));
            }
        }
    }
    rhs
}

/// One edge's terms (its imaginary part too, for complex ends), appended to its target's.
fn lower_edge(
    c: &Circuit,
    out: &mut Circuit,
    e: &crate::model::ir::Edge,
    order: &mut Vec<VarId>,
    terms: &mut HashMap<VarId, Vec<(ExprId, TermScale)>>,
) {
    // Edges of a block expanded when the circuit was built carry the block's scale.
    let scale = e.param("scale").map(|s| (usize::MAX - s.0 as usize, Scale::Param(s)));
    let mut src = out.add_expr(Expr::Var(e.source));
    match (e.param("delay"), e.param("spread")) {
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
    let term = match e.param("weight") {
        Some(w) => {
            let wv = out.add_expr(Expr::Var(w));
            out.add_expr(Expr::Binary(BinOp::Mul, wv, src))
        }
        None => src,
    };
    if !terms.contains_key(&e.target) {
        order.push(e.target);
    }
    terms.entry(e.target).or_default().push((term, scale));
    // A complex source delivers its imaginary part to a complex target with the same
    // weight (the builder refuses delays of complex sources); a real target keeps the
    // real part, as numpy's cast does in PyRates.
    if let (Some(src_im), Some(tgt_im)) = (c.imag_part(e.source), c.imag_part(e.target)) {
        let src = out.add_expr(Expr::Var(src_im));
        let term = match e.param("weight") {
            Some(w) => {
                let wv = out.add_expr(Expr::Var(w));
                out.add_expr(Expr::Binary(BinOp::Mul, wv, src))
            }
            None => src,
        };
        if !terms.contains_key(&tgt_im) {
            order.push(tgt_im);
        }
        terms.entry(tgt_im).or_default().push((term, scale));
    }
}

fn out_add(exprs: &mut Vec<Expr>, a: ExprId, b: ExprId) -> ExprId {
    exprs.push(Expr::Binary(BinOp::Add, a, b));
    ExprId(exprs.len() as u32 - 1)
}

/// Restore evaluation order (an edge may make an earlier assignment read a later one). On an
/// algebraic loop the order is left as is; the builder rejects such loops inside templates.
/// A kept coupling's target reads the sources its expansion would read now (a block without
/// delays), so it is ordered as the expansion is and expanding keeps the order.
fn reorder(c: &mut Circuit) {
    let pos: HashMap<VarId, usize> = c.assigns.iter().enumerate().map(|(i, a)| (a.var, i)).collect();
    let mut coupled: HashMap<VarId, (usize, usize)> = HashMap::new();
    // Per block and source column, the assignment computing that source (`None`: a state or
    // parameter, which orders nothing): looked up once per column, not once per entry.
    let mut source_assigns: Vec<Vec<Option<usize>>> = Vec::with_capacity(c.couplings.len());
    for (k, cp) in c.couplings.iter().enumerate() {
        if cp.delays.is_none() {
            coupled.extend(cp.targets.iter().enumerate().map(|(i, t)| (*t, (k, i))));
        }
        source_assigns.push(cp.sources.iter().map(|v| pos.get(v).copied()).collect());
    }
    let deps: Vec<Vec<usize>> = c
        .assigns
        .iter()
        .map(|a| {
            let mut vs = Vec::new();
            collect_vars(c, a.rhs, &mut vs);
            let mut deps: Vec<usize> = vs.iter().filter_map(|v| pos.get(v).copied()).collect();
            if let Some(&(k, i)) = coupled.get(&a.var) {
                let (cp, assigned) = (&c.couplings[k], &source_assigns[k]);
                if assigned.iter().any(Option::is_some) {
                    deps.extend(cp.row(i).filter_map(|(_, j)| assigned[j]));
                }
            }
            deps
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
    use crate::model::build::tests::{build, leaky_pop_yaml};
    use crate::model::build::{eval, eval_all};

    /// Three leaky populations ([`leaky_pop_yaml`], `r_in` defaulting to 7): `c` fed by `a`
    /// and `b` (once delayed), `a` by `b` through a gamma-distributed delay, `b` by nothing.
    const NET: &str = r#"
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
        let (c, diags) = build(&(leaky_pop_yaml(0.0, 7.0) + NET), "Net");
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
