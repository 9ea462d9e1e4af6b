//! PyRates 1.x vector variables of fixed length (issue 15, item 6): `variable(0.5, 3)` is
//! lowered to the real variables `x[0]`, `x[1]`, `x[2]`, so every back end runs it; checked
//! against the closed form of a small linear model on each back end (PyRates 1.2.3's own
//! output is compared in `tests/python/test_pyrates_vectors.py`), and the uses that are not
//! supported must be positioned errors.

use rustrates::kernel::Backend;
use rustrates::model::Circuit;
use rustrates::solve::Method;
use rustrates::sweep::{ParamMap, SweepResult};

use crate::support::{assert_load_error, assert_op_error_on_line_5, column, load_text, max_abs_difference, sweep_spec};

/// Three leaky integrators in one vector, coupled through their sum, with a reduction of
/// each kind and an element-wise function as algebraic outputs: circuit `net` of a fixture
/// that `tests/python/test_pyrates_vectors.py` reads too (its `net_states` for PyRates).
const LEAKY: &str = include_str!("../../../../tests/fixtures/models/leaky_vectors.yaml");

const TAU: f64 = 2.0;
const K: f64 = 0.1;

/// RK4 with dt = 1e-3 for 5 time units, sampled every 0.05; one point per row of `grid`
/// (key → values, zipped), each key setting the `li_op` variable `vars[key]` of node `p`.
fn run(c: &Circuit, backend: Backend, grid: &[(&str, &str, Vec<f64>)], outputs: &[(&str, &str)]) -> SweepResult {
    let mut map = ParamMap::new();
    for (key, var, _) in grid {
        map = map.nodes(key, &[var], &["p"]);
    }
    let values: Vec<(&str, Vec<f64>)> = grid.iter().map(|(key, _, vals)| (*key, vals.clone())).collect();
    crate::support::run(
        &sweep_spec(&values, map, Method::Rk4, (5.0, 1e-3, 0.05), outputs, backend),
        c,
    )
}

/// x_i(t) of dx_i/dt = −x_i/τ + kΣx + c: the sum S obeys dS/dt = aS + 3c with a = 3k − 1/τ,
/// and each x_i − S/3 decays as e^{−t/τ}.
fn exact(x0: [f64; 3], c: f64, t: f64) -> [f64; 3] {
    let a = 3.0 * K - 1.0 / TAU;
    let s0: f64 = x0.iter().sum();
    let s = (s0 + 3.0 * c / a) * (a * t).exp() - 3.0 * c / a;
    x0.map(|xi| s / 3.0 + (xi - s0 / 3.0) * (-t / TAU).exp())
}

#[test]
fn vector_of_leaky_integrators_matches_its_closed_form_on_every_back_end() {
    let c = load_text(LEAKY, "net").expect("loads");
    // Per-element initial values through `x[i]`, and c for the whole point.
    let x0s = [[0.1, 0.5, 0.9], [-0.4, 0.2, 1.3]];
    let cs = [0.3, -0.2];
    let grid = [
        ("x0", "li_op/x[0]", x0s.iter().map(|x| x[0]).collect()),
        ("x1", "li_op/x[1]", x0s.iter().map(|x| x[1]).collect()),
        ("x2", "li_op/x[2]", x0s.iter().map(|x| x[2]).collect()),
        ("c", "li_op/c", cs.to_vec()),
    ];
    let outputs = [
        ("x", "p/li_op/x"),
        ("m", "p/li_op/m"),
        ("q", "p/li_op/q"),
        ("w", "p/li_op/w"),
    ];
    // RK4's global error with dt = 1e-3 over 5 time units is O(dt⁴) ≈ 1e-12 of values O(1):
    // 1e-9 leaves three orders of margin, while a wrong element, a missing term of a sum or
    // mean's divisor is O(0.1).
    const TOL: f64 = 1e-9;
    for backend in [Backend::Reference, Backend::Jit, Backend::C] {
        let res = run(&c, backend, &grid, &outputs);
        let keys: Vec<&str> = res.columns.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(keys, ["x[0]", "x[1]", "x[2]", "m", "q", "w[0]", "w[1]", "w[2]"]);
        for (p, (&x0, &cp)) in x0s.iter().zip(&cs).enumerate() {
            let cols: Vec<Vec<f64>> = keys.iter().map(|k| column(&res, p, k)).collect();
            let mut worst = 0.0f64;
            // Algebraics are sampled with the state they are computed from; at t = 0 they are
            // not computed yet (PyRates' convention: their declared default), so start at 1.
            for (i, &t) in res.time.iter().enumerate().skip(1) {
                let x = exact(x0, cp, t);
                let mean = x.iter().sum::<f64>() / 3.0;
                let dot: f64 = x.iter().map(|v| v * v).sum();
                let w = x.map(|v| v.max(0.55) - 2.0 * v);
                let want = [x[0], x[1], x[2], mean, dot, w[0], w[1], w[2]];
                for (col, want) in cols.iter().zip(want) {
                    worst = worst.max((col[i] - want).abs());
                }
            }
            assert!(worst < TOL, "{backend:?} point {p}: max error {worst:e}");
            // The elements stay apart (the initial differences decay as e^{-t/τ}, 8 % left).
            let last = cols[0].len() - 1;
            assert!(
                (cols[2][last] - cols[0][last]).abs() > 0.05,
                "{backend:?}: elements merged"
            );
        }
    }
}

/// The vector's path sets every element (PyRates' `update_var` with one number).
#[test]
fn param_map_naming_a_vector_sets_every_element() {
    let c = load_text(LEAKY, "net").expect("loads");
    let grid = [("x", "li_op/x", vec![0.25, 0.75])];
    let res = run(&c, Backend::Reference, &grid, &[("x", "p/li_op/x")]);
    for (p, x0) in [0.25, 0.75].into_iter().enumerate() {
        for key in ["x[0]", "x[1]", "x[2]"] {
            let col = column(&res, p, key);
            assert_eq!(col[0], x0, "{key} starts at the grid value");
            // With equal starts the elements stay equal: the closed form with c = 0.3.
            let want = exact([x0; 3], 0.3, res.time[col.len() - 1])[0];
            // RK4 as above: 1e-9 is three orders above its error.
            assert!((col[col.len() - 1] - want).abs() < 1e-9, "{key}");
        }
    }
}

/// Each unsupported or ill-formed vector use is an error at its position, saying which.
#[test]
fn vector_errors_are_positioned() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "x' = -x + z",
            "z",
            "eq/vector-length",
            "`z` has 2 elements where the expression has 3",
        ),
        ("m = x + 1", "x", "eq/vector-as-scalar", "`x` is a vector of 3 elements"),
        ("m = vsum(x + z)", "z", "eq/vector-length", "`z` has 2 elements"),
        (
            "m = dot(x, 2.0)",
            "dot(x, 2.0)",
            "eq/vector-unsupported",
            "`dot` of a vector and a scalar",
        ),
        (
            "m = vsum(x(t - 1.0))",
            "x(t - 1.0)",
            "eq/vector-unsupported",
            "delayed access `x(...)` to a vector",
        ),
    ];
    for (eq, at, code, message) in cases {
        let text = format!(
            "op:\n  base: OperatorTemplate\n  equations:\n    - \"x' = -x\"\n    - \"{eq}\"\n  variables:\n    x: output(0.5, 3)\n    z: variable(0.1, 2)\n    m: variable(0.0)\n"
        );
        assert_op_error_on_line_5(&text, eq, at, code, message);
    }
    // Declarations: two dimensions, a list as the value, complex elements.
    for (decl, at, message) in [
        (
            "{vtype: state_var, value: 0.0, shape: [2, 2]}",
            "[2, 2]",
            "more than one dimension",
        ),
        ("output([0.1, 0.2])", "output", "variable(value, length)"),
        ("output(complex, 3)", "output", "complex elements"),
    ] {
        let text = format!("op:\n  base: OperatorTemplate\n  equations: [\"x' = -x\"]\n  variables:\n    x: {decl}\n");
        assert_op_error_on_line_5(&text, decl, at, "template/unsupported", message);
    }
}

/// A path (`--set`, a spec's bare paths) names every element, `x[1]` one; the array form of
/// `update_var` finds the elements of a vector on one node (`value_targets`).
#[test]
fn param_map_paths_name_a_vector_or_one_element() {
    use rustrates::sweep::param_map;
    let c = load_text(LEAKY, "net").expect("loads");
    let map = ParamMap::new()
        .paths("whole", &["p/li_op/x"])
        .paths("one", &["p/li_op/x[1]"]);
    let r = param_map::resolve(&map, &["whole".to_string(), "one".to_string()], &c).expect("resolves");
    let elements = |names: &[&str]| names.iter().map(|n| format!("p/li_op/{n}")).collect::<Vec<_>>();
    assert_eq!(
        r.names(&c),
        [
            ("whole".to_string(), elements(&["x[0]", "x[1]", "x[2]"])),
            ("one".to_string(), elements(&["x[1]"])),
        ]
    );
    assert_eq!(
        param_map::value_targets("node_vars", "p", "li_op/x", &c).expect("a vector"),
        elements(&["x[0]", "x[1]", "x[2]"])
    );
    assert_eq!(
        param_map::value_targets("node_vars", "all", "li_op/c", &c).expect("a scalar"),
        elements(&["c"])
    );
}

/// A vector output of one operator feeding another's input is refused at the input.
#[test]
fn vectors_between_operators_are_a_positioned_error() {
    let text = r#"
src_op:
  base: OperatorTemplate
  equations: "x' = -x"
  variables:
    x: output(0.5, 3)
dst_op:
  base: OperatorTemplate
  equations: "y' = vsum(x) - y"
  variables:
    y: output(0.0)
    x: input(0.0, 3)
n: {base: NodeTemplate, operators: [src_op, dst_op]}
"#;
    // The input's declaration, line 12 after `    x: `.
    assert_load_error(text, "n", "node/vector-wiring", "12:8");
}

/// Eight nodes of one template with vector variables, coupled through scalar edges, swept on
/// every other node: all three back ends agree to rounding. (`model::network::plan` declines
/// this circuit, as it does with a scalar `x`: the copies of `r_in` are not evenly spaced.)
#[test]
fn vector_nodes_in_a_network_run_alike_on_every_back_end() {
    let mut text = String::from(
        r#"
v_op:
  base: OperatorTemplate
  equations:
    - "d/dt * x = -x/tau + k*vsum(x) + c + r_in"
    - "r = mean(x)"
  variables:
    x: output(0.5, 3)
    r: output(0.0)
    r_in: input(0.0)
    tau: 2.0
    k: 0.1
    c: 0.3
v: {base: NodeTemplate, operators: [v_op]}
net:
  base: CircuitTemplate
  nodes: {n0: v, n1: v, n2: v, n3: v, n4: v, n5: v, n6: v, n7: v}
  edges:
"#,
    );
    for i in 0..8 {
        let j = (i + 1) % 8;
        text.push_str(&format!(
            "    - [n{i}/v_op/r, n{j}/v_op/r_in, null, {{weight: -0.5}}]\n"
        ));
    }
    let c = load_text(&text, "net").expect("loads");
    let run_on = |backend: Backend| {
        let map = ParamMap::new().nodes("c", &["v_op/c"], &["n0", "n2", "n4", "n6"]);
        let grid = [("c", vec![0.1, 0.2, 0.3, 0.4])];
        crate::support::run(
            &sweep_spec(
                &grid,
                map,
                Method::Euler,
                (2.0, 1e-3, 0.1),
                &[("x", "all/v_op/x")],
                backend,
            ),
            &c,
        )
    };
    let reference = run_on(Backend::Reference);
    assert_eq!(reference.columns.len(), 24, "{:?}", reference.columns);
    assert_eq!(reference.columns[4], ("n1".to_string(), "x[1]".to_string()));
    let moved = (0..4)
        .flat_map(|p| reference.trace(p, 0).expect("traces"))
        .map(|x| (x - 0.5).abs())
        .fold(0.0, f64::max);
    assert!(moved > 0.01, "the network stays put");
    for backend in [Backend::Jit, Backend::C] {
        let res = run_on(backend);
        assert_eq!(res.columns, reference.columns);
        // The same real expressions, at most in another association order (the JIT's and
        // the loops'): rounding level, far below the O(0.01) the elements move.
        for p in 0..4 {
            for col in 0..24 {
                let (a, b) = (
                    res.trace(p, col).expect("traces"),
                    reference.trace(p, col).expect("traces"),
                );
                let d = max_abs_difference(&a, &b);
                assert!(d <= 1e-12, "{backend:?} point {p} column {col}: differs by {d}");
            }
        }
    }
}

/// An edge reads one element (`'a/src_op/x[1]'`, quoted in a YAML flow list); naming the
/// whole vector is an unknown edge end at its position.
#[test]
fn an_edge_reads_one_element_of_a_vector() {
    let text = |source: &str| {
        format!(
            r#"
src_op:
  base: OperatorTemplate
  equations: "x' = -x*rate"
  variables:
    x: output(1.0, 2)
    rate: 1.0
dst_op:
  base: OperatorTemplate
  equations: "y' = u_in"
  variables:
    y: output(0.0)
    u_in: input(0.0)
src: {{base: NodeTemplate, operators: [src_op]}}
dst: {{base: NodeTemplate, operators: [dst_op]}}
net:
  base: CircuitTemplate
  nodes: {{a: src, b: dst}}
  edges:
    - ['{source}', b/dst_op/u_in, null, {{weight: 2.0}}]
"#
        )
    };
    let c = load_text(&text("a/src_op/x[1]"), "net").expect("loads");
    // Both elements decay at rate 2; x[1] starts at 3 (x[0] at 1): x[1] = 3e^{-2t}.
    let map = ParamMap::new()
        .nodes("r", &["src_op/rate"], &["a"])
        .nodes("x1", &["src_op/x[1]"], &["a"]);
    let grid = [("r", vec![2.0]), ("x1", vec![3.0])];
    let spec = sweep_spec(
        &grid,
        map,
        Method::Rk4,
        (2.0, 1e-3, 0.5),
        &[("y", "b/dst_op/y")],
        Backend::Reference,
    );
    let res = crate::support::run(&spec, &c);
    let y = column(&res, 0, "y");
    // y' = 2 x[1] = 6 e^{-2t}: y(t) = 3(1 − e^{-2t}) (x[0] would give a third of it); RK4 at
    // dt = 1e-3 is within 1e-12 of it.
    for (i, &t) in res.time.iter().enumerate() {
        assert!(
            (y[i] - 3.0 * (1.0 - (-2.0 * t).exp())).abs() < 1e-9,
            "t = {t}: {}",
            y[i]
        );
    }
    // Line 20, after `    - ['`.
    assert_load_error(&text("a/src_op/x"), "net", "edge/unknown-source", "20:8");
}
