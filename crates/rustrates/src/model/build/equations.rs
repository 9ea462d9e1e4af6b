//! Equation text → IR expressions: parsing at the equation's position, names resolved in the
//! operator's scope, PyRates' functions mapped to [`Func`].

use super::*;

impl Builder<'_> {
    /// Parse one equation string; returns the AST, the offset to add to its ranges, and the
    /// file they point into. Rewritten equations (after `replace`) get a file of their own.
    pub(super) fn parse_eq(&mut self, e: &EqText, path: &str) -> Option<(ast::Equation, u32, FileId)> {
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

    pub(super) fn expr(&mut self, e: &ast::Expr, ctx: &Ctx) -> Option<ExprId> {
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
}

pub(super) struct Ctx<'a> {
    pub(super) scope: &'a Scope,
    pub(super) file: FileId,
    pub(super) off: u32,
    pub(super) path: String,
    /// The YAML scalar of an equation that was rewritten by `replace` (diagnostics point into
    /// the rewritten text and label the original).
    pub(super) origin: Option<Span>,
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
