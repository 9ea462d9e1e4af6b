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

use super::ir::{
    Assign, BinOp, Circuit, ComplexVar, Coupling, Edge, Expr, ExprId, Func, Ode, Scale, Var, VarId, VarKind,
};

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
mod edges;
mod equations;
#[cfg(test)]
mod eval;
#[cfg(test)]
pub(crate) mod tests;

use edges::{PendingDecl, PendingEdge};
pub(crate) use equations::func_name;
use equations::{Ctx, Val};
#[cfg(test)]
pub(crate) use eval::{eval, eval_all};

/// A parsed equation: AST, offset of its ranges, file, diagnostic path, original scalar when
/// the text was rewritten.
type ParsedEq = (std::rc::Rc<ast::Equation>, u32, FileId, String, Option<Span>);

/// Symbols visible to one operator's equations.
type Scope = HashMap<String, VarId>;

struct Builder<'s> {
    c: Circuit,
    diags: Diagnostics,
    sources: &'s mut SourceMap,
    /// Var → where its defining equation is (for duplicate-definition labels).
    defined: HashMap<VarId, Span>,
    /// Per (source_node, target_node): edges of the edge list so far.
    edge_counts: HashMap<(String, String), usize>,
    /// Per block kept as a coupling: its source nodes' columns and target nodes' rows, so
    /// an edge declared after it counts the block's entries between its nodes
    /// (`Circuit::block_entry_named`'s numbering).
    block_ends: Vec<(HashMap<String, usize>, HashMap<String, usize>)>,
    /// Operator variables by full name (edge ends are looked up here); a complex variable
    /// by its real part.
    by_name: HashMap<String, VarId>,
    /// Real part → imaginary part of every complex variable.
    imag: HashMap<VarId, VarId>,
    /// First element → all elements (`name[0]`, `name[1]`, ...) of every vector variable;
    /// its scope entry is the first element.
    elems: HashMap<VarId, Vec<VarId>>,
    /// Equations parsed so far, by (file, offset, length) of their verbatim text: the nodes
    /// of one template share one parse (`parse_eq`).
    parsed_eqs: HashMap<(FileId, u32, usize), std::rc::Rc<ast::Equation>>,
}

impl<'s> Builder<'s> {
    fn new(sources: &'s mut SourceMap) -> Self {
        Self {
            c: Circuit::default(),
            diags: Diagnostics::new(),
            sources,
            defined: HashMap::new(),
            edge_counts: HashMap::new(),
            block_ends: Vec::new(),
            by_name: HashMap::new(),
            imag: HashMap::new(),
            elems: HashMap::new(),
            parsed_eqs: HashMap::new(),
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
                let full = format!("{path}/{}/{vn}", u.name);
                let part = |name: String, value: f64| Var {
                    name,
                    kind,
                    value,
                    node: node.clone(),
                    external_input: None,
                    span: Some(d.span),
                };
                let id = match (d.imag, d.len) {
                    (_, Some(n)) => {
                        // A vector of n elements is n real variables `name[i]`; the template
                        // layer refuses complex vectors.
                        let ids: Vec<VarId> = (0..n)
                            .map(|i| {
                                let name = format!("{full}[{i}]");
                                let id = self.c.add_var(part(name.clone(), value));
                                self.by_name.insert(name, id);
                                id
                            })
                            .collect();
                        let first = ids[0];
                        self.elems.insert(first, ids);
                        scope.insert(vn.clone(), first);
                        order.push(first);
                        types.insert(vn.clone(), d.vtype);
                        continue;
                    }
                    (None, None) => self.c.add_var(part(full.clone(), value)),
                    (Some(im_default), None) => {
                        // A real override replaces the whole complex default, as in PyRates.
                        let overridden = u.overrides.iter().any(|(n, _, _)| n == vn);
                        let im_value = if overridden { 0.0 } else { im_default };
                        let re = self.c.add_var(part(format!("{full}.real"), value));
                        let im = self.c.add_var(part(format!("{full}.imag"), im_value));
                        self.imag.insert(re, im);
                        self.c.complex.push(ComplexVar {
                            name: full.clone(),
                            re,
                            im,
                        });
                        re
                    }
                };
                self.by_name.insert(full, id);
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
                            Some(vt @ (VType::Input | VType::Constant)) => {
                                let (code, what) = if vt == VType::Input {
                                    ("eq/assign-to-input", "an input")
                                } else {
                                    ("eq/assign-to-constant", "a constant")
                                };
                                self.error(
                                    Diagnostic::error(code, format!("`{name}` is {what} and cannot be assigned"))
                                        .with_span(lhs_span)
                                        .with_path(p.clone())
                                        .with_help("declare it as `output(...)` or `variable(...)`"),
                                )
                            }
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
                                    let kind = match eq.lhs.kind {
                                        LhsKind::Derivative => VarKind::State,
                                        LhsKind::Assign => VarKind::Algebraic,
                                    };
                                    self.c.vars[id.0 as usize].kind = kind;
                                    if let Some(&im) = self.imag.get(&id) {
                                        self.c.vars[im.0 as usize].kind = kind;
                                    }
                                    for &el in self.elems.get(&id).into_iter().flatten() {
                                        self.c.vars[el.0 as usize].kind = kind;
                                    }
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
                let is_vector = |this: &Self, v: VarId| this.elems.contains_key(&v);
                if is_vector(self, id) || providers.iter().any(|&a| is_vector(self, scopes[a].1[&vn])) {
                    let span = self.c.vars[id.0 as usize].span;
                    let mut d = Diagnostic::error(
                        "node/vector-wiring",
                        format!("the vector variable `{vn}` cannot be passed between the operators of node `{path}`"),
                    )
                    .with_path(format!("{path}.{}.{vn}", scopes[b].0))
                    .with_help("compute it in one operator, or pass a scalar such as `vsum(...)` as the output");
                    if let Some(sp) = span {
                        d = d.with_span(sp);
                    }
                    self.error(d);
                    continue;
                }
                let mut rhs: Option<ExprId> = None;
                let mut rhs_im: Option<ExprId> = None;
                for &a in &providers {
                    deps[b].push(a);
                    let from = scopes[a].1[&vn];
                    let v = self.c.add_expr(Expr::Var(from));
                    rhs = Some(match rhs {
                        None => v,
                        Some(r) => self.c.add_expr(Expr::Binary(BinOp::Add, r, v)),
                    });
                    if let Some(&from_im) = self.imag.get(&from) {
                        let v = self.c.add_expr(Expr::Var(from_im));
                        rhs_im = Some(match rhs_im {
                            None => v,
                            Some(r) => self.c.add_expr(Expr::Binary(BinOp::Add, r, v)),
                        });
                    }
                }
                if let Some(rhs) = rhs {
                    self.c.vars[id.0 as usize].kind = VarKind::Algebraic;
                    let span = self.c.vars[id.0 as usize].span;
                    self.c.assigns.push(Assign { var: id, rhs, span });
                    // A complex input takes the imaginary parts too (0 from real outputs);
                    // a real input fed by complex outputs takes their real parts, as numpy's
                    // cast does in PyRates.
                    if let Some(&im) = self.imag.get(&id) {
                        let rhs = rhs_im.unwrap_or_else(|| self.c.add_expr(Expr::Const(0.0)));
                        self.c.vars[im.0 as usize].kind = VarKind::Algebraic;
                        self.c.assigns.push(Assign { var: im, rhs, span });
                    }
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
                let ctx_of = |elem| Ctx {
                    scope: &scopes[oi].1,
                    file,
                    off,
                    path: p.clone(),
                    origin,
                    elem,
                };
                let Some(&id) = scopes[oi].1.get(&eq.lhs.name) else {
                    let ctx = ctx_of(None);
                    let n_before = self.diags.len();
                    let _ = self.cexpr(&eq.rhs, &ctx);
                    self.label_rewritten(n_before, ctx.origin);
                    continue;
                };
                if let Some(elems) = self.elems.get(&id).cloned() {
                    // A vector left-hand side: the right-hand side once per element, scalars
                    // broadcast (numpy's rule in PyRates).
                    let span = Some(Span {
                        file,
                        range: eq.range.offset(off),
                    });
                    let first_def = self.defined.get(&id)
                        == Some(&Span {
                            file,
                            range: eq.lhs.range.offset(off),
                        });
                    let n_before = self.diags.len();
                    for (i, &var) in elems.iter().enumerate() {
                        let ctx = ctx_of(Some((i, elems.len())));
                        let Some(rhs) = self.real_expr(&eq.rhs, &ctx, "an element of a vector") else {
                            break;
                        };
                        if !first_def {
                            continue;
                        }
                        match eq.lhs.kind {
                            LhsKind::Derivative => self.c.odes.push(Ode { var, rhs, span }),
                            LhsKind::Assign => self.c.assigns.push(Assign { var, rhs, span }),
                        }
                    }
                    self.label_rewritten(n_before, origin);
                    continue;
                }
                let ctx = ctx_of(None);
                let n_before = self.diags.len();
                let rhs = self.cexpr(&eq.rhs, &ctx);
                self.label_rewritten(n_before, ctx.origin);
                let Some(rhs) = rhs else { continue };
                // A complex right-hand side assigned to a real variable keeps its real part
                // (numpy's cast in PyRates); a real one assigned to a complex variable has
                // imaginary part 0.
                let (rhs, rhs_im) = match (rhs, self.imag.get(&id).copied()) {
                    (Val::Real(x), None) | (Val::Complex(x, _), None) => (x, None),
                    (Val::Real(x), Some(im)) => (x, Some((im, self.c.add_expr(Expr::Const(0.0))))),
                    (Val::Complex(x, y), Some(im)) => (x, Some((im, y))),
                };
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
                let parts = std::iter::once((id, rhs)).chain(rhs_im);
                for (var, rhs) in parts {
                    match eq.lhs.kind {
                        LhsKind::Derivative => self.c.odes.push(Ode { var, rhs, span }),
                        LhsKind::Assign => self.c.assigns.push(Assign { var, rhs, span }),
                    }
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

    /// Make input `id` an algebraic copy of `from`.
    fn feed(&mut self, id: VarId, from: VarId) {
        let rhs = self.c.add_expr(Expr::Var(from));
        self.c.vars[id.0 as usize].kind = VarKind::Algebraic;
        let span = self.c.vars[id.0 as usize].span;
        self.c.assigns.push(Assign { var: id, rhs, span });
        if let Some(&im) = self.imag.get(&id) {
            let rhs = match self.imag.get(&from) {
                Some(&from_im) => self.c.add_expr(Expr::Var(from_im)),
                None => self.c.add_expr(Expr::Const(0.0)),
            };
            self.c.vars[im.0 as usize].kind = VarKind::Algebraic;
            self.c.assigns.push(Assign { var: im, rhs, span });
        }
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
