use super::*;
use crate::syntax::printer::{print_equation, print_expr, same_tree};
use proptest::prelude::*;

fn expr(text: &str) -> Expr {
    match parse_expr(text, FileId(0), 0) {
        Ok(e) => e,
        Err(d) => panic!("{text:?} failed to parse: {d:?}"),
    }
}

fn eq(text: &str) -> Equation {
    match parse_equation(text, FileId(0), 0) {
        Ok(e) => e,
        Err(d) => panic!("{text:?} failed to parse: {d:?}"),
    }
}

/// The single diagnostic `text` produces: its code and its absolute span.
fn eq_err(text: &str, offset: u32) -> Diagnostic {
    match parse_equation(text, FileId(1), offset) {
        Ok(e) => panic!("{text:?} parsed as {e:?}"),
        Err(d) => {
            assert_eq!(d.len(), 1, "{text:?}: {d:?}");
            d.0.into_iter().next().expect("length checked above")
        }
    }
}

fn span_text<'a>(text: &'a str, d: &Diagnostic, offset: u32) -> &'a str {
    let r = d.span.expect("parser diagnostics carry spans").range;
    &text[(r.start - offset) as usize..(r.end - offset) as usize]
}

/// Fully parenthesized rendering, an independent reading of the tree's structure.
fn sexp(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number(v) => format!("{v}"),
        ExprKind::Imaginary(v) => format!("{v}j"),
        ExprKind::Ident(n) => n.clone(),
        ExprKind::Unary(UnOp::Neg, x) => format!("(neg {})", sexp(x)),
        ExprKind::Unary(UnOp::Plus, x) => format!("(pos {})", sexp(x)),
        ExprKind::Binary(op, a, b) => format!("({op:?} {} {})", sexp(a), sexp(b)),
        ExprKind::Call { name, args, .. } => {
            let args: Vec<String> = args.iter().map(sexp).collect();
            format!("({name} {})", args.join(" "))
        }
    }
}

#[test]
fn parse_expr_precedence_follows_python() {
    // Expected trees are Python's `ast` reading of the same expressions.
    let cases = [
        ("-x**2", "(neg (Pow x 2))"),
        ("2**-1", "(Pow 2 (neg 1))"),
        ("a**b**c", "(Pow a (Pow b c))"),
        ("a^b^c", "(Pow a (Pow b c))"),
        ("2**-1*3", "(Mul (Pow 2 (neg 1)) 3)"),
        ("a - b - c", "(Sub (Sub a b) c)"),
        ("a / b * c", "(Mul (Div a b) c)"),
        ("a + b * c", "(Add a (Mul b c))"),
        ("-a * b", "(Mul (neg a) b)"),
        ("a * -b", "(Mul a (neg b))"),
        ("a - -b", "(Sub a (neg b))"),
        ("--a", "(neg (neg a))"),
        ("+a", "(pos a)"),
        ("(-a)**2", "(Pow (neg a) 2)"),
        ("a < b + 1", "(Lt a (Add b 1))"),
        ("a + 1 >= b * 2", "(Ge (Add a 1) (Mul b 2))"),
        ("(a < b) == (c != d)", "(Eq (Lt a b) (Ne c d))"),
        ("x(t - d)", "(x (Sub t d))"),
        ("f()", "(f )"),
        ("sigmoid(x, 1, 2.5, 0)", "(sigmoid x 1 2.5 0)"),
        ("tau*(PI*r)^2", "(Mul tau (Pow (Mul PI r) 2))"),
    ];
    for (text, want) in cases {
        assert_eq!(sexp(&expr(text)), want, "{text}");
    }
}

#[test]
fn parse_expr_ranges_cover_operands_and_parentheses() {
    let text = "(a + b) * f(c, 2)";
    let e = expr(text);
    assert_eq!(e.range, TextRange::new(0, 17));
    let ExprKind::Binary(_, l, r) = &e.kind else {
        panic!("expected a product, got {e:?}")
    };
    // A parenthesized node's own range excludes the parentheses.
    assert_eq!(l.range, TextRange::new(1, 6));
    let ExprKind::Call { name_range, args, .. } = &r.kind else {
        panic!("expected a call, got {r:?}")
    };
    assert_eq!((r.range, *name_range), (TextRange::new(10, 17), TextRange::new(10, 11)));
    assert_eq!(args[1].range, TextRange::new(15, 16));
}

#[test]
fn parse_equation_lhs_forms_give_kind_name_and_name_range() {
    let cases = [
        ("d/dt * r_e = 1", LhsKind::Derivative, "r_e", (7, 10)),
        ("d/dt*x=1", LhsKind::Derivative, "x", (5, 6)),
        ("d/dt v = 1", LhsKind::Derivative, "v", (5, 6)),
        ("d/dt * (v) = 1", LhsKind::Derivative, "v", (8, 9)),
        ("x' = 1", LhsKind::Derivative, "x", (0, 1)),
        ("dr/dt = 1", LhsKind::Derivative, "r", (1, 2)),
        ("dv_e/dt = 1", LhsKind::Derivative, "v_e", (1, 4)),
        ("  m = 1", LhsKind::Assign, "m", (2, 3)),
        ("d = 1", LhsKind::Assign, "d", (0, 1)),
        ("dt = 1", LhsKind::Assign, "dt", (0, 2)),
    ];
    for (text, kind, name, (s, e)) in cases {
        let lhs = eq(text).lhs;
        assert_eq!(
            (lhs.kind, lhs.name.as_str(), lhs.range),
            (kind, name, TextRange::new(s, e)),
            "{text}"
        );
    }
}

#[test]
fn parse_equation_pyrates_templates_parse_and_reprint_stably() {
    // Equations as written in PyRates 1.2.3's model_templates (QIF, Izhikevich, Jansen-Rit,
    // Kuramoto, DDE test). Reprinting and reparsing must give the same printed text.
    let sources = [
            "d/dt * r = (delta/(PI*tau)+2.*r*v)/tau",
            "d/dt * v = (v^2+eta+I_ext+J*(r+r_exc-r_inh)*tau-(PI*r*tau)^2)/tau",
            "v' = (k*v*(v - v_r - v_t) + k*v_r*v_t + I_ext + eta - u + g*s*(E_r - v) - (pi*C*r)^2/k) / C",
            "d/dt * X_e =  h_e/tau_e * (c*0.8*m_max*sigmoid(r*(V_ein-V_thr)) + c*m_in/io_ratio + u) - V_e/tau_e^2 - 2.*X_e/tau_e",
            "m = sigmoid(s*(r_in+r_ext-theta)) - sigmoid(-s*theta)",
            "x' = r_in - 2*x/tau - v/tau**2",
            "x' = -x(t-d)",
            "s = sin(2*pi*theta)",
            "m = alpha/(1 + exp(-beta*(x - cos(0.5*omega*t_on))))",
        ];
    for src in sources {
        let printed = print_equation(&eq(src));
        assert_eq!(print_equation(&eq(&printed)), printed, "{src}");
    }
    assert_eq!(
        print_equation(&eq("d/dt * r = (delta/(PI*tau)+2.*r*v)/tau")),
        "d/dt * r = (delta / (PI * tau) + 2.0 * r * v) / tau"
    );
}

#[test]
fn parse_equation_unexpected_character_points_at_it() {
    // `µ` is two bytes: the span of `$` after it is byte-exact, and shifted by the offset.
    let text = "x' = µ + $";
    let d = parse_equation(text, FileId(1), 40).expect_err("two bad characters");
    assert_eq!(d.len(), 2);
    assert_eq!(d.0[1].code, "eq/unexpected-character");
    assert_eq!(span_text(text, &d.0[1], 40), "$");
    assert_eq!(d.0[1].span.map(|s| s.file), Some(FileId(1)));
}

#[test]
fn parse_equation_errors_have_codes_and_exact_spans() {
    // (equation, code, text under the primary span)
    let cases = [
        ("x + 1", "eq/missing-assignment", "x + 1"),
        ("x == 1", "eq/missing-assignment", "x == 1"),
        ("x = y = 1", "eq/multiple-assignment", "="),
        ("x = ", "eq/empty-expression", "="),
        ("x = ()", "eq/empty-expression", "()"),
        ("x = (a + b", "eq/unbalanced-paren", "("),
        ("x = a + b)", "eq/unbalanced-paren", ")"),
        ("x = a +", "eq/syntax", "+"),
        ("x = a + * b", "eq/syntax", "*"),
        ("x = 2 y", "eq/trailing-input", "y"),
        ("x = 2 y z", "eq/trailing-input", "y z"),
        ("x = f(a,)", "eq/syntax", ")"),
        ("x = f(a b)", "eq/syntax", "b"),
        ("x = (a b)", "eq/syntax", "b"),
        ("x = a'", "eq/trailing-input", "'"),
        ("x = a < b < c", "eq/chained-comparison", "<"),
        ("x'' = -x", "eq/higher-order-derivative", "x''"),
        ("d/dt * d/dt * x = -x", "eq/higher-order-derivative", "d/dt * d/dt * x"),
        ("d^2/dt^2 * x = -x", "eq/higher-order-derivative", "d^2/dt^2 * x"),
        ("d2x/dt2 = -x", "eq/higher-order-derivative", "d2x/dt2"),
        ("d/dt = 1", "eq/invalid-lhs", "d/dt"),
        ("d/dt * (x + y) = 1", "eq/invalid-lhs", "d/dt * (x + y)"),
        ("2*x = 1", "eq/invalid-lhs", "2*x"),
        (" = 1", "eq/invalid-lhs", "="),
        ("   ", "eq/empty-equation", "   "),
        ("x = 1e", "eq/malformed-number", "1e"),
    ];
    for (text, code, under) in cases {
        let d = eq_err(text, 1000);
        assert_eq!((d.code, span_text(text, &d, 1000)), (code, under), "{text}: {d:?}");
    }
}

#[test]
fn parse_equation_chained_comparison_ends_at_second_operator() {
    let text = "x = a < b < c";
    let d = eq_err(text, 0);
    assert_eq!(d.span.map(|s| s.range), Some(TextRange::new(10, 11)));
    assert_eq!(d.labels[0].span.range, TextRange::new(6, 7));
}

#[test]
fn parse_equation_reports_lhs_and_rhs_errors_together() {
    let d = parse_equation("x'' = (a", FileId(0), 0).expect_err("both sides are wrong");
    let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["eq/higher-order-derivative", "eq/unbalanced-paren"]);
}

#[test]
fn parse_equation_second_order_help_suggests_a_system() {
    let d = eq_err("x'' = -x", 0);
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("system of first-order equations")),
        "{d:?}"
    );
}

#[test]
fn parse_expr_deep_nesting_is_a_diagnostic_not_a_stack_overflow() {
    let deep = format!("{}x{}", "(".repeat(100_000), ")".repeat(100_000));
    let d = parse_expr(&deep, FileId(0), 0).expect_err("too deep");
    assert_eq!(d.0[0].code, "eq/too-deeply-nested");
    let minus = format!("{}x", "-".repeat(100_000));
    assert_eq!(
        parse_expr(&minus, FileId(0), 0).expect_err("too deep").0[0].code,
        "eq/too-deeply-nested"
    );
    // Just inside the limit parses.
    let ok = format!("{}x{}", "(".repeat(MAX_NESTING - 1), ")".repeat(MAX_NESTING - 1));
    assert_eq!(sexp(&expr(&ok)), "x");
}

#[test]
fn parse_expr_equals_sign_is_rejected_with_help() {
    let d = parse_expr("a = b", FileId(0), 0).expect_err("no assignment in an expression");
    assert_eq!(d.0[0].code, "eq/trailing-input");
    assert!(d.0[0].help.as_deref().is_some_and(|h| h.contains("==")));
    assert_eq!(print_expr(&expr("a == b")), "a == b");
}

fn assert_round_trip(text: &str) -> Result<(), String> {
    if let Ok(e) = parse_equation(text, FileId(0), 0) {
        let printed = print_equation(&e);
        match parse_equation(&printed, FileId(0), 0) {
            Ok(b) if b.lhs.kind == e.lhs.kind && b.lhs.name == e.lhs.name && same_tree(&b.rhs, &e.rhs) => {}
            other => return Err(format!("{text:?} printed as {printed:?} reparsed as {other:?}")),
        }
    }
    if let Ok(e) = parse_expr(text, FileId(0), 0) {
        let printed = print_expr(&e);
        match parse_expr(&printed, FileId(0), 0) {
            Ok(b) if same_tree(&b, &e) => {}
            other => return Err(format!("{text:?} printed as {printed:?} reparsed as {other:?}")),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn parse_equation_token_soup_never_panics(text in "[a-z_0-9 .eE+*/^(),='<>!-]{0,40}") {
        // Reaching the assertion at all means no panic; successful parses must round-trip.
        prop_assert_eq!(assert_round_trip(&text), Ok(()));
    }

    #[test]
    fn parse_equation_arbitrary_unicode_never_panics(text in any::<String>()) {
        prop_assert_eq!(assert_round_trip(&text), Ok(()));
    }
}
