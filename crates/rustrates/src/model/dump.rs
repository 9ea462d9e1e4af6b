//! Human-readable dump of a circuit: the format of `rustrates show` and of snapshot tests.
//! Deterministic: nodes, operators and variables in template order, equations in
//! evaluation order, numbers in Rust's shortest round-trip form.

use std::fmt::Write;

use super::build::func_name;
use super::ir::{BinOp, Circuit, Expr, ExprId, VarId, VarKind};

fn kind_name(k: VarKind) -> &'static str {
    match k {
        VarKind::State => "state",
        VarKind::Param => "param",
        VarKind::Input => "input",
        VarKind::Algebraic => "algebraic",
    }
}

/// Dump a circuit as text.
pub fn dump(c: &Circuit) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "circuit {}", c.name);
    let mut shown = vec![false; c.vars.len()];
    for (node, ops) in &c.node_operators {
        let _ = writeln!(out, "  node {node}");
        for op in ops {
            let prefix = format!("{node}/{op}/");
            let _ = writeln!(out, "    operator {op}");
            section(c, &mut out, &prefix, "      ", &mut shown);
        }
    }
    if shown.iter().any(|s| !s) {
        let _ = writeln!(out, "  other");
        section(c, &mut out, "", "    ", &mut shown);
    }
    if !c.edges.is_empty() {
        let _ = writeln!(out, "  edges");
        for e in &c.edges {
            let params: Vec<String> = e
                .params
                .iter()
                .map(|(k, id)| format!("{k}={}", num(c.var(*id).value)))
                .collect();
            let _ = writeln!(
                out,
                "    {} -> {} [{}->{}:{}] {}",
                c.var(e.source).name,
                c.var(e.target).name,
                e.source_node,
                e.target_node,
                e.idx,
                params.join(" ")
            );
        }
    }
    for cp in &c.couplings {
        let what = match (cp.is_dense(), &cp.delays) {
            (true, None) => "dense",
            (true, Some(_)) => "dense, delayed",
            (false, None) => "sparse",
            (false, Some(_)) => "sparse, delayed",
        };
        let scale = match cp.scale {
            Some(crate::model::Scale::Param(p)) => format!(" scale={}", c.var(p).name),
            Some(crate::model::Scale::Const(x)) => format!(" scale={}", num(x)),
            None => String::new(),
        };
        let velocity = match cp.velocity {
            Some(crate::model::Scale::Param(p)) => format!(" delay=length/{}", c.var(p).name),
            Some(crate::model::Scale::Const(x)) => format!(" delay=length/{}", num(x)),
            None => String::new(),
        };
        let end = |v: &[VarId]| {
            let name = |id: &VarId| c.var(*id).name.clone();
            match v {
                [] => String::new(),
                [a] => name(a),
                [a, .., b] => format!("{} .. {}", name(a), name(b)),
            }
        };
        let _ = writeln!(
            out,
            "  coupling {}: {} sources ({}) -> {} targets ({}), {} entries ({what}){scale}{velocity}",
            cp.name,
            cp.sources.len(),
            end(&cp.sources),
            cp.targets.len(),
            end(&cp.targets),
            cp.len()
        );
    }
    out
}

/// Variables under `prefix` not shown yet, then their equations.
fn section(c: &Circuit, out: &mut String, prefix: &str, ind: &str, shown: &mut [bool]) {
    let ids = c.var_ids_where(|id, v| !shown[id.0 as usize] && v.name.starts_with(prefix));
    for id in &ids {
        shown[id.0 as usize] = true;
        let v = c.var(*id);
        let ext = v
            .external_input
            .map(|e| format!(" (+ {})", c.var(e).name))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{ind}{} {} = {}{ext}",
            kind_name(v.kind),
            &v.name[prefix.len()..],
            num(v.value)
        );
    }
    for a in c.assigns.iter().filter(|a| ids.contains(&a.var)) {
        let _ = writeln!(out, "{ind}{} = {}", short(c, a.var, prefix), expr(c, a.rhs, prefix, 0));
    }
    for o in c.odes.iter().filter(|o| ids.contains(&o.var)) {
        let _ = writeln!(
            out,
            "{ind}d/dt {} = {}",
            short(c, o.var, prefix),
            expr(c, o.rhs, prefix, 0)
        );
    }
}

fn short(c: &Circuit, v: VarId, prefix: &str) -> String {
    let n = &c.var(v).name;
    n.strip_prefix(prefix)
        .filter(|s| !prefix.is_empty() && !s.contains('/'))
        .unwrap_or(n)
        .to_string()
}

fn num(x: f64) -> String {
    format!("{x}")
}

/// A constant as written in equations: `pi` and `E` for what `pi`/`PI` and `E` resolve to.
fn constant(x: f64) -> String {
    if x == std::f64::consts::PI {
        "pi".to_string()
    } else if x == std::f64::consts::E {
        "E".to_string()
    } else {
        num(x)
    }
}

/// The dump's compact notation: `*` and `/` tight, `^` for the power; the other operators
/// as equations write them.
fn op_str(op: BinOp) -> &'static str {
    match op {
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Pow => "^",
        _ => op.equation_text(),
    }
}

/// Print with the fewest parentheses that keep the tree (`min` = precedence the context needs).
pub(crate) fn expr(c: &Circuit, e: ExprId, prefix: &str, min: u8) -> String {
    let (s, p) = match c.expr(e) {
        Expr::Const(x) => (constant(*x), if *x < 0.0 { 4 } else { 9 }),
        Expr::Var(v) => (short(c, *v, prefix), 9),
        Expr::Time => ("t".to_string(), 9),
        Expr::Randn => ("randn()".to_string(), 9),
        Expr::Neg(a) => (format!("-{}", expr(c, *a, prefix, 5)), 4),
        Expr::Binary(op, a, b) => {
            let p = op.precedence();
            let (la, lb) = if *op == BinOp::Pow { (p + 1, p) } else { (p, p + 1) };
            (
                format!("{}{}{}", expr(c, *a, prefix, la), op_str(*op), expr(c, *b, prefix, lb)),
                p,
            )
        }
        Expr::Call(f, args) => {
            let a: Vec<String> = args.iter().map(|x| expr(c, *x, prefix, 0)).collect();
            (format!("{}({})", func_name(*f), a.join(", ")), 9)
        }
        Expr::Select(a, b, d) => (
            format!(
                "select({}, {}, {})",
                expr(c, *a, prefix, 0),
                expr(c, *b, prefix, 0),
                expr(c, *d, prefix, 0)
            ),
            9,
        ),
        Expr::Past(v, d) => (format!("past({}, {})", short(c, *v, prefix), expr(c, *d, prefix, 0)), 9),
    };
    if p < min {
        format!("({s})")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ir::{Edge, Ode, Var};

    #[test]
    fn dump_prints_minimal_parentheses_and_edges() {
        let mut c = Circuit {
            name: "N".into(),
            ..Circuit::default()
        };
        let mk = |c: &mut Circuit, n: &str, kind: VarKind, value: f64, node: Option<&str>| {
            c.add_var(Var {
                name: n.into(),
                kind,
                value,
                node: node.map(String::from),
                external_input: None,
                span: None,
            })
        };
        let x = mk(&mut c, "p/op/x", VarKind::State, 1.5, Some("p"));
        let a = mk(&mut c, "p/op/a", VarKind::Param, -2.0, Some("p"));
        let w = mk(&mut c, "edge:p->p:0/weight", VarKind::Param, 3.0, None);
        c.nodes.push("p".into());
        c.node_operators.push(("p".into(), vec!["op".into()]));
        // -(a + x)^2 / (x - (a - x))
        let ea = c.add_expr(Expr::Var(a));
        let ex = c.add_expr(Expr::Var(x));
        let s = c.add_expr(Expr::Binary(BinOp::Add, ea, ex));
        let two = c.add_expr(Expr::Const(2.0));
        let p = c.add_expr(Expr::Binary(BinOp::Pow, s, two));
        let n = c.add_expr(Expr::Neg(p));
        let d1 = c.add_expr(Expr::Binary(BinOp::Sub, ea, ex));
        let d2 = c.add_expr(Expr::Binary(BinOp::Sub, ex, d1));
        let rhs = c.add_expr(Expr::Binary(BinOp::Div, n, d2));
        c.odes.push(Ode {
            var: x,
            rhs,
            span: None,
        });
        c.edges.push(Edge {
            source_node: "p".into(),
            target_node: "p".into(),
            idx: 0,
            source: x,
            target: a,
            params: vec![("weight".into(), w)],
            span: None,
        });
        let want = "circuit N
  node p
    operator op
      state x = 1.5
      param a = -2
      d/dt x = -(a + x)^2/(x - (a - x))
  other
    param edge:p->p:0/weight = 3
  edges
    p/op/x -> p/op/a [p->p:0] weight=3
";
        assert_eq!(dump(&c), want);
    }
}
