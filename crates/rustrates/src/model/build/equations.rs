//! Equation text → IR expressions: parsing at the equation's position, names resolved in the
//! operator's scope, PyRates' functions mapped to [`Func`].

use std::rc::Rc;

use super::*;

impl Builder<'_> {
    /// Parse one equation string; returns the AST, the offset to add to its ranges, and the
    /// file they point into. Rewritten equations (after `replace`) get a file of their own.
    /// An equation read verbatim from a file is parsed once: the nodes of one template share
    /// its tree (the same text at the same place parses the same; each node resolves the
    /// names in its own scope afterwards).
    pub(super) fn parse_eq(&mut self, e: &EqText, path: &str) -> Option<(Rc<ast::Equation>, u32, FileId)> {
        let verbatim = e.offset.map(|o| (e.span.file, o, e.text.len()));
        if let Some(eq) = verbatim.and_then(|k| self.parsed_eqs.get(&k)) {
            return Some((eq.clone(), e.offset.unwrap_or(0), e.span.file));
        }
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
            Ok(eq) => {
                let eq = Rc::new(eq);
                if let Some(k) = verbatim {
                    self.parsed_eqs.insert(k, eq.clone());
                }
                Some((eq, off, file))
            }
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

    /// Lower an expression that must be real-valued; `what` names the operation needing it
    /// when the value turns out complex.
    pub(super) fn real_expr(&mut self, e: &ast::Expr, ctx: &Ctx, what: &str) -> Option<ExprId> {
        match self.cexpr(e, ctx)? {
            Val::Real(x) => Some(x),
            Val::Complex(..) => {
                let span = Span {
                    file: ctx.file,
                    range: e.range.offset(ctx.off),
                };
                self.error(
                    Diagnostic::error(
                        "eq/complex-unsupported",
                        format!("{what} of a complex value is not supported"),
                    )
                    .with_span(span)
                    .with_path(ctx.path.clone())
                    .with_help(
                        "complex values support + - * /, ** with a real exponent, real, imag, abs, angle, \
                             conj and exp; take `real(...)`, `imag(...)` or `abs(...)` first",
                    ),
                );
                None
            }
        }
    }

    pub(super) fn expr(&mut self, e: &ast::Expr, ctx: &Ctx) -> Option<ExprId> {
        self.real_expr(e, ctx, "this use")
    }

    /// Lower an expression, complex values to (real part, imaginary part) pairs.
    pub(super) fn cexpr(&mut self, e: &ast::Expr, ctx: &Ctx) -> Option<Val> {
        let span = Span {
            file: ctx.file,
            range: e.range.offset(ctx.off),
        };
        match &e.kind {
            ExprKind::Imaginary(v) => {
                let re = self.c.add_expr(Expr::Const(0.0));
                let im = self.c.add_expr(Expr::Const(*v));
                Some(Val::Complex(re, im))
            }
            ExprKind::Ident(name) if ctx.scope.get(name).is_some_and(|id| self.imag.contains_key(id)) => {
                let re = ctx.scope[name];
                let im = self.imag[&re];
                Some(Val::Complex(
                    self.c.add_expr(Expr::Var(re)),
                    self.c.add_expr(Expr::Var(im)),
                ))
            }
            ExprKind::Unary(UnOp::Plus, inner) => self.cexpr(inner, ctx),
            ExprKind::Unary(UnOp::Neg, inner) => Some(match self.cexpr(inner, ctx)? {
                Val::Real(x) => Val::Real(self.c.add_expr(Expr::Neg(x))),
                Val::Complex(a, b) => Val::Complex(self.c.add_expr(Expr::Neg(a)), self.c.add_expr(Expr::Neg(b))),
            }),
            ExprKind::Binary(op, a, b) => {
                let a = self.cexpr(a, ctx);
                let b = self.cexpr(b, ctx);
                match (a?, b?) {
                    (Val::Real(a), Val::Real(b)) => Some(Val::Real(self.c.add_expr(Expr::Binary(*op, a, b)))),
                    (a, b) => self.complex_binary(*op, a, b, span, ctx),
                }
            }
            ExprKind::Call { name, args, .. }
                if matches!(args.as_slice(), [a] if matches!(&a.kind, ExprKind::Ident(t) if t == "t"))
                    && ctx.scope.get(name).is_some_and(|id| self.imag.contains_key(id)) =>
            {
                // `z(t)`: the current value, as for a real variable.
                let re = ctx.scope[name];
                let im = self.imag[&re];
                Some(Val::Complex(
                    self.c.add_expr(Expr::Var(re)),
                    self.c.add_expr(Expr::Var(im)),
                ))
            }
            ExprKind::Call { name, args, .. }
                if complex::FUNCS.contains(&name.as_str())
                    && !ctx.scope.contains_key(name)
                    && args.len() == complex::arity(name) =>
            {
                let vals: Vec<Option<Val>> = args.iter().map(|a| self.cexpr(a, ctx)).collect();
                let vals: Vec<Val> = vals.into_iter().collect::<Option<_>>()?;
                Some(complex::call(&mut self.c, name, &vals))
            }
            _ => self.real_leaf(e, ctx).map(Val::Real),
        }
    }

    /// A complex operation on two values, at least one complex.
    fn complex_binary(&mut self, op: BinOp, a: Val, b: Val, span: Span, ctx: &Ctx) -> Option<Val> {
        let refuse = |this: &mut Self, msg: String| {
            this.error(
                Diagnostic::error("eq/complex-unsupported", msg)
                    .with_span(span)
                    .with_path(ctx.path.clone())
                    .with_help("compare `real(...)`, `imag(...)` or `abs(...)` instead"),
            );
            None
        };
        match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => Some(complex::arith(&mut self.c, op, a, b)),
            BinOp::Pow => match b {
                Val::Real(p) => Some(complex::pow(&mut self.c, a, p)),
                Val::Complex(..) => {
                    self.error(
                        Diagnostic::error(
                            "eq/complex-unsupported",
                            "`**` with a complex exponent is not supported",
                        )
                        .with_span(span)
                        .with_path(ctx.path.clone())
                        .with_help("write the power with a real exponent, or as `exp(w * log|z| ...)` by hand"),
                    );
                    None
                }
            },
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => {
                let sym = match op {
                    BinOp::Lt => "<",
                    BinOp::Le => "<=",
                    BinOp::Gt => ">",
                    BinOp::Ge => ">=",
                    BinOp::Eq => "==",
                    _ => "!=",
                };
                refuse(self, format!("comparison `{sym}` of complex values is not supported"))
            }
        }
    }

    /// Numbers, real variables and calls of real functions.
    fn real_leaf(&mut self, e: &ast::Expr, ctx: &Ctx) -> Option<ExprId> {
        let span = Span {
            file: ctx.file,
            range: e.range.offset(ctx.off),
        };
        let x = match &e.kind {
            ExprKind::Number(v) => Expr::Const(*v),
            ExprKind::Imaginary(_) => unreachable!("lowered by cexpr"),
            ExprKind::Ident(name) => {
                if let Some(&id) = ctx.scope.get(name) {
                    Expr::Var(self.element(id, name, span, ctx)?)
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
            ExprKind::Unary(..) | ExprKind::Binary(..) => return self.expr(e, ctx),
            ExprKind::Call { name, name_range, args } => return self.call(name, *name_range, args, span, ctx),
        };
        Some(self.c.add_expr(x))
    }

    /// `name(...)` read as a delayed access to `what`, which has no delays: an error.
    fn unsupported_delay(
        &mut self,
        name: &str,
        code: &'static str,
        what: &str,
        help: &str,
        span: Span,
        ctx: &Ctx,
    ) -> Option<ExprId> {
        self.error(
            Diagnostic::error(code, format!("delayed access `{name}(...)` to {what} is not supported"))
                .with_span(span)
                .with_path(ctx.path.clone())
                .with_help(help),
        );
        None
    }

    fn call(&mut self, name: &str, name_range: TextRange, args: &[ast::Expr], span: Span, ctx: &Ctx) -> Option<ExprId> {
        let name_span = Span {
            file: ctx.file,
            range: name_range.offset(ctx.off),
        };
        // `x(t - d)`: delayed access to a variable.
        if let Some(&id) = ctx.scope.get(name) {
            if self.elems.contains_key(&id) {
                if let [arg] = args {
                    if matches!(&arg.kind, ExprKind::Ident(s) if s == "t") {
                        let el = self.element(id, name, span, ctx)?;
                        return Some(self.c.add_expr(Expr::Var(el)));
                    }
                }
                let help = "rustrates delays scalar variables only: write one node per element";
                return self.unsupported_delay(name, "eq/vector-unsupported", "a vector variable", help, span, ctx);
            }
            if self.imag.contains_key(&id) {
                let help = "rustrates delays real variables only";
                return self.unsupported_delay(name, "eq/complex-unsupported", "a complex value", help, span, ctx);
            }
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
                if self.imag.contains_key(&id) {
                    self.error(
                        Diagnostic::error("eq/complex-unsupported", "`past` of a complex value is not supported")
                            .with_span(span)
                            .with_path(ctx.path.clone())
                            .with_help("rustrates delays real variables only"),
                    );
                    return None;
                }
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
        if let Some(reduced) = self.reduction(name, args, span, ctx) {
            return reduced;
        }
        let what = format!("`{name}`");
        let conv: Vec<Option<ExprId>> = args.iter().map(|a| self.real_expr(a, ctx, &what)).collect();
        let ids: Vec<ExprId> = conv.into_iter().collect::<Option<Vec<_>>>()?;
        match (name, ids.as_slice()) {
            // Real scalars: trivial forms of the complex/vector helpers (PyRates 1.x's numpy
            // `sum`, `mean` and `dot` of scalars: the value itself and the product).
            ("vsum" | "sum" | "mean" | "real" | "conj", [x]) => return Some(*x),
            ("dot" | "matmul" | "matvec", [a, b]) => return Some(self.c.add_expr(Expr::Binary(BinOp::Mul, *a, *b))),
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
        if let Some(help) = vector_only_help(name) {
            self.error(
                Diagnostic::error(
                    "eq/vector-unsupported",
                    format!("`{name}` is a PyRates array function rustrates does not have"),
                )
                .with_span(name_span)
                .with_path(ctx.path.clone())
                .with_help(help),
            );
            return None;
        }
        let Some(f) = func_by_name(name) else {
            // Names the match above takes with other argument counts: only the count is wrong.
            let known = matches!(
                name,
                "vsum"
                    | "sum"
                    | "mean"
                    | "dot"
                    | "matmul"
                    | "matvec"
                    | "real"
                    | "imag"
                    | "conj"
                    | "sigmoid"
                    | "heaviside"
            );
            let mut d = if known {
                Diagnostic::error(
                    "eq/wrong-arity",
                    format!("`{name}` does not take {} arguments", args.len()),
                )
            } else {
                Diagnostic::error("eq/unknown-function", format!("unknown function `{name}`"))
            }
            .with_span(name_span)
            .with_path(ctx.path.clone());
            if let Some(s) = suggest(name, &FUNC_NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>()) {
                d = d.with_help(format!("did you mean `{s}`?"));
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
}

impl Builder<'_> {
    /// The variable a name reads: a scalar's own, a vector's element at `ctx.elem`; a vector
    /// where a scalar is needed or of another length is reported (once, at element 0).
    fn element(&mut self, id: VarId, name: &str, span: Span, ctx: &Ctx) -> Option<VarId> {
        let Some(elems) = self.elems.get(&id) else {
            return Some(id);
        };
        let len = elems.len();
        let d = match ctx.elem {
            Some((i, n)) if n == len => return Some(elems[i]),
            Some((0, n)) => Diagnostic::error(
                "eq/vector-length",
                format!("`{name}` has {len} elements where the expression has {n}"),
            )
            .with_help(format!(
                "element-wise arithmetic needs vectors of one length (numpy: operands could not be broadcast \
together with shapes ({n},) ({len},)); declare them alike or reduce one with `vsum(...)`"
            )),
            Some(_) => return None,
            None => Diagnostic::error(
                "eq/vector-as-scalar",
                format!("`{name}` is a vector of {len} elements where a scalar is needed"),
            )
            .with_help(
                "reduce it with `vsum(...)`, `mean(...)` or `dot(..., ...)`, or make the left-hand side a vector \
of the same length",
            ),
        };
        self.error(d.with_span(span).with_path(ctx.path.clone()));
        None
    }

    /// The vector length of an expression: that of the first vector it reads outside a
    /// reduction (`None`: a scalar). Mismatches are reported when the elements are lowered.
    fn vector_len(&self, e: &ast::Expr, ctx: &Ctx) -> Option<usize> {
        let of_name = |name: &str| ctx.scope.get(name).and_then(|id| self.elems.get(id)).map(Vec::len);
        match &e.kind {
            ExprKind::Ident(name) => of_name(name),
            ExprKind::Unary(_, inner) => self.vector_len(inner, ctx),
            ExprKind::Binary(_, a, b) => self.vector_len(a, ctx).or_else(|| self.vector_len(b, ctx)),
            ExprKind::Call { name, args, .. } => {
                if ctx.scope.contains_key(name) {
                    of_name(name)
                } else if is_reduction(name) {
                    None
                } else {
                    args.iter().find_map(|a| self.vector_len(a, ctx))
                }
            }
            _ => None,
        }
    }

    /// PyRates' reductions over a vector (`vsum`, `sum`, `mean`, `dot`, `matmul`, `matvec`):
    /// `None` when no argument is a vector (then they are the scalar forms in `call`).
    /// Elements are added first to last, as numpy does below 8 elements.
    fn reduction(&mut self, name: &str, args: &[ast::Expr], span: Span, ctx: &Ctx) -> Option<Option<ExprId>> {
        if !is_reduction(name) || ctx.scope.contains_key(name) {
            return None;
        }
        let lens: Vec<Option<usize>> = args.iter().map(|a| self.vector_len(a, ctx)).collect();
        let len = lens.iter().find_map(|l| *l)?;
        let pairwise = matches!(name, "dot" | "matmul" | "matvec");
        if args.len() != if pairwise { 2 } else { 1 } {
            return None;
        }
        if pairwise && lens.iter().any(Option::is_none) {
            self.error(
                Diagnostic::error(
                    "eq/vector-unsupported",
                    format!("`{name}` of a vector and a scalar is not supported"),
                )
                .with_span(span)
                .with_path(ctx.path.clone())
                .with_help("write the product `c * x` (a vector) or `c * vsum(x)` (a scalar)"),
            );
            return Some(None);
        }
        let mut total: Option<ExprId> = None;
        for i in 0..len {
            let el = ctx.at_element(Some((i, len)));
            let what = format!("`{name}`");
            let term = if pairwise {
                let a = self.real_expr(&args[0], &el, &what);
                let b = self.real_expr(&args[1], &el, &what);
                let (Some(a), Some(b)) = (a, b) else {
                    return Some(None);
                };
                self.c.add_expr(Expr::Binary(BinOp::Mul, a, b))
            } else {
                let Some(x) = self.real_expr(&args[0], &el, &what) else {
                    return Some(None);
                };
                x
            };
            total = Some(match total {
                None => term,
                Some(t) => self.c.add_expr(Expr::Binary(BinOp::Add, t, term)),
            });
        }
        let total = total.expect("a vector has at least one element");
        if name == "mean" {
            let n = self.c.add_expr(Expr::Const(len as f64));
            return Some(Some(self.c.add_expr(Expr::Binary(BinOp::Div, total, n))));
        }
        Some(Some(total))
    }
}

fn is_reduction(name: &str) -> bool {
    matches!(name, "vsum" | "sum" | "mean" | "dot" | "matmul" | "matvec")
}

/// A lowered value: real, or complex as (real part, imaginary part).
#[derive(Clone, Copy, Debug)]
pub(super) enum Val {
    Real(ExprId),
    Complex(ExprId, ExprId),
}

/// Complex arithmetic expanded into real expressions.
mod complex {
    use super::Val;
    use crate::model::ir::{BinOp, Circuit, Expr, ExprId, Func};

    /// Functions that take or make complex values (`absv` is PyRates' spelling of `abs`).
    pub const FUNCS: &[&str] = &[
        "real", "imag", "conj", "abs", "absv", "angle", "exp", "log", "sqrt", "sin", "cos", "complex",
    ];

    pub fn arity(name: &str) -> usize {
        if name == "complex" {
            2
        } else {
            1
        }
    }

    fn parts(c: &mut Circuit, v: Val) -> (ExprId, ExprId) {
        match v {
            Val::Real(x) => (x, c.add_expr(Expr::Const(0.0))),
            Val::Complex(a, b) => (a, b),
        }
    }

    fn bin(c: &mut Circuit, op: BinOp, a: ExprId, b: ExprId) -> ExprId {
        c.add_expr(Expr::Binary(op, a, b))
    }

    /// `+ - * /` with at least one complex operand. A real operand is not widened to
    /// `x + 0i`, so `2 * z` is `(2a, 2b)` exactly as numpy computes it.
    pub fn arith(c: &mut Circuit, op: BinOp, x: Val, y: Val) -> Val {
        use BinOp::{Add, Div, Mul, Sub};
        match (op, x, y) {
            (Add | Sub, Val::Complex(a, b), Val::Real(r)) => Val::Complex(bin(c, op, a, r), b),
            (Add, Val::Real(r), Val::Complex(a, b)) => Val::Complex(bin(c, Add, r, a), b),
            (Sub, Val::Real(r), Val::Complex(a, b)) => {
                let nb = c.add_expr(Expr::Neg(b));
                Val::Complex(bin(c, Sub, r, a), nb)
            }
            (Mul, Val::Real(r), Val::Complex(a, b)) | (Mul | Div, Val::Complex(a, b), Val::Real(r)) => {
                let (ra, rb) = if op == Mul {
                    (bin(c, Mul, r, a), bin(c, Mul, r, b))
                } else {
                    (bin(c, Div, a, r), bin(c, Div, b, r))
                };
                Val::Complex(ra, rb)
            }
            _ => {
                let (a, b) = parts(c, x);
                let (p, q) = parts(c, y);
                match op {
                    Add | Sub => Val::Complex(bin(c, op, a, p), bin(c, op, b, q)),
                    Mul => mul(c, (a, b), (p, q)),
                    _ => {
                        // (a + bi)/(p + qi) = ((ap + bq) + (bp − aq)i) / (p² + q²)
                        let pp = bin(c, Mul, p, p);
                        let qq = bin(c, Mul, q, q);
                        let den = bin(c, Add, pp, qq);
                        let ap = bin(c, Mul, a, p);
                        let bq = bin(c, Mul, b, q);
                        let bp = bin(c, Mul, b, p);
                        let aq = bin(c, Mul, a, q);
                        let re = bin(c, Add, ap, bq);
                        let im = bin(c, Sub, bp, aq);
                        Val::Complex(bin(c, Div, re, den), bin(c, Div, im, den))
                    }
                }
            }
        }
    }

    fn mul(c: &mut Circuit, (a, b): (ExprId, ExprId), (p, q): (ExprId, ExprId)) -> Val {
        let ap = bin(c, BinOp::Mul, a, p);
        let bq = bin(c, BinOp::Mul, b, q);
        let aq = bin(c, BinOp::Mul, a, q);
        let bp = bin(c, BinOp::Mul, b, p);
        Val::Complex(bin(c, BinOp::Sub, ap, bq), bin(c, BinOp::Add, aq, bp))
    }

    /// `z ** p` for a real exponent: integer constants by repeated multiplication (as numpy
    /// does for small integer powers), others through the polar form |z|^p·e^{ipθ}.
    pub fn pow(c: &mut Circuit, z: Val, p: ExprId) -> Val {
        let (a, b) = parts(c, z);
        if let Expr::Const(n) = *c.expr(p) {
            if n.fract() == 0.0 && n.abs() <= 100.0 && n != 0.0 {
                let k = n.abs() as u32;
                // Binary exponentiation: the same products numpy's integer power forms.
                let mut acc: Option<(ExprId, ExprId)> = None;
                let mut base = (a, b);
                let mut e = k;
                while e > 0 {
                    if e & 1 == 1 {
                        acc = Some(match acc {
                            None => base,
                            Some(r) => match mul(c, r, base) {
                                Val::Complex(x, y) => (x, y),
                                Val::Real(_) => unreachable!(),
                            },
                        });
                    }
                    e >>= 1;
                    if e > 0 {
                        base = match mul(c, base, base) {
                            Val::Complex(x, y) => (x, y),
                            Val::Real(_) => unreachable!(),
                        };
                    }
                }
                let (x, y) = acc.expect("k >= 1");
                if n > 0.0 {
                    return Val::Complex(x, y);
                }
                let one = c.add_expr(Expr::Const(1.0));
                return arith(c, BinOp::Div, Val::Real(one), Val::Complex(x, y));
            }
        }
        // |z|^p = (a² + b²)^(p/2), θ = atan2(b, a)
        let aa = bin(c, BinOp::Mul, a, a);
        let bb = bin(c, BinOp::Mul, b, b);
        let r2 = bin(c, BinOp::Add, aa, bb);
        let two = c.add_expr(Expr::Const(2.0));
        let half_p = bin(c, BinOp::Div, p, two);
        let mag = bin(c, BinOp::Pow, r2, half_p);
        let theta = c.add_expr(Expr::Call(Func::Arctan2, vec![b, a]));
        let ang = bin(c, BinOp::Mul, p, theta);
        let cos = c.add_expr(Expr::Call(Func::Cos, vec![ang]));
        let sin = c.add_expr(Expr::Call(Func::Sin, vec![ang]));
        Val::Complex(bin(c, BinOp::Mul, mag, cos), bin(c, BinOp::Mul, mag, sin))
    }

    /// One of [`FUNCS`] on lowered arguments (real ones included: `abs(x)` stays `|x|`).
    pub fn call(c: &mut Circuit, name: &str, args: &[Val]) -> Val {
        let zero = |c: &mut Circuit| c.add_expr(Expr::Const(0.0));
        match (name, args) {
            ("complex", [re, im]) => {
                let (a, b) = parts(c, *re);
                let (p, q) = parts(c, *im);
                // complex(a + bi, p + qi) = (a − q) + (b + p)i, as Python's complex().
                let re = bin(c, BinOp::Sub, a, q);
                let im = bin(c, BinOp::Add, b, p);
                Val::Complex(re, im)
            }
            ("real", [Val::Real(x)] | [Val::Complex(x, _)]) => Val::Real(*x),
            ("imag", [Val::Real(_)]) => Val::Real(zero(c)),
            ("imag", [Val::Complex(_, y)]) => Val::Real(*y),
            ("conj", [Val::Real(x)]) => Val::Real(*x),
            ("conj", [Val::Complex(x, y)]) => Val::Complex(*x, c.add_expr(Expr::Neg(*y))),
            ("abs" | "absv", [Val::Real(x)]) => Val::Real(c.add_expr(Expr::Call(Func::Abs, vec![*x]))),
            ("abs" | "absv", [Val::Complex(x, y)]) => {
                let xx = bin(c, BinOp::Mul, *x, *x);
                let yy = bin(c, BinOp::Mul, *y, *y);
                let r2 = bin(c, BinOp::Add, xx, yy);
                Val::Real(c.add_expr(Expr::Call(Func::Sqrt, vec![r2])))
            }
            ("angle", [v]) => {
                let (x, y) = parts(c, *v);
                Val::Real(c.add_expr(Expr::Call(Func::Arctan2, vec![y, x])))
            }
            // Real arguments keep the real functions (numpy's: sqrt(-1) is nan, not i).
            ("exp" | "log" | "sqrt" | "sin" | "cos", [Val::Real(x)]) => {
                let f = match name {
                    "exp" => Func::Exp,
                    "log" => Func::Log,
                    "sqrt" => Func::Sqrt,
                    "sin" => Func::Sin,
                    _ => Func::Cos,
                };
                Val::Real(c.add_expr(Expr::Call(f, vec![*x])))
            }
            ("sqrt", [z @ Val::Complex(..)]) => {
                // The principal root, as numpy's: |z|^½ e^{iθ/2} with θ in (−π, π].
                let half = c.add_expr(Expr::Const(0.5));
                pow(c, *z, half)
            }
            ("log", [Val::Complex(x, y)]) => {
                // log z = ln|z| + i arg z = ½ ln(x² + y²) + i atan2(y, x)
                let xx = bin(c, BinOp::Mul, *x, *x);
                let yy = bin(c, BinOp::Mul, *y, *y);
                let r2 = bin(c, BinOp::Add, xx, yy);
                let ln = c.add_expr(Expr::Call(Func::Log, vec![r2]));
                let half = c.add_expr(Expr::Const(0.5));
                let arg = c.add_expr(Expr::Call(Func::Arctan2, vec![*y, *x]));
                Val::Complex(bin(c, BinOp::Mul, half, ln), arg)
            }
            ("sin" | "cos", [Val::Complex(x, y)]) => {
                // sin(x+iy) = sin x cosh y + i cos x sinh y; cos(x+iy) = cos x cosh y − i sin x sinh y
                let sin = c.add_expr(Expr::Call(Func::Sin, vec![*x]));
                let cos = c.add_expr(Expr::Call(Func::Cos, vec![*x]));
                let cosh = c.add_expr(Expr::Call(Func::Cosh, vec![*y]));
                let sinh = c.add_expr(Expr::Call(Func::Sinh, vec![*y]));
                if name == "sin" {
                    Val::Complex(bin(c, BinOp::Mul, sin, cosh), bin(c, BinOp::Mul, cos, sinh))
                } else {
                    let im = bin(c, BinOp::Mul, sin, sinh);
                    Val::Complex(bin(c, BinOp::Mul, cos, cosh), c.add_expr(Expr::Neg(im)))
                }
            }
            ("exp", [Val::Complex(x, y)]) => {
                // e^{x+iy} = e^x (cos y + i sin y)
                let ex = c.add_expr(Expr::Call(Func::Exp, vec![*x]));
                let cos = c.add_expr(Expr::Call(Func::Cos, vec![*y]));
                let sin = c.add_expr(Expr::Call(Func::Sin, vec![*y]));
                Val::Complex(bin(c, BinOp::Mul, ex, cos), bin(c, BinOp::Mul, ex, sin))
            }
            _ => unreachable!("`{name}` with {} arguments is not in FUNCS", args.len()),
        }
    }
}

pub(super) struct Ctx<'a> {
    pub(super) scope: &'a Scope,
    pub(super) file: FileId,
    pub(super) off: u32,
    pub(super) path: String,
    /// The YAML scalar of an equation that was rewritten by `replace` (diagnostics point into
    /// the rewritten text and label the original).
    pub(super) origin: Option<Span>,
    /// `Some((i, n))` while lowering element i of an expression over vectors of n elements
    /// (a vector's name then reads its element i); `None` where the value must be a scalar.
    pub(super) elem: Option<(usize, usize)>,
}

impl Ctx<'_> {
    fn at_element(&self, elem: Option<(usize, usize)>) -> Ctx<'_> {
        Ctx {
            scope: self.scope,
            file: self.file,
            off: self.off,
            path: self.path.clone(),
            origin: self.origin,
            elem,
        }
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
    "maxi",
    "mini",
    "heaviside",
    "floor",
    "ceil",
    "sign",
    "past",
    "randn",
    "vsum",
    "sum",
    "mean",
    "dot",
    "real",
    "imag",
];

/// PyRates 1.x functions that only make sense on vectors (or tables): how to write the model
/// with scalar variables instead.
fn vector_only_help(name: &str) -> Option<&'static str> {
    const NODES: &str = "write one node per element (nodes made from one template form a population) \
and couple them with edges or a `connectivity:` block; an edge sum into an input is the `sum`/`dot` \
over the elements";
    Some(match name {
        "interp" | "interp_rows" => {
            "`interp` looks a value up in a table; give the tabulated series as a time-series input \
(`inputs=` in Python, `inputs:` in a sweep spec), one value per step"
        }
        "index" | "index_1d" | "index_2d" | "index_range" | "index_axis" | "roll" | "concatenate" | "reshape2d"
        | "flatten1d" | "broadcast_pre" | "broadcast_post" | "wsum" => NODES,
        _ => return None,
    })
}

fn func_by_name(name: &str) -> Option<Func> {
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
        "max" | "maximum" | "maxi" => Func::Max,
        "min" | "minimum" | "mini" => Func::Min,
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
