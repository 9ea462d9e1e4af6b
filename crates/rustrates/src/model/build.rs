//! Resolved templates → flat circuit IR.
//!
//! Nodes are flattened (variables named `node/op/var`, nested circuits `sub/node/op/var`),
//! operators inside a node are wired by variable name, equations are parsed and resolved to
//! variable ids, edges become [`Edge`]s with their parameters as [`VarKind::Param`] variables.
//! Every problem is collected; a circuit is returned only when there is no error.

use std::collections::{HashMap, HashSet};

use crate::syntax::ast::{self, ExprKind, LhsKind, UnOp};
use crate::syntax::{Diagnostic, Diagnostics, FileId, SourceMap, Span, TextRange};
use crate::template::connectivity::ConnectivityDecl;
use crate::template::{suggest, Body, CircuitT, EdgeDecl, EqText, NodeT, ParamValue, Template, VType};

use super::ir::{Assign, BinOp, Circuit, Edge, Expr, ExprId, Func, Ode, Var, VarId, VarKind};

/// Build the circuit of any template: a circuit as is; a node as a one-node circuit named
/// after it; an operator or edge template as a one-node circuit (so `check` sees its equations).
pub fn build_template(t: &Template, sources: &mut SourceMap) -> (Option<Circuit>, Diagnostics) {
    let mut b = Builder::new(sources);
    b.c.name = t.name.clone();
    match &t.body {
        Body::Circuit(ct) => b.add_circuit("", ct, &t.name),
        Body::Node(nt) | Body::Edge(nt) => {
            b.add_node(&t.name, nt, Some(t.name.clone()));
        }
        Body::Operator(_) => {
            let nt = NodeT {
                operators: vec![crate::template::OpUse {
                    name: t.name.clone(),
                    template: std::rc::Rc::new(t.clone()),
                    overrides: Vec::new(),
                    span: t.span,
                }],
            };
            b.add_node(&t.name, &nt, Some(t.name.clone()));
        }
    }
    let (c, d) = b.finish();
    (c.filter(|_| !t.broken), d)
}

struct PendingEdge<'t> {
    prefix: String,
    decl: PendingDecl<'t>,
}

enum PendingDecl<'t> {
    Edge(&'t EdgeDecl),
    Matrix(&'t ConnectivityDecl),
}

/// A parsed equation: AST, offset of its ranges, file, diagnostic path, original scalar when
/// the text was rewritten.
type ParsedEq = (ast::Equation, u32, FileId, String, Option<Span>);

/// Symbols visible to one operator's equations.
type Scope = HashMap<String, VarId>;

struct Builder<'s> {
    c: Circuit,
    diags: Diagnostics,
    sources: &'s mut SourceMap,
    /// Var → where its defining equation is (for duplicate-definition labels).
    defined: HashMap<VarId, Span>,
    /// Per (source_node, target_node): next edge idx.
    edge_counts: HashMap<(String, String), usize>,
    /// Operator variables by full name (edge ends are looked up here).
    by_name: HashMap<String, VarId>,
}

fn edge_node_name(src: &str, tgt: &str, idx: usize) -> String {
    format!("edge:{src}->{tgt}:{idx}")
}

impl<'s> Builder<'s> {
    fn new(sources: &'s mut SourceMap) -> Self {
        Self {
            c: Circuit::default(),
            diags: Diagnostics::new(),
            sources,
            defined: HashMap::new(),
            edge_counts: HashMap::new(),
            by_name: HashMap::new(),
        }
    }

    fn add_circuit(&mut self, prefix: &str, ct: &CircuitT, name: &str) {
        let mut pending = Vec::new();
        self.collect(prefix, ct, name, &mut pending);
        for p in pending {
            match p.decl {
                PendingDecl::Edge(e) => self.add_edge(&p.prefix, e),
                PendingDecl::Matrix(m) => self.add_connectivity(&p.prefix, m),
            }
        }
    }

    /// Add all nodes (depth first) and collect the edges, so an edge can name any node.
    fn collect<'t>(&mut self, prefix: &str, ct: &'t CircuitT, _name: &str, pending: &mut Vec<PendingEdge<'t>>) {
        for n in &ct.nodes {
            if let Body::Node(nt) = &n.template.body {
                self.add_node(&format!("{prefix}{}", n.name), nt, Some(format!("{prefix}{}", n.name)));
            }
        }
        for s in &ct.circuits {
            if let Body::Circuit(sub) = &s.template.body {
                self.collect(&format!("{prefix}{}/", s.name), sub, &s.name, pending);
            }
        }
        for e in &ct.edges {
            pending.push(PendingEdge {
                prefix: prefix.to_string(),
                decl: PendingDecl::Edge(e),
            });
        }
        for m in &ct.connectivity {
            pending.push(PendingEdge {
                prefix: prefix.to_string(),
                decl: PendingDecl::Matrix(m),
            });
        }
    }

    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Label diagnostics from `from` on with the original scalar of a rewritten equation.
    fn label_rewritten(&mut self, from: usize, origin: Option<Span>) {
        if let Some(o) = origin {
            for d in &mut self.diags.0[from..] {
                d.labels.push(crate::syntax::Label {
                    span: o,
                    message: "the equation as written (the message points into its text as read)".into(),
                });
            }
        }
    }

    /// Add a node's operators; returns each operator's scope. `node` is `None` for the
    /// pseudo-node of an edge template (its variables belong to no node).
    fn add_node(&mut self, path: &str, nt: &NodeT, node: Option<String>) -> Vec<(String, Scope, Vec<VarId>)> {
        let mut scopes: Vec<(String, Scope, Vec<VarId>)> = Vec::new();
        let mut decl_types: Vec<HashMap<String, VType>> = Vec::new();
        // Operators kept (same index as `scopes`): duplicates are reported and skipped.
        let mut accepted: Vec<&crate::template::OpUse> = Vec::new();
        for u in &nt.operators {
            let Body::Operator(op) = &u.template.body else {
                continue;
            };
            if scopes.iter().any(|(n, _, _)| *n == u.name) {
                self.error(
                    Diagnostic::error(
                        "node/duplicate-operator",
                        format!("operator `{}` appears twice in node `{path}`", u.name),
                    )
                    .with_span(u.span)
                    .with_path(path.to_string()),
                );
                continue;
            }
            let mut scope = Scope::new();
            let mut order = Vec::new();
            let mut types = HashMap::new();
            for (vn, d) in &op.variables {
                let value = u
                    .overrides
                    .iter()
                    .rev()
                    .find(|(n, _, _)| n == vn)
                    .map_or(d.value, |o| o.1);
                let kind = match d.vtype {
                    VType::Input => VarKind::Input,
                    VType::Constant => VarKind::Param,
                    // Decided by its equation; a state nothing defines stays constant.
                    VType::State | VType::Output => VarKind::Param,
                };
                let id = self.c.add_var(Var {
                    name: format!("{path}/{}/{vn}", u.name),
                    kind,
                    value,
                    node: node.clone(),
                    external_input: None,
                    span: Some(d.span),
                });
                self.by_name.insert(self.c.var(id).name.clone(), id);
                scope.insert(vn.clone(), id);
                order.push(id);
                types.insert(vn.clone(), d.vtype);
            }
            for (vn, _, sp) in &u.overrides {
                if !op.variables.contains_key(vn) {
                    let names: Vec<String> = op.variables.keys().cloned().collect();
                    let mut d = Diagnostic::error(
                        "node/unknown-variable",
                        format!("operator `{}` has no variable `{vn}`", u.name),
                    )
                    .with_span(*sp)
                    .with_path(format!("{path}.{}.{vn}", u.name));
                    if let Some(s) = suggest(vn, &names) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.error(d);
                }
            }
            scopes.push((u.name.clone(), scope, order));
            accepted.push(u);
            decl_types.push(types);
        }

        // Equations: left-hand sides first (they decide kinds and wiring), then right-hand sides.
        let mut parsed: Vec<Vec<ParsedEq>> = Vec::new();
        let mut defined_by: Vec<HashSet<String>> = Vec::new();
        for (oi, u) in accepted.iter().enumerate() {
            let Body::Operator(op) = &u.template.body else {
                // Not reached (only operators are accepted); keeps the indices aligned.
                parsed.push(Vec::new());
                defined_by.push(HashSet::new());
                continue;
            };
            let mut eqs = Vec::new();
            let mut defs = HashSet::new();
            for (i, e) in op.equations.iter().enumerate() {
                let p = format!("{}.equations[{i}]", u.template.name);
                let Some((eq, off, file)) = self.parse_eq(e, &p) else {
                    continue;
                };
                let origin = e.offset.is_none().then_some(e.span);
                let n_before = self.diags.len();
                let lhs_span = Span {
                    file,
                    range: eq.lhs.range.offset(off),
                };
                let name = eq.lhs.name.clone();
                match scopes[oi].1.get(&name).copied() {
                    None => {
                        let names: Vec<String> = scopes[oi].1.keys().cloned().collect();
                        let mut d = Diagnostic::error(
                            "eq/undefined-symbol",
                            format!("`{name}` is not a variable of operator `{}`", u.name),
                        )
                        .with_span(lhs_span)
                        .with_path(p.clone());
                        d = match suggest(&name, &names) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_help(format!("declare it under `variables:` of `{}`", u.template.name)),
                        };
                        self.error(d);
                    }
                    Some(id) => {
                        let vt = decl_types[oi].get(&name).copied();
                        match vt {
                            Some(VType::Input) => self.error(
                                Diagnostic::error(
                                    "eq/assign-to-input",
                                    format!("`{name}` is an input and cannot be assigned"),
                                )
                                .with_span(lhs_span)
                                .with_path(p.clone())
                                .with_help("declare it as `output(...)` or `variable(...)`"),
                            ),
                            Some(VType::Constant) => self.error(
                                Diagnostic::error(
                                    "eq/assign-to-constant",
                                    format!("`{name}` is a constant and cannot be assigned"),
                                )
                                .with_span(lhs_span)
                                .with_path(p.clone())
                                .with_help("declare it as `output(...)` or `variable(...)`"),
                            ),
                            _ => {
                                if let Some(first) = self.defined.get(&id).copied() {
                                    self.error(
                                        Diagnostic::error(
                                            "eq/duplicate-definition",
                                            format!("`{name}` is defined by two equations"),
                                        )
                                        .with_span(lhs_span)
                                        .with_label(first, "first defined here")
                                        .with_path(p.clone()),
                                    );
                                } else {
                                    self.defined.insert(id, lhs_span);
                                    // As in PyRates, only an operator's `output` feeds the
                                    // inputs of the same name in other operators of the node.
                                    if vt == Some(VType::Output) {
                                        defs.insert(name.clone());
                                    }
                                    self.c.vars[id.0 as usize].kind = match eq.lhs.kind {
                                        LhsKind::Derivative => VarKind::State,
                                        LhsKind::Assign => VarKind::Algebraic,
                                    };
                                }
                            }
                        }
                    }
                }
                self.label_rewritten(n_before, origin);
                eqs.push((eq, off, file, p, origin));
            }
            parsed.push(eqs);
            defined_by.push(defs);
        }

        // Wiring: an input of one operator that is another operator's output is fed by it
        // (summed over all operators with that output, as PyRates does).
        let n = scopes.len().min(defined_by.len());
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        for b in 0..n {
            let inputs: Vec<(String, VarId)> = scopes[b]
                .1
                .iter()
                .filter(|(vn, _)| decl_types[b].get(*vn) == Some(&VType::Input))
                .map(|(vn, id)| (vn.clone(), *id))
                .collect();
            let mut inputs = inputs;
            inputs.sort_by_key(|(_, id)| *id);
            for (vn, id) in inputs {
                let providers: Vec<usize> = (0..n).filter(|&a| a != b && defined_by[a].contains(&vn)).collect();
                if providers.is_empty() {
                    continue;
                }
                let mut rhs: Option<ExprId> = None;
                for &a in &providers {
                    deps[b].push(a);
                    let v = self.c.add_expr(Expr::Var(scopes[a].1[&vn]));
                    rhs = Some(match rhs {
                        None => v,
                        Some(r) => self.c.add_expr(Expr::Binary(BinOp::Add, r, v)),
                    });
                }
                if let Some(rhs) = rhs {
                    self.c.vars[id.0 as usize].kind = VarKind::Algebraic;
                    let span = self.c.vars[id.0 as usize].span;
                    self.c.assigns.push(Assign { var: id, rhs, span });
                }
            }
        }
        let op_order = match topo_order(&deps) {
            Ok(o) => o,
            Err(cyc) => {
                let names: Vec<String> = cyc.iter().map(|&i| scopes[i].0.clone()).collect();
                let span = nt.operators.iter().find(|u| u.name == names[0]).map(|u| u.span);
                let mut d = Diagnostic::error(
                    "node/operator-cycle",
                    format!(
                        "operators of node `{path}` feed each other in a cycle: {}",
                        names.join(" -> ")
                    ),
                )
                .with_path(path.to_string())
                .with_help("split the cycle: PyRates evaluates the operators of a node in dependency order");
                if let Some(s) = span {
                    d = d.with_span(s);
                }
                self.error(d);
                (0..n).collect()
            }
        };

        for (oi, eqs) in parsed.into_iter().enumerate().take(n) {
            for (eq, off, file, p, origin) in eqs {
                let ctx = Ctx {
                    scope: &scopes[oi].1,
                    file,
                    off,
                    path: p,
                    origin,
                };
                let n_before = self.diags.len();
                let rhs = self.expr(&eq.rhs, &ctx);
                self.label_rewritten(n_before, ctx.origin);
                let Some(&id) = scopes[oi].1.get(&eq.lhs.name) else {
                    continue;
                };
                let Some(rhs) = rhs else { continue };
                let span = Some(Span {
                    file,
                    range: eq.range.offset(off),
                });
                // Only the first definition counts; duplicates were reported above.
                if self.defined.get(&id)
                    != Some(&Span {
                        file,
                        range: eq.lhs.range.offset(off),
                    })
                {
                    continue;
                }
                match eq.lhs.kind {
                    LhsKind::Derivative => self.c.odes.push(Ode { var: id, rhs, span }),
                    LhsKind::Assign => self.c.assigns.push(Assign { var: id, rhs, span }),
                }
            }
        }
        if let Some(nn) = node {
            self.c.nodes.push(nn.clone());
            self.c
                .node_operators
                .push((nn, op_order.iter().map(|&i| scopes[i].0.clone()).collect()));
        }
        scopes
    }

    /// Parse one equation string; returns the AST, the offset to add to its ranges, and the
    /// file they point into. Rewritten equations (after `replace`) get a file of their own.
    fn parse_eq(&mut self, e: &EqText, path: &str) -> Option<(ast::Equation, u32, FileId)> {
        let (file, off) = match e.offset {
            Some(o) => (e.span.file, o),
            None => {
                let orig = self.sources.file(e.span.file).name.clone();
                let name = format!("{orig} [{path}, rewritten]");
                let f = match self.sources.find(&name) {
                    Some(f) if self.sources.file(f).text == e.text => f,
                    _ => self.sources.add(name, e.text.clone()),
                };
                (f, 0)
            }
        };
        match crate::syntax::parser::parse_equation(&e.text, file, off) {
            Ok(eq) => Some((eq, off, file)),
            Err(ds) => {
                for d in ds.0 {
                    let mut d = d.with_path(path.to_string());
                    if e.offset.is_none() {
                        d = d.with_label(
                            e.span,
                            "the equation as written (the message points into its text as read)",
                        );
                    }
                    self.error(d);
                }
                None
            }
        }
    }

    fn expr(&mut self, e: &ast::Expr, ctx: &Ctx) -> Option<ExprId> {
        let span = Span {
            file: ctx.file,
            range: e.range.offset(ctx.off),
        };
        let x = match &e.kind {
            ExprKind::Number(v) => Expr::Const(*v),
            ExprKind::Ident(name) => {
                if let Some(&id) = ctx.scope.get(name) {
                    Expr::Var(id)
                } else {
                    match name.as_str() {
                        "t" => Expr::Time,
                        "pi" | "PI" => Expr::Const(std::f64::consts::PI),
                        "E" => Expr::Const(std::f64::consts::E),
                        _ => {
                            let mut names: Vec<String> = ctx.scope.keys().cloned().collect();
                            names.sort();
                            names.extend(["t", "pi", "PI", "E"].map(String::from));
                            let mut d = Diagnostic::error("eq/undefined-symbol", format!("unknown symbol `{name}`"))
                                .with_span(span)
                                .with_path(ctx.path.clone());
                            d = match suggest(name, &names) {
                                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                                None => d.with_help("declare it under the operator's `variables:`"),
                            };
                            self.error(d);
                            return None;
                        }
                    }
                }
            }
            ExprKind::Unary(UnOp::Plus, inner) => return self.expr(inner, ctx),
            ExprKind::Unary(UnOp::Neg, inner) => Expr::Neg(self.expr(inner, ctx)?),
            ExprKind::Binary(op, a, b) => {
                let a = self.expr(a, ctx);
                let b = self.expr(b, ctx);
                Expr::Binary(bin(*op), a?, b?)
            }
            ExprKind::Call { name, name_range, args } => return self.call(name, *name_range, args, span, ctx),
        };
        Some(self.c.add_expr(x))
    }

    fn call(&mut self, name: &str, name_range: TextRange, args: &[ast::Expr], span: Span, ctx: &Ctx) -> Option<ExprId> {
        let name_span = Span {
            file: ctx.file,
            range: name_range.offset(ctx.off),
        };
        // `x(t - d)`: delayed access to a variable.
        if let Some(&id) = ctx.scope.get(name) {
            if let [arg] = args {
                match &arg.kind {
                    ExprKind::Binary(ast::BinOp::Sub, t, d) if matches!(&t.kind, ExprKind::Ident(s) if s == "t") => {
                        let d = self.expr(d, ctx)?;
                        return Some(self.c.add_expr(Expr::Past(id, d)));
                    }
                    ExprKind::Ident(s) if s == "t" => return Some(self.c.add_expr(Expr::Var(id))),
                    _ => {}
                }
            }
            self.error(
                Diagnostic::error(
                    "eq/invalid-delay",
                    format!("`{name}(...)` reads a variable in the past: write `{name}(t - d)`"),
                )
                .with_span(span)
                .with_path(ctx.path.clone()),
            );
            return None;
        }
        let arity_err = |this: &mut Self, expected: &str| {
            this.error(
                Diagnostic::error(
                    "eq/wrong-arity",
                    format!("`{name}` takes {expected}, got {}", args.len()),
                )
                .with_span(span)
                .with_path(ctx.path.clone()),
            );
        };
        match name {
            "past" => {
                if args.len() != 2 {
                    arity_err(self, "2 arguments (variable, delay)");
                    return None;
                }
                let ExprKind::Ident(v) = &args[0].kind else {
                    self.error(
                        Diagnostic::error("eq/invalid-delay", "the first argument of `past` must be a variable")
                            .with_span(Span {
                                file: ctx.file,
                                range: args[0].range.offset(ctx.off),
                            })
                            .with_path(ctx.path.clone()),
                    );
                    return None;
                };
                let Some(&id) = ctx.scope.get(v) else {
                    return self.expr(&args[0], ctx).and(None);
                };
                let d = self.expr(&args[1], ctx)?;
                return Some(self.c.add_expr(Expr::Past(id, d)));
            }
            "randn" => {
                if !args.is_empty() {
                    arity_err(self, "no arguments");
                    return None;
                }
                return Some(self.c.add_expr(Expr::Randn));
            }
            _ => {}
        }
        let conv: Vec<Option<ExprId>> = args.iter().map(|a| self.expr(a, ctx)).collect();
        let ids: Vec<ExprId> = conv.into_iter().collect::<Option<Vec<_>>>()?;
        match (name, ids.as_slice()) {
            // Real scalars: trivial forms of the complex/vector helpers.
            ("vsum" | "real" | "conj", [x]) => return Some(*x),
            ("imag", [_]) => return Some(self.c.add_expr(Expr::Const(0.0))),
            ("sigmoid", [x, scaling, steepness, offset]) => {
                // 0.8: scaling / (1 + exp(-steepness * (x - offset)))
                let d = self.c.add_expr(Expr::Binary(BinOp::Sub, *x, *offset));
                let m = self.c.add_expr(Expr::Binary(BinOp::Mul, *steepness, d));
                let n = self.c.add_expr(Expr::Neg(m));
                let ex = self.c.add_expr(Expr::Call(Func::Exp, vec![n]));
                let one = self.c.add_expr(Expr::Const(1.0));
                let den = self.c.add_expr(Expr::Binary(BinOp::Add, one, ex));
                return Some(self.c.add_expr(Expr::Binary(BinOp::Div, *scaling, den)));
            }
            ("heaviside", [x, h0]) => {
                let zero = self.c.add_expr(Expr::Const(0.0));
                let eq = self.c.add_expr(Expr::Binary(BinOp::Eq, *x, zero));
                let gt = self.c.add_expr(Expr::Binary(BinOp::Gt, *x, zero));
                return Some(self.c.add_expr(Expr::Select(eq, *h0, gt)));
            }
            _ => {}
        }
        let Some(f) = func_by_name(name) else {
            let mut d = Diagnostic::error(
                if matches!(name, "vsum" | "real" | "imag" | "conj" | "sigmoid" | "heaviside") {
                    "eq/wrong-arity"
                } else {
                    "eq/unknown-function"
                },
                if matches!(name, "vsum" | "real" | "imag" | "conj" | "sigmoid" | "heaviside") {
                    format!("`{name}` does not take {} arguments", args.len())
                } else {
                    format!("unknown function `{name}`")
                },
            )
            .with_span(name_span)
            .with_path(ctx.path.clone());
            if let Some(s) = suggest(name, &FUNC_NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            if name == "interp" {
                d = d.with_help("`interp` needs vector-valued variables, which rustrates does not support");
            }
            self.error(d);
            return None;
        };
        if f.arity() != ids.len() {
            let n = f.arity();
            arity_err(self, &format!("{n} argument{}", if n == 1 { "" } else { "s" }));
            return None;
        }
        Some(self.c.add_expr(Expr::Call(f, ids)))
    }

    /// Find a variable by an edge path (`node/op/var` relative to `prefix`); a path without
    /// the operator (`node/var`) is accepted when exactly one operator has that variable.
    fn find_edge_var(&self, prefix: &str, p: &str) -> Option<VarId> {
        let full = format!("{prefix}{p}");
        if let Some(&id) = self.by_name.get(&full) {
            return Some(id);
        }
        let (node, var) = full.rsplit_once('/')?;
        let cands: Vec<usize> = self
            .c
            .vars
            .iter()
            .enumerate()
            .filter(|(_, v)| v.node.as_deref() == Some(node) && v.name.rsplit_once('/').map(|x| x.1) == Some(var))
            .map(|(i, _)| i)
            .collect();
        match cands.as_slice() {
            [i] => Some(VarId(*i as u32)),
            _ => None,
        }
    }

    fn unknown_edge_end(&mut self, code: &'static str, which: &str, prefix: &str, p: &str, span: Span, path: &str) {
        // Candidates relative to the circuit the edge is written in.
        let names: Vec<String> = self
            .c
            .vars
            .iter()
            .filter(|v| v.node.is_some())
            .filter_map(|v| v.name.strip_prefix(prefix).map(str::to_string))
            .collect();
        let first = p.split('/').next().unwrap_or("");
        let last = p.rsplit('/').next().unwrap_or("");
        // Same node and variable name, other operator: the usual slip (`qif_op` for `qif_gap_op`).
        let same_var = names
            .iter()
            .find(|n| n.split('/').next() == Some(first) && n.rsplit('/').next() == Some(last))
            .cloned();
        let mut d = Diagnostic::error(code, format!("edge {which} `{p}` is not a variable of the circuit"))
            .with_span(span)
            .with_path(path.to_string());
        d = match same_var.or_else(|| suggest(p, &names)) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => {
                let mut nodes: Vec<&str> = self.c.nodes.iter().filter_map(|n| n.strip_prefix(prefix)).collect();
                nodes.dedup();
                d.with_help(format!(
                    "write it as `node/operator/variable`; nodes here: {}",
                    nodes.join(", ")
                ))
            }
        };
        self.error(d);
    }

    fn add_edge(&mut self, prefix: &str, e: &EdgeDecl) {
        let src = self.find_edge_var(prefix, &e.source);
        let tgt = self.find_edge_var(prefix, &e.target);
        if src.is_none() {
            self.unknown_edge_end(
                "edge/unknown-source",
                "source",
                prefix,
                &e.source,
                e.source_span,
                &e.path,
            );
        }
        if tgt.is_none() {
            self.unknown_edge_end(
                "edge/unknown-target",
                "target",
                prefix,
                &e.target,
                e.target_span,
                &e.path,
            );
        }
        let (Some(src), Some(tgt)) = (src, tgt) else {
            return;
        };
        if self.edge_target_is_input(tgt, &e.target, e.target_span, &e.path) {
            self.add_resolved_edge(prefix, e, src, tgt);
        }
    }

    /// Edges of a `connectivity:` block: the edges of the equivalent edge list, in its order.
    /// Each end is looked up and checked once per node, so a wrong name is one error, not
    /// one per matrix entry.
    fn add_connectivity(&mut self, prefix: &str, m: &ConnectivityDecl) {
        // The first node without the variable is reported, at the variable's name.
        let ends = |this: &mut Self, nodes: &[(String, Span)], var: &str, span: Span, which: &str| {
            let mut ids = Vec::with_capacity(nodes.len());
            for (node, _) in nodes {
                let p = format!("{node}/{var}");
                match this.find_edge_var(prefix, &p) {
                    Some(id) => ids.push(id),
                    None => {
                        let code = if which == "source" {
                            "edge/unknown-source"
                        } else {
                            "edge/unknown-target"
                        };
                        this.unknown_edge_end(code, which, prefix, &p, span, &m.path);
                        return None;
                    }
                }
            }
            Some(ids)
        };
        let sources = ends(self, &m.source_nodes, &m.source, m.source_span, "source");
        let targets = ends(self, &m.target_nodes, &m.target, m.target_span, "target");
        let (Some(sources), Some(targets)) = (sources, targets) else {
            return;
        };
        for (k, &t) in targets.iter().enumerate() {
            let text = format!("{}/{}", m.target_nodes[k].0, m.target);
            if !self.edge_target_is_input(t, &text, m.target_span, &m.path) {
                return;
            }
        }
        let scale = m.scale.map(|(value, span)| {
            self.c.add_var(Var {
                name: format!("{prefix}{}/scale", m.name),
                kind: VarKind::Param,
                value,
                node: None,
                external_input: None,
                span: Some(span),
            })
        });
        let n_sources = sources.len();
        // One declaration for the whole block, its values set per entry: the ends are already
        // resolved, so no per-edge strings are built (10⁶ entries at N = 1000).
        let mut e = EdgeDecl {
            source: m.source.clone(),
            source_span: m.source_span,
            target: m.target.clone(),
            target_span: m.target_span,
            template: m.template.clone(),
            params: m
                .values
                .iter()
                .map(|v| (v.key.clone(), ParamValue::Num(0.0), v.span, v.key_span))
                .collect(),
            span: m.span,
            path: m.path.clone(),
        };
        for (i, j) in m.edges() {
            for (p, v) in e.params.iter_mut().zip(&m.values) {
                p.1 = ParamValue::Num(v.entries.at(i, j, n_sources));
            }
            self.add_resolved_edge(prefix, &e, sources[j], targets[i]);
            if let (Some(id), Some(edge)) = (scale, self.c.edges.last_mut()) {
                edge.params.push(("scale".into(), id));
            }
        }
    }

    fn edge_target_is_input(&mut self, tgt: VarId, target: &str, target_span: Span, path: &str) -> bool {
        let tv = self.c.var(tgt);
        // Inputs, also those fed inside their node (algebraic without an equation of their own).
        let is_input = tv.kind == VarKind::Input || (tv.kind == VarKind::Algebraic && !self.defined.contains_key(&tgt));
        if !is_input {
            let what = match tv.kind {
                VarKind::State => "a state variable",
                VarKind::Param => "a constant",
                _ => "computed by an equation",
            };
            self.error(
                Diagnostic::error(
                    "edge/target-not-input",
                    format!("edge target `{target}` is {what}, not an input"),
                )
                .with_span(target_span)
                .with_path(path)
                .with_help("edges deliver into variables declared as `input`"),
            );
            return false;
        }
        true
    }

    fn add_resolved_edge(&mut self, prefix: &str, e: &EdgeDecl, src: VarId, tgt: VarId) {
        let src_node = self.c.var(src).node.clone().unwrap_or_default();
        let tgt_node = self.c.var(tgt).node.clone().unwrap_or_default();
        let cnt = self
            .edge_counts
            .entry((src_node.clone(), tgt_node.clone()))
            .or_insert(0);
        let idx = *cnt;
        *cnt += 1;
        let ename = edge_node_name(&src_node, &tgt_node, idx);
        let mut params: Vec<(String, VarId)> = Vec::new();
        let mut add_param = |this: &mut Self, key: &str, value: f64, span: Option<Span>| {
            let id = this.c.add_var(Var {
                name: format!("{ename}/{key}"),
                kind: VarKind::Param,
                value,
                node: None,
                external_input: None,
                span,
            });
            params.push((key.to_string(), id));
        };
        let num = |key: &str| {
            e.params
                .iter()
                .find(|(k, _, _, _)| k == key)
                .and_then(|(_, v, s, _)| match v {
                    ParamValue::Num(x) => Some((*x, *s)),
                    ParamValue::Ref(_) => None,
                })
        };
        for (k, v, sp, key_span) in &e.params {
            let core = matches!(k.as_str(), "weight" | "delay" | "spread");
            if core && matches!(v, ParamValue::Ref(r) if !matches!(r.as_str(), "null" | "~" | "")) {
                self.error(
                    Diagnostic::error("edge/invalid", format!("edge `{k}` must be a number"))
                        .with_span(*sp)
                        .with_path(e.path.clone()),
                );
            } else if !core && e.template.is_none() {
                let keys = ["weight", "delay", "spread"].map(String::from);
                let mut d = Diagnostic::error("edge/unknown-parameter", format!("unknown edge parameter `{k}`"))
                    .with_span(*key_span)
                    .with_path(e.path.clone());
                d = match suggest(k, &keys) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help("an edge without a template takes `weight`, `delay` and `spread`"),
                };
                self.error(d);
            }
        }
        let (w, ws) = num("weight").map_or((1.0, None), |(x, s)| (x, Some(s)));
        add_param(self, "weight", w, ws.or(Some(e.span)));
        for key in ["delay", "spread"] {
            if let Some((x, s)) = num(key) {
                if x < 0.0 || !x.is_finite() {
                    self.error(
                        Diagnostic::error("edge/invalid", format!("`{key}` must be a finite number >= 0"))
                            .with_span(s)
                            .with_path(e.path.clone()),
                    );
                }
                add_param(self, key, x, Some(s));
            }
        }
        if let Some((_, s)) = num("spread") {
            if num("delay").is_none_or(|(d, _)| d <= 0.0) {
                self.error(
                    Diagnostic::error("edge/invalid", "`spread` needs a positive `delay`")
                        .with_span(s)
                        .with_path(e.path.clone()),
                );
            }
        }
        let mut source = src;
        if let Some(t) = &e.template {
            // An edge template without operators (PyRates' `DummyEdge`) is a weighted copy.
            if let Some(nt) = match &t.body {
                Body::Edge(nt) if !nt.operators.is_empty() => Some(nt),
                _ => None,
            } {
                let scopes = self.add_node(&ename, nt, None);
                // Overrides of edge-template variables: `tpl/op/var`, `op/var` or `var`.
                let mut wired: HashSet<VarId> = HashSet::new();
                for (k, v, s, key_span) in &e.params {
                    if matches!(k.as_str(), "weight" | "delay" | "spread") {
                        continue;
                    }
                    let key = k.strip_prefix(&format!("{}/", t.name)).unwrap_or(k);
                    let found = scopes.iter().find_map(|(op, sc, _)| match key.split_once('/') {
                        Some((o, vn)) if o == op => sc.get(vn).copied(),
                        None => sc.get(key).copied(),
                        _ => None,
                    });
                    let Some(id) = found else {
                        self.error(
                            Diagnostic::error(
                                "edge/unknown-parameter",
                                format!("edge template `{}` has no variable `{k}`", t.name),
                            )
                            .with_span(*key_span)
                            .with_path(e.path.clone()),
                        );
                        continue;
                    };
                    match v {
                        ParamValue::Num(x) => self.c.vars[id.0 as usize].value = *x,
                        ParamValue::Ref(r) => {
                            let from = if r == "source" {
                                Some(src)
                            } else {
                                self.find_edge_var(prefix, r)
                            };
                            match from {
                                Some(f) => {
                                    self.feed(id, f);
                                    wired.insert(id);
                                }
                                None => self.unknown_edge_end("edge/unknown-source", "input", prefix, r, *s, &e.path),
                            }
                        }
                    }
                }
                // Unwired inputs of the edge operators receive the source.
                let mut out: Option<VarId> = None;
                for (op, sc, order) in &scopes {
                    let Some(Body::Operator(opt)) =
                        nt.operators.iter().find(|u| &u.name == op).map(|u| &u.template.body)
                    else {
                        continue;
                    };
                    for id in order {
                        let vn = self.c.var(*id).name.rsplit('/').next().unwrap_or("").to_string();
                        let vt = opt.variables.get(&vn).map(|d| d.vtype);
                        if vt == Some(VType::Input) && self.c.var(*id).kind == VarKind::Input && !wired.contains(id) {
                            self.feed(*id, src);
                        }
                        if vt == Some(VType::Output) {
                            out = Some(*id);
                        }
                    }
                    let _ = sc;
                }
                match out {
                    Some(o) => source = o,
                    None => self.error(
                        Diagnostic::error(
                            "edge/invalid",
                            format!("edge template `{}` declares no `output` variable", t.name),
                        )
                        .with_span(e.span)
                        .with_path(e.path.clone()),
                    ),
                }
            }
        }
        self.c.edges.push(Edge {
            source_node: src_node,
            target_node: tgt_node,
            idx,
            source,
            target: tgt,
            params,
            span: Some(e.span),
        });
    }

    /// Make input `id` an algebraic copy of `from`.
    fn feed(&mut self, id: VarId, from: VarId) {
        let rhs = self.c.add_expr(Expr::Var(from));
        self.c.vars[id.0 as usize].kind = VarKind::Algebraic;
        let span = self.c.vars[id.0 as usize].span;
        self.c.assigns.push(Assign { var: id, rhs, span });
    }

    fn finish(mut self) -> (Option<Circuit>, Diagnostics) {
        // Evaluation order of algebraics: by their dependencies on other algebraics.
        let n = self.c.assigns.len();
        let pos: HashMap<VarId, usize> = self.c.assigns.iter().enumerate().map(|(i, a)| (a.var, i)).collect();
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, a) in self.c.assigns.iter().enumerate() {
            let mut vars = Vec::new();
            collect_vars(&self.c, a.rhs, &mut vars);
            deps[i] = vars.iter().filter_map(|v| pos.get(v).copied()).collect();
        }
        match topo_order(&deps) {
            Ok(order) => {
                let old = std::mem::take(&mut self.c.assigns);
                self.c.assigns = order.into_iter().map(|i| old[i].clone()).collect();
            }
            Err(_) if self.diags.iter().any(|d| d.code == "node/operator-cycle") => {}
            Err(cyc) => {
                let names: Vec<String> = cyc
                    .iter()
                    .map(|&i| self.c.var(self.c.assigns[i].var).name.clone())
                    .collect();
                let mut d = Diagnostic::error(
                    "eq/algebraic-cycle",
                    format!(
                        "algebraic equations depend on each other in a cycle: {}",
                        names.join(" -> ")
                    ),
                );
                if let Some(s) = self.c.assigns[cyc[0]].span {
                    d = d.with_span(s);
                }
                self.error(d);
            }
        }
        if self.diags.has_errors() {
            (None, self.diags)
        } else {
            (Some(self.c), self.diags)
        }
    }
}

struct Ctx<'a> {
    scope: &'a Scope,
    file: FileId,
    off: u32,
    path: String,
    /// The YAML scalar of an equation that was rewritten by `replace` (diagnostics point into
    /// the rewritten text and label the original).
    origin: Option<Span>,
}

/// Variables an expression reads now (delayed reads `Past` do not count: they read history).
pub(crate) fn collect_vars(c: &Circuit, e: ExprId, out: &mut Vec<VarId>) {
    match c.expr(e) {
        Expr::Var(v) => out.push(*v),
        Expr::Const(_) | Expr::Time | Expr::Randn => {}
        Expr::Neg(a) => collect_vars(c, *a, out),
        Expr::Binary(_, a, b) => {
            collect_vars(c, *a, out);
            collect_vars(c, *b, out);
        }
        Expr::Call(_, args) => {
            for a in args {
                collect_vars(c, *a, out);
            }
        }
        Expr::Select(a, b, d) => {
            collect_vars(c, *a, out);
            collect_vars(c, *b, out);
            collect_vars(c, *d, out);
        }
        Expr::Past(_, d) => collect_vars(c, *d, out),
    }
}

/// Stable topological order (`deps[i]` must come before `i`); on a cycle, its members.
pub(crate) fn topo_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut state = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        state: &mut [u8],
        order: &mut Vec<usize>,
        stack: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let from = stack.iter().position(|&x| x == i).unwrap_or(0);
                return Err(stack[from..].to_vec());
            }
            _ => {}
        }
        state[i] = 1;
        stack.push(i);
        for &d in &deps[i] {
            visit(d, deps, state, order, stack)?;
        }
        stack.pop();
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    let mut stack = Vec::new();
    for i in 0..n {
        visit(i, deps, &mut state, &mut order, &mut stack)?;
    }
    Ok(order)
}

fn bin(op: ast::BinOp) -> BinOp {
    match op {
        ast::BinOp::Add => BinOp::Add,
        ast::BinOp::Sub => BinOp::Sub,
        ast::BinOp::Mul => BinOp::Mul,
        ast::BinOp::Div => BinOp::Div,
        ast::BinOp::Pow => BinOp::Pow,
        ast::BinOp::Lt => BinOp::Lt,
        ast::BinOp::Le => BinOp::Le,
        ast::BinOp::Gt => BinOp::Gt,
        ast::BinOp::Ge => BinOp::Ge,
        ast::BinOp::Eq => BinOp::Eq,
        ast::BinOp::Ne => BinOp::Ne,
    }
}

const FUNC_NAMES: &[&str] = &[
    "sin",
    "cos",
    "tan",
    "sinh",
    "cosh",
    "tanh",
    "arcsin",
    "arccos",
    "arctan",
    "arctan2",
    "exp",
    "log",
    "sqrt",
    "abs",
    "sigmoid",
    "max",
    "min",
    "heaviside",
    "floor",
    "ceil",
    "sign",
    "past",
    "randn",
    "vsum",
    "real",
    "imag",
];

pub(crate) fn func_by_name(name: &str) -> Option<Func> {
    Some(match name {
        "sin" => Func::Sin,
        "cos" => Func::Cos,
        "tan" => Func::Tan,
        "sinh" => Func::Sinh,
        "cosh" => Func::Cosh,
        "tanh" => Func::Tanh,
        "arcsin" | "asin" => Func::Arcsin,
        "arccos" | "acos" => Func::Arccos,
        "arctan" | "atan" => Func::Arctan,
        "arctan2" | "atan2" => Func::Arctan2,
        "exp" => Func::Exp,
        "log" => Func::Log,
        "sqrt" => Func::Sqrt,
        "abs" | "absv" => Func::Abs,
        "sigmoid" => Func::Sigmoid,
        "max" | "maximum" => Func::Max,
        "min" | "minimum" => Func::Min,
        "heaviside" => Func::Heaviside,
        "floor" => Func::Floor,
        "ceil" => Func::Ceil,
        "sign" => Func::Sign,
        _ => return None,
    })
}

/// Func name as written in equations (for the dump).
pub(crate) fn func_name(f: Func) -> &'static str {
    match f {
        Func::Sin => "sin",
        Func::Cos => "cos",
        Func::Tan => "tan",
        Func::Sinh => "sinh",
        Func::Cosh => "cosh",
        Func::Tanh => "tanh",
        Func::Arcsin => "arcsin",
        Func::Arccos => "arccos",
        Func::Arctan => "arctan",
        Func::Arctan2 => "arctan2",
        Func::Exp => "exp",
        Func::Log => "log",
        Func::Sqrt => "sqrt",
        Func::Abs => "abs",
        Func::Sigmoid => "sigmoid",
        Func::Max => "max",
        Func::Min => "min",
        Func::Heaviside => "heaviside",
        Func::Floor => "floor",
        Func::Ceil => "ceil",
        Func::Sign => "sign",
    }
}

/// Evaluate an expression for tests: `val` gives variable values, `t` the time; `Past` reads
/// the current value (tests check the structure of delays separately).
#[cfg(test)]
pub(crate) fn eval(c: &Circuit, e: ExprId, val: &dyn Fn(VarId) -> f64, t: f64) -> f64 {
    let r = |x: ExprId| eval(c, x, val, t);
    match c.expr(e) {
        Expr::Const(x) => *x,
        Expr::Var(v) => val(*v),
        Expr::Time => t,
        Expr::Randn => 0.0,
        Expr::Neg(a) => -r(*a),
        Expr::Binary(op, a, b) => {
            let (a, b) = (r(*a), r(*b));
            let f = |x: bool| f64::from(u8::from(x));
            match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Pow => a.powf(b),
                BinOp::Lt => f(a < b),
                BinOp::Le => f(a <= b),
                BinOp::Gt => f(a > b),
                BinOp::Ge => f(a >= b),
                BinOp::Eq => f(a == b),
                BinOp::Ne => f(a != b),
            }
        }
        Expr::Call(f, args) => {
            let a: Vec<f64> = args.iter().map(|x| r(*x)).collect();
            match f {
                Func::Sin => a[0].sin(),
                Func::Cos => a[0].cos(),
                Func::Tan => a[0].tan(),
                Func::Sinh => a[0].sinh(),
                Func::Cosh => a[0].cosh(),
                Func::Tanh => a[0].tanh(),
                Func::Arcsin => a[0].asin(),
                Func::Arccos => a[0].acos(),
                Func::Arctan => a[0].atan(),
                Func::Arctan2 => a[0].atan2(a[1]),
                Func::Exp => a[0].exp(),
                Func::Log => a[0].ln(),
                Func::Sqrt => a[0].sqrt(),
                Func::Abs => a[0].abs(),
                Func::Sigmoid => 1.0 / (1.0 + (-a[0]).exp()),
                Func::Max => a[0].max(a[1]),
                Func::Min => a[0].min(a[1]),
                Func::Heaviside => {
                    if a[0] > 0.0 {
                        1.0
                    } else if a[0] == 0.0 {
                        0.5
                    } else {
                        0.0
                    }
                }
                Func::Floor => a[0].floor(),
                Func::Ceil => a[0].ceil(),
                Func::Sign => a[0].signum(),
            }
        }
        Expr::Select(a, b, d) => {
            if r(*a) != 0.0 {
                r(*b)
            } else {
                r(*d)
            }
        }
        Expr::Past(v, _) => val(*v),
    }
}

/// Values of every variable: states/params/inputs from `value`, algebraics computed in order.
#[cfg(test)]
pub(crate) fn eval_all(c: &Circuit) -> Vec<f64> {
    let mut vals: Vec<f64> = c.vars.iter().map(|v| v.value).collect();
    for a in &c.assigns {
        let x = {
            let snapshot = vals.clone();
            eval(c, a.rhs, &|v: VarId| snapshot[v.0 as usize], 0.0)
        };
        vals[a.var.0 as usize] = x;
    }
    vals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{LoadOptions, Loader};

    /// Build template `name` from YAML text.
    fn build(yaml: &str, name: &str) -> (Option<Circuit>, Diagnostics) {
        let d = tempfile::tempdir().expect("temp dir");
        std::fs::write(d.path().join("t.yaml"), yaml).expect("write");
        let o = LoadOptions {
            search_path: Vec::new(),
            cwd: Some(d.path().to_path_buf()),
        };
        let mut l = Loader::new(&o);
        let t = l.resolve_path(&format!("t.{name}")).expect("resolves");
        assert!(l.diags.is_empty(), "{:?}", l.diags);
        build_template(&t, &mut l.sources)
    }

    fn ok(yaml: &str, name: &str) -> Circuit {
        let (c, d) = build(yaml, name);
        c.unwrap_or_else(|| panic!("{d:?}"))
    }

    fn var(c: &Circuit, n: &str) -> VarId {
        c.find_var(n).unwrap_or_else(|| panic!("no {n}"))
    }

    fn assign_of(c: &Circuit, n: &str) -> ExprId {
        let id = var(c, n);
        c.assigns.iter().find(|a| a.var == id).map(|a| a.rhs).expect("assigned")
    }

    #[test]
    fn sigmoid_four_args_expands_to_scaled_logistic() {
        let c = ok(
            "Op:\n  base: OperatorTemplate\n  equations: 'm = sigmoid(x, 5.0, 560.0, 6e-3) + sigmoid(x)'\n  variables: {m: output, x: 0.01}\n",
            "Op",
        );
        let vals = eval_all(&c);
        // 0.8's sigmoid(x, scaling, steepness, offset) = scaling/(1+exp(-steepness*(x-offset))).
        let want = 5.0 / (1.0 + (-560.0f64 * (0.01 - 0.006)).exp()) + 1.0 / (1.0 + (-0.01f64).exp());
        assert!((vals[var(&c, "Op/Op/m").0 as usize] - want).abs() < 1e-14);
    }

    #[test]
    fn past_and_delayed_call_become_past_of_the_variable() {
        let c = ok(
            "Op:\n  base: OperatorTemplate\n  equations: [\"x' = -x + past(x, 0.1) + x(t - d) + randn()\"]\n  variables: {x: output(1.0), d: 0.2}\n",
            "Op",
        );
        let x = var(&c, "Op/Op/x");
        let pasts: Vec<(VarId, Expr)> = c
            .exprs
            .iter()
            .filter_map(|e| match e {
                Expr::Past(v, d) => Some((*v, c.expr(*d).clone())),
                _ => None,
            })
            .collect();
        assert_eq!(pasts, vec![(x, Expr::Const(0.1)), (x, Expr::Var(var(&c, "Op/Op/d")))]);
        assert!(c.exprs.contains(&Expr::Randn));
    }

    #[test]
    fn scalar_forms_of_vector_and_complex_helpers() {
        let c = ok(
            "Op:\n  base: OperatorTemplate\n  equations: 'y = vsum(x) + real(x) + imag(x) + heaviside(x - 2, 0.25)'\n  variables: {y: output, x: 2.0}\n",
            "Op",
        );
        let vals = eval_all(&c);
        assert_eq!(vals[var(&c, "Op/Op/y").0 as usize], 2.0 + 2.0 + 0.0 + 0.25);
    }

    #[test]
    fn operators_wired_by_name_evaluate_in_dependency_order() {
        let y = r#"
Sum:
  base: OperatorTemplate
  equations: "m = 3*v"
  variables: {m: output, v: input(100.0)}
Syn1:
  base: OperatorTemplate
  equations: "v = a"
  variables: {v: output, a: 2.0}
Syn2:
  base: OperatorTemplate
  equations: "v = b"
  variables: {v: output, b: 5.0}
N: {base: NodeTemplate, operators: [Sum, Syn1, Syn2]}
"#;
        let c = ok(y, "N");
        assert_eq!(c.node_operators[0].1, vec!["Syn1", "Syn2", "Sum"]);
        let vals = eval_all(&c);
        // Both operators that define `v` feed Sum's input: m = 3*(2+5).
        assert_eq!(vals[var(&c, "N/Sum/m").0 as usize], 21.0);
        let _ = assign_of(&c, "N/Sum/v");
    }

    #[test]
    fn duplicate_operator_is_reported_and_later_operators_still_checked() {
        let y = r#"
A:
  base: OperatorTemplate
  equations: "x' = -x"
  variables: {x: output(1.0)}
B:
  base: OperatorTemplate
  equations: "y' = -y + q"
  variables: {y: output(1.0)}
N: {base: NodeTemplate, operators: [A, A, B]}
"#;
        let (c, d) = build(y, "N");
        assert!(c.is_none());
        let codes: Vec<&str> = d.iter().map(|x| x.code).collect();
        assert_eq!(codes, vec!["node/duplicate-operator", "eq/undefined-symbol"]);
    }

    #[test]
    fn only_outputs_feed_inputs_of_the_same_name() {
        let y = r#"
A:
  base: OperatorTemplate
  equations: ["x' = -x", "m = 2*x"]
  variables: {x: variable(1.0), m: output}
B:
  base: OperatorTemplate
  equations: "y = x + m"
  variables: {y: output, x: input(5.0), m: input(0.0)}
N: {base: NodeTemplate, operators: [B, A]}
"#;
        let c = ok(y, "N");
        let vals = eval_all(&c);
        // `m` is A's output and feeds B; `x` is only a variable of A: B's `x` keeps 5.
        assert_eq!(vals[var(&c, "N/B/y").0 as usize], 5.0 + 2.0);
        assert_eq!(c.var(var(&c, "N/B/x")).kind, VarKind::Input);
    }

    #[test]
    fn all_equation_errors_of_a_template_are_collected() {
        let (c, d) = build(
            "Op:\n  base: OperatorTemplate\n  equations: [\"x' = a + b\", \"y = max(x)\", \"z = foo(x)\"]\n  variables: {x: output(0.0), y: variable, z: variable}\n",
            "Op",
        );
        assert!(c.is_none());
        let codes: Vec<&str> = d.iter().map(|x| x.code).collect();
        assert_eq!(
            codes,
            vec![
                "eq/undefined-symbol",
                "eq/undefined-symbol",
                "eq/wrong-arity",
                "eq/unknown-function"
            ]
        );
    }

    #[test]
    fn edge_template_chain_receives_source_and_delivers_output() {
        let y = r#"
P:
  base: OperatorTemplate
  equations: "r' = -r + r_in"
  variables: {r: output(1.0), r_in: input(0.0)}
Pop: {base: NodeTemplate, operators: [P]}
Dep:
  base: OperatorTemplate
  equations: ["x' = (1-x)/tau - x*r_in", "r_eff = r_in*x"]
  variables: {r_eff: output, x: variable(1.0), tau: 100.0, r_in: input(0.0)}
DepEdge: {base: EdgeTemplate, operators: [Dep]}
Net:
  base: CircuitTemplate
  nodes: {a: Pop, b: Pop}
  edges: [[a/P/r, b/P/r_in, DepEdge, {weight: 2.0, Dep/tau: 50.0}]]
"#;
        let c = ok(y, "Net");
        let e = &c.edges[0];
        assert_eq!(c.var(e.source).name, "edge:a->b:0/Dep/r_eff");
        assert_eq!(c.var(var(&c, "edge:a->b:0/Dep/tau")).value, 50.0);
        let vals = eval_all(&c);
        // r_in of the edge operator copies a's r (1.0); r_eff = r_in * x = 1 * 1.
        assert_eq!(vals[e.source.0 as usize], 1.0);
    }
}
