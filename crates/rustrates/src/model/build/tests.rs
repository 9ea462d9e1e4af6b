use super::*;
use crate::template::{LoadOptions, Loader};

/// Build template `name` from YAML text.
pub(crate) fn build(yaml: &str, name: &str) -> (Option<Circuit>, Diagnostics) {
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

/// YAML of the leaky population the edge tests wire up: operator `P`, `r' = -r + r_in` (`r`
/// starting at `r0`, `r_in` an input of default `r_in0`), and node `Pop` holding it.
pub(crate) fn leaky_pop_yaml(r0: f64, r_in0: f64) -> String {
    format!(
        r#"
P:
  base: OperatorTemplate
  equations: "r' = -r + r_in"
  variables: {{r: output({r0:?}), r_in: input({r_in0:?})}}
Pop: {{base: NodeTemplate, operators: [P]}}
"#
    )
}

fn ok(yaml: &str, name: &str) -> Circuit {
    let (c, d) = build(yaml, name);
    c.unwrap_or_else(|| panic!("{d:?}"))
}

/// Operator template `Op` of `equations` and `variables` (as YAML writes them), built alone.
fn op_template(equations: &str, variables: &str) -> Circuit {
    ok(
        &format!("Op:\n  base: OperatorTemplate\n  equations: {equations}\n  variables: {variables}\n"),
        "Op",
    )
}

/// The value `eval_all` gives variable `n`.
fn value_of(c: &Circuit, n: &str) -> f64 {
    eval_all(c)[var(c, n).0 as usize]
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
    let c = op_template(
        "'m = sigmoid(x, 5.0, 560.0, 6e-3) + sigmoid(x)'",
        "{m: output, x: 0.01}",
    );
    // 0.8's sigmoid(x, scaling, steepness, offset) = scaling/(1+exp(-steepness*(x-offset))).
    let want = 5.0 / (1.0 + (-560.0f64 * (0.01 - 0.006)).exp()) + 1.0 / (1.0 + (-0.01f64).exp());
    assert!((value_of(&c, "Op/Op/m") - want).abs() < 1e-14);
}

#[test]
fn past_and_delayed_call_become_past_of_the_variable() {
    let c = op_template(
        "[\"x' = -x + past(x, 0.1) + x(t - d) + randn()\"]",
        "{x: output(1.0), d: 0.2}",
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
    let c = op_template(
        "'y = vsum(x) + real(x) + imag(x) + heaviside(x - 2, 0.25)'",
        "{y: output, x: 2.0}",
    );
    assert_eq!(value_of(&c, "Op/Op/y"), 2.0 + 2.0 + 0.0 + 0.25);
}

#[test]
fn pyrates_vector_helpers_have_their_numpy_scalar_values() {
    // numpy on scalars: maximum/minimum (PyRates' maxi/mini), sum, mean and vsum give the
    // value, dot/matmul/matvec the product; every term is scaled apart so each is checked.
    let c = op_template(
        "'y = maxi(a, b) + 10*mini(a, b) + 100*sum(a) + 1000*mean(b) + 1e4*vsum(a) + 1e5*dot(a, b) + 1e6*matmul(b, b) + 1e7*matvec(a, a)'",
        "{y: output, a: 2.0, b: -3.0}",
    );
    let want = 2.0 - 30.0 + 200.0 - 3000.0 + 2e4 - 6e5 + 9e6 + 4e7;
    assert_eq!(value_of(&c, "Op/Op/y"), want);
}

#[test]
fn vector_only_functions_and_indexing_are_reported_with_a_rewrite() {
    for (eq, code, help) in [
        ("y = interp(t, a, a)", "eq/vector-unsupported", "time-series input"),
        ("y = roll(a, 1)", "eq/vector-unsupported", "one node per element"),
        ("y = index(a, 0)", "eq/vector-unsupported", "one node per element"),
        ("y = a[0]", "eq/unexpected-character", "indexing (`x[0]`)"),
    ] {
        let y = format!("Op:\n  base: OperatorTemplate\n  equations: '{eq}'\n  variables: {{y: output, a: 2.0}}\n");
        let (c, d) = build(&y, "Op");
        assert!(c.is_none(), "{eq}");
        let found = d
            .iter()
            .find(|x| x.code == code)
            .unwrap_or_else(|| panic!("{eq}: {d:?}"));
        assert!(found.help.iter().any(|h| h.contains(help)), "{eq}: {found:?}");
    }
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
    let y = leaky_pop_yaml(1.0, 0.0)
        + r#"
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
    let c = ok(&y, "Net");
    let e = &c.edges[0];
    assert_eq!(c.var(e.source).name, "edge:a->b:0/Dep/r_eff");
    assert_eq!(c.var(var(&c, "edge:a->b:0/Dep/tau")).value, 50.0);
    let vals = eval_all(&c);
    // r_in of the edge operator copies a's r (1.0); r_eff = r_in * x = 1 * 1.
    assert_eq!(vals[e.source.0 as usize], 1.0);
}

/// The nodes of one template share one parse of each equation (`parse_eq`, keyed by where
/// its text is): every node still reads its own variables and values. The two equations
/// have the same length, so a key without their place would mix them up.
#[test]
fn nodes_of_one_template_share_its_parsed_equations_and_keep_their_own_values() {
    let y = r#"
P:
  base: OperatorTemplate
  equations: ["r' = -r / tau + a * r_in", "q = a * r + tau * 1.0000"]
  variables: {r: output(0.5), r_in: input(2.0), tau: 2.0, a: 3.0, q: variable(0.0)}
Pop: {base: NodeTemplate, operators: [P]}
Pop5: {base: NodeTemplate, operators: {P: {a: 5.0, tau: 4.0}}}
Net:
  base: CircuitTemplate
  nodes: {n1: Pop, n2: Pop5, n3: Pop}
"#;
    let c = ok(y, "Net");
    let vals = eval_all(&c);
    for (node, a, tau) in [("n1", 3.0, 2.0), ("n2", 5.0, 4.0), ("n3", 3.0, 2.0)] {
        let r = var(&c, &format!("{node}/P/r"));
        let ode = c.odes.iter().find(|o| o.var == r).expect("r' of every node");
        let dr = eval(&c, ode.rhs, &|v| vals[v.0 as usize], 0.0);
        // r = 0.5, r_in = 2: r' = -0.5/tau + 2a, q = 0.5a + tau (exact in binary).
        assert_eq!(dr, -0.5 / tau + a * 2.0, "{node}: r'");
        assert_eq!(value_of(&c, &format!("{node}/P/q")), 0.5 * a + tau, "{node}: q");
    }
}
