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
            let params: Vec<String> = e.params.iter().map(|(k, id)| format!("{k}={}", num(c.var(*id).value))).collect();
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
    out
}

/// Variables under `prefix` not shown yet, then their equations.
fn section(c: &Circuit, out: &mut String, prefix: &str, ind: &str, shown: &mut [bool]) {
    let ids: Vec<VarId> = (0..c.vars.len() as u32)
        .map(VarId)
        .filter(|id| !shown[id.0 as usize] && c.var(*id).name.starts_with(prefix))
        .collect();
    for id in &ids {
        shown[id.0 as usize] = true;
        let v = c.var(*id);
        let ext = v.external_input.map(|e| format!(" (+ {})", c.var(e).name)).unwrap_or_default();
        let _ = writeln!(out, "{ind}{} {} = {}{ext}", kind_name(v.kind), &v.name[prefix.len()..], num(v.value));
    }
    for a in c.assigns.iter().filter(|a| ids.contains(&a.var)) {
        let _ = writeln!(out, "{ind}{} = {}", short(c, a.var, prefix), expr(c, a.rhs, prefix, 0));
    }
    for o in c.odes.iter().filter(|o| ids.contains(&o.var)) {
        let _ = writeln!(out, "{ind}d/dt {} = {}", short(c, o.var, prefix), expr(c, o.rhs, prefix, 0));
    }
}

fn short(c: &Circuit, v: VarId, prefix: &str) -> String {
    let n = &c.var(v).name;
    n.strip_prefix(prefix).filter(|s| !prefix.is_empty() && !s.contains('/')).unwrap_or(n).to_string()
}

fn num(x: f64) -> String {
    format!("{x}")
}

fn prec(op: BinOp) -> u8 {
    match op {
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => 1,
        BinOp::Add | BinOp::Sub => 2,
        BinOp::Mul | BinOp::Div => 3,
        BinOp::Pow => 5,
    }
}

fn op_str(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => " + ",
        BinOp::Sub => " - ",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Pow => "^",
        BinOp::Lt => " < ",
        BinOp::Le => " <= ",
        BinOp::Gt => " > ",
        BinOp::Ge => " >= ",
        BinOp::Eq => " == ",
        BinOp::Ne => " != ",
    }
}

/// Print with the fewest parentheses that keep the tree (`min` = precedence the context needs).
pub(crate) fn expr(c: &Circuit, e: ExprId, prefix: &str, min: u8) -> String {
    let (s, p) = match c.expr(e) {
        Expr::Const(x) => (num(*x), if *x < 0.0 { 4 } else { 9 }),
        Expr::Var(v) => (short(c, *v, prefix), 9),
        Expr::Time => ("t".to_string(), 9),
        Expr::Randn => ("randn()".to_string(), 9),
        Expr::Neg(a) => (format!("-{}", expr(c, *a, prefix, 5)), 4),
        Expr::Binary(op, a, b) => {
            let p = prec(*op);
            let (la, lb) = if *op == BinOp::Pow { (p + 1, p) } else { (p, p + 1) };
            (format!("{}{}{}", expr(c, *a, prefix, la), op_str(*op), expr(c, *b, prefix, lb)), p)
        }
        Expr::Call(f, args) => {
            let a: Vec<String> = args.iter().map(|x| expr(c, *x, prefix, 0)).collect();
            (format!("{}({})", func_name(*f), a.join(", ")), 9)
        }
        Expr::Select(a, b, d) => {
            (format!("select({}, {}, {})", expr(c, *a, prefix, 0), expr(c, *b, prefix, 0), expr(c, *d, prefix, 0)), 9)
        }
        Expr::Past(v, d) => (format!("past({}, {})", short(c, *v, prefix), expr(c, *d, prefix, 0)), 9),
    };
    if p < min {
        format!("({s})")
    } else {
        s
    }
}
