//! AST → equation text that parses back to the same tree.
//!
//! Parentheses appear only where the parser's precedence and associativity need them, and
//! numbers use Rust's shortest round-trip formatting, so `parse(print(e))` equals `e` up to
//! ranges (checked by the property tests below). Negative number literals, which the parser
//! never produces, print like a unary minus applied to the magnitude: same value, and
//! parenthesized wherever a unary minus would be.

use std::fmt::Write;

use super::ast::{BinOp, Equation, Expr, ExprKind, LhsKind, UnOp};

/// Print an equation in the `d/dt * x = rhs` / `x = rhs` form.
pub fn print_equation(eq: &Equation) -> String {
    let mut out = String::new();
    match eq.lhs.kind {
        LhsKind::Derivative => out.push_str("d/dt * "),
        LhsKind::Assign => {}
    }
    out.push_str(&eq.lhs.name);
    out.push_str(" = ");
    write_expr(&mut out, &eq.rhs);
    out
}

/// Print an expression with minimal parentheses.
pub fn print_expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e);
    out
}

/// Precedence levels beside the operators' own ([`BinOp::precedence`]).
const UNARY: u8 = 4;
const ATOM: u8 = 6;

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, _, _) => op.precedence(),
        ExprKind::Unary(..) => UNARY,
        ExprKind::Number(v) if v.is_sign_negative() => UNARY,
        ExprKind::Number(_) | ExprKind::Imaginary(_) | ExprKind::Ident(_) | ExprKind::Call { .. } => ATOM,
    }
}

fn write_expr(out: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Number(v) => write_number(out, *v),
        ExprKind::Imaginary(v) => {
            write_number(out, *v);
            out.push('j');
        }
        ExprKind::Ident(name) => out.push_str(name),
        ExprKind::Unary(op, operand) => {
            out.push(match op {
                UnOp::Neg => '-',
                UnOp::Plus => '+',
            });
            // The operand of a unary operator is parsed up to `**` only.
            write_child(out, operand, prec(operand) < UNARY);
        }
        ExprKind::Binary(op, l, r) => {
            let p = op.precedence();
            let (lp, rp) = (prec(l), prec(r));
            let (paren_l, paren_r) = match op {
                // Comparisons do not chain: a comparison operand is always parenthesized.
                _ if op.is_comparison() => (lp <= p, rp <= p),
                // Right-associative, and the exponent may start with a unary sign (`2**-1`);
                // a unary base may not (`-x**2` is `-(x**2)`).
                BinOp::Pow => (lp <= p, rp < UNARY),
                // Left-associative.
                _ => (lp < p, rp <= p),
            };
            write_child(out, l, paren_l);
            out.push_str(op.equation_text());
            write_child(out, r, paren_r);
        }
        ExprKind::Call { name, args, .. } => {
            out.push_str(name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, a);
            }
            out.push(')');
        }
    }
}

fn write_child(out: &mut String, e: &Expr, paren: bool) {
    if paren {
        out.push('(');
    }
    write_expr(out, e);
    if paren {
        out.push(')');
    }
}

/// `{:?}` is Rust's shortest representation that parses back to the same `f64` (`0.1`, `2.0`,
/// `1e-7`, `1e300`), and every such form is a valid literal of the equation language.
/// Non-finite values have no literal; they print as `inf`/`NaN`, which read back as names.
fn write_number(out: &mut String, v: f64) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{v:?}");
}

/// Structural equality of two expressions ignoring ranges (what a print → parse round trip
/// preserves); numbers compare by bit pattern so that `-0.0`
/// versus `0.0` or a one-ulp difference counts as a mismatch.
pub fn same_tree(a: &Expr, b: &Expr) -> bool {
    match (&a.kind, &b.kind) {
        (ExprKind::Number(x), ExprKind::Number(y)) | (ExprKind::Imaginary(x), ExprKind::Imaginary(y)) => {
            x.to_bits() == y.to_bits()
        }
        (ExprKind::Ident(x), ExprKind::Ident(y)) => x == y,
        (ExprKind::Unary(o1, x), ExprKind::Unary(o2, y)) => o1 == o2 && same_tree(x, y),
        (ExprKind::Binary(o1, l1, r1), ExprKind::Binary(o2, l2, r2)) => {
            o1 == o2 && same_tree(l1, l2) && same_tree(r1, r2)
        }
        (ExprKind::Call { name: n1, args: a1, .. }, ExprKind::Call { name: n2, args: a2, .. }) => {
            n1 == n2 && a1.len() == a2.len() && a1.iter().zip(a2).all(|(x, y)| same_tree(x, y))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::Lhs;
    use crate::syntax::parser::{parse_equation, parse_expr};
    use crate::syntax::source::{FileId, TextRange};
    use proptest::prelude::*;

    fn parse(text: &str) -> Expr {
        match parse_expr(text, FileId(0), 0) {
            Ok(e) => e,
            Err(d) => panic!("{text:?} failed to parse: {d:?}"),
        }
    }

    fn n(v: f64) -> Expr {
        Expr {
            kind: ExprKind::Number(v),
            range: TextRange::default(),
        }
    }
    fn id(name: &str) -> Expr {
        Expr {
            kind: ExprKind::Ident(name.to_string()),
            range: TextRange::default(),
        }
    }
    fn bin(op: BinOp, l: Expr, r: Expr) -> Expr {
        Expr {
            kind: ExprKind::Binary(op, Box::new(l), Box::new(r)),
            range: TextRange::default(),
        }
    }
    fn un(op: UnOp, x: Expr) -> Expr {
        Expr {
            kind: ExprKind::Unary(op, Box::new(x)),
            range: TextRange::default(),
        }
    }

    #[test]
    fn print_expr_parenthesizes_only_where_structure_needs_it() {
        use BinOp::*;
        let cases = [
            (bin(Sub, id("a"), bin(Sub, id("b"), id("c"))), "a - (b - c)"),
            (bin(Sub, bin(Sub, id("a"), id("b")), id("c")), "a - b - c"),
            (bin(Mul, bin(Add, id("a"), id("b")), id("c")), "(a + b) * c"),
            (bin(Pow, bin(Pow, id("a"), id("b")), id("c")), "(a**b)**c"),
            (bin(Pow, id("a"), bin(Pow, id("b"), id("c"))), "a**b**c"),
            (bin(Pow, un(UnOp::Neg, id("x")), n(2.0)), "(-x)**2.0"),
            (un(UnOp::Neg, bin(Pow, id("x"), n(2.0))), "-x**2.0"),
            (bin(Pow, n(2.0), un(UnOp::Neg, n(1.0))), "2.0**-1.0"),
            (un(UnOp::Neg, bin(Mul, id("a"), id("b"))), "-(a * b)"),
            (bin(Mul, id("a"), un(UnOp::Neg, id("b"))), "a * -b"),
            (bin(Lt, bin(Lt, id("a"), id("b")), id("c")), "(a < b) < c"),
            (bin(Lt, bin(Add, id("a"), id("b")), id("c")), "a + b < c"),
            (bin(Pow, n(-2.0), n(2.0)), "(-2.0)**2.0"),
        ];
        for (e, want) in cases {
            assert_eq!(print_expr(&e), want);
        }
    }

    #[test]
    fn print_number_round_trips_awkward_values() {
        // Values whose decimal form needs all 17 digits, subnormals and extremes.
        for v in [
            0.1 + 0.2,
            1.0 / 3.0,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            1e-7,
            1e16,
            123_456_789.012_345_68,
        ] {
            let back = parse(&print_expr(&n(v)));
            assert!(same_tree(&back, &n(v)), "{v:?} printed as {}", print_expr(&n(v)));
        }
    }

    #[test]
    fn print_equation_derivative_and_assignment_forms() {
        let rhs = bin(BinOp::Div, un(UnOp::Neg, id("x")), id("tau"));
        let lhs = |kind| Lhs {
            kind,
            name: "x".into(),
            range: TextRange::default(),
        };
        let d = Equation {
            lhs: lhs(LhsKind::Derivative),
            rhs: rhs.clone(),
            range: TextRange::default(),
        };
        let a = Equation {
            lhs: lhs(LhsKind::Assign),
            rhs,
            range: TextRange::default(),
        };
        assert_eq!(print_equation(&d), "d/dt * x = -x / tau");
        assert_eq!(print_equation(&a), "x = -x / tau");
        let back = parse_equation(&print_equation(&d), FileId(0), 0).expect("printed equations parse");
        assert_eq!(back.lhs.kind, LhsKind::Derivative);
    }

    fn arb_ident() -> impl Strategy<Value = String> {
        prop_oneof![
            // Names that look like the derivative syntax's parts must still round-trip as names.
            Just("d".to_string()),
            Just("dt".to_string()),
            Just("t".to_string()),
            "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        ]
    }

    fn arb_number() -> impl Strategy<Value = f64> {
        prop_oneof![
            0.0..1e6_f64,
            (0u32..1000).prop_map(f64::from),
            any::<f64>().prop_filter("finite, non-negative", |v| v.is_finite() && v.is_sign_positive()),
        ]
    }

    fn arb_expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![arb_number().prop_map(n), arb_ident().prop_map(|s| id(&s))];
        leaf.prop_recursive(6, 64, 3, |inner| {
            let binop = prop_oneof![
                Just(BinOp::Add),
                Just(BinOp::Sub),
                Just(BinOp::Mul),
                Just(BinOp::Div),
                Just(BinOp::Pow),
                Just(BinOp::Lt),
                Just(BinOp::Le),
                Just(BinOp::Gt),
                Just(BinOp::Ge),
                Just(BinOp::Eq),
                Just(BinOp::Ne),
            ];
            prop_oneof![
                (prop_oneof![Just(UnOp::Neg), Just(UnOp::Plus)], inner.clone()).prop_map(|(op, x)| un(op, x)),
                (binop, inner.clone(), inner.clone()).prop_map(|(op, l, r)| bin(op, l, r)),
                (arb_ident(), prop::collection::vec(inner, 0..=3)).prop_map(|(name, args)| Expr {
                    kind: ExprKind::Call {
                        name,
                        name_range: TextRange::default(),
                        args
                    },
                    range: TextRange::default(),
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn print_expr_then_parse_gives_the_same_tree(e in arb_expr()) {
            let text = print_expr(&e);
            let back = parse_expr(&text, FileId(0), 0);
            prop_assert!(back.as_ref().is_ok_and(|b| same_tree(b, &e)), "{text:?} -> {back:?}");
        }

        #[test]
        fn print_equation_then_parse_gives_the_same_equation(
            e in arb_expr(), name in arb_ident(), derivative in any::<bool>()
        ) {
            let kind = if derivative { LhsKind::Derivative } else { LhsKind::Assign };
            let eq = Equation { lhs: Lhs { kind: kind.clone(), name: name.clone(), range: TextRange::default() }, rhs: e, range: TextRange::default() };
            let text = print_equation(&eq);
            let back = parse_equation(&text, FileId(0), 0);
            prop_assert!(
                back.as_ref().is_ok_and(|b| b.lhs.kind == kind && b.lhs.name == name && same_tree(&b.rhs, &eq.rhs)),
                "{text:?} -> {back:?}"
            );
        }
    }
}
